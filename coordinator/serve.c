/* vzcoord serve: its settings, the agents' TLS listener, one connection
 * per agent (a registration, then heartbeats, each acknowledged), and the
 * timer that turns silent hosts suspect, then offline. */
#define LOG_PREFIX "serve: "
#include <errno.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "control.h"
#include "coord.h"
#include "log.h"
#include "paths.h"
#include "util.h"

struct agent_conn {
	ev_io io;
	ev_timer handshake_w; /* the TLS handshake's deadline, while it runs */
	bool handshaking;
	struct coord *coord;
	struct vz_conn conn;
	char host[64]; /* "" until it registers */
	struct agent_conn *next;
};

static int conf_uint(const struct vz_conf *f, const char *path, const char *key, unsigned long min, unsigned long max,
		     unsigned *out, struct vz_err *err)
{
	const char *v = vz_conf_get(f, key);
	unsigned long n;

	if (!v || !*v)
		return 0;
	if (vz_parse_ulong(v, min, max, &n) < 0)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: %s must be %lu..%lu", path, key, min, max);
	*out = (unsigned)n;
	return 0;
}

static void conf_path(const struct vz_conf *f, const char *key, const char *def, char *buf, size_t len)
{
	const char *v = vz_conf_get(f, key);

	if (v && *v)
		snprintf(buf, len, "%s", v);
	else
		vz_path(buf, len, "%s", def);
}

/* The planner's rule: thresholds and gains in percent, times in seconds. */
static int rebalance_conf(const struct vz_conf *f, const char *path, struct coord_conf *conf, struct vz_err *err)
{
	struct rb_settings *s = &conf->rebalance;
	unsigned hot = 70, imb = 20, gain = 10, cooldown = 6 * 3600;
	int ret;

	rb_settings_default(s);
	s->bandwidth = (uint64_t)conf->bandwidth_mbit * 125000;
	if ((ret = conf_uint(f, path, "REBALANCE_INTERVAL", 0, 86400, &conf->rebalance_interval_s, err)) < 0 ||
	    (ret = conf_uint(f, path, "REBALANCE_HOT", 1, 1000, &hot, err)) < 0 ||
	    (ret = conf_uint(f, path, "REBALANCE_IMBALANCE", 0, 1000, &imb, err)) < 0 ||
	    (ret = conf_uint(f, path, "REBALANCE_MIN_GAIN", 0, 100, &gain, err)) < 0 ||
	    (ret = conf_uint(f, path, "REBALANCE_ROUNDS", 1, 1000, &s->trigger_rounds, err)) < 0 ||
	    (ret = conf_uint(f, path, "REBALANCE_COOLDOWN", 0, 30 * 86400, &cooldown, err)) < 0 ||
	    (ret = conf_uint(f, path, "REBALANCE_BUDGET", 0, 1000, &s->moves_per_hour, err)) < 0 ||
	    (ret = conf_uint(f, path, "REBALANCE_IN_FLIGHT", 1, 64, &s->max_in_flight, err)) < 0)
		return ret;
	s->hot_threshold = hot / 100.0;
	s->imbalance_threshold = imb / 100.0;
	s->min_gain = gain / 100.0;
	s->cooldown_s = cooldown;
	return 0;
}

