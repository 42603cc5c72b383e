/* coordinator/rebalance.c and simulate.c: the planner's rule on snapshots
 * made here (trigger, gain, floor, pinned, anti-affinity, host states,
 * cooldown, budget, in-flight limit, determinism) and the simulator over
 * the traces of tests/sim/ (a stable pool, a swinging load, one hot host,
 * the rules kept over a day). */
#include <criterion/criterion.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "rebalance.h"
#include "simulate.h"
#include "util.h"

#define G (1ull << 30)

struct pool {
	struct rb_host hosts[8];
	struct rb_ve ves[16];
	struct rb_snapshot s;
};

static struct rb_host *host(struct pool *p, const char *name, unsigned cores)
{
	struct rb_host *h = &p->hosts[p->s.n_hosts++];

	*h = (struct rb_host){ .state = RB_HOST_ONLINE, .cores = cores, .mem_total = 16 * G, .over_rounds = 2 };
	snprintf(h->name, sizeof(h->name), "%s", name);
	return h;
}

static struct rb_ve *ve(struct pool *p, unsigned veid, const char *on, unsigned cpu)
{
	struct rb_ve *v = &p->ves[p->s.n_ves++];

	*v = (struct rb_ve){
		.veid = veid, .cpu_permille = cpu, .mem_used = G, .copy_bytes = 2 * G, .last_moved = RB_NEVER
	};
	snprintf(v->host, sizeof(v->host), "%s", on);
	return v;
}

/* h1 hot (4 VEs of 1 CPU on 4 cores, hot for 2 rounds before this one),
 * h2 and h3 idle: a move is due. */
static void hot_pool(struct pool *p)
{
	memset(p, 0, sizeof(*p));
	p->s.hosts = p->hosts;
	p->s.ves = p->ves;
	p->s.now = 100000;
	rb_settings_default(&p->s.set);
	host(p, "h1", 4);
	host(p, "h2", 4);
	host(p, "h3", 4);
	for (unsigned i = 0; i < 4; i++)
		ve(p, 101 + i, "h1", 1000);
}

static void plan(struct pool *p, struct rb_plan *pl)
{
	struct vz_err err = { 0 };

	cr_assert_eq(rb_plan_round(&p->s, pl, &err), 0, "%s", err.msg);
}

static bool logged(const struct rb_plan *pl, const char *text)
{
	for (size_t i = 0; i < pl->n_log; i++)
		if (strstr(pl->log[i], text))
			return true;
	return false;
}

/* p plans no move, and its log has why. */
static void no_move_because(struct pool *p, const char *why)
{
	struct rb_plan pl;

	plan(p, &pl);
	cr_assert_eq(pl.n_moves, 0, "VE %u moved", pl.n_moves ? pl.moves[0].veid : 0);
	cr_assert(logged(&pl, why), "not logged: %s", why);
	rb_plan_free(&pl);
}

/* p plans one move, of veid. */
static void moves_only(struct pool *p, unsigned veid)
{
	struct rb_plan pl;

	plan(p, &pl);
	cr_assert_eq(pl.n_moves, 1);
	cr_assert_eq(pl.moves[0].veid, veid);
	rb_plan_free(&pl);
}

Test(rebalance, imbalance_is_the_cv_of_dominant_loads)
{
	struct pool p;
	struct vz_err err = { 0 };
	double loads[8], imb;

	hot_pool(&p);
	cr_assert_eq(rb_loads(&p.s, loads, &imb, &err), 0, "%s", err.msg);
	cr_assert_float_eq(loads[0], 1.0, 1e-9);
	/* h2, h3 idle: CPU 0, memory 0: loads 1, 0, 0; mean 1/3, sd sqrt(2)/3 */
	cr_assert_float_eq(loads[1], 0.0, 1e-9);
	cr_assert_float_eq(imb, sqrt(2.0), 1e-9);
	/* memory dominates where it is the larger fraction */
	ve(&p, 200, "h2", 100)->mem_used = 8 * G;
	cr_assert_eq(rb_loads(&p.s, loads, &imb, &err), 0);
	cr_assert_float_eq(loads[1], 0.5, 1e-9);
	/* a host in maintenance is not counted */
	p.hosts[1].maintenance = true;
	cr_assert_eq(rb_loads(&p.s, loads, &imb, &err), 0);
	cr_assert_float_eq(loads[1], 0.0, 1e-9);
	cr_assert_float_eq(imb, 1.0, 1e-9); /* loads 1 and 0 */
}

