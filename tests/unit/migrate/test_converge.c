/* agent/migrate/precopy.c: the convergence rule of pre-copy. */
#include <criterion/criterion.h>

#include "migrate/migrate_int.h"

/* A round of `sent` pages in 1 s (16 MiB/s at 4096 sent), `left` to go. */
static enum mig_conv rule(unsigned round, uint64_t prev_sent, uint64_t sent, uint64_t left, bool measured)
{
	struct mig_conv_in in = {
		.round = round,
		.sent = sent,
		.prev_sent = prev_sent,
		.left = left,
		.left_measured = measured,
		.ms = 1000,
		.downtime_ms = 300,
		.max_rounds = 10,
		.used = -1,
	};
	struct mig_conv_out out;

	mig_should_freeze(&in, &out);
	return out.verdict;
}

Test(mig_should_freeze, converges_when_what_is_left_fits_the_budget)
{
	/* 100 pages at 4096 pages/s: ~24 ms, within 300 ms but worth a round. */
	cr_assert_eq(rule(1, 50000, 4096, 100, true), MIG_CONV_POLISH);
	/* 40 pages: ~10 ms, freeze now. */
	cr_assert_eq(rule(1, 50000, 4096, 40, true), MIG_CONV_CONVERGED);
}

Test(mig_should_freeze, stops_at_the_round_limit)
{
	cr_assert_eq(rule(9, 5000, 4096, 4000, true), MIG_CONV_ROUND_LIMIT);
}

Test(mig_should_freeze, stops_when_a_measured_left_does_not_shrink)
{
	/* uffd-wp: 4096 written while 4096 were sent: it writes as fast. */
	cr_assert_eq(rule(1, 50000, 4096, 4096, true), MIG_CONV_NO_PROGRESS);
	cr_assert_eq(rule(1, 50000, 4096, 2048, true), MIG_CONV_AGAIN);
}

/* Issue 12, item 6: soft-dirty's "left" from round 1 on is what the round
 * just sent, so comparing it with that round's sent pages always found
 * "not shrinking" and stopped pre-copy after round 1 with a false "writes
 * as fast as it is sent". Shrinking is what this round sent against what
 * the round before sent. */
Test(mig_should_freeze, soft_dirty_shrinking_rounds_go_on)
{
	/* Round 0 sent 50000 pages, round 1 sent the 4096 written meanwhile. */
	cr_assert_eq(rule(1, 50000, 4096, 4096, false), MIG_CONV_AGAIN);
	/* Round 2 sent as many as round 1: now it does not shrink. */
	cr_assert_eq(rule(2, 4096, 4096, 4096, false), MIG_CONV_NO_PROGRESS);
	/* Round 0: nothing known yet. */
	cr_assert_eq(rule(0, 0, 50000, UINT64_MAX / 8192, false), MIG_CONV_AGAIN);
}

Test(mig_should_freeze, auto_converge_caps_a_vm_that_writes_fast)
{
	struct mig_conv_in in = { .round = 1,
				  .sent = 4096,
				  .prev_sent = 50000,
				  .left = 3000,
				  .left_measured = true,
				  .ms = 1000,
				  .downtime_ms = 300,
				  .max_rounds = 10,
				  .autoconv = true,
				  .used = 1.0 };
	struct mig_conv_out out;

	mig_should_freeze(&in, &out);
	cr_assert_eq(out.verdict, MIG_CONV_CAP);
	/* Unknown CPU use: no cap, the plain rule. */
	in.used = -1;
	mig_should_freeze(&in, &out);
	cr_assert_eq(out.verdict, MIG_CONV_AGAIN);
	/* Soft-dirty compares with the round before here too. */
	in = (struct mig_conv_in){ .round = 1,
				   .sent = 4096,
				   .prev_sent = 50000,
				   .left = 4096,
				   .ms = 1000,
				   .downtime_ms = 300,
				   .max_rounds = 10,
				   .autoconv = true,
				   .used = 1.0 };
	mig_should_freeze(&in, &out);
	cr_assert_eq(out.verdict, MIG_CONV_AGAIN);
}

Test(mig_should_freeze, never_more_than_the_engine_allows)
{
	struct mig_conv_in in = { .round = MIG_MAX_ROUNDS - 1,
				  .sent = 4096,
				  .prev_sent = 5000,
				  .left = 4000,
				  .left_measured = true,
				  .ms = 1000,
				  .downtime_ms = 300,
				  .max_rounds = 1000,
				  .used = -1 };
	struct mig_conv_out out;

	mig_should_freeze(&in, &out);
	cr_assert_eq(out.verdict, MIG_CONV_ROUND_LIMIT);
}