int coord_conf_load(struct coord_conf *conf, struct vz_err *err)
{
	_cleanup_conf_ struct vz_conf f = { 0 };
	char path[PATH_MAX];
	unsigned offline_s = 20;
	const char *v;
	int ret;

	*conf = (struct coord_conf){ .port = COORD_PORT_DEFAULT, .suspect_after = 3 };
	vz_path(path, sizeof(path), COORD_CONF);
	if (vz_exists(path) && (ret = vz_conf_load(&f, path, err)) < 0)
		return ret;
	if ((ret = conf_uint(&f, path, "COORD_PORT", 1, 65535, &conf->port, err)) < 0 ||
	    (ret = conf_uint(&f, path, "SUSPECT_AFTER", 1, 1000, &conf->suspect_after, err)) < 0 ||
	    (ret = conf_uint(&f, path, "OFFLINE_AFTER", 1, 86400, &offline_s, err)) < 0)
		return ret;
	conf->offline_after_ms = offline_s * 1000;
	conf_path(&f, "TLS_CA", "/etc/vz/tls/ca.crt", conf->tls_ca, sizeof(conf->tls_ca));
	conf_path(&f, "TLS_CERT", "/etc/vz/tls/host.crt", conf->tls_cert, sizeof(conf->tls_cert));
	conf_path(&f, "TLS_KEY", "/etc/vz/tls/host.key", conf->tls_key, sizeof(conf->tls_key));
	conf_path(&f, "STORE", COORD_STORE, conf->store, sizeof(conf->store));
	conf->max_out_per_host = conf->max_in_per_host = 2;
	conf->max_moves = 4;
	conf->bandwidth_mbit = 1000;
	if ((ret = conf_uint(&f, path, "MAX_OUT_PER_HOST", 1, 64, &conf->max_out_per_host, err)) < 0 ||
	    (ret = conf_uint(&f, path, "MAX_IN_PER_HOST", 1, 64, &conf->max_in_per_host, err)) < 0 ||
	    (ret = conf_uint(&f, path, "MAX_MOVES", 1, 1024, &conf->max_moves, err)) < 0 ||
	    (ret = conf_uint(&f, path, "MIGRATE_BANDWIDTH", 1, 1000000, &conf->bandwidth_mbit, err)) < 0)
		return ret;
	if ((ret = rebalance_conf(&f, path, conf, err)) < 0)
		return ret;
	ret = vz_metrics_conf(&f, path, COORD_METRICS_DEFAULT, conf->metrics_listen, sizeof(conf->metrics_listen), err);
	if (ret < 0)
		return ret;
	v = vz_conf_get(&f, "LOG_LEVEL");
	if (v && *v)
		vz_log_set_level(vz_log_level_from_string(v));
	return 0;
}

static void conn_free(struct agent_conn *a)
{
	struct coord *c = a->coord;

	for (struct agent_conn **pp = &c->conns; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	ev_io_stop(c->loop, &a->io);
	ev_timer_stop(c->loop, &a->handshake_w);
	vz_conn_close(&a->conn);
	free(a);
}

static void conn_drop(struct agent_conn *a, const char *why)
{
	pr_info("Agent %s: connection closed: %s", a->host[0] ? a->host : a->conn.peer, why);
	conn_free(a);
}

/* A host registers once per connection, under its certificate's name: a
 * host speaks for itself only. A new connection of a host replaces the
 * old one (its agent restarted; the old socket may not have closed yet). */
static int on_register(struct agent_conn *a, const Vz__Pool__Register *r, struct vz_err *err)
{
	struct coord *c = a->coord;

	if (a->host[0])
		return vz_error_msg(err, EPROTO, "%s registered twice", a->host);
	if (strcmp(r->host, a->conn.peer))
		return vz_error_msg(err, EACCES, "Certificate of %s cannot register host %s", a->conn.peer, r->host);
	if (!strcmp(r->host, COORD_CN))
		return vz_error_msg(err, EACCES, "The coordinator's certificate cannot register a host");
	for (struct agent_conn *o = c->conns; o; o = o->next)
		if (o != a && !strcmp(o->host, r->host)) {
			conn_drop(o, "the host connected again");
			break;
		}
	snprintf(a->host, sizeof(a->host), "%s", r->host);
	return pool_register(&c->pool, r, vz_now_ns(), err);
}

static int on_message(struct agent_conn *a, const Vz__Pool__AgentMsg *m, uint64_t *seq, struct vz_err *err)
{
	if (m->magic != POOL_MAGIC || m->version != POOL_VERSION)
		return vz_error_msg(err, EPROTO, "Not a pool message of version %u (magic %#x, version %u)",
				    POOL_VERSION, m->magic, m->version);
	*seq = 0;
	if (m->reg)
		return on_register(a, m->reg, err);
	if (!m->hb)
		return vz_error_msg(err, EPROTO, "A message with neither registration nor heartbeat");
	if (!a->host[0])
		return vz_error_msg(err, EPROTO, "A heartbeat before the registration");
	*seq = m->hb->seq;
	return pool_heartbeat(&a->coord->pool, a->host, m->hb, vz_now_ns(), err);
}

/* One step of the handshake: the event it waits for next, or the
 * connection ready for messages, or refused. */
static bool handshake(struct agent_conn *a)
{
	struct coord *c = a->coord;
	struct vz_err err = { 0 };
	bool want_write = false;
	int ret = vz_tls_accept_step(&a->conn, COORD_IO_TIMEOUT_MS, &want_write, &err);

	if (ret == -EAGAIN) {
		ev_io_stop(c->loop, &a->io);
		ev_io_set(&a->io, a->conn.fd, want_write ? EV_WRITE : EV_READ);
		ev_io_start(c->loop, &a->io);
		return false;
	}
	if (ret < 0) {
		pr_warn("Refused an agent: %s", err.msg);
		conn_free(a);
		return false;
	}
	a->handshaking = false;
	ev_timer_stop(c->loop, &a->handshake_w);
	ev_io_stop(c->loop, &a->io);
	ev_io_set(&a->io, a->conn.fd, EV_READ);
	ev_io_start(c->loop, &a->io);
	pr_debug("Agent %s connected", a->conn.peer);
	return SSL_pending(a->conn.ssl) > 0;
}

/* One step: every message TLS holds whole, each answered. A refusal is
 * answered with its reason, then the connection closes. */
static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct agent_conn *a = container_of(w, struct agent_conn, io);

	(void)loop;
	(void)revents;
	if (a->handshaking && !handshake(a))
		return;
	do {
		Vz__Pool__AgentMsg *m = NULL;
		Vz__Pool__Ack ack = VZ__POOL__ACK__INIT;
		struct vz_err err = { 0 }, serr = { 0 };
		int ret;

		ret = vz_msg_recv(&a->conn, &vz__pool__agent_msg__descriptor, POOL_MSG_MAX, (ProtobufCMessage **)&m,
				  &err);
		if (ret < 0) {
			conn_drop(a, err.msg);
			return;
		}
		ret = on_message(a, m, &ack.seq, &err);
		vz__pool__agent_msg__free_unpacked(m, NULL);
		if (ret < 0) {
			pr_warn("Agent %s: refused: %s", a->host[0] ? a->host : a->conn.peer, err.msg);
			ack.error = err.msg;
		}
		if (vz_msg_send(&a->conn, &ack.base, &serr) < 0 || ret < 0) {
			conn_drop(a, ret < 0 ? err.msg : serr.msg);
			return;
		}
	} while (SSL_pending(a->conn.ssl) > 0);
}

