/* The admin's moves: vzcoord migrate, drain and undrain, as vzcoord serve
 * answers them (each one queues moves, says what it decided line by line
 * and, asked to wait, keeps the admin's connection until its moves end);
 * and the end of a drain, judged from its host's own inventory. */
#define LOG_PREFIX "drain: "
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "coord.h"
#include "log.h"
#include "order.h"
#include "plan.h"
#include "util.h"

#define MAX_HOSTS 256

static void say(struct vz_conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct vz_conn *conn, const char *fmt, ...)
{
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct vz_err err = { 0 };
	char line[POOL_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r.line = line;
	vz_msg_send(conn, &r.base, &err);
}

static bool finish(struct vz_conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool finish(struct vz_conn *conn, const char *fmt, ...)
{
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct vz_err err = { 0 };
	char msg[POOL_TEXT_MAX] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	r.has_done = r.done = 1;
	r.has_exit_code = 1;
	r.exit_code = msg[0] ? 1 : 0;
	r.error = msg[0] ? msg : NULL;
	vz_msg_send(conn, &r.base, &err);
	return false;
}

/* The admin waits: conn is the waiter's from now on. */
static bool keep(struct coord *c, struct vz_conn *conn, const uint64_t *ids, size_t n, const char *drain)
{
	struct coord_waiter *w = calloc(1, sizeof(*w));

	if (!w || (n && !(w->moves = calloc(n, sizeof(*ids))))) {
		free(w);
		return finish(conn, "Out of memory");
	}
	w->conn = *conn;
	memcpy(w->moves, ids, n * sizeof(*ids));
	w->n_moves = n;
	snprintf(w->drain, sizeof(w->drain), "%s", drain ? drain : "");
	w->next = c->waiters;
	c->waiters = w;
	return true;
}

static struct coord_agent_addr addr_of(struct coord *c, const struct pool_node *h)
{
	return (struct coord_agent_addr){
		.host = h->name, .address = h->address, .port = h->mig_port, .tls = c->tls_client, .epoch = c->epoch
	};
}

static bool host_eligible(struct coord *c, const struct pool_node *h)
{
	return coord_host_online(c, h->name) && h->maint == POOL_MAINT_NONE && !h->agent_draining && !h->maint_ordering;
}

struct active_of {
	unsigned veid;
	const char *drain;
	uint64_t id;
};

static int find_active(void *arg, const struct pool_move *m, struct vz_err *err)
{
	struct active_of *a = arg;

	(void)err;
	if ((a->veid && m->veid == a->veid) || (a->drain && !strcmp(m->drain_host, a->drain))) {
		a->id = m->id;
		return 1;
	}
	return 0;
}

/* The id of a queued or running move of veid (or of drain), 0 if none. */
static uint64_t active_move(struct coord *c, unsigned veid, const char *drain)
{
	struct active_of a = { veid, drain, 0 };
	struct vz_err err = { 0 };

	pool_store_move_list(c->store, POOL_MOVE_QUEUED, find_active, &a, &err);
	if (!a.id)
		pool_store_move_list(c->store, POOL_MOVE_RUNNING, find_active, &a, &err);
	return a.id;
}

static int queue_move(struct coord *c, unsigned veid, const char *src, const char *dst, enum pool_move_mode mode,
		      const char *drain, uint64_t *id)
{
	struct pool_move m = { .veid = veid, .mode = mode, .state = POOL_MOVE_QUEUED };
	struct vz_err err = { 0 };
	int ret;

	m.created_ms = m.updated_ms = coord_now_ms(c);
	snprintf(m.src, sizeof(m.src), "%s", src);
	snprintf(m.dst, sizeof(m.dst), "%s", dst);
	snprintf(m.drain_host, sizeof(m.drain_host), "%s", drain ? drain : "");
	ret = pool_store_move_add(c->store, &m, &err);
	if (ret < 0)
		pr_err("Store: move of VE %u not queued: %s", veid, err.msg);
	*id = m.id;
	return ret;
}

static bool do_migrate(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	struct plan_host hosts[MAX_HOSTS];
	struct pool_node *src, *dst = req->host ? pool_find_host(&c->pool, req->host) : NULL;
	unsigned n = coord_where(c, req->veid, &src);
	const struct pool_ve *v;
	enum pool_move_mode mode;
	uint64_t id, busy;

	if (!coord_inventory_whole(c))
		return finish(conn, "The coordinator has not heard every host since it started: try again in a moment");
	if (n == 0)
		return finish(conn, "No VE %u in the pool", req->veid);
	if (n > 1)
		return finish(conn, "VE %u is reported by more than one host: it is not moved until one has it",
			      req->veid);
	if (!dst)
		return finish(conn, "No host %s in the pool", req->host ? req->host : "");
	if (dst == src)
		return finish(conn, "VE %u is already on %s", req->veid, dst->name);
	if (!coord_host_online(c, src->name))
		return finish(conn, "VE %u's host %s is not online", req->veid, src->name);
	if ((busy = active_move(c, req->veid, NULL)))
		return finish(conn, "VE %u is being moved already (move %" PRIu64 ")", req->veid, busy);
	v = coord_find_ve(src, req->veid);
	mode = v->state == VZ__POOL__VE_STATE__VE_RUNNING && !req->offline ? POOL_MOVE_PRECOPY : POOL_MOVE_OFFLINE;
	if (!host_eligible(c, dst)) {
		size_t nh = coord_plan_hosts(c, hosts, MAX_HOSTS);
		int t = plan_pick(hosts, nh, src->name, dst->name, v->mem_used);
		const char *why = dst->maint != POOL_MAINT_NONE || dst->agent_draining || dst->maint_ordering
				      ? "in maintenance"
				      : "not online";

		if (t < 0)
			return finish(conn, "Host %s is %s, and no other host has room for VE %u", dst->name, why,
				      req->veid);
		say(conn, "Host %s is %s: VE %u goes to %s instead", dst->name, why, req->veid, hosts[t].name);
		dst = pool_find_host(&c->pool, hosts[t].name);
	}
	if (queue_move(c, req->veid, src->name, dst->name, mode, NULL, &id) < 0)
		return finish(conn, "The store refused the move of VE %u", req->veid);
	coord_event(c, "migrate", req->veid, src->name, "move %u %s->%s queued by the admin (%s)", req->veid, src->name,
		    dst->name, pool_move_mode_name(mode));
	say(conn, "VE %u: queued as move %" PRIu64 ", %s -> %s (%s)", req->veid, id, src->name, dst->name,
	    pool_move_mode_name(mode));
	if (!req->has_wait || !req->wait)
		return finish(conn, NULL);
	return keep(c, conn, &id, 1, NULL);
}

/* Queued moves toward host go elsewhere: it takes no incoming move. */
static void retarget(struct coord *c, const char *host, struct vz_conn *conn)
{
	struct coord_moves l;
	struct vz_err err = { 0 };

	if (coord_moves_load(c, POOL_MOVE_QUEUED, &l, &err) < 0)
		return;
	for (size_t i = 0; i < l.n; i++) {
		const char *to;

		if (strcmp(l.v[i].dst, host))
			continue;
		to = coord_move_retarget(c, &l.v[i]);
		say(conn, "VE %u: its queued move toward %s goes to %s", l.v[i].veid, host, to ? to : "no host");
	}
	free(l.v);
}

static void plan_line(struct vz_conn *conn, const struct plan_item *it)
{
	if (it->target[0])
		say(conn, "VE %u -> %s  %s  %" PRIu64 " MiB  about %.1f s", it->veid, it->target,
		    pool_move_mode_name(it->mode), it->bytes >> 20, it->est_ms / 1000.0);
	else
		say(conn, "VE %u cannot move: %s", it->veid, it->reason);
}

/* An ORDER_MAINTENANCE runs in a worker process, as the moves do: a slow
 * agent would hold up the loop for the order's 10 s. The admin's
 * connection waits for it here; the drain begins, or the undrain ends,
 * once the agent has said yes. */
struct maint_order {
	ev_child child;
	struct coord *c;
	struct vz_conn conn;
	int fd; /* the worker's one line: why the agent said no */
	char host[POOL_NAME_MAX];
	bool draining, offline, wait, no_return;
};

static bool drain_begin(struct coord *c, struct vz_conn *conn, struct pool_node *h, const struct maint_order *o);
static bool undrain_end(struct coord *c, struct vz_conn *conn, struct pool_node *h, const struct maint_order *o);

static void __attribute__((noreturn)) maint_main(struct coord *c, const struct pool_node *h, bool draining, int fd)
{
	struct coord_agent_addr at = addr_of(c, h);
	struct coord_order_result res = { 0 };
	struct vz_err err = { 0 };
	const char *why = NULL;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	coord_forget_fds(c);
	if (coord_order_maintenance(&at, draining, &res, &err) < 0)
		why = err.msg;
	else if (res.exit_code != 0)
		why = res.error[0] ? res.error : "it refused";
	if (why && write(fd, why, strlen(why)) < 0)
		_exit(2);
	_exit(why ? 1 : 0);
}

static void maint_done(struct ev_loop *loop, ev_child *ch, int revents)
{
	struct maint_order *o = container_of(ch, struct maint_order, child);
	struct pool_node *h = pool_find_host(&o->c->pool, o->host);
	char why[POOL_TEXT_MAX] = "";
	bool ok = WIFEXITED(ch->rstatus) && WEXITSTATUS(ch->rstatus) == 0, kept;
	ssize_t n;

	(void)revents;
	ev_child_stop(loop, ch);
	n = read(o->fd, why, sizeof(why) - 1);
	why[n > 0 ? n : 0] = '\0';
	close(o->fd);
	if (!ok && !why[0])
		snprintf(why, sizeof(why), "its worker ended with status %#x", ch->rstatus);
	if (h)
		h->maint_ordering = false;
	if (!h)
		kept = finish(&o->conn, "Host %s left the pool meanwhile", o->host);
	else if (!ok && o->draining)
		kept = finish(&o->conn, "Host %s not drained: its agent was not put in maintenance: %s", o->host, why);
	else if (!ok)
		kept = finish(&o->conn, "The agent of %s did not leave maintenance: %s", o->host, why);
	else
		kept = o->draining ? drain_begin(o->c, &o->conn, h, o) : undrain_end(o->c, &o->conn, h, o);
	if (!kept)
		vz_conn_close(&o->conn);
	free(o);
}

/* Order h's agent in or out of maintenance, in a worker; conn waits. */
static bool maint_order(struct coord *c, struct vz_conn *conn, struct pool_node *h, const Vz__Pool__AdminRequest *req,
			bool draining)
{
	struct maint_order *o = calloc(1, sizeof(*o));
	struct vz_err err = { 0 };
	int fds[2];
	pid_t pid;

	if (!o)
		return finish(conn, "Out of memory");
	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(o);
		vz_error(&err, errno, "Pipe for the maintenance of %s", h->name);
		return finish(conn, "%s", err.msg);
	}
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		maint_main(c, h, draining, fds[1]);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		free(o);
		vz_error(&err, errno, "Fork the order of maintenance to %s", h->name);
		return finish(conn, "%s", err.msg);
	}
	*o = (struct maint_order){ .c = c, .conn = *conn, .fd = fds[0], .draining = draining };
	snprintf(o->host, sizeof(o->host), "%s", h->name);
	o->offline = req->offline;
	o->wait = req->has_wait && req->wait;
	o->no_return = req->no_return;
	h->maint_ordering = true;
	ev_child_init(&o->child, maint_done, pid, 0);
	ev_child_start(c->loop, &o->child);
	return true;
}

