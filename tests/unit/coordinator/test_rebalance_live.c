/* coordinator/rebalance_live.c's snapshot: the pool and the store's moves
 * as the planner sees them (states, maintenance, load, bytes to copy, pins
 * and labels, cooldowns, moves in flight and in the last hour), and a
 * round by hand waiving the rounds-in-a-row rule but no other. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "rebalance_live.h"

#define S    1000000000ull
#define GIB  (1ull << 30)
#define NOW  (1000 * S)
#define WALL 1700000000000ll /* ms */

static struct pool_ve pve(unsigned veid, unsigned cpu, uint64_t mem, uint64_t disk_kib)
{
	return (struct pool_ve){ .veid = veid,
				 .state = VZ__POOL__VE_STATE__VE_RUNNING,
				 .cpu_permille = cpu,
				 .mem_used = mem,
				 .disk_used = disk_kib };
}

static struct pool_node node(const char *name, struct pool_ve *ves, size_t n)
{
	struct pool_node h = { .cores = 2, .mem_total = 8 * GIB, .interval_ms = 2000, .last_seen_ns = (int64_t)NOW };

	snprintf(h.name, sizeof(h.name), "%s", name);
	h.ves = ves;
	h.n_ves = n;
	return h;
}

static struct pool_move mv(unsigned veid, enum pool_move_state st, int64_t created_ms, int64_t updated_ms,
			   const char *dst)
{
	struct pool_move m = { .veid = veid, .state = st, .created_ms = created_ms, .updated_ms = updated_ms };

	snprintf(m.src, sizeof(m.src), "h1");
	snprintf(m.dst, sizeof(m.dst), "%s", dst);
	return m;
}

struct fixture {
	struct pool_ve v1[3], v2[1], v3[1];
	struct pool_node h[3];
	struct pool_node *hp[3];
	struct pool p;
};

static void three_hosts(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	f->v1[0] = pve(101, 700, GIB, 1024 * 1024);
	f->v1[1] = pve(102, 600, 2 * GIB, 0);
	f->v1[2] = pve(103, 500, GIB, 0);
	f->v1[0].pinned = true;
	snprintf(f->v1[1].anti_affinity, sizeof(f->v1[1].anti_affinity), "web");
	f->v2[0] = pve(104, 0, GIB, 0);
	f->v3[0] = pve(103, 0, GIB, 0); /* 103 on two hosts: an alert */
	f->h[0] = node("h1", f->v1, 3);
	f->h[1] = node("h2", f->v2, 1);
	f->h[2] = node("h3", f->v3, 1);
	f->h[1].maint = POOL_MAINT_DRAINING;
	f->h[2].last_seen_ns = (int64_t)(NOW - 30 * S); /* silent: offline */
	for (int i = 0; i < 3; i++)
		f->hp[i] = &f->h[i];
	f->p = (struct pool){ .hosts = f->hp, .n_hosts = 3, .suspect_after = 3, .offline_after_ns = 20 * S };
}

Test(rebalance_live, hosts_and_ves_as_the_planner_sees_them)
{
	struct fixture f;
	struct rb_settings set;
	struct coord_rb_snap snap;
	struct vz_err err = { 0 };

	three_hosts(&f);
	rb_settings_default(&set);
	cr_assert_eq(coord_rb_snapshot(&f.p, NOW, WALL, NULL, 0, &set, false, &snap, &err), 0, "%s", err.msg);
	cr_assert_eq(snap.s.n_hosts, 3);
	cr_assert_eq(snap.s.now, WALL / 1000);
	cr_assert_eq(snap.hosts[0].state, RB_HOST_ONLINE);
	cr_assert_not(snap.hosts[0].maintenance);
	cr_assert(snap.hosts[1].maintenance, "a draining host is in maintenance");
	cr_assert_eq(snap.hosts[2].state, RB_HOST_OFFLINE);
	cr_assert_eq(snap.hosts[0].cores, 2);
	cr_assert_eq(snap.hosts[0].mem_total, 8 * GIB);
	cr_assert_eq(snap.s.n_ves, 4, "103 reported twice is kept once");
	cr_assert_eq(snap.ves[0].veid, 101);
	cr_assert(snap.ves[0].pinned);
	cr_assert_eq(snap.ves[0].cpu_permille, 700);
	cr_assert_eq(snap.ves[0].copy_bytes, 2 * GIB, "memory and disk");
	cr_assert_eq(snap.ves[0].last_moved, RB_NEVER);
	cr_assert_str_eq(snap.ves[1].anti_affinity, "web");
	cr_assert_not(snap.ves[1].pinned);
	cr_assert(snap.ves[2].pinned, "a VE two hosts report is never acted on");
	cr_assert_str_eq(snap.ves[2].host, "h1");
	cr_assert_str_eq(snap.ves[3].host, "h2");
	cr_assert_eq(snap.s.in_flight, 0);
	coord_rb_free(&snap);

	/* A host of unknown size is no target, and the round still plans. */
	f.h[1].cores = 0;
	f.h[1].maint = POOL_MAINT_NONE;
	cr_assert_eq(coord_rb_snapshot(&f.p, NOW, WALL, NULL, 0, &set, false, &snap, &err), 0, "%s", err.msg);
	cr_assert_eq(snap.hosts[1].state, RB_HOST_OFFLINE);
	cr_assert_eq(snap.hosts[1].cores, 1);
	coord_rb_free(&snap);
}

