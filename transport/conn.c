/* Agent-to-agent connections: TLS 1.3 with mutual authentication under the
 * cluster CA (OpenSSL), a plain variant, length-prefixed messages and
 * streaming zstd chunks (see conn.h). */
#define LOG_PREFIX "conn: "
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#include "cleanup.h"
#include "conn.h"
#include "frame.h"
#include "log.h"

struct vz_tls {
	SSL_CTX *ctx;
};

/* OpenSSL's most recent reason, as text. */
static const char *ssl_reason(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	if (!e)
		return "connection closed";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

int vz_tls_new(struct vz_tls **out, const char *ca, const char *cert, const char *key, bool server, struct vz_err *err)
{
	struct vz_tls *t = calloc(1, sizeof(*t));

	if (!t)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!t->ctx) {
		free(t);
		return vz_error_msg(err, EIO, "Create a TLS context: %s", ssl_reason());
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
	if (SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1) {
		vz_tls_free(t);
		return vz_error_msg(err, ENOENT, "Load the cluster CA %s: %s", ca, ssl_reason());
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(t->ctx) != 1) {
		vz_tls_free(t);
		return vz_error_msg(err, ENOENT, "Load this host's certificate %s and key %s: %s", cert, key,
				    ssl_reason());
	}
	/* Both sides present a certificate the cluster CA signed. */
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	*out = t;
	return 0;
}

void vz_tls_free(struct vz_tls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

static ssize_t tls_read(struct vz_conn *c, void *buf, size_t len, struct vz_err *err)
{
	int n = SSL_read(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));

	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_ZERO_RETURN: return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return vz_error_msg(err, ETIMEDOUT, "No data from %s in time", c->peer);
		if (n == 0 || errno == 0)
			return vz_error_msg(err, ECONNRESET, "%s closed the connection", c->peer);
		return vz_error(err, errno, "Read from %s", c->peer);
	default: return vz_error_msg(err, EPROTO, "TLS from %s: %s", c->peer, ssl_reason());
	}
}

static int tls_write(struct vz_conn *c, const void *buf, size_t len, struct vz_err *err)
{
	const uint8_t *p = buf;

	while (len > 0) {
		int n = SSL_write(c->ssl, p, (int)(len > (1 << 30) ? (1 << 30) : len));

		if (n <= 0) {
			int e = SSL_get_error(c->ssl, n);

			if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
				return vz_error_msg(err, ETIMEDOUT, "%s takes no data in time", c->peer);
			if (e == SSL_ERROR_SYSCALL)
				return errno ? vz_error(err, errno, "Write to %s", c->peer)
					     : vz_error_msg(err, EPIPE, "Write to %s: connection closed", c->peer);
			return vz_error_msg(err, EPROTO, "TLS to %s: %s", c->peer, ssl_reason());
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void tls_close(struct vz_conn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = VZ_FD_INIT;
}

static const struct vz_conn_ops tls_ops = { tls_read, tls_write, tls_close };

static ssize_t plain_read(struct vz_conn *c, void *buf, size_t len, struct vz_err *err)
{
	for (;;) {
		ssize_t n = read(c->fd, buf, len);

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return vz_error(err, errno == EAGAIN ? ETIMEDOUT : errno, "Read from %s", c->peer);
	}
}

static int plain_write(struct vz_conn *c, const void *buf, size_t len, struct vz_err *err)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return vz_error(err, errno, "Write to %s", c->peer);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void plain_close(struct vz_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = VZ_FD_INIT;
}

static const struct vz_conn_ops plain_ops = { plain_read, plain_write, plain_close };

void vz_conn_plain(struct vz_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->ops = &plain_ops;
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "unix");
}

void vz_conn_close(struct vz_conn *c)
{
	if (c && c->ops)
		c->ops->close(c);
}

static void set_timeouts(int fd, int io_timeout_ms)
{
	struct timeval tv = { io_timeout_ms / 1000, (io_timeout_ms % 1000) * 1000 };
	int one = 1, idle = 5, intvl = 2, cnt = 3;
	unsigned user_to = (unsigned)io_timeout_ms;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A cut link must end the conversation, not hang it. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_to, sizeof(user_to));
}

/* The peer's CN, and a clear error when its certificate did not verify. */
static int check_peer(struct vz_conn *c, const char *who, struct vz_err *err)
{
	X509 *x = SSL_get1_peer_certificate(c->ssl);
	long v = SSL_get_verify_result(c->ssl);

	if (!x)
		return vz_error_msg(err, EACCES, "%s presented no certificate", who);
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, c->peer, sizeof(c->peer));
	X509_free(x);
	if (v != X509_V_OK)
		return vz_error_msg(err, EACCES, "%s (%s): certificate refused: %s", who, c->peer,
				    X509_verify_cert_error_string(v));
	return 0;
}