/* The drain's plan for h: said, and how many VEs can move. */
static size_t drain_plan(struct coord *c, struct vz_conn *conn, const struct pool_node *h, bool offline,
			 struct plan_item *items)
{
	struct plan_host hosts[MAX_HOSTS];
	_cleanup_free_ struct plan_ve *ves = calloc(h->n_ves ? h->n_ves : 1, sizeof(*ves));
	size_t nh, placed;

	if (!ves)
		return 0;
	for (size_t i = 0; i < h->n_ves; i++) {
		struct pool_node *where;

		ves[i] = (struct plan_ve){ .veid = h->ves[i].veid,
					   .running = h->ves[i].state == VZ__POOL__VE_STATE__VE_RUNNING,
					   .duplicate = coord_where(c, h->ves[i].veid, &where) > 1,
					   .mem_used = h->ves[i].mem_used,
					   .disk_kib = h->ves[i].disk_used };
	}
	nh = coord_plan_hosts(c, hosts, MAX_HOSTS);
	placed = plan_drain(hosts, nh, h->name, ves, h->n_ves, offline, c->conf.bandwidth_mbit, items);
	say(conn, "Drain %s: %zu VEs, %zu can move", h->name, h->n_ves, placed);
	for (size_t i = 0; i < h->n_ves; i++)
		plan_line(conn, &items[i]);
	return placed;
}