static void handshake_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct agent_conn *a = container_of(w, struct agent_conn, handshake_w);

	(void)loop;
	(void)revents;
	pr_warn("Refused an agent: %s: no TLS handshake within %d ms", a->conn.peer, COORD_IO_TIMEOUT_MS);
	conn_free(a);
}

/* The handshake runs step by step in the loop, with a deadline: a peer
 * that connects and stays silent costs nothing but a socket until then. */
static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct coord *c = container_of(w, struct coord, listen_w);
	struct vz_err err = { 0 };
	struct agent_conn *a;
	int fd;

	(void)revents;
	fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		return;
	}
	if (vz_tls_accept_begin(c->tls, fd, &a->conn, &err) < 0) {
		pr_warn("Refused an agent: %s", err.msg);
		free(a);
		return;
	}
	a->coord = c;
	a->handshaking = true;
	ev_io_init(&a->io, conn_cb, a->conn.fd, EV_READ);
	ev_io_start(loop, &a->io);
	ev_timer_init(&a->handshake_w, handshake_timeout_cb, COORD_IO_TIMEOUT_MS / 1000.0, 0.);
	ev_timer_start(loop, &a->handshake_w);
	a->next = c->conns;
	c->conns = a;
}

static void admin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	coord_admin_accept(container_of(w, struct coord, admin_w));
}

static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct coord *c = container_of(w, struct coord, tick_w);

	(void)loop;
	(void)revents;
	pool_tick(&c->pool, vz_now_ns());
	coord_queue_step(c);
	coord_rebalance_tick(c);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	pr_info("Signal %d: leaving", w->signum);
	sd_notify(0, "STOPPING=1");
	ev_break(loop, EVBREAK_ALL);
}

void coord_forget_fds(struct coord *c)
{
	for (struct agent_conn *a = c->conns; a; a = a->next)
		if (a->conn.fd >= 0)
			close(a->conn.fd);
	vz_closep(&c->listen_fd);
	vz_closep(&c->admin_fd);
	vz_metrics_forget(&c->metrics);
	for (struct coord_waiter *w = c->waiters; w; w = w->next)
		if (w->conn.fd >= 0)
			close(w->conn.fd);
}

