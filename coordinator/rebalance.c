/* The rebalancing planner: rebalance.h has the rule. Everything here is
 * computed from the snapshot alone, in name and VEID order, so that a
 * decision can be replayed from what was logged of its input. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rebalance.h"

#define GIB	(1024.0 * 1024 * 1024)
#define NONE	((size_t)-1)
#define EPSILON 1e-9

void rb_settings_default(struct rb_settings *set)
{
	*set = (struct rb_settings){
		.hot_threshold = 0.70,
		.imbalance_threshold = 0.20,
		.trigger_rounds = 3,
		.min_gain = 0.10,
		.gain_per_gib = 0.01,
		.mem_limit = 0.85,
		.cooldown_s = 6 * 3600,
		.moves_per_hour = 4,
		.max_in_flight = 1,
		.bandwidth = 125000000,
	};
}

/* A round's working state: where each VE is once the moves planned so
 * far are done, and each host's sums. Indexes are into the snapshot. */
struct work {
	const struct rb_snapshot *s;
	size_t *hosts; /* host indexes by name */
	size_t *ves;   /* VE indexes by VEID */
	size_t *at;    /* per VE: its host once the planned moves are done */
	size_t *to;    /* per VE: the target of its move in flight, or NONE */
	bool *moved;   /* per VE: moved by this plan */
	double *cpu;   /* per host: the sum of its VEs' CPU, in CPUs */
	double *mem;   /* per host: the sum of its VEs' memory, bytes */
	bool *eligible;
	struct rb_plan *plan;
	bool nomem;
};

static int cmp_host(const struct rb_snapshot *s, size_t a, size_t b)
{
	return strcmp(s->hosts[a].name, s->hosts[b].name);
}

static int cmp_ve(const struct rb_snapshot *s, size_t a, size_t b)
{
	return s->ves[a].veid < s->ves[b].veid ? -1 : s->ves[a].veid > s->ves[b].veid;
}

/* idx[] = 0..n-1 in cmp's order. An insertion sort, stable and with a
 * context argument qsort lacks: a pool's hosts and VEs are hundreds. */
static void sort_indexes(const struct rb_snapshot *s, size_t *idx, size_t n,
			 int (*cmp)(const struct rb_snapshot *, size_t, size_t))
{
	for (size_t i = 0; i < n; i++) {
		size_t j = i;

		for (; j > 0 && cmp(s, idx[j - 1], i) > 0; j--)
			idx[j] = idx[j - 1];
		idx[j] = i;
	}
}