/* Checked, then its agent put in maintenance (maint_order); a dry run
 * only says the plan. */
static bool do_drain(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	struct pool_node *h = req->host ? pool_find_host(&c->pool, req->host) : NULL;
	_cleanup_free_ struct plan_item *items = NULL;

	if (!h)
		return finish(conn, "No host %s in the pool", req->host ? req->host : "");
	if (h->maint_ordering)
		return finish(conn, "Host %s is being ordered in or out of maintenance already", h->name);
	if (h->maint == POOL_MAINT_DRAINING)
		return finish(conn, "Host %s is draining already", h->name);
	if (!coord_host_online(c, h->name) || !coord_inventory_since(c, h->name, 0))
		return finish(conn, "Host %s is not online: its VEs are not known", h->name);
	if (!req->dry_run)
		return maint_order(c, conn, h, req, true);
	if (!(items = calloc(h->n_ves ? h->n_ves : 1, sizeof(*items))))
		return finish(conn, "Out of memory");
	drain_plan(c, conn, h, req->offline, items);
	return finish(conn, NULL);
}

/* Its agent in maintenance: the plan, recorded, and its moves queued. */
static bool drain_begin(struct coord *c, struct vz_conn *conn, struct pool_node *h, const struct maint_order *o)
{
	_cleanup_free_ struct plan_item *items = calloc(h->n_ves ? h->n_ves : 1, sizeof(*items));
	struct vz_err err = { 0 };
	struct pool_drain d = { .state = POOL_DRAIN_RUNNING, .offline = o->offline };
	char targets[POOL_TEXT_MAX] = "";
	size_t placed, len = 0;
	uint64_t id;

	if (!items)
		return finish(conn, "Out of memory");
	placed = drain_plan(c, conn, h, o->offline, items);
	pool_set_maint(&c->pool, h->name, POOL_MAINT_DRAINING, vz_now_ns(), &err);
	h->drain_quiet_ns = 0;
	snprintf(d.host, sizeof(d.host), "%s", h->name);
	d.started_ms = coord_now_ms(c);
	if (pool_store_drain_put(c->store, &d, &err) < 0)
		pr_err("Store: the drain of %s not recorded: %s", h->name, err.msg);
	retarget(c, h->name, conn);
	for (size_t i = 0; i < h->n_ves; i++) {
		struct plan_item *it = &items[i];
		struct pool_drain_member m = { .veid = it->veid,
					       .status = it->target[0] ? POOL_MEMBER_PLANNED : POOL_MEMBER_NOT_MOVED };

		snprintf(m.host, sizeof(m.host), "%s", h->name);
		snprintf(m.origin, sizeof(m.origin), "%s", h->name);
		snprintf(m.target, sizeof(m.target), "%s", it->target);
		snprintf(m.reason, sizeof(m.reason), "%s", it->reason);
		if (pool_store_member_put(c->store, &m, &err) < 0)
			pr_err("Store: VE %u of the drain of %s: %s", it->veid, h->name, err.msg);
		if (!it->target[0])
			continue;
		queue_move(c, it->veid, h->name, it->target, it->mode, h->name, &id);
		if (!strstr(targets, it->target) && len < sizeof(targets) - POOL_NAME_MAX - 2)
			len += (size_t)snprintf(targets + len, sizeof(targets) - len, " %s", it->target);
	}
	coord_event(c, "drain", 0, h->name, "drain %s: %zu VEs, %zu to move, targets%s", h->name, h->n_ves, placed,
		    targets[0] ? targets : " none");
	if (!o->wait)
		return finish(conn, NULL);
	return keep(c, conn, NULL, 0, h->name);
}

