/* coordinator/plan.c: targets under the memory limit and spread, the
 * plan's modes, costs and reasons, the schedule under the limits, and the
 * one retry elsewhere. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "plan.h"

#define GIB (1ull << 30)
#define MIB (1ull << 20)

static struct plan_host host(const char *name, uint64_t total, uint64_t used)
{
	struct plan_host h = { .eligible = true, .mem_total = total, .mem_used = used };

	snprintf(h.name, sizeof(h.name), "%s", name);
	return h;
}

static struct pool_move move(uint64_t id, unsigned veid, const char *src, const char *dst, enum pool_move_state st)
{
	struct pool_move m = { .id = id, .veid = veid, .mode = POOL_MOVE_PRECOPY, .state = st };

	snprintf(m.src, sizeof(m.src), "%s", src);
	snprintf(m.dst, sizeof(m.dst), "%s", dst);
	return m;
}

Test(plan, a_target_stays_under_85_percent_counting_what_is_planned)
{
	struct plan_host hs[] = { host("h1", 10 * GIB, 1 * GIB), host("h2", 10 * GIB, 7 * GIB) };

	/* h2 would hold 8.4 GiB of 10: 84%, it fits; h1 is the source. */
	cr_assert_eq(plan_pick(hs, 2, "h1", NULL, 1400 * MIB), 1);
	cr_assert_eq(hs[1].mem_used, 7 * GIB + 1400 * MIB, "the planned move counts");
	/* Now 1 MiB more would not stay under 85%. */
	cr_assert_eq(plan_pick(hs, 2, "h1", NULL, 200 * MIB), -1);
}

Test(plan, ineligible_hosts_the_source_and_the_avoided_one_are_never_picked)
{
	struct plan_host hs[] = { host("h1", GIB, 0), host("h2", GIB, 0), host("h3", GIB, 0), host("h4", GIB, 0) };

	hs[1].eligible = false;
	cr_assert_eq(plan_pick(hs, 4, "h1", "h3", MIB), 3);
	cr_assert_eq(plan_pick(hs, 3, "h1", "h3", MIB), -1);
}

Test(plan, the_least_full_host_after_the_move_is_taken)
{
	struct plan_host hs[] = { host("a", 16 * GIB, 12 * GIB), host("b", 4 * GIB, GIB), host("c", 8 * GIB, 5 * GIB) };

	cr_assert_eq(plan_pick(hs, 3, NULL, NULL, 256 * MIB), 1);
}

static struct plan_ve ve(unsigned veid, bool running, uint64_t mem)
{
	return (struct plan_ve){ .veid = veid, .running = running, .mem_used = mem, .disk_kib = 1024 };
}

Test(plan, a_drain_spreads_over_every_eligible_host)
{
	/* Figures a few MiB apart, as heartbeats taken at other times give. */
	struct plan_host hs[] = { host("h1", 8 * GIB, 2 * GIB), host("h2", 8 * GIB, 2 * GIB + 3 * MIB),
				  host("h3", 8 * GIB, 2 * GIB), host("h4", 8 * GIB, GIB) };
	struct plan_ve ves[6];
	struct plan_item out[6];
	unsigned on[4] = { 0 };

	hs[3].eligible = false; /* in maintenance */
	for (unsigned i = 0; i < 6; i++)
		ves[i] = ve(101 + i, i % 2, 2 * MIB);
	cr_assert_eq(plan_drain(hs, 4, "h1", ves, 6, false, 1000, out), 6);
	for (unsigned i = 0; i < 6; i++) {
		cr_assert_eq(out[i].veid, 101 + i, "VEID order");
		cr_assert_neq(strcmp(out[i].target, "h1"), 0);
		on[out[i].target[1] - '1']++;
	}
	cr_assert_eq(on[1], 3, "h2 takes half: %u", on[1]);
	cr_assert_eq(on[2], 3, "h3 takes half: %u", on[2]);
	cr_assert_eq(on[3], 0, "a host in maintenance takes none");
}

Test(plan, modes_costs_and_the_reasons_a_ve_cannot_move)
{
	struct plan_host hs[] = { host("h1", 8 * GIB, 0), host("h2", 1 * GIB, 512 * MIB) };
	struct plan_ve ves[] = { ve(101, true, 256 * MIB), ve(102, false, 0), ve(103, true, 600 * MIB),
				 ve(104, true, MIB) };
	struct plan_item out[4];

	ves[3].duplicate = true;
	cr_assert_eq(plan_drain(hs, 2, "h1", ves, 4, false, 1000, out), 2);
	cr_assert_eq(out[0].mode, POOL_MOVE_PRECOPY);
	cr_assert_str_eq(out[0].target, "h2");
	cr_assert_eq(out[0].bytes, 257 * MIB, "memory and disk");
	/* 257 MiB at 1 Gbit/s: 2.156 s. */
	cr_assert_eq(out[0].est_ms, (257 * MIB * 8 + 999999) / 1000000);
	cr_assert_eq(out[1].mode, POOL_MOVE_OFFLINE, "a stopped VE moves offline");
	cr_assert_eq(out[1].bytes, MIB, "its disk only");
	cr_assert_str_eq(out[2].target, "");
	cr_assert(strstr(out[2].reason, "no host has room"), "%s", out[2].reason);
	cr_assert_str_eq(out[3].target, "");
	cr_assert(strstr(out[3].reason, "two hosts"), "%s", out[3].reason);
}