Test(rebalance_live, cooldowns_moves_in_flight_and_the_last_hour_from_the_store)
{
	struct fixture f;
	struct rb_settings set;
	struct coord_rb_snap snap;
	struct vz_err err = { 0 };
	struct pool_move moves[] = {
		mv(102, POOL_MOVE_DONE, WALL - 7200000, WALL - 7100000, "h1"),
		mv(102, POOL_MOVE_DONE, WALL - 600000, WALL - 500000, "h1"),  /* its last: 500 s ago */
		mv(102, POOL_MOVE_FAILED, WALL - 100000, WALL - 90000, "h2"), /* a failed one is no move */
		mv(103, POOL_MOVE_RUNNING, WALL - 1000, WALL - 1000, "h2"),
		mv(104, POOL_MOVE_QUEUED, WALL - 10, WALL - 10, "h1"),
	};

	three_hosts(&f);
	rb_settings_default(&set);
	cr_assert_eq(coord_rb_snapshot(&f.p, NOW, WALL, moves, 5, &set, false, &snap, &err), 0, "%s", err.msg);
	cr_assert_eq(snap.ves[1].last_moved, (WALL - 500000) / 1000);
	cr_assert_eq(snap.ves[0].last_moved, RB_NEVER);
	cr_assert_str_eq(snap.ves[2].moving_to, "h2");
	cr_assert_str_eq(snap.ves[3].moving_to, "h1");
	cr_assert_str_eq(snap.ves[1].moving_to, "");
	cr_assert_eq(snap.s.in_flight, 2);
	cr_assert_eq(snap.s.moves_last_hour, 4, "the one of two hours ago is not counted");
	coord_rb_free(&snap);
}

Test(rebalance_live, by_hand_a_host_hot_now_triggers_and_every_other_rule_holds)
{
	struct pool_ve v1[] = { pve(101, 900, 0, 0), pve(102, 900, 0, 0) }, v2[] = { pve(201, 0, 0, 0) };
	struct pool_node h[] = { node("h1", v1, 2), node("h2", v2, 1) };
	struct pool_node *hp[] = { &h[0], &h[1] };
	struct pool p = { .hosts = hp, .n_hosts = 2, .suspect_after = 3, .offline_after_ns = 20 * S };
	struct rb_settings set;
	struct coord_rb_snap snap;
	struct rb_plan plan;
	struct vz_err err = { 0 };

	rb_settings_default(&set);
	cr_assert_eq(coord_rb_snapshot(&p, NOW, WALL, NULL, 0, &set, false, &snap, &err), 0);
	cr_assert_eq(snap.hosts[0].over_rounds, 0);
	cr_assert_eq(rb_plan_round(&snap.s, &plan, &err), 0, "%s", err.msg);
	cr_assert_eq(plan.n_moves, 0, "automatic: the first hot round does not act");
	cr_assert_eq(plan.over_rounds[0], 1);
	rb_plan_free(&plan);
	coord_rb_free(&snap);

	cr_assert_eq(coord_rb_snapshot(&p, NOW, WALL, NULL, 0, &set, true, &snap, &err), 0);
	cr_assert_eq(snap.hosts[0].over_rounds, 2);
	cr_assert_eq(rb_plan_round(&snap.s, &plan, &err), 0, "%s", err.msg);
	cr_assert_eq(plan.n_moves, 1, "by hand, a host hot now acts");
	cr_assert_str_eq(plan.moves[0].to, "h2");
	rb_plan_free(&plan);
	coord_rb_free(&snap);

	v1[0].pinned = v1[1].pinned = true;
	cr_assert_eq(coord_rb_snapshot(&p, NOW, WALL, NULL, 0, &set, true, &snap, &err), 0);
	cr_assert_eq(rb_plan_round(&snap.s, &plan, &err), 0, "%s", err.msg);
	cr_assert_eq(plan.n_moves, 0, "by hand, a pinned VE still stays");
	rb_plan_free(&plan);
	coord_rb_free(&snap);
}
