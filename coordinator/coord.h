/* vzcoord's daemon: its context, its settings (vzcoord.conf), the TLS
 * listener for the agents and the admin socket (serve.c, admin.c).
 *
 * One process, one libev loop. The TLS handshake runs step by step in
 * the loop, with a deadline, so an unauthenticated peer can stall
 * nothing. Messages then use the blocking transport with timeouts
 * (transport/conn.h), which the loop can afford: an agent's message is a
 * few KiB sent whole, so once its socket is readable the rest of the
 * frame follows at once; an authenticated peer that stalls mid-frame
 * costs the loop at most COORD_IO_TIMEOUT_MS and loses its connection. */
#ifndef VZ_COORD_H
#define VZ_COORD_H

#include <ev.h>
#include <stdint.h>

#include "conn.h"
#include "err.h"
#include "members.h"

#define COORD_PORT_DEFAULT  7800
#define COORD_IO_TIMEOUT_MS 3000
#define COORD_CONF	    "/etc/vz/vzcoord.conf"
#define COORD_SOCK	    "/run/vz/vzcoord.sock"
#define COORD_STORE	    "/var/lib/vz/vzcoord.db"
/* The CN of the coordinator's certificate (deploy/vz-certs coordinator):
 * the agents talk to no other, and no host may register under it. */
#define COORD_CN "vzcoord"

struct coord_conf {
	unsigned port;
	unsigned suspect_after; /* missed heartbeats */
	unsigned offline_after_ms;
	char tls_ca[4096], tls_cert[4096], tls_key[4096];
	char store[4096]; /* the SQLite file: hosts, states, events */
};

struct agent_conn;

struct coord {
	struct ev_loop *loop;
	struct coord_conf conf;
	struct pool pool;
	struct pool_store *store;
	struct vz_tls *tls;
	int listen_fd, admin_fd;
	ev_io listen_w, admin_w;
	ev_timer tick_w;
	ev_signal sigterm_w, sigint_w;
	struct agent_conn *conns;
	uint64_t epoch; /* of the orders this coordinator gives (Order.epoch, >= 1) */
};

/* Settings from VZ_ROOT/etc/vz/vzcoord.conf, defaults for what it does
 * not set (a missing file is all defaults). A bad value fails with
 * VZ_EXIT_BADVAL and names the key. */
int coord_conf_load(struct coord_conf *conf, struct vz_err *err);
/* Listen for agents (TLS) and admins (unix socket), then serve until
 * SIGTERM or SIGINT. */
int coord_serve(struct coord *c, struct vz_err *err);

/* In a worker process forked from the loop: close the loop's sockets
 * (listeners, agents) without a word to their peers, which are the loop's. */
void coord_forget_fds(struct coord *c);

/* vzcoord exec (exec_serve.c): check req, pick its VEs, and fork the
 * worker that runs it and answers on conn; a refusal is answered here. */
void coord_exec_start(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req);

/* The coordinator's store, opened (its directory made); one clear error
 * for a file it cannot use (a newer schema, not a store). */
int coord_store_open(const struct coord_conf *conf, struct pool_store **out, struct vz_err *err);

/* The admin socket's side (admin.c): take one admin connection. */
void coord_admin_accept(struct coord *c);
/* The admin's side: send op to the coordinator under VZ_ROOT and hand
 * back its reply (free with vz__pool__admin_reply__free_unpacked). */
int coord_admin_call(Vz__Pool__AdminOp op, Vz__Pool__AdminReply **reply, struct vz_err *err);
/* The same for a request with its fields (magic and version are set). */
int coord_admin_request(Vz__Pool__AdminRequest *req, Vz__Pool__AdminReply **reply, struct vz_err *err);

#endif