struct undrain {
	struct coord *c;
	struct vz_conn *conn;
	const char *host;
	uint64_t ids[1024];
	size_t n;
};

/* One VE of the drain: back to its origin if it is still where the drain
 * sent it. */
static int undrain_member(void *arg, const struct pool_drain_member *m, struct vz_err *err)
{
	struct undrain *u = arg;
	struct pool_node *where;
	const struct pool_ve *v;
	unsigned n = coord_where(u->c, m->veid, &where);

	(void)err;
	if (m->status != POOL_MEMBER_MOVED)
		return 0;
	if (n != 1) {
		say(u->conn, "VE %u is %s: not returned", m->veid,
		    n ? "reported by more than one host" : "nowhere in the pool now");
		return 0;
	}
	if (!strcmp(where->name, m->origin))
		return 0;
	if (strcmp(where->name, m->target)) {
		say(u->conn, "VE %u was moved by hand since, to %s: it stays there", m->veid, where->name);
		return 0;
	}
	v = coord_find_ve(where, m->veid);
	if (u->n < ARRAY_SIZE(u->ids) &&
	    queue_move(u->c, m->veid, where->name, m->origin,
		       v->state == VZ__POOL__VE_STATE__VE_RUNNING ? POOL_MOVE_PRECOPY : POOL_MOVE_OFFLINE, NULL,
		       &u->ids[u->n]) == 0) {
		say(u->conn, "VE %u: back from %s to %s (move %" PRIu64 ")", m->veid, where->name, m->origin,
		    u->ids[u->n]);
		u->n++;
	}
	return 0;
}