Test(rebalance, refuses_a_snapshot_that_does_not_hold_together)
{
	struct pool p;
	struct rb_plan pl;
	struct vz_err err = { 0 };

	hot_pool(&p);
	ve(&p, 300, "h9", 10);
	cr_assert_eq(rb_plan_round(&p.s, &pl, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "VE 300"), "%s", err.msg);
	cr_assert_eq(pl.n_moves, 0);
	/* a VE in flight to a host the snapshot does not have */
	hot_pool(&p);
	snprintf(p.ves[1].moving_to, RB_NAME_MAX, "h7");
	cr_assert_eq(rb_plan_round(&p.s, &pl, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "VE 102 names host h7"), "%s", err.msg);
	hot_pool(&p);
	host(&p, "h2", 4);
	cr_assert_eq(rb_plan_round(&p.s, &pl, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "h2"), "%s", err.msg);
}

Test(rebalance, a_hot_host_triggers_only_on_its_third_round)
{
	struct pool p;
	struct rb_plan pl;

	hot_pool(&p);
	p.hosts[0].over_rounds = 1;
	plan(&p, &pl);
	cr_assert_eq(pl.n_moves, 0);
	cr_assert(logged(&pl, "h1 load 1.00 (cpu 1.00, mem 0.25) over threshold 0.70 2 of 3 rounds"));
	cr_assert(logged(&pl, "no move: imbalance 1.41 but no host over 0.70 for long enough yet"));
	cr_assert_eq(pl.over_rounds[0], 2);
	cr_assert_eq(pl.over_rounds[1], 0);
	rb_plan_free(&pl);

	p.hosts[0].over_rounds = 2;
	plan(&p, &pl);
	cr_assert_eq(pl.n_moves, 1);
	cr_assert_eq(pl.over_rounds[0], 3);
	/* ties (four equal VEs, two equal targets): lowest VEID to the first name */
	cr_assert_eq(pl.moves[0].veid, 101);
	cr_assert_str_eq(pl.moves[0].from, "h1");
	cr_assert_str_eq(pl.moves[0].to, "h2");
	cr_assert_lt(pl.moves[0].imbalance_after, pl.moves[0].imbalance_before);
	cr_assert_eq(pl.moves[0].bytes, 2 * G);
	cr_assert_eq(pl.moves[0].seconds, 18); /* 2 GiB at 125 MB/s */
	/* loads 0.75, 0.25, 0: mean 1/3, sd 0.312 */
	cr_assert(logged(&pl, "move 101 h1->h2: imbalance 1.41->0.94, 2.0 GiB, about 18 s"), "log:");
	rb_plan_free(&pl);
}

Test(rebalance, no_move_under_the_imbalance_threshold)
{
	struct pool p;

	hot_pool(&p);
	/* every host as busy: all hot, no spread */
	for (unsigned i = 0; i < 4; i++) {
		ve(&p, 201 + i, "h2", 1000);
		ve(&p, 301 + i, "h3", 1000);
	}
	p.ves[0].cpu_permille = 700;
	no_move_because(&p, "no move: imbalance 0.04 under threshold 0.20");
}

Test(rebalance, a_move_must_gain_ten_percent)
{
	struct pool p;
	struct rb_plan pl;

	hot_pool(&p);
	/* h1 at 0.75 with one VE of 3 CPUs, h2 at 0.70, h3 0.25: moving it
	 * anywhere makes the target hot; only the small one may move */
	p.s.n_ves = 0;
	ve(&p, 101, "h1", 2900);
	ve(&p, 102, "h1", 100);
	ve(&p, 103, "h2", 2700);
	ve(&p, 104, "h3", 1000);
	plan(&p, &pl);

	cr_assert_eq(pl.n_moves, 0);
	cr_assert(logged(&pl, "no move: best candidate 102 h1->h3 gains 9% < 10%"));
	rb_plan_free(&pl);
	p.s.set.min_gain = 0.05;
	moves_only(&p, 102);
}