Test(plan, offline_drains_move_running_ves_offline)
{
	struct plan_host hs[] = { host("h1", 8 * GIB, 0), host("h2", 8 * GIB, 0) };
	struct plan_ve v = ve(101, true, 256 * MIB);
	struct plan_item out;

	plan_drain(hs, 2, "h1", &v, 1, true, 1000, &out);
	cr_assert_eq(out.mode, POOL_MOVE_OFFLINE);
	cr_assert_eq(out.bytes, MIB, "no memory is sent");
}

Test(plan, the_schedule_keeps_every_limit_oldest_first)
{
	struct pool_move ms[] = {
		move(1, 101, "h1", "h2", POOL_MOVE_RUNNING), move(2, 102, "h1", "h3", POOL_MOVE_QUEUED),
		move(3, 103, "h1", "h2", POOL_MOVE_QUEUED),  move(4, 104, "h4", "h2", POOL_MOVE_QUEUED),
		move(5, 105, "h4", "h2", POOL_MOVE_QUEUED),  move(6, 106, "h5", "h6", POOL_MOVE_QUEUED),
		move(7, 107, "h7", "h8", POOL_MOVE_QUEUED),
	};
	struct plan_limits lim = { .out_per_host = 2, .in_per_host = 2, .pool = 4 };
	bool start[7];

	cr_assert_eq(plan_schedule(ms, 7, &lim, NULL, NULL, start), 3);
	cr_assert(start[1], "h1's second outgoing move");
	cr_assert_not(start[2], "h1 has two outgoing");
	cr_assert(start[3], "h2's second incoming move");
	cr_assert_not(start[4], "h2 has two incoming");
	cr_assert(start[5], "the pool's fourth");
	cr_assert_not(start[6], "the pool has four");
}

static bool not_h5(void *arg, const struct pool_move *m)
{
	(void)arg;
	return strcmp(m->src, "h5") != 0;
}

Test(plan, a_move_not_ready_or_of_a_moving_ve_waits)
{
	struct pool_move ms[] = { move(1, 101, "h1", "h2", POOL_MOVE_RUNNING),
				  move(2, 101, "h2", "h3", POOL_MOVE_QUEUED),
				  move(3, 103, "h5", "h2", POOL_MOVE_QUEUED), move(4, 104, "h6", "", POOL_MOVE_QUEUED),
				  move(5, 105, "h6", "h3", POOL_MOVE_QUEUED) };
	struct plan_limits lim = { .out_per_host = 2, .in_per_host = 2, .pool = 8 };
	bool start[5];

	cr_assert_eq(plan_schedule(ms, 5, &lim, not_h5, NULL, start), 1);
	cr_assert_not(start[1], "VE 101 moves already");
	cr_assert_not(start[2], "its source is not ready");
	cr_assert_not(start[3], "no target yet");
	cr_assert(start[4]);
}

Test(plan, a_failed_move_is_retried_once_elsewhere_then_left)
{
	struct plan_host hs[] = { host("h1", 8 * GIB, 0), host("h2", 8 * GIB, 0), host("h3", 8 * GIB, GIB) };
	struct pool_move m = move(1, 101, "h1", "h2", POOL_MOVE_RUNNING);

	m.attempts = 1;
	cr_assert(plan_retry(&m, hs, 3, 256 * MIB, "h2 refused it"));
	cr_assert_eq(m.state, POOL_MOVE_QUEUED);
	cr_assert_str_eq(m.dst, "h3", "not the target that failed, though it is the fuller");
	cr_assert_str_eq(m.failed_dst, "h2");
	cr_assert_str_eq(m.error, "h2 refused it");
	m.state = POOL_MOVE_RUNNING;
	m.attempts = 2;
	cr_assert_not(plan_retry(&m, hs, 3, 256 * MIB, "h3 refused it too"));
	cr_assert_eq(m.state, POOL_MOVE_FAILED);
	cr_assert_str_eq(m.dst, "h3");
	cr_assert_str_eq(m.error, "h3 refused it too");
}

Test(plan, no_other_host_ends_the_move_at_its_first_failure)
{
	struct plan_host hs[] = { host("h1", 8 * GIB, 0), host("h2", 8 * GIB, 0) };
	struct pool_move m = move(1, 101, "h1", "h2", POOL_MOVE_RUNNING);

	m.attempts = 1;
	cr_assert_not(plan_retry(&m, hs, 2, MIB, "refused"));
	cr_assert_eq(m.state, POOL_MOVE_FAILED);
}

Test(plan, a_move_its_source_forgot_is_decided_by_where_the_ve_is)
{
	cr_assert_eq(plan_unknown_move(false, true), PLAN_UNKNOWN_DONE, "on the target: it moved");
	cr_assert_eq(plan_unknown_move(true, false), PLAN_UNKNOWN_REQUEUE, "on the source: it never left");
	cr_assert_eq(plan_unknown_move(true, true), PLAN_UNKNOWN_WAIT, "on both: an alert, never acted on");
	cr_assert_eq(plan_unknown_move(false, false), PLAN_UNKNOWN_WAIT, "on neither: a restore under way");
}
