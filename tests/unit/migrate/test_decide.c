/* agent/migrate/record.c on disk (under a VZ_ROOT of its own): the
 * decision is written once, and the one that stands wins; records are
 * written, read back and found by kind. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"
#include "util.h"

static char root[64];

static void make_root(void)
{
	snprintf(root, sizeof(root), "/tmp/vz-unit-decide.XXXXXX");
	cr_assert_not_null(mkdtemp(root));
	setenv("VZ_ROOT", root, 1);
}

static void remove_root(void)
{
	vz_rm_rf(root);
	unsetenv("VZ_ROOT");
}

TestSuite(mig_decide, .init = make_root, .fini = remove_root);

Test(mig_decide, the_first_decision_stands)
{
	struct vz_err err = { 0 };
	bool go = false;

	cr_assert(!mig_decision_exists(101, "ab"));
	cr_assert_eq(mig_decide(101, "ab", true, &go, &err), 0, "%s", err.msg);
	cr_assert(go);
	/* A destination asking late records abort: the go stands. */
	cr_assert_eq(mig_decide(101, "ab", false, &go, &err), 0, "%s", err.msg);
	cr_assert(go);
	cr_assert(mig_decided_go(101, "ab"));
	/* The other way round: abort first, and a late go is refused. */
	cr_assert_eq(mig_decide(101, "cd", false, &go, &err), 0, "%s", err.msg);
	cr_assert(!go);
	cr_assert_eq(mig_decide(101, "cd", true, &go, &err), 0, "%s", err.msg);
	cr_assert(!go);
	cr_assert(mig_decision_exists(101, "cd"));
	cr_assert(!mig_decided_go(101, "cd"));
}

static void count(void *arg, const struct mig_record *r, const char *path)
{
	(void)path;
	cr_assert_eq(r->veid, 7);
	(*(int *)arg)++;
}

Test(mig_decide, records_written_read_and_found)
{
	struct mig_record r = mig_record_of(MIG_REC_OUTGOING, 7, "beef"), back;
	struct vz_err err = { 0 };
	int n = 0;

	r.port = 4242;
	r.postcopy = true;
	cr_assert_eq(mig_record_write(&r, &err), 0, "%s", err.msg);
	back = mig_record_of(MIG_REC_OUTGOING, 7, "beef");
	cr_assert_eq(mig_record_read(&back, &err), 0, "%s", err.msg);
	cr_assert(back.port == 4242 && back.postcopy && !back.recovered);
	mig_record_scan(MIG_REC_OUTGOING, count, &n);
	cr_assert_eq(n, 1);
	n = 0;
	mig_record_scan(MIG_REC_INCOMING, count, &n);
	cr_assert_eq(n, 0);
	mig_record_remove(&r);
	cr_assert_neq(mig_record_read(&back, NULL), 0);
}
