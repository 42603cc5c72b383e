/* agent/migrate/files.c: which paths a destination accepts from a peer. */
#include <criterion/criterion.h>

#include "migrate/migrate_int.h"

Test(mig_path, accepts_plain_relative_paths)
{
	cr_assert(mig_path_ok("etc/passwd"));
	cr_assert(mig_path_ok("root.hdd"));
	cr_assert(mig_path_ok("a/.hidden/b..c"));
}

Test(mig_path, refuses_what_could_leave_the_private_area)
{
	const char *bad[] = { "", "/etc/passwd", "..", "../x", "a/../b", "a/..", "./a", "a/./b", "a//b", "a/" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert(!mig_path_ok(bad[i]), "accepted '%s'", bad[i]);
}