/* The drain's moves not started yet are dropped: it is over. */
static void drop_queued(struct coord *c, const char *host, struct vz_conn *conn)
{
	struct coord_moves l;
	struct vz_err err = { 0 };

	if (coord_moves_load(c, POOL_MOVE_QUEUED, &l, &err) < 0)
		return;
	for (size_t i = 0; i < l.n; i++) {
		struct pool_move *m = &l.v[i];

		if (strcmp(m->drain_host, host))
			continue;
		m->state = POOL_MOVE_FAILED;
		snprintf(m->error, sizeof(m->error), "the drain of %s was ended first", host);
		coord_move_save(c, m);
		say(conn, "VE %u: its move was not started, and is dropped", m->veid);
	}
	free(l.v);
}

/* Checked, the drain's moves not started dropped, then its agent out of
 * maintenance (maint_order). */
static bool do_undrain(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	struct pool_node *h = req->host ? pool_find_host(&c->pool, req->host) : NULL;
	struct vz_err err = { 0 };
	struct pool_drain d;

	if (!h)
		return finish(conn, "No host %s in the pool", req->host ? req->host : "");
	if (!coord_inventory_whole(c))
		return finish(conn, "The coordinator has not heard every host since it started: try again in a moment");
	if (h->maint_ordering)
		return finish(conn, "Host %s is being ordered in or out of maintenance already", h->name);
	if (h->maint == POOL_MAINT_NONE && pool_store_drain_get(c->store, h->name, &d, &err) < 0 && !h->agent_draining)
		return finish(conn, "Host %s is not in maintenance", h->name);
	drop_queued(c, h->name, conn);
	return maint_order(c, conn, h, req, false);
}

/* Its agent out of maintenance: the VEs of its drain return. */
static bool undrain_end(struct coord *c, struct vz_conn *conn, struct pool_node *h, const struct maint_order *o)
{
	struct undrain u = { .c = c, .conn = conn };
	struct vz_err err = { 0 };
	struct pool_drain d;
	bool had_drain = pool_store_drain_get(c->store, h->name, &d, &err) == 0;

	pool_set_maint(&c->pool, h->name, POOL_MAINT_NONE, vz_now_ns(), &err);
	say(conn, "Host %s: maintenance ended", h->name);
	u.host = h->name;
	if (had_drain && !o->no_return)
		pool_store_member_list(c->store, h->name, undrain_member, &u, &err);
	else if (had_drain)
		say(conn, "Its VEs stay where they are (--no-return)");
	if (had_drain)
		pool_store_drain_del(c->store, h->name, &err);
	coord_event(c, "undrain", 0, h->name, "undrain %s: %zu VEs return", h->name, u.n);
	if (!u.n || !o->wait)
		return finish(conn, NULL);
	return keep(c, conn, u.ids, u.n, NULL);
}

