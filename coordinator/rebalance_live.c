/* vzcoord rebalance and the automatic rounds (rebalance_live.h): the
 * planner's snapshot from the pool and the store's moves, one round of
 * coordinator/rebalance.c, its decisions told and kept as "rebalance"
 * events, and its moves queued as vzcoord migrate queues one (they then
 * obey the queue's per-host and pool limits). */
#define LOG_PREFIX "rebalance: "
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord.h"
#include "log.h"
#include "rebalance_live.h"
#include "util.h"

#define NS_PER_S	    1000000000ull
#define HOUR_MS		    3600000
#define REBALANCE_MAX_MOVES 64

void coord_rb_free(struct coord_rb_snap *snap)
{
	free(snap->hosts);
	free(snap->ves);
	*snap = (struct coord_rb_snap){ 0 };
}

static enum rb_host_state rb_state(enum pool_host_state s)
{
	return s == POOL_HOST_ONLINE ? RB_HOST_ONLINE : s == POOL_HOST_SUSPECT ? RB_HOST_SUSPECT : RB_HOST_OFFLINE;
}

/* The moves' part of v: its last done move, a move of it in flight. */
static void ve_moves(struct rb_ve *v, const struct pool_move *moves, size_t n_moves)
{
	for (size_t k = 0; k < n_moves; k++) {
		const struct pool_move *m = &moves[k];
		int64_t done_s = m->updated_ms / 1000;

		if (m->veid != v->veid)
			continue;
		if (m->state == POOL_MOVE_DONE && (v->last_moved == RB_NEVER || done_s > v->last_moved))
			v->last_moved = done_s;
		if (m->state == POOL_MOVE_QUEUED || m->state == POOL_MOVE_RUNNING)
			snprintf(v->moving_to, sizeof(v->moving_to), "%s", m->dst);
	}
}

static bool reported_before(const struct pool *p, size_t host, unsigned veid)
{
	for (size_t i = 0; i < host; i++)
		for (size_t k = 0; k < p->hosts[i]->n_ves; k++)
			if (p->hosts[i]->ves[k].veid == veid)
				return true;
	return false;
}

static bool reported_twice(const struct pool *p, size_t host, unsigned veid)
{
	for (size_t i = 0; i < p->n_hosts; i++)
		for (size_t k = 0; i != host && k < p->hosts[i]->n_ves; k++)
			if (p->hosts[i]->ves[k].veid == veid)
				return true;
	return false;
}

static void host_of(const struct pool_node *h, uint64_t state_now, const struct pool *p, const struct rb_settings *set,
		    bool by_hand, struct rb_host *r)
{
	snprintf(r->name, sizeof(r->name), "%s", h->name);
	r->state = rb_state(pool_host_state_at(p, h, state_now));
	r->maintenance = h->maint != POOL_MAINT_NONE || h->agent_draining;
	r->cores = h->cores;
	r->mem_total = h->mem_total;
	r->over_rounds = h->rb_over_rounds;
	/* A host known from the store but never registered since: not a
	 * target, and not a reason for the planner to refuse the round. */
	if (!r->cores || !r->mem_total) {
		r->state = RB_HOST_OFFLINE;
		r->cores = r->cores ? r->cores : 1;
		r->mem_total = r->mem_total ? r->mem_total : 1;
	}
	if (by_hand && set->trigger_rounds && r->over_rounds < set->trigger_rounds - 1)
		r->over_rounds = set->trigger_rounds - 1;
}

int coord_rb_snapshot(const struct pool *p, uint64_t now_ns, int64_t now_ms, const struct pool_move *moves,
		      size_t n_moves, const struct rb_settings *set, bool by_hand, struct coord_rb_snap *out,
		      struct vz_err *err)
{
	size_t n_ves = 0;

	*out = (struct coord_rb_snap){ 0 };
	for (size_t i = 0; i < p->n_hosts; i++)
		n_ves += p->hosts[i]->n_ves;
	out->hosts = calloc(p->n_hosts ? p->n_hosts : 1, sizeof(*out->hosts));
	out->ves = calloc(n_ves ? n_ves : 1, sizeof(*out->ves));
	if (!out->hosts || !out->ves) {
		coord_rb_free(out);
		return vz_error_msg(err, ENOMEM, "Out of memory");
	}
	out->s.now = now_ms / 1000;
	out->s.set = *set;
	for (size_t i = 0; i < p->n_hosts; i++) {
		const struct pool_node *h = p->hosts[i];

		host_of(h, now_ns, p, set, by_hand, &out->hosts[out->s.n_hosts++]);
		for (size_t k = 0; k < h->n_ves; k++) {
			const struct pool_ve *pv = &h->ves[k];
			struct rb_ve *v = &out->ves[out->s.n_ves];

			if (reported_before(p, i, pv->veid))
				continue;
			out->s.n_ves++;
			*v = (struct rb_ve){ .veid = pv->veid,
					     .cpu_permille = pv->cpu_permille,
					     .mem_used = pv->mem_used,
					     .copy_bytes = pv->mem_used + pv->disk_used * 1024,
					     .pinned = pv->pinned || reported_twice(p, i, pv->veid),
					     .last_moved = RB_NEVER };
			snprintf(v->host, sizeof(v->host), "%s", h->name);
			snprintf(v->anti_affinity, sizeof(v->anti_affinity), "%s", pv->anti_affinity);
			ve_moves(v, moves, n_moves);
		}
	}
	for (size_t k = 0; k < n_moves; k++) {
		if (moves[k].state == POOL_MOVE_QUEUED || moves[k].state == POOL_MOVE_RUNNING)
			out->s.in_flight++;
		if (moves[k].created_ms > now_ms - HOUR_MS && moves[k].created_ms <= now_ms)
			out->s.moves_last_hour++;
	}
	out->s.hosts = out->hosts;
	out->s.ves = out->ves;
	return 0;
}

