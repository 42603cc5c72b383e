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
#include "metrics_http.h"
#include "rebalance.h"

#define COORD_PORT_DEFAULT  7800
#define COORD_IO_TIMEOUT_MS 3000
#define COORD_CONF	    "/etc/vz/vzcoord.conf"
#define COORD_SOCK	    "/run/vz/vzcoord.sock"
#define COORD_STORE	    "/var/lib/vz/vzcoord.db"
/* The CN of the coordinator's certificate (deploy/vz-certs coordinator):
 * the agents talk to no other, and no host may register under it. */
#define COORD_CN "vzcoord"
/* Loopback: the pool's figures stay on the coordinator's host unless an
 * admin opens them up; next to the agent's 9720, so both fit one host. */
#define COORD_METRICS_DEFAULT "127.0.0.1:9721"

struct coord_conf {
	unsigned port;
	unsigned suspect_after; /* missed heartbeats */
	unsigned offline_after_ms;
	char tls_ca[4096], tls_cert[4096], tls_key[4096];
	char store[4096]; /* the SQLite file: hosts, states, events */
	/* The queue's limits: live moves out of and into one host, and in
	 * the pool at once; and the links' speed for estimates (Mbit/s). */
	unsigned max_out_per_host, max_in_per_host, max_moves;
	unsigned bandwidth_mbit;
	/* The rebalancing planner's rule (REBALANCE_* keys), and the
	 * seconds between automatic rounds (0: none). */
	struct rb_settings rebalance;
	unsigned rebalance_interval_s;
	/* /metrics on ADDRESS:PORT (METRICS_LISTEN), "" when off. */
	char metrics_listen[128];
};

struct agent_conn;
struct coord_worker;

/* An admin's connection kept open for what it waits for: moves (their
 * ids) or a drain (its host); each line about them is sent to it, then one
 * reply with done. */
struct coord_waiter {
	struct vz_conn conn;
	uint64_t *moves;
	size_t n_moves;
	char drain[POOL_NAME_MAX];
	struct coord_waiter *next;
};

struct coord {
	struct ev_loop *loop;
	struct coord_conf conf;
	struct pool pool;
	struct pool_store *store;
	uint64_t epoch; /* of the orders this coordinator gives (Order.epoch, >= 1): the store's, new at each start */
	struct vz_tls *tls;
	struct vz_tls *tls_client; /* the orders to agents */
	uint64_t started_ns;
	uint64_t next_query_ns;
	uint64_t next_rebalance_ns;  /* the next automatic round */
	uint64_t rebalance_log_hash; /* of the last automatic round's decisions */
	struct coord_worker *workers;
	struct coord_waiter *waiters;
	int listen_fd, admin_fd;
	ev_io listen_w, admin_w;
	ev_timer tick_w;
	ev_signal sigterm_w, sigint_w;
	struct agent_conn *conns;
	struct vz_metrics_srv metrics;
};

/* Settings from VZ_ROOT/etc/vz/vzcoord.conf, defaults for what it does
 * not set (a missing file is all defaults). A bad value fails with
 * VZ_EXIT_BADVAL and names the key. */
int coord_conf_load(struct coord_conf *conf, struct vz_err *err);
/* Listen for agents (TLS) and admins (unix socket), then serve until
 * SIGTERM or SIGINT. */
int coord_serve(struct coord *c, struct vz_err *err);

/* Serve /metrics on conf.metrics_listen (metrics.c); nothing when "". */
int coord_metrics_start(struct coord *c, struct vz_err *err);

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
/* The same for a long operation: req sent, each reply handed to
 * on_reply (its line, progress: a move's passing progress; a move's
 * outcome), until the one with done; its error is the outcome. */
int coord_admin_stream(Vz__Pool__AdminRequest *req, void (*on_reply)(void *arg, const Vz__Pool__AdminReply *r),
		       void *arg, struct vz_err *err);

/* The queue (queue.c). Moves from the store, an array the caller frees. */
struct coord_moves {
	struct pool_move *v;
	size_t n, cap;
};
int coord_moves_load(struct coord *c, int state, struct coord_moves *l, struct vz_err *err);
/* Start what the limits allow, ask what is not known, end drains: one
 * step, at each tick. */
void coord_queue_step(struct coord *c);
void coord_queue_stop(struct coord *c);
/* Every online host has sent its inventory since this coordinator began:
 * where each VE is, is known. */
bool coord_inventory_whole(const struct coord *c);
/* Queued move m, whose target is in maintenance, goes to another host, or
 * fails when none has room; saved, and its drain's member and waiters
 * told. The new target (m->dst), NULL if none. */
const char *coord_move_retarget(struct coord *c, struct pool_move *m);
/* m into the store, its updated_ms now; logged if it fails. */
int coord_move_save(struct coord *c, struct pool_move *m);
/* An event: logged and into the store. */
void coord_event(struct coord *c, const char *kind, unsigned veid, const char *host, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A line to the admins waiting for move id or drain. */
void coord_tell(struct coord *c, uint64_t id, const char *drain, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The last reply to w (error NULL or "": success), and w freed. */
void coord_waiter_done(struct coord *c, struct coord_waiter *w, const char *error);
void coord_waiter_free(struct coord *c, struct coord_waiter *w);
int64_t coord_now_ms(const struct coord *c);
bool coord_host_online(const struct coord *c, const char *name);
/* Host name has sent its inventory since t (monotonic ns; 0: since this
 * coordinator began): what it holds is known. */
bool coord_inventory_since(const struct coord *c, const char *name, uint64_t t);
const struct pool_ve *coord_find_ve(const struct pool_node *h, unsigned veid);
/* How many hosts report veid; *where is the first. */
unsigned coord_where(const struct coord *c, unsigned veid, struct pool_node **where);
/* The pool's hosts as the planner sees them, the queue's moves counted. */
struct plan_host;
size_t coord_plan_hosts(struct coord *c, struct plan_host *hosts, size_t max);

/* The admin's moves (drain.c): migrate, drain and undrain. Each answers
 * on conn; true when conn was kept by a waiter (the caller leaves it). */
bool coord_admin_moves(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req);
/* For the other admin moves (rebalance_live.c), as migrate's: a line to
 * the admin; the last reply (msg NULL: success, false); the admin kept
 * waiting for the moves ids (true); a move queued (0 or -errno, logged);
 * every online host heard since this coordinator began. */
void coord_say_line(struct vz_conn *conn, const char *line);
bool coord_finish_line(struct vz_conn *conn, const char *msg);
bool coord_keep_waiter(struct coord *c, struct vz_conn *conn, const uint64_t *ids, size_t n);
int coord_queue_move(struct coord *c, unsigned veid, const char *src, const char *dst, enum pool_move_mode mode,
		     uint64_t *id);
/* vzcoord rebalance [--dry-run] (rebalance_live.c): one round by hand,
 * answered on conn; true when conn was kept by a waiter. */
bool coord_rebalance_admin(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req);
/* An automatic round when REBALANCE_INTERVAL is set and one is due. */
void coord_rebalance_tick(struct coord *c);
/* Drains whose moves have all ended: drained or partial. */
void coord_drains_step(struct coord *c);
/* The same for a request with its fields (magic and version are set). */
int coord_admin_request(Vz__Pool__AdminRequest *req, Vz__Pool__AdminReply **reply, struct vz_err *err);

#endif