Test(rebalance, the_gain_per_gib_floor_prefers_a_smaller_ve)
{
	struct pool p;
	struct rb_plan pl;

	hot_pool(&p);
	/* 101 would gain most but has 200 GiB to copy */
	p.ves[0].cpu_permille = 1600;
	p.ves[0].copy_bytes = 200 * G;
	plan(&p, &pl);
	cr_assert_eq(pl.n_moves, 1);
	cr_assert_neq(pl.moves[0].veid, 101);
	rb_plan_free(&pl);
	/* all of them that large: no move, and the log says why */
	for (unsigned i = 0; i < 4; i++)
		p.ves[i].copy_bytes = 200 * G;
	no_move_because(&p, "per GiB < 1.0%");
}

Test(rebalance, a_pinned_ve_stays)
{
	struct pool p;
	struct rb_plan pl;

	hot_pool(&p);
	for (unsigned i = 0; i < 3; i++)
		p.ves[i].pinned = true;
	plan(&p, &pl);
	cr_assert_eq(pl.n_moves, 1);
	cr_assert_eq(pl.moves[0].veid, 104);
	cr_assert(logged(&pl, "101 on h1 not moved: pinned"));
	rb_plan_free(&pl);
	p.ves[3].pinned = true;
	no_move_because(&p, "no move: no VE of a hot host can move");
}

Test(rebalance, anti_affinity_keeps_a_label_off_a_host_that_has_it)
{
	struct pool p;
	struct rb_plan pl;

	hot_pool(&p);
	p.s.set.max_in_flight = 4;
	p.s.set.moves_per_hour = 4;
	for (unsigned i = 0; i < 4; i++)
		snprintf(p.ves[i].anti_affinity, sizeof(p.ves[i].anti_affinity), "db");
	snprintf(ve(&p, 201, "h2", 0)->anti_affinity, RB_NAME_MAX, "db");
	plan(&p, &pl);
	/* h2 holds a db: the only target is h3, and only one db may go there */
	cr_assert_eq(pl.n_moves, 1);
	cr_assert_str_eq(pl.moves[0].to, "h3");
	rb_plan_free(&pl);
	/* a VE in flight to h3 holds the label there already */
	snprintf(ve(&p, 202, "h2", 0)->moving_to, RB_NAME_MAX, "h3");
	snprintf(p.ves[5].anti_affinity, RB_NAME_MAX, "db");
	no_move_because(&p, "101 on h1 not moved: no target (h2 holds its label, h3 holds its label)");
}

Test(rebalance, never_a_target_in_maintenance_offline_or_suspect)
{
	struct pool p;
	struct rb_plan pl;

	hot_pool(&p);
	p.s.set.max_in_flight = 4;
	p.hosts[1].maintenance = true;
	p.hosts[2].state = RB_HOST_OFFLINE;
	host(&p, "h0", 64)->state = RB_HOST_SUSPECT; /* first by name, largest */
	host(&p, "h4", 4);
	host(&p, "h5", 4);
	plan(&p, &pl);
	cr_assert_geq(pl.n_moves, 1);
	for (size_t i = 0; i < pl.n_moves; i++)
		cr_assert(!strcmp(pl.moves[i].to, "h4") || !strcmp(pl.moves[i].to, "h5"), "%s", pl.moves[i].to);
	rb_plan_free(&pl);
	/* h4 and h5 near hot: a move would make them hot, and the idle
	 * hosts are not eligible: nothing moves */
	ve(&p, 204, "h4", 2600);
	ve(&p, 205, "h5", 2600);
	no_move_because(&p, "101 on h1 not moved: no target (h0 suspect, h2 in maintenance, h3 offline, h4 would "
			    "be hot, h5 would be hot)");
	p.hosts[4].state = RB_HOST_OFFLINE;
	p.hosts[5].maintenance = true;
	no_move_because(&p, "no move: 1 eligible host");
}

Test(rebalance, a_ve_in_cooldown_stays)
{
	struct pool p;

	hot_pool(&p);
	for (unsigned i = 0; i < 4; i++)
		p.ves[i].last_moved = p.s.now - 3600;
	no_move_because(&p, "101 on h1 not moved: in cooldown, moved 1.0 h ago (6.0 h)");
	p.ves[2].last_moved = p.s.now - 6 * 3600;
	moves_only(&p, 103);
	/* a move stamped after now (a clock set back) is a move just made */
	p.ves[2].last_moved = p.s.now + 3600;
	no_move_because(&p, "103 on h1 not moved: in cooldown, moved 0.0 h ago (6.0 h)");
	/* and a stamp that far back is no overflow */
	p.ves[2].last_moved = INT64_MIN + 1;
	moves_only(&p, 103);
}