/* The round's decision lines, told to conn (NULL: none) and, unless
 * quiet, kept as events. */
static void tell_log(struct coord *c, struct vz_conn *conn, const struct rb_plan *plan, bool quiet)
{
	for (size_t i = 0; i < plan->n_log; i++) {
		if (conn)
			coord_say_line(conn, plan->log[i]);
		if (!quiet)
			coord_event(c, "rebalance", 0, NULL, "%s", plan->log[i]);
	}
}

/* One round: plan into *plan (free it), from the pool now. */
static int round_plan(struct coord *c, bool by_hand, struct rb_plan *plan, struct vz_err *err)
{
	struct coord_moves l = { 0 };
	struct coord_rb_snap snap;
	int ret = coord_moves_load(c, POOL_MOVE_ALL, &l, err);

	if (ret == 0)
		ret = coord_rb_snapshot(&c->pool, vz_now_ns(), coord_now_ms(c), l.v, l.n, &c->conf.rebalance, by_hand,
					&snap, err);
	free(l.v);
	if (ret < 0)
		return ret;
	ret = rb_plan_round(&snap.s, plan, err);
	if (ret == 0 && !by_hand)
		for (size_t i = 0; i < snap.s.n_hosts; i++) {
			struct pool_node *h = pool_find_host(&c->pool, snap.hosts[i].name);

			if (h)
				h->rb_over_rounds = plan->over_rounds[i];
		}
	coord_rb_free(&snap);
	return ret;
}

/* The plan's moves into the queue; ids[] their ids. How many. */
static size_t queue_plan(struct coord *c, struct vz_conn *conn, const struct rb_plan *plan, uint64_t *ids)
{
	size_t n = 0;

	for (size_t i = 0; i < plan->n_moves && n < REBALANCE_MAX_MOVES; i++) {
		const struct rb_move *mv = &plan->moves[i];
		struct pool_node *src = pool_find_host(&c->pool, mv->from);
		const struct pool_ve *v = src ? coord_find_ve(src, mv->veid) : NULL;
		enum pool_move_mode mode =
		    v && v->state == VZ__POOL__VE_STATE__VE_RUNNING ? POOL_MOVE_PRECOPY : POOL_MOVE_OFFLINE;
		char line[POOL_TEXT_MAX];

		if (coord_queue_move(c, mv->veid, mv->from, mv->to, mode, &ids[n]) < 0)
			continue;
		coord_event(c, "migrate", mv->veid, mv->from, "move %u %s->%s queued by the rebalancer (%s)", mv->veid,
			    mv->from, mv->to, pool_move_mode_name(mode));
		snprintf(line, sizeof(line), "VE %u: queued as move %" PRIu64 ", %s -> %s (%s)", mv->veid, ids[n],
			 mv->from, mv->to, pool_move_mode_name(mode));
		if (conn)
			coord_say_line(conn, line);
		n++;
	}
	return n;
}

bool coord_rebalance_admin(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	uint64_t ids[REBALANCE_MAX_MOVES];
	struct vz_err err = { 0 };
	struct rb_plan plan;
	bool dry = req->has_dry_run && req->dry_run;
	size_t n;

	if (!coord_inventory_whole(c))
		return coord_finish_line(
		    conn, "The coordinator has not heard every host since it started: try again in a moment");
	if (round_plan(c, true, &plan, &err) < 0)
		return coord_finish_line(conn, err.msg);
	tell_log(c, conn, &plan, dry);
	if (dry) {
		coord_say_line(conn, plan.n_moves ? "Dry run: nothing queued" : "Dry run: no move");
		rb_plan_free(&plan);
		return coord_finish_line(conn, NULL);
	}
	n = queue_plan(c, conn, &plan, ids);
	rb_plan_free(&plan);
	if (!n || !req->has_wait || !req->wait)
		return coord_finish_line(conn, NULL);
	return coord_keep_waiter(c, conn, ids, n);
}

/* A string's FNV-1a hash, on from h. */
static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

void coord_rebalance_tick(struct coord *c)
{
	uint64_t ids[REBALANCE_MAX_MOVES], now = vz_now_ns(), h = 14695981039346656037ull;
	struct vz_err err = { 0 };
	struct rb_plan plan;

	if (!c->conf.rebalance_interval_s || now < c->next_rebalance_ns || !coord_inventory_whole(c))
		return;
	c->next_rebalance_ns = now + c->conf.rebalance_interval_s * NS_PER_S;
	if (round_plan(c, false, &plan, &err) < 0) {
		pr_err("Round not planned: %s", err.msg);
		return;
	}
	/* A quiet pool says the same every round: its lines become events
	 * when they change, not every interval. */
	for (size_t i = 0; i < plan.n_log; i++)
		h = fnv(h, plan.log[i]);
	tell_log(c, NULL, &plan, !plan.n_moves && h == c->rebalance_log_hash);
	c->rebalance_log_hash = h;
	queue_plan(c, NULL, &plan, ids);
	rb_plan_free(&plan);
}
