/* The queue's decisions: targets, the schedule under the limits, and
 * retries (plan.h). */
#include <stdio.h>
#include <string.h>

#include "plan.h"

/* Per mille of total that h would hold with mem more bytes. */
static uint64_t projected_permille(const struct plan_host *h, uint64_t mem)
{
	if (h->mem_total == 0)
		return UINT64_MAX;
	return (h->mem_used + mem) * 1000 / h->mem_total;
}

static bool is(const char *name, const char *other)
{
	return other && *other && !strcmp(name, other);
}

int plan_pick(struct plan_host *hosts, size_t n_hosts, const char *src, const char *avoid, uint64_t mem)
{
	int best = -1;
	uint64_t best_pm = 0;

	for (size_t i = 0; i < n_hosts; i++) {
		struct plan_host *h = &hosts[i];
		uint64_t pm = projected_permille(h, mem);

		if (!h->eligible || is(h->name, src) || is(h->name, avoid) || pm >= PLAN_MEM_LIMIT_PCT * 10)
			continue;
		if (best >= 0) {
			const struct plan_host *b = &hosts[best];
			bool tie = pm + PLAN_TIE_PERMILLE > best_pm && best_pm + PLAN_TIE_PERMILLE > pm;

			if (tie ? h->planned >= b->planned : pm >= best_pm)
				continue;
		}
		best = (int)i;
		best_pm = pm;
	}
	if (best >= 0) {
		hosts[best].mem_used += mem;
		hosts[best].planned++;
	}
	return best;
}

void plan_cost(const struct plan_ve *ve, bool live, unsigned bandwidth_mbit, uint64_t *bytes, uint64_t *est_ms)
{
	uint64_t bits_per_ms = (uint64_t)(bandwidth_mbit ? bandwidth_mbit : 1) * 1000;

	*bytes = (live ? ve->mem_used : 0) + ve->disk_kib * 1024;
	*est_ms = (*bytes * 8 + bits_per_ms - 1) / bits_per_ms;
}

size_t plan_drain(struct plan_host *hosts, size_t n_hosts, const char *src, const struct plan_ve *ves, size_t n_ves,
		  bool offline, unsigned bandwidth_mbit, struct plan_item *out)
{
	size_t placed = 0;

	for (size_t i = 0; i < n_ves; i++) {
		const struct plan_ve *ve = &ves[i];
		struct plan_item *it = &out[i];
		bool live = ve->running && !offline;
		int t;

		memset(it, 0, sizeof(*it));
		it->veid = ve->veid;
		it->mode = live ? POOL_MOVE_PRECOPY : POOL_MOVE_OFFLINE;
		plan_cost(ve, live, bandwidth_mbit, &it->bytes, &it->est_ms);
		if (ve->duplicate) {
			snprintf(it->reason, sizeof(it->reason), "its VEID is reported by two hosts");
			continue;
		}
		/* A stopped VE holds no memory now, but will when it starts again. */
		t = plan_pick(hosts, n_hosts, src, NULL, ve->mem_used);
		if (t < 0) {
			snprintf(it->reason, sizeof(it->reason), "no host has room for its %llu MiB under %d%%",
				 (unsigned long long)(ve->mem_used >> 20), PLAN_MEM_LIMIT_PCT);
			continue;
		}
		snprintf(it->target, sizeof(it->target), "%s", hosts[t].name);
		placed++;
	}
	return placed;
}

/* The number of moves of moves[0..n) counted in busy with host as source
 * (out) or destination (!out). */
static unsigned count_at(const struct pool_move *moves, size_t n, const bool *busy, const char *host, bool out)
{
	unsigned k = 0;

	for (size_t i = 0; i < n; i++)
		if (busy[i] && !strcmp(out ? moves[i].src : moves[i].dst, host))
			k++;
	return k;
}

static bool ve_busy(const struct pool_move *moves, size_t n, const bool *busy, unsigned veid)
{
	for (size_t i = 0; i < n; i++)
		if (busy[i] && moves[i].veid == veid)
			return true;
	return false;
}

size_t plan_schedule(const struct pool_move *moves, size_t n, const struct plan_limits *lim, plan_ready_fn ready,
		     void *arg, bool *start)
{
	bool busy[n ? n : 1];
	unsigned total = 0;
	size_t started = 0;

	for (size_t i = 0; i < n; i++) {
		busy[i] = moves[i].state == POOL_MOVE_RUNNING;
		total += busy[i];
		start[i] = false;
	}
	for (size_t i = 0; i < n && total < lim->pool; i++) {
		const struct pool_move *m = &moves[i];

		if (m->state != POOL_MOVE_QUEUED || !m->dst[0] || ve_busy(moves, n, busy, m->veid))
			continue;
		if (count_at(moves, n, busy, m->src, true) >= lim->out_per_host ||
		    count_at(moves, n, busy, m->dst, false) >= lim->in_per_host)
			continue;
		if (ready && !ready(arg, m))
			continue;
		busy[i] = start[i] = true;
		total++;
		started++;
	}
	return started;
}

bool plan_retry(struct pool_move *m, struct plan_host *hosts, size_t n_hosts, uint64_t mem, const char *error)
{
	int t = -1;

	snprintf(m->error, sizeof(m->error), "%s", error ? error : "");
	if (m->attempts < PLAN_MAX_ATTEMPTS)
		t = plan_pick(hosts, n_hosts, m->src, m->dst, mem);
	if (t < 0) {
		m->state = POOL_MOVE_FAILED;
		return false;
	}
	snprintf(m->failed_dst, sizeof(m->failed_dst), "%s", m->dst);
	snprintf(m->dst, sizeof(m->dst), "%s", hosts[t].name);
	m->state = POOL_MOVE_QUEUED;
	return true;
}

enum plan_unknown plan_unknown_move(bool on_src, bool on_dst)
{
	if (on_dst && !on_src)
		return PLAN_UNKNOWN_DONE;
	if (on_src && !on_dst)
		return PLAN_UNKNOWN_REQUEUE;
	return PLAN_UNKNOWN_WAIT;
}