static size_t host_index(const struct work *w, const char *name)
{
	size_t lo = 0, hi = w->s->n_hosts;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(w->s->hosts[w->hosts[mid]].name, name);

		if (c == 0)
			return w->hosts[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NONE;
}

static void work_free(struct work *w)
{
	free(w->hosts);
	free(w->ves);
	free(w->at);
	free(w->to);
	free(w->moved);
	free(w->cpu);
	free(w->mem);
	free(w->eligible);
}

static int work_init(struct work *w, const struct rb_snapshot *s, struct vz_err *err)
{
	size_t nh = s->n_hosts ? s->n_hosts : 1, nv = s->n_ves ? s->n_ves : 1;

	*w = (struct work){ .s = s };
	w->hosts = calloc(nh, sizeof(*w->hosts));
	w->ves = calloc(nv, sizeof(*w->ves));
	w->at = calloc(nv, sizeof(*w->at));
	w->to = calloc(nv, sizeof(*w->to));
	w->moved = calloc(nv, sizeof(*w->moved));
	w->cpu = calloc(nh, sizeof(*w->cpu));
	w->mem = calloc(nh, sizeof(*w->mem));
	w->eligible = calloc(nh, sizeof(*w->eligible));
	if (!w->hosts || !w->ves || !w->at || !w->to || !w->moved || !w->cpu || !w->mem || !w->eligible) {
		work_free(w);
		return vz_error(err, ENOMEM, "Plan a rebalancing round");
	}
	sort_indexes(s, w->hosts, s->n_hosts, cmp_host);
	sort_indexes(s, w->ves, s->n_ves, cmp_ve);
	for (size_t i = 0; i < s->n_hosts; i++) {
		const struct rb_host *h = &s->hosts[w->hosts[i]];

		if (i && !strcmp(h->name, s->hosts[w->hosts[i - 1]].name)) {
			work_free(w);
			return vz_error_msg(err, EINVAL, "Host %s is in the snapshot twice", h->name);
		}
		if (!h->cores || !h->mem_total) {
			work_free(w);
			return vz_error_msg(err, EINVAL, "Host %s has no cores or no memory", h->name);
		}
		w->eligible[w->hosts[i]] = h->state == RB_HOST_ONLINE && !h->maintenance;
	}
	/* in VEID order: the sums come out the same whatever the input's order */
	for (size_t j = 0; j < s->n_ves; j++) {
		size_t i = w->ves[j];
		const struct rb_ve *v = &s->ves[i];

		w->at[i] = host_index(w, v->host);
		w->to[i] = v->moving_to[0] ? host_index(w, v->moving_to) : NONE;
		if (w->at[i] == NONE || (v->moving_to[0] && w->to[i] == NONE)) {
			const char *name = w->at[i] == NONE ? v->host : v->moving_to;

			work_free(w);
			return vz_error_msg(err, EINVAL, "VE %u names host %s, which the snapshot does not have",
					    v->veid, name);
		}
		w->cpu[w->at[i]] += v->cpu_permille / 1000.0;
		w->mem[w->at[i]] += (double)v->mem_used;
	}
	return 0;
}

static double host_load(const struct work *w, size_t h)
{
	const struct rb_host *host = &w->s->hosts[h];
	double cpu = w->cpu[h] / host->cores, mem = w->mem[h] / (double)host->mem_total;

	return cpu > mem ? cpu : mem;
}

/* The coefficient of variation of the eligible hosts' loads. */
static double imbalance(const struct work *w)
{
	double sum = 0, sq = 0, mean;
	size_t n = 0;

	/* in name order, as the sums: the same bits whatever the input's order */
	for (size_t k = 0; k < w->s->n_hosts; k++) {
		if (!w->eligible[w->hosts[k]])
			continue;
		sum += host_load(w, w->hosts[k]);
		n++;
	}
	if (n < 2 || sum <= 0)
		return 0;
	mean = sum / n;
	for (size_t k = 0; k < w->s->n_hosts; k++) {
		double d;

		if (!w->eligible[w->hosts[k]])
			continue;
		d = host_load(w, w->hosts[k]) - mean;
		sq += d * d;
	}
	return sqrt(sq / n) / mean;
}

int rb_loads(const struct rb_snapshot *s, double *loads, double *imb, struct vz_err *err)
{
	struct work w;
	int ret = work_init(&w, s, err);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < s->n_hosts; i++)
		loads[i] = w.eligible[i] ? host_load(&w, i) : 0;
	*imb = imbalance(&w);
	work_free(&w);
	return 0;
}

static void say(struct work *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct work *w, const char *fmt, ...)
{
	struct rb_plan *p = w->plan;
	char **log, *line;
	va_list ap;
	int n;

	if (w->nomem)
		return;
	va_start(ap, fmt);
	n = vasprintf(&line, fmt, ap);
	va_end(ap);
	log = n < 0 ? NULL : realloc(p->log, (p->n_log + 1) * sizeof(*p->log));
	if (!log) {
		if (n >= 0)
			free(line);
		w->nomem = true;
		return;
	}
	p->log = log;
	p->log[p->n_log++] = line;
}

static const char *gib(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, len, "%.1f GiB", bytes / GIB);
	else
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	return buf;
}

/* Whether host t holds, or is about to, a VE other than v of v's label. */
static bool label_on(const struct work *w, size_t v, size_t t)
{
	const char *label = w->s->ves[v].anti_affinity;

	if (!label[0])
		return false;
	for (size_t i = 0; i < w->s->n_ves; i++)
		if (i != v && (w->at[i] == t || w->to[i] == t) && !strcmp(w->s->ves[i].anti_affinity, label))
			return true;
	return false;
}

