/* A byte stream between two agents as a table of functions (read, write,
 * close) with a TLS implementation (mutual authentication under the
 * cluster CA, TLS 1.3 only) and a plain-socket one (a unix socket, tests);
 * length-prefixed protobuf messages on top; and bulk data in chunks
 * compressed with streaming zstd.
 *
 * Blocking I/O with timeouts: a migration runs in a worker process of its
 * own, and a full TCP window is the back-pressure that keeps a fast sender
 * from outrunning a slow receiver (each side holds at most one frame).
 * Every function returns 0 or a negative errno with err filled. */
#ifndef VZ_CONN_H
#define VZ_CONN_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct vz_conn;

struct vz_conn_ops {
	/* Up to len bytes; 0 at the peer's orderly end. */
	ssize_t (*read)(struct vz_conn *c, void *buf, size_t len, struct vz_err *err);
	/* All of len, or an error. */
	int (*write)(struct vz_conn *c, const void *buf, size_t len, struct vz_err *err);
	void (*close)(struct vz_conn *c);
};

struct vz_conn {
	const struct vz_conn_ops *ops;
	int fd;
	void *ssl;	    /* SSL *, TLS only */
	char peer[256];	    /* certificate CN, or "unix" */
	uint64_t bytes_out; /* on the wire */
	uint64_t bytes_in;
};

/* TLS context of this host: CA, certificate and key (PEM files). */
struct vz_tls;
int vz_tls_new(struct vz_tls **out, const char *ca, const char *cert, const char *key, bool server, struct vz_err *err);
void vz_tls_free(struct vz_tls *t);

/* Connect to host:port within timeout_ms and authenticate both ways. A
 * peer whose certificate the CA did not sign is refused, and its reason
 * named. I/O on the connection times out after io_timeout_ms. */
int vz_tls_connect(struct vz_tls *t, const char *host, unsigned port, int timeout_ms, int io_timeout_ms,
		   struct vz_conn *c, struct vz_err *err);
/* Handshake on an accepted socket (takes fd). */
int vz_tls_accept(struct vz_tls *t, int fd, int io_timeout_ms, struct vz_conn *c, struct vz_err *err);

/* The same one step at a time, for an event loop that must not wait on a
 * peer: begin takes fd and makes it non-blocking; each step returns
 * -EAGAIN while the handshake waits for the peer, with *want_write saying
 * which event to wait for, or 0 once the peer is authenticated (fd
 * blocking again, with io_timeout_ms timeouts), or an error (c closed). */
int vz_tls_accept_begin(struct vz_tls *t, int fd, struct vz_conn *c, struct vz_err *err);
int vz_tls_accept_step(struct vz_conn *c, int io_timeout_ms, bool *want_write, struct vz_err *err);

/* Listen on TCP port on every address, IPv4 and IPv6 (non-blocking,
 * close-on-exec, SO_REUSEADDR) into *fd. */
int vz_tcp_listen(unsigned port, int *fd, struct vz_err *err);

/* The numeric address of the peer of socket fd in host[len]; "" when
 * unknown (no socket, not connected). A unix socket's is "localhost". */
void vz_sock_peer_host(int fd, char *host, size_t len);

/* A connection over an already connected socket, without TLS. */
void vz_conn_plain(struct vz_conn *c, int fd);

void vz_conn_close(struct vz_conn *c);

#define VZ_MSG_MAX (8u << 20)

/* One message: big-endian u32 length, then the packed message. */
int vz_msg_send(struct vz_conn *c, const ProtobufCMessage *m, struct vz_err *err);
/* Receive one message of type desc; lengths over max are refused before
 * anything is read into memory. Free with protobuf_c_message_free_unpacked. */
int vz_msg_recv(struct vz_conn *c, const ProtobufCMessageDescriptor *desc, size_t max, ProtobufCMessage **m,
		struct vz_err *err);

/* Streaming zstd for bulk data: the sender compresses into chunks it
 * flushes at each call, the receiver decompresses each chunk into at most
 * max_out bytes per call back. */
struct vz_zenc;
/* The constructors return NULL with err filled (out of memory), always. */
struct vz_zenc *vz_zenc_new(int level, struct vz_err *err);
void vz_zenc_free(struct vz_zenc *z);
/* Compress in[len] (flushed): *out points into z, valid until next call. */
int vz_zenc_chunk(struct vz_zenc *z, const void *in, size_t len, const void **out, size_t *out_len, struct vz_err *err);

struct vz_zdec;
struct vz_zdec *vz_zdec_new(struct vz_err *err);
void vz_zdec_free(struct vz_zdec *z);
/* A new stream begins (the sender started a new encoder). */
void vz_zdec_reset(struct vz_zdec *z);
/* Decompress one chunk, calling sink for each piece; refuses a chunk that
 * expands past max_total bytes. */
int vz_zdec_chunk(struct vz_zdec *z, const void *in, size_t len, size_t max_total,
		  int (*sink)(void *arg, const void *buf, size_t len, struct vz_err *err), void *arg,
		  struct vz_err *err);

#endif