Test(rebalance, the_budget_and_the_in_flight_limit)
{
	struct pool p;
	struct rb_plan pl;

	hot_pool(&p);
	p.s.in_flight = 1;
	no_move_because(&p, "no move: 1 move in flight, limit 1");
	p.s.in_flight = 0;
	p.s.moves_last_hour = 4;
	no_move_because(&p, "no move: 4 moves in the last hour, budget 4");
	/* room for 3 at once, budget 2 left: 2 moves, each lowering the imbalance */
	p.s.set.max_in_flight = 3;
	p.s.moves_last_hour = 2;
	plan(&p, &pl);
	cr_assert_eq(pl.n_moves, 2);
	cr_assert_lt(pl.moves[0].imbalance_after, pl.moves[0].imbalance_before);
	cr_assert_float_eq(pl.moves[1].imbalance_before, pl.moves[0].imbalance_after, 1e-12);
	cr_assert_lt(pl.moves[1].imbalance_after, pl.moves[1].imbalance_before);
	cr_assert_neq(pl.moves[0].veid, pl.moves[1].veid);
	cr_assert_str_neq(pl.moves[0].to, pl.moves[1].to);
	cr_assert_float_eq(pl.imbalance_after, pl.moves[1].imbalance_after, 1e-12);
	rb_plan_free(&pl);
}

Test(rebalance, the_same_pool_in_any_order_gives_the_same_plan)
{
	struct pool p, q;
	struct rb_plan a, b;

	hot_pool(&p);
	p.s.set.max_in_flight = 4;
	ve(&p, 150, "h2", 300);
	ve(&p, 140, "h3", 300);
	q = p;
	q.s.hosts = q.hosts;
	q.s.ves = q.ves;
	/* reversed */
	for (size_t i = 0; i < p.s.n_hosts; i++)
		q.hosts[i] = p.hosts[p.s.n_hosts - 1 - i];
	for (size_t i = 0; i < p.s.n_ves; i++)
		q.ves[i] = p.ves[p.s.n_ves - 1 - i];
	plan(&p, &a);
	plan(&q, &b);
	cr_assert_gt(a.n_moves, 0);
	cr_assert_eq(a.n_moves, b.n_moves);
	cr_assert_eq(a.n_log, b.n_log);
	for (size_t i = 0; i < a.n_moves; i++) {
		cr_assert_eq(a.moves[i].veid, b.moves[i].veid);
		cr_assert_str_eq(a.moves[i].to, b.moves[i].to);
		/* to the bit: sums are made in VEID and name order */
		cr_assert(a.moves[i].imbalance_after == b.moves[i].imbalance_after);
	}
	cr_assert(a.imbalance == b.imbalance);
	for (size_t i = 0; i < a.n_log; i++)
		cr_assert_str_eq(a.log[i], b.log[i]);
	/* the hosts' counters come back in each snapshot's order */
	cr_assert_eq(a.over_rounds[0], b.over_rounds[2]);
	rb_plan_free(&a);
	rb_plan_free(&b);
}

/* tests/sim/NAME's text: under $VZ_TOP, else the tree this binary was
 * built in (build/tests/unit/coordinator), else the working directory. */
static char *trace_text(const char *name)
{
	char exe[PATH_MAX], path[PATH_MAX + 64], *text = NULL, *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *top = getenv("VZ_TOP");
	size_t len;

	cr_assert_gt(n, 0);
	exe[n] = '\0';
	for (int i = 0; i < 4 && (slash = strrchr(exe, '/')); i++)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/tests/sim/%s", top ? top : exe, name);
	if (access(path, R_OK) != 0)
		snprintf(path, sizeof(path), "tests/sim/%s", name);
	cr_assert_eq(vz_read_file(path, &text, &len, 1 << 20), 0, "%s", path);
	return text;
}

struct logbook {
	char **lines;
	size_t n;
};

static int keep_line(void *arg, int64_t t, const char *line)
{
	struct logbook *b = arg;

	b->lines = realloc(b->lines, (b->n + 1) * sizeof(*b->lines));
	cr_assert(asprintf(&b->lines[b->n++], "%lld %s", (long long)t, line) > 0);
	return 0;
}

static void logbook_free(struct logbook *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->lines[i]);
	free(b->lines);
}

