/* agent/metrics.c: a migration's record, written by a worker and read
 * back by the agent's main process. */
#include <criterion/criterion.h>
#include <errno.h>

#include "metrics.h"

Test(mig_stats, a_record_reads_back_as_written)
{
	struct mig_stats st = { .source = true,
				.ok = true,
				.total_ms = 1234.5,
				.downtime_ms = 87.25,
				.raw_bytes = 1ull << 33,
				.wire_bytes = 12345,
				.rounds = 3 };
	struct mig_stats back;
	char text[512];

	for (int p = 0; p < MIG_PH_N; p++)
		st.phase_ms[p] = p == MIG_PH_MEMORY ? -1 : 10.5 * p;
	cr_assert_gt(mig_stats_format(&st, text, sizeof(text)), 0);
	cr_assert_eq(mig_stats_parse(text, &back), 0, "%s", text);
	cr_assert(back.source && back.ok);
	cr_assert_float_eq(back.total_ms, 1234.5, 1e-9);
	cr_assert_float_eq(back.downtime_ms, 87.25, 1e-9);
	cr_assert_float_eq(back.phase_ms[MIG_PH_MEMORY], -1, 1e-9);
	cr_assert_float_eq(back.phase_ms[MIG_PH_UNDUMP], 52.5, 1e-9);
	cr_assert_eq(back.raw_bytes, 1ull << 33);
	cr_assert_eq(back.wire_bytes, 12345);
	cr_assert_eq(back.rounds, 3);
}

Test(mig_stats, refuses_what_is_not_a_record)
{
	struct mig_stats st;
	char text[512];

	cr_assert_eq(mig_stats_parse("", &st), -EINVAL);
	cr_assert_eq(mig_stats_parse("v2 source 1 0 0 0 0 0 0 1 1 1 1 1\n", &st), -EINVAL);
	cr_assert_eq(mig_stats_parse("v1 sideways 1 0 0 0 0 0 0 1 1 1 1 1\n", &st), -EINVAL);
	cr_assert_eq(mig_stats_parse("v1 source 2 0 0 0 0 0 0 1 1 1 1 1\n", &st), -EINVAL);
	cr_assert_eq(mig_stats_parse("v1 source 1 0 0 0 0 0 0 1 1 1 1\n", &st), -EINVAL);
	cr_assert_eq(mig_stats_parse("v1 source 1 0 0 0 0 0 0 1 1 1 1 1 extra\n", &st), -EINVAL);
	cr_assert_eq(mig_stats_format(&(struct mig_stats){ 0 }, text, 8), -ENOSPC);
}