/* Why VE v cannot move at all this round, or NULL. */
static const char *ve_held(const struct work *w, size_t v, char *buf, size_t len)
{
	const struct rb_ve *ve = &w->s->ves[v];
	int64_t since;

	if (ve->pinned)
		return "pinned";
	if (w->to[v] != NONE)
		return "moving";
	if (w->moved[v])
		return "moved by this round";
	if (ve->last_moved == RB_NEVER)
		return NULL;
	/* a last move after now (a clock set back) counts as now */
	if (__builtin_sub_overflow(w->s->now, ve->last_moved, &since))
		since = INT64_MAX;
	if (since < 0)
		since = 0;
	if (since < w->s->set.cooldown_s) {
		snprintf(buf, len, "in cooldown, moved %.1f h ago (%.1f h)", since / 3600.0,
			 w->s->set.cooldown_s / 3600.0);
		return buf;
	}
	return NULL;
}

struct candidate {
	size_t ve, from, to;
	double after, gain, per_gib;
};

/* The imbalance once VE v is on host t instead of where it is; NAN, with
 * *why, when that would make t hot or full. */
static double imbalance_if(struct work *w, size_t v, size_t t, const char **why)
{
	const struct rb_ve *ve = &w->s->ves[v];
	size_t f = w->at[v];
	double cpu = ve->cpu_permille / 1000.0, mem = (double)ve->mem_used, after;
	/* restored as they were, not by adding back: the same bits each time */
	double saved[4] = { w->cpu[f], w->mem[f], w->cpu[t], w->mem[t] };

	w->cpu[f] -= cpu, w->mem[f] -= mem;
	w->cpu[t] += cpu, w->mem[t] += mem;
	after = imbalance(w);
	*why = NULL;
	if (w->mem[t] > w->s->set.mem_limit * (double)w->s->hosts[t].mem_total)
		*why = "would be full";
	else if (host_load(w, t) > w->s->set.hot_threshold)
		*why = "would be hot";
	w->cpu[f] = saved[0], w->mem[f] = saved[1];
	w->cpu[t] = saved[2], w->mem[t] = saved[3];
	return *why ? NAN : after;
}

/* Why host t cannot take VE v whatever the loads, or NULL. */
static const char *target_refused(const struct work *w, size_t v, size_t t)
{
	const struct rb_host *h = &w->s->hosts[t];

	if (h->state != RB_HOST_ONLINE)
		return h->state == RB_HOST_SUSPECT ? "suspect" : "offline";
	if (h->maintenance)
		return "in maintenance";
	if (label_on(w, v, t))
		return "holds its label";
	return NULL;
}

/* Append "h2 holds its label" to a list of reasons. */
static void add_reason(char *buf, size_t len, const char *host, const char *why)
{
	size_t n = strlen(buf);

	if (n + 1 < len)
		snprintf(buf + n, len - n, "%s%s %s", n ? ", " : "", host, why);
}

/* b better than a: a larger gain; then fewer bytes; else the first found
 * (lower VEID, then target name) stays. */
static bool better(const struct work *w, const struct candidate *a, const struct candidate *b)
{
	if (a->ve == NONE)
		return true;
	if (b->gain > a->gain + EPSILON)
		return true;
	return b->gain > a->gain - EPSILON && w->s->ves[b->ve].copy_bytes < w->s->ves[a->ve].copy_bytes;
}

static bool acceptable(const struct work *w, const struct candidate *c)
{
	return c->gain >= w->s->set.min_gain - EPSILON && c->per_gib >= w->s->set.gain_per_gib - EPSILON;
}

/* The best move of a VE of a triggered host still hot, in best (all rules
 * met) and in any (the rules of gain aside: what the log names when no
 * move is good enough). Skipped VEs are logged in the first search. */
static void search(struct work *w, const bool *triggered, double before, bool first, struct candidate *best,
		   struct candidate *any)
{
	const struct rb_snapshot *s = w->s;
	char buf[128], reasons[512];