/* Run tests/sim/NAME with extra appended for 24 h in steps of 5 min. */
static void simulate(const char *name, const char *extra, struct sim_trace *t, struct sim_result *r, struct logbook *b)
{
	_cleanup_free_ char *text = trace_text(name);
	_cleanup_free_ char *all = NULL;
	struct vz_err err = { 0 };

	cr_assert(asprintf(&all, "%s\n%s\n", text, extra ? extra : "") > 0);
	cr_assert_eq(sim_trace_parse(all, name, t, &err), 0, "%s", err.msg);
	cr_assert_eq(sim_run(t, 24 * 3600, 300, b ? keep_line : NULL, b, r, &err), 0, "%s", err.msg);
}

Test(simulate, a_stable_pool_makes_no_move_in_24_hours)
{
	struct sim_trace t;
	struct sim_result r;

	simulate("stable.trace", NULL, &t, &r, NULL);
	cr_assert_eq(r.n_samples, 24 * 12 + 1);
	cr_assert_eq(r.n_moves, 0, "%zu moves, the first of %u", r.n_moves, r.n_moves ? r.moves[0].move.veid : 0);
	/* it is busy: hosts over the hot threshold, but evenly */
	cr_assert_gt(r.loads[0], t.set.hot_threshold);
	cr_assert_lt(r.max, t.set.imbalance_threshold);
	sim_result_free(&r);
	sim_trace_free(&t);
}

/* The shortest time between two moves of one VE, INT64_MAX if none. */
static int64_t shortest_return(const struct sim_result *r, unsigned *veid)
{
	int64_t best = INT64_MAX;

	for (size_t i = 0; i < r->n_moves; i++)
		for (size_t j = i + 1; j < r->n_moves; j++)
			if (r->moves[i].move.veid == r->moves[j].move.veid && r->moves[j].t - r->moves[i].t < best) {
				best = r->moves[j].t - r->moves[i].t;
				*veid = r->moves[i].move.veid;
			}
	return best;
}

Test(simulate, a_swinging_load_never_moves_a_ve_twice_within_its_cooldown)
{
	struct sim_trace t;
	struct sim_result r;
	unsigned veid = 0;

	simulate("swing.trace", NULL, &t, &r, NULL);
	cr_assert_gt(r.n_moves, 0);
	cr_assert_leq(r.n_moves, 8);
	cr_assert_geq(shortest_return(&r, &veid), 6 * 3600, "VE %u moved twice within 6 h", veid);
	sim_result_free(&r);
	sim_trace_free(&t);
	/* the cooldown is what holds it: without one it swings with the load */
	simulate("swing.trace", "settings cooldown=0", &t, &r, NULL);
	cr_assert_lt(shortest_return(&r, &veid), 6 * 3600);
	cr_assert_gt(r.n_moves, 8);
	sim_result_free(&r);
	sim_trace_free(&t);
}

Test(simulate, one_hot_host_is_evened_out_in_a_few_moves_each_lowering_the_imbalance)
{
	struct sim_trace t;
	struct sim_result r;

	simulate("hot-host.trace", NULL, &t, &r, NULL);
	cr_assert_gt(r.start, t.set.imbalance_threshold);
	cr_assert_geq(r.n_moves, 1);
	cr_assert_leq(r.n_moves, 4);
	for (size_t i = 0; i < r.n_moves; i++) {
		const struct rb_move *m = &r.moves[i].move;

		cr_assert_lt(m->imbalance_after, m->imbalance_before * (1 - t.set.min_gain) + 1e-9, "move %zu", i);
		cr_assert_str_eq(m->from, "h1");
	}
	/* and the pool measured each round: lower after each move */
	for (size_t i = 1; i < r.n_samples; i++)
		if (r.samples[i - 1].moves)
			cr_assert_lt(r.samples[i].imbalance, r.samples[i - 1].imbalance);
	cr_assert_lt(r.end, t.set.imbalance_threshold);
	/* within the first hour, quiet after */
	cr_assert_lt(r.moves[r.n_moves - 1].t, 3600);
	sim_result_free(&r);
	sim_trace_free(&t);
}