static void coord_stop(struct coord *c)
{
	char path[PATH_MAX];

	coord_queue_stop(c);
	vz_metrics_stop(&c->metrics);
	while (c->conns)
		conn_drop(c->conns, "the coordinator stops");
	vz_closep(&c->listen_fd);
	if (c->admin_fd >= 0)
		unlink(vz_path(path, sizeof(path), COORD_SOCK));
	vz_closep(&c->admin_fd);
	vz_tls_free(c->tls);
	vz_tls_free(c->tls_client);
	c->tls = c->tls_client = NULL;
	pool_free(&c->pool);
	pool_store_close(c->store);
	c->store = NULL;
}

int coord_store_open(const struct coord_conf *conf, struct pool_store **out, struct vz_err *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(conf->store, '/');

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - conf->store) : 1, slash ? conf->store : ".");
	if (*dir && vz_mkdir_p(dir, 0700) < 0)
		return vz_error(err, errno, "Create %s", dir);
	return pool_store_open(&pool_store_sqlite, conf->store, out, err);
}

/* The hosts the store remembers, before any agent speaks: their states
 * follow from how long ago each was last heard of. */
static int open_store(struct coord *c, struct vz_err *err)
{
	struct timespec wall, mono;
	int ret = coord_store_open(&c->conf, &c->store, err);

	if (ret < 0)
		return ret;
	clock_gettime(CLOCK_REALTIME, &wall);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	c->pool.wall_offset_ms = ((int64_t)wall.tv_sec - (int64_t)mono.tv_sec) * 1000 +
				 ((int64_t)wall.tv_nsec - (int64_t)mono.tv_nsec) / 1000000;
	c->pool.store = c->store;
	ret = pool_load(&c->pool, vz_now_ns(), err);
	if (ret == 0)
		ret = pool_store_epoch_next(c->store, &c->epoch, err);
	if (ret == 0)
		pr_info("Store %s: %zu hosts known; epoch %llu", c->conf.store, c->pool.n_hosts,
			(unsigned long long)c->epoch);
	return ret;
}

int coord_serve(struct coord *c, struct vz_err *err)
{
	char path[PATH_MAX];
	int ret;

	c->listen_fd = c->admin_fd = VZ_FD_INIT;
	c->metrics.fd = VZ_FD_INIT;
	c->started_ns = vz_now_ns();
	c->pool.suspect_after = c->conf.suspect_after;
	c->pool.offline_after_ns = (uint64_t)c->conf.offline_after_ms * 1000000ull;
	ret = open_store(c, err);
	if (ret == 0)
		ret = vz_tls_new(&c->tls, c->conf.tls_ca, c->conf.tls_cert, c->conf.tls_key, true, err);
	if (ret == 0)
		ret = vz_tls_new(&c->tls_client, c->conf.tls_ca, c->conf.tls_cert, c->conf.tls_key, false, err);
	if (ret == 0)
		ret = vz_tcp_listen(c->conf.port, &c->listen_fd, err);
	if (ret == 0)
		ret = vz_unix_listen(vz_path(path, sizeof(path), COORD_SOCK), "vzcoord", &c->admin_fd, err);
	if (ret < 0) {
		coord_stop(c);
		return ret;
	}
	ev_io_init(&c->listen_w, accept_cb, c->listen_fd, EV_READ);
	ev_io_start(c->loop, &c->listen_w);
	ev_io_init(&c->admin_w, admin_cb, c->admin_fd, EV_READ);
	ev_io_start(c->loop, &c->admin_w);
	ev_timer_init(&c->tick_w, tick_cb, 0.25, 0.25);
	ev_timer_start(c->loop, &c->tick_w);
	ev_signal_init(&c->sigterm_w, signal_cb, SIGTERM);
	ev_signal_start(c->loop, &c->sigterm_w);
	ev_signal_init(&c->sigint_w, signal_cb, SIGINT);
	ev_signal_start(c->loop, &c->sigint_w);
	/* Metrics are an aid: a port taken is said, and the coordinator serves on. */
	if (coord_metrics_start(c, err) < 0) {
		pr_err("%s: no metrics", err->msg);
		vz_err_clear(err);
	}
	pr_info("The coordinator serves agents on port %u (TLS, certificate %s), admins on %s; suspect after %u "
		"missed heartbeats, offline after %u ms (VZ_ROOT %s)",
		c->conf.port, c->conf.tls_cert, path, c->conf.suspect_after, c->conf.offline_after_ms,
		vz_root()[0] ? vz_root() : "/");
	/* Under systemd (Type=notify): both sockets listen. */
	sd_notify(0, "READY=1");
	ev_run(c->loop, 0);
	coord_stop(c);
	return 0;
}