static int handshake_error(SSL *ssl, int r, const char *who, struct vz_err *err)
{
	long v = SSL_get_verify_result(ssl);
	int e = SSL_get_error(ssl, r);

	if (v != X509_V_OK)
		return vz_error_msg(err, EACCES, "%s: certificate refused: %s (not signed by the cluster CA?)", who,
				    X509_verify_cert_error_string(v));
	if (e == SSL_ERROR_SYSCALL)
		return errno ? vz_error(err, errno, "%s: TLS handshake", who)
			     : vz_error_msg(
				   err, ECONNRESET,
				   "%s: TLS handshake: the peer closed the connection (did it refuse our certificate?)",
				   who);
	return vz_error_msg(err, EACCES, "%s: TLS handshake: %s", who, ssl_reason());
}

int vz_tls_connect(struct vz_tls *t, const char *host, unsigned port, int timeout_ms, int io_timeout_ms,
		   struct vz_conn *c, struct vz_err *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char portstr[16], who[300];
	int fd = VZ_FD_INIT, r;
	SSL *ssl;

	memset(c, 0, sizeof(*c));
	c->fd = VZ_FD_INIT;
	snprintf(portstr, sizeof(portstr), "%u", port);
	snprintf(who, sizeof(who), "%s:%u", host, port);
	r = getaddrinfo(host, portstr, &hints, &ai);
	if (r != 0)
		return vz_error_msg(err, EHOSTUNREACH, "Resolve %s: %s", host, gai_strerror(r));
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		struct pollfd p;
		socklen_t len = sizeof(r);

		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
			r = errno;
			close(fd);
			fd = VZ_FD_INIT;
			continue;
		}
		p.fd = fd;
		p.events = POLLOUT;
		if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &r, &len) != 0 || r) {
			if (!r)
				r = ETIMEDOUT;
			close(fd);
			fd = VZ_FD_INIT;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return vz_error(err, r ? r : EHOSTUNREACH, "Connect to %s", who);
	fcntl(fd, F_SETFL, 0);
	set_timeouts(fd, io_timeout_ms);
	ssl = SSL_new(t->ctx);
	if (!ssl) {
		close(fd);
		return vz_error_msg(err, ENOMEM, "Create a TLS session: %s", ssl_reason());
	}
	SSL_set_fd(ssl, fd);
	c->ops = &tls_ops;
	c->fd = fd;
	c->ssl = ssl;
	r = SSL_connect(ssl);
	if (r != 1) {
		r = handshake_error(ssl, r, who, err);
		vz_conn_close(c);
		return r;
	}
	r = check_peer(c, who, err);
	if (r < 0)
		vz_conn_close(c);
	return r;
}

int vz_tcp_listen(unsigned port, int *out, struct vz_err *err)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6,
				   .sin6_port = htons((uint16_t)port),
				   .sin6_addr = IN6ADDR_ANY_INIT };
	int fd, one = 1, zero = 0;

	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return vz_error(err, errno, "Create a socket for port %u", port);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
		int e = errno;

		close(fd);
		return vz_error(err, e, "Listen on port %u", port);
	}
	*out = fd;
	return 0;
}

void vz_sock_peer_host(int fd, char *host, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (len == 0)
		return;
	host[0] = '\0';
	if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
		host[0] = '\0';
}

/* A server's session on accepted socket fd (taken), its peer named by
 * address in c->peer until the handshake names it by certificate. */
