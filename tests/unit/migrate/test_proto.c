/* agent/migrate/proto.c: what a peer's PAGES and named messages must hold
 * before anything acts on them. */
#include <criterion/criterion.h>

#include "migrate/migrate_int.h"

static mig_msg pages(uint32_t vpid, uint64_t raw)
{
	mig_msg m = VZ__MIGRATE__MSG__INIT;

	m.type = VZ__MIGRATE__TYPE__T_PAGES;
	m.has_vpid = m.has_vaddr = m.has_raw_len = m.has_data = true;
	m.vpid = vpid;
	m.vaddr = 0x7f0000000000ull;
	m.raw_len = raw;
	return m;
}

Test(mig_pages_ok, whole_pages_within_the_cap)
{
	mig_msg m = pages(1, 4096);

	cr_assert(mig_pages_ok(&m));
	m = pages(77, MIG_PAGES_MAX);
	cr_assert(mig_pages_ok(&m));
}

Test(mig_pages_ok, refuses_what_the_store_must_not_take)
{
	mig_msg m = pages(1, 0);

	cr_assert(!mig_pages_ok(&m));
	m = pages(1, 4095);
	cr_assert(!mig_pages_ok(&m));
	m = pages(1, MIG_PAGES_MAX + 4096);
	cr_assert(!mig_pages_ok(&m));
	m = pages(0, 4096);
	cr_assert(!mig_pages_ok(&m));
	m = pages(0x80000000u, 4096);
	cr_assert(!mig_pages_ok(&m));
	m = pages(1, 4096);
	m.has_data = false;
	cr_assert(!mig_pages_ok(&m));
	m = pages(1, 4096);
	m.has_raw_len = false;
	cr_assert(!mig_pages_ok(&m));
}

Test(mig_named_ok, an_id_and_a_veid)
{
	mig_msg m = VZ__MIGRATE__MSG__INIT;

	cr_assert(!mig_named_ok(&m));
	m.migration_id = "0123abcd";
	cr_assert(!mig_named_ok(&m));
	m.has_offset = true;
	m.offset = 101;
	cr_assert(mig_named_ok(&m));
	m.offset = 0;
	cr_assert(!mig_named_ok(&m));
	m.offset = 1ull << 31;
	cr_assert(!mig_named_ok(&m));
	m.offset = 101;
	m.migration_id = "../../etc";
	cr_assert(!mig_named_ok(&m));
}