	best->ve = any->ve = NONE;
	for (size_t j = 0; j < s->n_ves; j++) {
		size_t v = w->ves[j], f = w->at[v];
		const char *why;
		unsigned fits = 0;

		if (!triggered[f] || host_load(w, f) <= s->set.hot_threshold)
			continue;
		why = ve_held(w, v, buf, sizeof(buf));
		if (why) {
			if (first)
				say(w, "%u on %s not moved: %s", s->ves[v].veid, s->hosts[f].name, why);
			continue;
		}
		reasons[0] = '\0';
		for (size_t k = 0; k < s->n_hosts; k++) {
			size_t t = w->hosts[k];
			struct candidate c = { .ve = v, .from = f, .to = t };
			double bytes = s->ves[v].copy_bytes / GIB;

			if (t == f)
				continue;
			why = target_refused(w, v, t);
			if (!why)
				c.after = imbalance_if(w, v, t, &why);
			if (why) {
				add_reason(reasons, sizeof(reasons), s->hosts[t].name, why);
				continue;
			}
			fits++;
			c.gain = before > 0 ? (before - c.after) / before : 0;
			c.per_gib = bytes > 0 ? c.gain / bytes : INFINITY;
			if (better(w, any, &c))
				*any = c;
			if (acceptable(w, &c) && better(w, best, &c))
				*best = c;
		}
		if (!fits && first)
			say(w, "%u on %s not moved: no target (%s)", s->ves[v].veid, s->hosts[f].name,
			    reasons[0] ? reasons : "no other host");
	}
}

static int add_move(struct work *w, const struct candidate *c, double before)
{
	const struct rb_snapshot *s = w->s;
	const struct rb_ve *ve = &s->ves[c->ve];
	struct rb_plan *p = w->plan;
	struct rb_move *m = realloc(p->moves, (p->n_moves + 1) * sizeof(*p->moves));
	uint64_t bw = s->set.bandwidth ? s->set.bandwidth : 1, secs;
	char size[32];

	if (!m)
		return -ENOMEM;
	p->moves = m;
	m = &p->moves[p->n_moves++];
	*m = (struct rb_move){ .veid = ve->veid, .imbalance_before = before, .imbalance_after = c->after };
	snprintf(m->from, sizeof(m->from), "%s", s->hosts[c->from].name);
	snprintf(m->to, sizeof(m->to), "%s", s->hosts[c->to].name);
	m->bytes = ve->copy_bytes;
	/* rounded up, at least 1, and no wrap for a size near 2^64 */
	secs = ve->copy_bytes / bw + (ve->copy_bytes % bw != 0);
	m->seconds = secs == 0 ? 1 : secs > UINT_MAX ? UINT_MAX : (unsigned)secs;
	say(w, "move %u %s->%s: imbalance %.2f->%.2f, %s, about %u s", m->veid, m->from, m->to, before, c->after,
	    gib(m->bytes, size, sizeof(size)), m->seconds);
	w->cpu[c->from] -= ve->cpu_permille / 1000.0, w->mem[c->from] -= (double)ve->mem_used;
	w->cpu[c->to] += ve->cpu_permille / 1000.0, w->mem[c->to] += (double)ve->mem_used;
	w->at[c->ve] = c->to;
	w->moved[c->ve] = true;
	return 0;
}

/* The hosts hot this round, logged; triggered[h] those hot long enough. */
static size_t count_hot(struct work *w, bool *triggered, size_t *hot)
{
	const struct rb_snapshot *s = w->s;
	size_t n = 0;

	for (size_t k = 0; k < s->n_hosts; k++) {
		size_t h = w->hosts[k];
		double load = host_load(w, h);
		unsigned rounds;
		char of[64];

		w->plan->over_rounds[h] = 0;
		if (!w->eligible[h] || load <= s->set.hot_threshold)
			continue;
		rounds = w->plan->over_rounds[h] = s->hosts[h].over_rounds + 1;
		(*hot)++;
		triggered[h] = rounds >= s->set.trigger_rounds;
		n += triggered[h];
		snprintf(of, sizeof(of), rounds > s->set.trigger_rounds ? "%u rounds" : "%u of %u rounds", rounds,
			 s->set.trigger_rounds);
		say(w, "%s load %.2f (cpu %.2f, mem %.2f) over threshold %.2f %s", s->hosts[h].name, load,
		    w->cpu[h] / s->hosts[h].cores, w->mem[h] / (double)s->hosts[h].mem_total, s->set.hot_threshold, of);
	}
	return n;
}

/* Why the round moves nothing before looking at a VE, or 0 and the
 * number of moves it may start. */