bool coord_admin_moves(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	switch (req->op) {
	case VZ__POOL__ADMIN_OP__ADMIN_MIGRATE: return do_migrate(c, conn, req);
	case VZ__POOL__ADMIN_OP__ADMIN_DRAIN: return do_drain(c, conn, req);
	case VZ__POOL__ADMIN_OP__ADMIN_UNDRAIN: return do_undrain(c, conn, req);
	default: return finish(conn, "Unknown admin operation %d", (int)req->op);
	}
}

struct partial {
	char text[POOL_TEXT_MAX];
	size_t len;
};

static int not_moved(void *arg, const struct pool_drain_member *m, struct vz_err *err)
{
	struct partial *p = arg;

	(void)err;
	if (m->status == POOL_MEMBER_MOVED || p->len >= sizeof(p->text) - 1)
		return 0;
	p->len += (size_t)snprintf(p->text + p->len, sizeof(p->text) - p->len, "%sVE %u (%s)", p->len ? ", " : "",
				   m->veid, m->reason[0] ? m->reason : pool_member_status_name(m->status));
	return 0;
}

/* Host h's drain, whose moves have all ended, once h has spoken since:
 * drained if its agent reports no VE, partial otherwise. */
static void drain_end(struct coord *c, struct pool_node *h)
{
	struct pool_drain d = { .state = POOL_DRAIN_DONE };
	struct partial p = { .text = "" };
	struct vz_err err = { 0 };
	struct coord_waiter *w, *next;
	char msg[POOL_TEXT_MAX + 64] = "";

	if (pool_store_drain_get(c->store, h->name, &d, &err) < 0)
		snprintf(d.host, sizeof(d.host), "%s", h->name);
	if (h->n_ves) {
		pool_store_member_list(c->store, h->name, not_moved, &p, &err);
		snprintf(msg, sizeof(msg), "Drain of %s partial: %zu VEs left: %s", h->name, h->n_ves,
			 p.text[0] ? p.text : "VEs the drain did not know");
	}
	d.state = h->n_ves ? POOL_DRAIN_PARTIAL : POOL_DRAIN_DONE;
	pool_store_drain_put(c->store, &d, &err);
	pool_set_maint(&c->pool, h->name, h->n_ves ? POOL_MAINT_PARTIAL : POOL_MAINT_DRAINED, vz_now_ns(), &err);
	if (msg[0])
		coord_event(c, "partial", 0, h->name, "%s", msg);
	else
		coord_event(c, "drained", 0, h->name, "drain %s: drained, its agent reports no VE", h->name);
	for (w = c->waiters; w; w = next) {
		next = w->next;
		if (!strcmp(w->drain, h->name)) {
			if (!msg[0])
				coord_tell(c, 0, h->name, "Host %s is drained", h->name);
			coord_waiter_done(c, w, msg);
		}
	}
}

void coord_drains_step(struct coord *c)
{
	uint64_t now = vz_now_ns();

	for (size_t i = 0; i < c->pool.n_hosts; i++) {
		struct pool_node *h = c->pool.hosts[i];

		if (h->maint != POOL_MAINT_DRAINING)
			continue;
		if (active_move(c, 0, h->name)) {
			h->drain_quiet_ns = 0;
			continue;
		}
		if (!h->drain_quiet_ns) {
			h->drain_quiet_ns = now;
			continue;
		}
		/* Its inventory as it is after the last move, not before. */
		if (coord_inventory_since(c, h->name, h->drain_quiet_ns) && coord_host_online(c, h->name))
			drain_end(c, h);
	}
}

void coord_say_line(struct vz_conn *conn, const char *line)
{
	say(conn, "%s", line);
}

bool coord_finish_line(struct vz_conn *conn, const char *msg)
{
	return msg ? finish(conn, "%s", msg) : finish(conn, NULL);
}

bool coord_keep_waiter(struct coord *c, struct vz_conn *conn, const uint64_t *ids, size_t n)
{
	return keep(c, conn, ids, n, NULL);
}

int coord_queue_move(struct coord *c, unsigned veid, const char *src, const char *dst, enum pool_move_mode mode,
		     uint64_t *id)
{
	return queue_move(c, veid, src, dst, mode, NULL, id);
}