Test(simulate, the_same_trace_gives_the_same_moves_and_log)
{
	const char *traces[] = { "swing.trace", "hot-host.trace", "anti-affinity.trace" };

	for (size_t k = 0; k < ARRAY_SIZE(traces); k++) {
		struct sim_trace t1, t2;
		struct sim_result a, b;
		struct logbook la = { 0 }, lb = { 0 };

		simulate(traces[k], NULL, &t1, &a, &la);
		simulate(traces[k], NULL, &t2, &b, &lb);
		cr_assert_gt(a.n_moves, 0, "%s", traces[k]);
		cr_assert_eq(a.n_moves, b.n_moves);
		for (size_t i = 0; i < a.n_moves; i++) {
			cr_assert_eq(a.moves[i].t, b.moves[i].t);
			cr_assert_eq(a.moves[i].move.veid, b.moves[i].move.veid);
			cr_assert_str_eq(a.moves[i].move.to, b.moves[i].move.to);
		}
		cr_assert_eq(la.n, lb.n);
		for (size_t i = 0; i < la.n; i++)
			cr_assert_str_eq(la.lines[i], lb.lines[i]);
		logbook_free(&la);
		logbook_free(&lb);
		sim_result_free(&a);
		sim_result_free(&b);
		sim_trace_free(&t1);
		sim_trace_free(&t2);
	}
}

static size_t ve_index(const struct sim_trace *t, unsigned veid)
{
	for (size_t i = 0; i < t->n_ves; i++)
		if (t->ves[i].veid == veid)
			return i;
	cr_assert_fail("no VE %u", veid);
	return 0;
}

Test(simulate, pinned_anti_affinity_and_unfit_hosts_hold_for_a_day)
{
	struct sim_trace t, start;
	struct sim_result r;
	_cleanup_free_ char *text = trace_text("anti-affinity.trace");
	struct vz_err err = { 0 };

	cr_assert_eq(sim_trace_parse(text, "anti-affinity.trace", &start, &err), 0);
	simulate("anti-affinity.trace", NULL, &t, &r, NULL);
	cr_assert_geq(r.n_moves, 2);
	for (size_t i = 0; i < r.n_moves; i++) {
		const struct rb_move *m = &r.moves[i].move;
		size_t v = ve_index(&start, m->veid);

		cr_assert(!start.ves[v].pinned, "pinned VE %u moved", m->veid);
		cr_assert(strcmp(m->to, "h4") && strcmp(m->to, "h5"), "VE %u moved to %s", m->veid, m->to);
		/* replay the placement: no two db VEs on a host */
		snprintf(start.ves[v].host, RB_NAME_MAX, "%s", m->to);
		for (size_t a = 0; a < start.n_ves; a++)
			for (size_t b = a + 1; b < start.n_ves; b++)
				cr_assert(!start.ves[a].anti_affinity[0] ||
					      strcmp(start.ves[a].anti_affinity, start.ves[b].anti_affinity) ||
					      strcmp(start.ves[a].host, start.ves[b].host),
					  "VEs %u and %u both on %s", start.ves[a].veid, start.ves[b].veid,
					  start.ves[a].host);
	}
	sim_result_free(&r);
	sim_trace_free(&t);
	sim_trace_free(&start);
}

Test(simulate, no_move_targets_a_host_while_it_is_drained_or_lost)
{
	struct sim_trace t, events;
	struct sim_result r;
	_cleanup_free_ char *text = trace_text("drain.trace");
	struct vz_err err = { 0 };
	char *drain;

	cr_assert_eq(sim_trace_parse(text, "drain.trace", &events, &err), 0, "%s", err.msg);
	cr_assert_eq(events.n_events, 5);
	simulate("drain.trace", NULL, &t, &r, NULL);
	cr_assert_geq(r.n_moves, 2);
	for (size_t i = 0; i < r.n_moves; i++) {
		const struct rb_move *m = &r.moves[i].move;
		int state = RB_HOST_ONLINE, maintenance = 0;

		/* the target's state at the move, from the trace's events */
		for (size_t k = 0; k < events.n_events && events.events[k].at <= r.moves[i].t; k++) {
			if (strcmp(events.hosts[events.events[k].host].name, m->to))
				continue;
			if (events.events[k].state >= 0)
				state = events.events[k].state;
			if (events.events[k].maintenance >= 0)
				maintenance = events.events[k].maintenance;
		}
		cr_assert(state == RB_HOST_ONLINE && !maintenance, "VE %u moved at %lld to %s, not eligible", m->veid,
			  (long long)r.moves[i].t, m->to);
	}
	sim_result_free(&r);
	sim_trace_free(&t);
	sim_trace_free(&events);
	/* without the drain, the first move is to h2: the drain is what kept it off */
	drain = strstr(text, "at 5m host h2 maintenance");
	cr_assert_not_null(drain);
	memset(drain, ' ', strlen("at 5m host h2 maintenance"));
	cr_assert_eq(sim_trace_parse(text, "drain.trace", &t, &err), 0, "%s", err.msg);
	cr_assert_eq(sim_run(&t, 3600, 300, NULL, NULL, &r, &err), 0, "%s", err.msg);
	cr_assert_geq(r.n_moves, 1);
	cr_assert_str_eq(r.moves[0].move.to, "h2");
	sim_result_free(&r);
	sim_trace_free(&t);
}