static unsigned slots(struct work *w, size_t hot, size_t triggered, size_t eligible, double before)
{
	const struct rb_snapshot *s = w->s;

	if (eligible < 2) {
		say(w, "no move: %zu eligible host", eligible);
		return 0;
	}
	if (before <= s->set.imbalance_threshold) {
		say(w, "no move: imbalance %.2f under threshold %.2f", before, s->set.imbalance_threshold);
		return 0;
	}
	if (!triggered) {
		say(w, "no move: imbalance %.2f but no host over %.2f%s", before, s->set.hot_threshold,
		    hot ? " for long enough yet" : "");
		return 0;
	}
	if (s->in_flight >= s->set.max_in_flight) {
		say(w, "no move: %u move%s in flight, limit %u", s->in_flight, s->in_flight == 1 ? "" : "s",
		    s->set.max_in_flight);
		return 0;
	}
	if (s->moves_last_hour >= s->set.moves_per_hour) {
		say(w, "no move: %u moves in the last hour, budget %u", s->moves_last_hour, s->set.moves_per_hour);
		return 0;
	}
	return s->set.max_in_flight - s->in_flight < s->set.moves_per_hour - s->moves_last_hour
		   ? s->set.max_in_flight - s->in_flight
		   : s->set.moves_per_hour - s->moves_last_hour;
}

static void say_refused(struct work *w, const struct candidate *any)
{
	const struct rb_snapshot *s = w->s;
	if (any->ve == NONE) {
		say(w, "no move: no VE of a hot host can move");
		return;
	}
	if (any->gain < s->set.min_gain - EPSILON)
		say(w, "no move: best candidate %u %s->%s gains %.0f%% < %.0f%%", s->ves[any->ve].veid,
		    s->hosts[any->from].name, s->hosts[any->to].name, any->gain * 100, s->set.min_gain * 100);
	else
		say(w, "no move: best candidate %u %s->%s gains %.0f%%, %.1f%% per GiB < %.1f%%", s->ves[any->ve].veid,
		    s->hosts[any->from].name, s->hosts[any->to].name, any->gain * 100, any->per_gib * 100,
		    s->set.gain_per_gib * 100);
}

static int plan_moves(struct work *w, const bool *triggered, unsigned n)
{
	double before = w->plan->imbalance;

	for (unsigned i = 0; i < n; i++) {
		struct candidate best, any;

		if (i && before <= w->s->set.imbalance_threshold) {
			say(w, "imbalance %.2f now under threshold %.2f", before, w->s->set.imbalance_threshold);
			break;
		}
		search(w, triggered, before, i == 0, &best, &any);
		if (best.ve == NONE) {
			if (i == 0)
				say_refused(w, &any);
			break;
		}
		if (add_move(w, &best, before) < 0)
			return -ENOMEM;
		before = best.after;
	}
	w->plan->imbalance_after = before;
	return 0;
}

void rb_plan_free(struct rb_plan *plan)
{
	for (size_t i = 0; i < plan->n_log; i++)
		free(plan->log[i]);
	free(plan->log);
	free(plan->moves);
	free(plan->over_rounds);
	*plan = (struct rb_plan){ 0 };
}

int rb_plan_round(const struct rb_snapshot *s, struct rb_plan *plan, struct vz_err *err)
{
	bool *triggered = NULL;
	size_t n_triggered, n_hot = 0, eligible = 0;
	struct work w;
	unsigned n;
	int ret;

	*plan = (struct rb_plan){ 0 };
	ret = work_init(&w, s, err);
	if (ret < 0)
		return ret;
	w.plan = plan;
	plan->over_rounds = calloc(s->n_hosts ? s->n_hosts : 1, sizeof(*plan->over_rounds));
	triggered = calloc(s->n_hosts ? s->n_hosts : 1, sizeof(*triggered));
	ret = -ENOMEM;
	if (!plan->over_rounds || !triggered)
		goto out;
	for (size_t i = 0; i < s->n_hosts; i++)
		eligible += w.eligible[i];
	plan->imbalance = plan->imbalance_after = imbalance(&w);
	n_triggered = count_hot(&w, triggered, &n_hot);
	n = slots(&w, n_hot, n_triggered, eligible, plan->imbalance);
	ret = n ? plan_moves(&w, triggered, n) : 0;
	if (w.nomem)
		ret = -ENOMEM;
out:
	free(triggered);
	work_free(&w);
	if (ret < 0) {
		rb_plan_free(plan);
		return vz_error(err, -ret, "Plan a rebalancing round");
	}
	return 0;
}