static int accept_prepare(struct vz_tls *t, int fd, struct vz_conn *c, struct vz_err *err)
{
	char host[64];
	SSL *ssl;

	memset(c, 0, sizeof(*c));
	vz_sock_peer_host(fd, host, sizeof(host));
	if (host[0])
		snprintf(c->peer, sizeof(c->peer), "Peer %s", host);
	else
		snprintf(c->peer, sizeof(c->peer), "A peer");
	ssl = SSL_new(t->ctx);
	if (!ssl) {
		close(fd);
		return vz_error_msg(err, ENOMEM, "Create a TLS session: %s", ssl_reason());
	}
	SSL_set_fd(ssl, fd);
	c->ops = &tls_ops;
	c->fd = fd;
	c->ssl = ssl;
	return 0;
}

/* After SSL_accept returned r: the peer checked, or c closed. */
static int accept_finish(struct vz_conn *c, int r, struct vz_err *err)
{
	char who[sizeof(c->peer)];

	snprintf(who, sizeof(who), "%s", c->peer);
	r = r == 1 ? check_peer(c, who, err) : handshake_error(c->ssl, r, who, err);
	if (r < 0)
		vz_conn_close(c);
	return r;
}

int vz_tls_accept(struct vz_tls *t, int fd, int io_timeout_ms, struct vz_conn *c, struct vz_err *err)
{
	int r = accept_prepare(t, fd, c, err);

	if (r < 0)
		return r;
	set_timeouts(fd, io_timeout_ms);
	return accept_finish(c, SSL_accept(c->ssl), err);
}

int vz_tls_accept_begin(struct vz_tls *t, int fd, struct vz_conn *c, struct vz_err *err)
{
	int r = accept_prepare(t, fd, c, err);

	if (r == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
		r = vz_error(err, errno, "Make the socket of %s non-blocking", c->peer);
		vz_conn_close(c);
	}
	return r;
}

int vz_tls_accept_step(struct vz_conn *c, int io_timeout_ms, bool *want_write, struct vz_err *err)
{
	int r = SSL_accept(c->ssl), e;

	if (r != 1) {
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			*want_write = e == SSL_ERROR_WANT_WRITE;
			return -EAGAIN;
		}
	} else {
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
		set_timeouts(c->fd, io_timeout_ms);
	}
	return accept_finish(c, r, err);
}

static int read_full(struct vz_conn *c, void *buf, size_t len, struct vz_err *err)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = c->ops->read(c, p, len, err);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return vz_error_msg(err, ECONNRESET, "%s closed the connection", c->peer);
		p += n;
		len -= (size_t)n;
		c->bytes_in += (uint64_t)n;
	}
	return 0;
}

int vz_msg_send(struct vz_conn *c, const ProtobufCMessage *m, struct vz_err *err)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	_cleanup_free_ uint8_t *buf = NULL;
	int ret;

	if (len > VZ_MSG_MAX)
		return vz_error_msg(err, EMSGSIZE, "Message of %zu bytes is too large", len);
	buf = malloc(len + 4);
	if (!buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	protobuf_c_message_pack(m, buf + 4);
	ret = c->ops->write(c, buf, len + 4, err);
	if (ret == 0)
		c->bytes_out += len + 4;
	return ret;
}

int vz_msg_recv(struct vz_conn *c, const ProtobufCMessageDescriptor *desc, size_t max, ProtobufCMessage **m,
		struct vz_err *err)
{
	uint8_t hdr[VZ_FRAME_HDR];
	_cleanup_free_ uint8_t *buf = NULL;
	uint32_t len;
	int ret;

	ret = read_full(c, hdr, sizeof(hdr), err);
	if (ret < 0)
		return ret;
	if (vz_frame_parse_header(hdr, max, &len) < 0)
		return vz_error_msg(err, EMSGSIZE, "%s sent a frame longer than %zu bytes", c->peer, max);
	buf = malloc(len ? len : 1);
	if (!buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	ret = read_full(c, buf, len, err);
	if (ret < 0)
		return ret;
	*m = protobuf_c_message_unpack(desc, NULL, len, buf);
	if (!*m)
		return vz_error_msg(err, EBADMSG, "%s sent a message that does not parse", c->peer);
	return 0;
}

struct vz_zenc {
	ZSTD_CCtx *cctx;
	uint8_t *out;
	size_t cap;
};

struct vz_zenc *vz_zenc_new(int level, struct vz_err *err)
{
	struct vz_zenc *z = calloc(1, sizeof(*z));

