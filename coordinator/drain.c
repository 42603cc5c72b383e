/* The admin's moves: vzcoord migrate, drain and undrain, as vzcoord serve
 * answers them (each one queues moves, says what it decided line by line
 * and, asked to wait, keeps the admin's connection until its moves end);
 * and the end of a drain, judged from its host's own inventory. */
#define LOG_PREFIX "drain: "
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	return coord_host_online(c, h->name) && h->maint == POOL_MAINT_NONE && !h->agent_draining;
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

/* Every online host has sent its inventory since this coordinator began:
 * where each VE is, is known. */
static bool inventory_whole(struct coord *c)
{
	for (size_t i = 0; i < c->pool.n_hosts; i++)
		if (coord_host_online(c, c->pool.hosts[i]->name) &&
		    !coord_inventory_since(c, c->pool.hosts[i]->name, 0))
			return false;
	return true;
}

static bool do_migrate(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	struct plan_host hosts[MAX_HOSTS];
	struct pool_node *src, *dst = req->host ? pool_find_host(&c->pool, req->host) : NULL;
	unsigned n = coord_where(c, req->veid, &src);
	const struct pool_ve *v;
	enum pool_move_mode mode;
	uint64_t id, busy;

	if (!inventory_whole(c))
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
		const char *why =
		    dst->maint != POOL_MAINT_NONE || dst->agent_draining ? "in maintenance" : "not online";

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
	struct plan_host hosts[MAX_HOSTS];
	struct coord_moves l;
	struct vz_err err = { 0 };

	if (coord_moves_load(c, POOL_MOVE_QUEUED, &l, &err) < 0)
		return;
	for (size_t i = 0; i < l.n; i++) {
		struct pool_move *m = &l.v[i];
		struct pool_node *where;
		const struct pool_ve *v;
		size_t nh;
		int t;

		if (strcmp(m->dst, host))
			continue;
		coord_where(c, m->veid, &where);
		v = coord_find_ve(where, m->veid);
		nh = coord_plan_hosts(c, hosts, MAX_HOSTS);
		t = plan_pick(hosts, nh, m->src, host, v ? v->mem_used : 0);
		if (t < 0) {
			m->state = POOL_MOVE_FAILED;
			snprintf(m->error, sizeof(m->error), "its target %s is in maintenance and no host has room",
				 host);
		} else {
			snprintf(m->dst, sizeof(m->dst), "%s", hosts[t].name);
		}
		coord_move_save(c, m);
		coord_event(c, "retarget", m->veid, m->src, "move %u %s->%s: %s is draining, %s", m->veid, m->src, host,
			    host, t < 0 ? "dropped" : m->dst);
		say(conn, "VE %u: its queued move toward %s goes to %s", m->veid, host, t < 0 ? "no host" : m->dst);
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

/* The drain's plan; records it unless dry. */
static bool do_drain(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	struct pool_node *h = req->host ? pool_find_host(&c->pool, req->host) : NULL;
	struct plan_host hosts[MAX_HOSTS];
	_cleanup_free_ struct plan_ve *ves = NULL;
	_cleanup_free_ struct plan_item *items = NULL;
	struct coord_order_result res = { 0 };
	struct vz_err err = { 0 };
	struct pool_drain d = { .state = POOL_DRAIN_RUNNING, .offline = req->offline };
	char targets[POOL_TEXT_MAX] = "";
	size_t nh, placed, len = 0;
	uint64_t id;

	if (!h)
		return finish(conn, "No host %s in the pool", req->host ? req->host : "");
	if (h->maint == POOL_MAINT_DRAINING)
		return finish(conn, "Host %s is draining already", h->name);
	if (!coord_host_online(c, h->name) || !coord_inventory_since(c, h->name, 0))
		return finish(conn, "Host %s is not online: its VEs are not known", h->name);
	ves = calloc(h->n_ves ? h->n_ves : 1, sizeof(*ves));
	items = calloc(h->n_ves ? h->n_ves : 1, sizeof(*items));
	if (!ves || !items)
		return finish(conn, "Out of memory");
	for (size_t i = 0; i < h->n_ves; i++) {
		struct pool_node *where;

		ves[i] = (struct plan_ve){ .veid = h->ves[i].veid,
					   .running = h->ves[i].state == VZ__POOL__VE_STATE__VE_RUNNING,
					   .duplicate = coord_where(c, h->ves[i].veid, &where) > 1,
					   .mem_used = h->ves[i].mem_used,
					   .disk_kib = h->ves[i].disk_used };
	}
	nh = coord_plan_hosts(c, hosts, MAX_HOSTS);
	placed = plan_drain(hosts, nh, h->name, ves, h->n_ves, req->offline, c->conf.bandwidth_mbit, items);
	say(conn, "Drain %s: %zu VEs, %zu can move", h->name, h->n_ves, placed);
	for (size_t i = 0; i < h->n_ves; i++)
		plan_line(conn, &items[i]);
	if (req->dry_run)
		return finish(conn, NULL);
	pool_set_maint(&c->pool, h->name, POOL_MAINT_DRAINING, vz_now_ns(), &err);
	h->drain_quiet_ns = 0;
	snprintf(d.host, sizeof(d.host), "%s", h->name);
	d.started_ms = coord_now_ms(c);
	if (pool_store_drain_put(c->store, &d, &err) < 0)
		pr_err("Store: the drain of %s not recorded: %s", h->name, err.msg);
	{
		struct coord_agent_addr at = addr_of(c, h);

		if (coord_order_maintenance(&at, true, &res, &err) < 0 || res.exit_code != 0)
			say(conn, "Warning: the agent of %s was not put in maintenance: %s", h->name,
			    err.msg[0] ? err.msg : res.error);
	}
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
	if (!req->has_wait || !req->wait)
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

static bool do_undrain(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	struct pool_node *h = req->host ? pool_find_host(&c->pool, req->host) : NULL;
	struct undrain u = { .c = c, .conn = conn };
	struct coord_order_result res = { 0 };
	struct vz_err err = { 0 };
	struct pool_drain d;
	struct coord_agent_addr at;
	bool had_drain;

	if (!h)
		return finish(conn, "No host %s in the pool", req->host ? req->host : "");
	if (!inventory_whole(c))
		return finish(conn, "The coordinator has not heard every host since it started: try again in a moment");
	had_drain = pool_store_drain_get(c->store, h->name, &d, &err) == 0;
	if (h->maint == POOL_MAINT_NONE && !had_drain && !h->agent_draining)
		return finish(conn, "Host %s is not in maintenance", h->name);
	drop_queued(c, h->name, conn);
	at = addr_of(c, h);
	if (coord_order_maintenance(&at, false, &res, &err) < 0 || res.exit_code != 0)
		return finish(conn, "The agent of %s did not leave maintenance: %s", h->name,
			      err.msg[0] ? err.msg : res.error);
	pool_set_maint(&c->pool, h->name, POOL_MAINT_NONE, vz_now_ns(), &err);
	say(conn, "Host %s: maintenance ended", h->name);
	u.host = h->name;
	if (had_drain && !req->no_return)
		pool_store_member_list(c->store, h->name, undrain_member, &u, &err);
	else if (had_drain)
		say(conn, "Its VEs stay where they are (--no-return)");
	if (had_drain)
		pool_store_drain_del(c->store, h->name, &err);
	coord_event(c, "undrain", 0, h->name, "undrain %s: %zu VEs return", h->name, u.n);
	if (!u.n || !req->has_wait || !req->wait)
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

bool coord_inventory_whole(struct coord *c)
{
	return inventory_whole(c);
}
