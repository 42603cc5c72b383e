/* agent/migrate/verify.c: --verify-memory's verdict on the digests of both
 * hosts, which lets the move go on to the go or refuses it, and the masks
 * MEMHASH opens with. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H3 "3333333333333333333333333333333333333333333333333333333333333333"

/* vz_mem_digest's text of a small VE: init's heap and stack, a worker's. */
static const char src[] = "1 5000-9000 " H1 "\n"
			  "1 7ffc0000-7ffe1000 " H2 "\n"
			  "12 400000-401000 " H3 "\n";

Test(mig_memhash_verdict, the_same_digests_go)
{
	struct vz_err err = { 0 };
	size_t n = 0;

	cr_assert_eq(mig_memhash_verdict(src, src, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 3);
}

Test(mig_memhash_verdict, one_mapping_that_differs_is_refused_and_named)
{
	struct vz_err err = { 0 };
	const char dst[] = "1 5000-9000 " H1 "\n"
			   "1 7ffc0000-7ffe1000 " H3 "\n"
			   "12 400000-401000 " H3 "\n";
	size_t n = 9;

	cr_assert_eq(mig_memhash_verdict(src, dst, &n, &err), -EIO);
	cr_assert_eq(err.errnum, EIO);
	cr_assert_str_eq(err.msg,
			 "Restored memory differs from the source's: mapping 7ffc0000-7ffe1000 of pid 1 differs");
	cr_assert_eq(n, 1, "the mappings before the difference were the same");
}

Test(mig_memhash_verdict, the_last_mapping_differing_is_refused)
{
	struct vz_err err = { 0 };
	char dst[sizeof(src)];

	memcpy(dst, src, sizeof(src));
	dst[sizeof(src) - 3] ^= 1; /* the last digest's last hex digit */
	cr_assert_eq(mig_memhash_verdict(src, dst, &(size_t){ 0 }, &err), -EIO);
	cr_assert(strstr(err.msg, "mapping 400000-401000 of pid 12 differs"), "%s", err.msg);
}

Test(mig_memhash_verdict, a_mapping_missing_here_is_refused_with_both_counts)
{
	struct vz_err err = { 0 };
	const char dst[] = "1 5000-9000 " H1 "\n"
			   "12 400000-401000 " H3 "\n";

	cr_assert_eq(mig_memhash_verdict(src, dst, &(size_t){ 0 }, &err), -EIO);
	cr_assert_str_eq(err.msg, "Restored memory differs from the source's: mapping 7ffc0000-7ffe1000 of pid 1 is "
				  "missing here (3 mappings on the source, 2 here)");
}

Test(mig_memhash_verdict, a_mapping_only_here_is_refused_with_both_counts)
{
	struct vz_err err = { 0 };
	const char dst[] = "1 5000-9000 " H1 "\n"
			   "1 7ffc0000-7ffe1000 " H2 "\n"
			   "12 400000-401000 " H3 "\n"
			   "13 400000-401000 " H3 "\n";

	cr_assert_eq(mig_memhash_verdict(src, dst, &(size_t){ 0 }, &err), -EIO);
	cr_assert_str_eq(err.msg, "Restored memory differs from the source's: mapping 400000-401000 of pid 13 is not "
				  "in the source's (3 mappings on the source, 4 here)");
	/* The other way round: the source's last mapping is missing here. */
	cr_assert_eq(mig_memhash_verdict(dst, src, &(size_t){ 0 }, &err), -EIO);
	cr_assert(strstr(err.msg, "mapping 400000-401000 of pid 13 is missing here (4 mappings on the source, 3 here)"),
		  "%s", err.msg);
}

Test(mig_memhash_verdict, a_range_split_differently_is_refused)
{
	struct vz_err err = { 0 };
	const char dst[] = "1 5000-8000 " H1 "\n"
			   "1 7ffc0000-7ffe1000 " H2 "\n"
			   "12 400000-401000 " H3 "\n";

	cr_assert_eq(mig_memhash_verdict(src, dst, &(size_t){ 0 }, &err), -EIO);
	/* "5000-8000 " sorts before "5000-9000 ": the destination's range is
	 * the one the source lacks. */
	cr_assert(strstr(err.msg, "mapping 5000-8000 of pid 1 is not in the source's"), "%s", err.msg);
	cr_assert_null(strstr(err.msg, "mappings on the source"), "same counts: %s", err.msg);
}

Test(mig_memhash_verdict, nothing_compared_is_not_verified)
{
	struct vz_err err = { 0 };
	size_t n = 9;

	cr_assert_eq(mig_memhash_verdict("", "", &n, &err), -EIO);
	cr_assert_str_eq(err.msg, "Memory not verified: neither host found a writable private mapping in the VE to "
				  "compare");
	cr_assert_eq(n, 0);
}

Test(mig_memhash_verdict, digests_on_one_side_only_are_refused)
{
	struct vz_err err = { 0 };

	cr_assert_eq(mig_memhash_verdict(src, "", &(size_t){ 0 }, &err), -EIO);
	cr_assert(strstr(err.msg, "mapping 5000-9000 of pid 1 is missing here (3 mappings on the source, 0 here)"),
		  "%s", err.msg);
	cr_assert_eq(mig_memhash_verdict("", src, &(size_t){ 0 }, &err), -EIO);
	cr_assert(strstr(err.msg, "mapping 5000-9000 of pid 1 is not in the source's (0 mappings on the source, 3 "
				  "here)"),
		  "%s", err.msg);
}

Test(mig_memhash_verdict, a_missing_last_newline_is_the_same_text)
{
	struct vz_err err = { 0 };
	char s2[sizeof(src)];
	size_t n = 0;

	memcpy(s2, src, sizeof(src));
	s2[sizeof(src) - 2] = '\0';
	cr_assert_eq(mig_memhash_verdict(s2, src, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 3);
}

Test(mig_memhash_verdict, a_peers_garbage_is_refused_and_named_briefly)
{
	struct vz_err err = { 0 };
	char junk[4096];

	memset(junk, 'x', sizeof(junk) - 1);
	junk[sizeof(junk) - 1] = '\0';
	cr_assert_eq(mig_memhash_verdict(junk, src, &(size_t){ 0 }, &err), -EIO);
	cr_assert_lt(strlen(err.msg), 300, "%s", err.msg);
}

Test(mig_memhash_masks, the_masks_come_first_then_the_digests)
{
	const char text[] = "mask 1 7f0000001000 32\nmask 12 7f0000002000 32\n1 5000-9000 " H1 "\n";
	struct vz_mem_mask *m = NULL;
	struct vz_err err = { 0 };
	const char *rest = NULL;
	size_t n = 0;

	cr_assert_eq(mig_memhash_masks(text, &m, &n, &rest, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 2);
	cr_assert_eq(m[1].vpid, 12);
	cr_assert_eq(m[1].addr, 0x7f0000002000ull);
	cr_assert_eq(m[1].len, 32);
	cr_assert_str_eq(rest, "1 5000-9000 " H1 "\n");
	free(m);
}

Test(mig_memhash_masks, a_malformed_mask_is_refused)
{
	struct vz_mem_mask *m = NULL;
	struct vz_err err = { 0 };
	const char *rest = NULL;
	size_t n = 0;

	cr_assert_eq(mig_memhash_masks("mask 1 zz\n", &m, &n, &rest, &err), -EPROTO);
	cr_assert_str_eq(err.msg, "Malformed MEMHASH");
}