Test(simulate, a_bad_trace_is_refused_with_its_line)
{
	const struct {
		const char *text, *msg;
	} bad[] = {
		{ "host h1 cores=4 mem=1G\nve 101 on=h1 cpu=wave:3", "t:2: Unknown load function 'wave'" },
		{ "host h1 cores=4\n", "t:1: Host h1 needs cores= and mem=" },
		{ "ve 101 on=h1 cpu=const:1", "t:1: No host h1" },
		{ "host h1 cores=4 mem=1G\n\nhost h1 cores=4 mem=1G", "t:3: Host h1 is named twice" },
		{ "host h1 cores=4 mem=1G\nve 1 on=h1 cpu=steps:1h=5", "t:2: Steps start at 0" },
		{ "host h1 cores=4 mem=1G\nve 1 on=h1 cpu=square:1:2", "t:2: A periodic load is" },
		{ "settings cooldown=soon", "t:1: Bad value in 'cooldown=soon'" },
		{ "vm 1", "t:1: Unknown statement 'vm'" },
		{ "# nothing\n", "t: No host in the trace" },
		{ "host h1 cores=4 mem=1G\nat 1h host h2 active", "t:2: No host h2" },
		{ "host h1 cores=4 mem=1G\nat 1h host h1", "t:2: The event for h1 changes nothing" },
		{ "host h1 cores=4 mem=1G\nat 2h host h1 active\nat 1h host h1 maintenance",
		  "t:3: Events come in time order" },
		{ "host h1 cores=4 mem=1G\nat 1h host h1 state=gone", "t:2: A host's state is online, suspect" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct sim_trace t;
		struct vz_err err = { 0 };

		cr_assert_eq(sim_trace_parse(bad[i].text, "t", &t, &err), -EINVAL, "%s", bad[i].text);
		cr_assert_eq(err.exit_code, VZ_EXIT_BADVAL);
		cr_assert_not_null(strstr(err.msg, bad[i].msg), "%s: %s", bad[i].text, err.msg);
	}
}

Test(simulate, loads_over_time)
{
	struct sim_trace t;
	struct vz_err err = { 0 };

	cr_assert_eq(sim_trace_parse("host h1 cores=4 mem=1G\n"
				     "ve 1 on=h1 mem=1M cpu=square:800:100:period=2h\n"
				     "ve 2 on=h1 mem=1M cpu=steps:0=10,1h=20,3h=30\n"
				     "ve 3 on=h1 mem=1M cpu=sine:500:500:period=4h:phase=1h\n",
				     "t", &t, &err),
		     0, "%s", err.msg);
	cr_assert_float_eq(sim_load_at(&t.loads[0], 0), 800, 1e-9);
	cr_assert_float_eq(sim_load_at(&t.loads[0], 3599), 800, 1e-9);
	cr_assert_float_eq(sim_load_at(&t.loads[0], 3600), 100, 1e-9);
	cr_assert_float_eq(sim_load_at(&t.loads[0], 7200), 800, 1e-9);
	cr_assert_float_eq(sim_load_at(&t.loads[1], 3599), 10, 1e-9);
	cr_assert_float_eq(sim_load_at(&t.loads[1], 7200), 20, 1e-9);
	cr_assert_float_eq(sim_load_at(&t.loads[1], 99999), 30, 1e-9);
	cr_assert_float_eq(sim_load_at(&t.loads[2], 0), 1000, 1e-6); /* a quarter period in */
	cr_assert_float_eq(sim_load_at(&t.loads[2], 7200), 0, 1e-6);
	sim_trace_free(&t);
}