	if (!z) {
		vz_error_msg(err, ENOMEM, "Compressor: out of memory");
		return NULL;
	}
	z->cctx = ZSTD_createCCtx();
	if (!z->cctx) {
		free(z);
		vz_error_msg(err, ENOMEM, "Compressor: out of memory");
		return NULL;
	}
	ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, level);
	/* The receiver caps its window at 2^27; stay under it. */
	ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_windowLog, 23);
	return z;
}

void vz_zenc_free(struct vz_zenc *z)
{
	if (!z)
		return;
	ZSTD_freeCCtx(z->cctx);
	free(z->out);
	free(z);
}

int vz_zenc_chunk(struct vz_zenc *z, const void *in, size_t len, const void **out, size_t *out_len, struct vz_err *err)
{
	size_t need = ZSTD_compressBound(len) + 64;
	ZSTD_inBuffer ib = { in, len, 0 };
	ZSTD_outBuffer ob;
	size_t left;

	if (need > z->cap) {
		uint8_t *n = realloc(z->out, need);

		if (!n)
			return vz_error_msg(err, ENOMEM, "Out of memory");
		z->out = n;
		z->cap = need;
	}
	ob = (ZSTD_outBuffer){ z->out, z->cap, 0 };
	do {
		left = ZSTD_compressStream2(z->cctx, &ob, &ib, ZSTD_e_flush);
		if (ZSTD_isError(left))
			return vz_error_msg(err, EIO, "Compress: %s", ZSTD_getErrorName(left));
	} while (left != 0 && ob.pos < ob.size);
	if (left != 0)
		return vz_error_msg(err, EIO, "Compressed chunk does not fit");
	*out = z->out;
	*out_len = ob.pos;
	return 0;
}

struct vz_zdec {
	ZSTD_DCtx *dctx;
	uint8_t *out;
	size_t cap;
};

struct vz_zdec *vz_zdec_new(struct vz_err *err)
{
	struct vz_zdec *z = calloc(1, sizeof(*z));

	if (!z) {
		vz_error_msg(err, ENOMEM, "Decompressor: out of memory");
		return NULL;
	}
	z->dctx = ZSTD_createDCtx();
	z->cap = ZSTD_DStreamOutSize();
	z->out = malloc(z->cap);
	if (!z->dctx || !z->out) {
		vz_zdec_free(z);
		vz_error_msg(err, ENOMEM, "Decompressor: out of memory");
		return NULL;
	}
	ZSTD_DCtx_setParameter(z->dctx, ZSTD_d_windowLogMax, 27);
	return z;
}

void vz_zdec_reset(struct vz_zdec *z)
{
	ZSTD_DCtx_reset(z->dctx, ZSTD_reset_session_only);
}

void vz_zdec_free(struct vz_zdec *z)
{
	if (!z)
		return;
	ZSTD_freeDCtx(z->dctx);
	free(z->out);
	free(z);
}

int vz_zdec_chunk(struct vz_zdec *z, const void *in, size_t len, size_t max_total,
		  int (*sink)(void *arg, const void *buf, size_t len, struct vz_err *err), void *arg,
		  struct vz_err *err)
{
	ZSTD_inBuffer ib = { in, len, 0 };
	size_t total = 0;

	for (;;) {
		ZSTD_outBuffer ob = { z->out, z->cap, 0 };
		size_t r = ZSTD_decompressStream(z->dctx, &ob, &ib);
		int ret;

		if (ZSTD_isError(r))
			return vz_error_msg(err, EBADMSG, "Corrupt compressed data: %s", ZSTD_getErrorName(r));
		total += ob.pos;
		if (total > max_total)
			return vz_error_msg(err, EMSGSIZE, "A chunk expands past %zu bytes", max_total);
		if (ob.pos) {
			ret = sink(arg, z->out, ob.pos, err);
			if (ret < 0)
				return ret;
		}
		if (ib.pos == ib.size && ob.pos < ob.size)
			return 0;
	}
}
