/* agent/migrate/record.c: the records of the two-phase commit, as names
 * and as contents; a round trip gives back what was written, and anything
 * else is refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "migrate/migrate_int.h"

static struct mig_record parse_name(const char *name)
{
	struct mig_record r;

	cr_assert_eq(mig_record_name_parse(name, &r), 0, "refused the name %s", name);
	return r;
}

Test(mig_record, names_of_each_kind)
{
	struct mig_record r = parse_name("101.0123456789abcdef.decision");

	cr_assert_eq(r.kind, MIG_REC_DECISION);
	cr_assert_eq(r.veid, 101);
	cr_assert_str_eq(r.mid, "0123456789abcdef");
	r = parse_name("7.ab.outgoing");
	cr_assert_eq(r.kind, MIG_REC_OUTGOING);
	cr_assert_str_eq(r.mid, "ab");
	r = parse_name("2147483647.incoming");
	cr_assert_eq(r.kind, MIG_REC_INCOMING);
	cr_assert_eq(r.veid, 2147483647u);
	r = parse_name("931.capped");
	cr_assert_eq(r.kind, MIG_REC_CAPPED);
	cr_assert_eq(r.veid, 931);
}

Test(mig_record, names_that_are_no_record)
{
	const char *bad[] = { "",
			      ".",
			      "..",
			      "101",
			      "101.",
			      "101.decision",
			      "101.ab.incoming",
			      "101.ab.capped",
			      "101.AB.decision",
			      "101.xyz.outgoing",
			      "0.ab.decision",
			      "0101.ab.decision",
			      "2147483648.incoming",
			      "-1.incoming",
			      "101.ab.decision.tmp",
			      "101.ab.cd.decision",
			      "101..decision",
			      "abc.incoming",
			      "101.incoming.tmp",
			      "1.00000000000000000000000000000000000000000000000000000000000000000.outgoing" };
	struct mig_record r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_neq(mig_record_name_parse(bad[i], &r), 0, "accepted the name '%s'", bad[i]);
}

/* Format r, parse it back into a record of the same name, compare. */
static void round_trip(const struct mig_record *r)
{
	struct mig_record back = mig_record_of(r->kind, r->veid, r->mid);
	char text[512];
	int n = mig_record_format(r, text, sizeof(text));

	cr_assert_gt(n, 0);
	if (r->kind == MIG_REC_INCOMING || r->kind == MIG_REC_CAPPED)
		back.mid[0] = '\0'; /* the id is in the contents */
	cr_assert_eq(mig_record_parse(&back, text, (size_t)n), 0, "refused its own '%s'", text);
	cr_assert_eq(back.kind, r->kind);
	cr_assert_eq(back.veid, r->veid);
	cr_assert_str_eq(back.mid, r->mid);
	cr_assert_eq(back.go, r->go);
	cr_assert_eq(back.port, r->port);
	cr_assert_eq(back.postcopy, r->postcopy);
	cr_assert_eq(back.recovered, r->recovered);
	cr_assert_str_eq(back.host, r->host);
	cr_assert_eq(back.online, r->online);
}

Test(mig_record, round_trips)
{
	struct mig_record r = mig_record_of(MIG_REC_DECISION, 101, "0123456789abcdef");

	r.go = true;
	round_trip(&r);
	r.go = false;
	round_trip(&r);
	r = mig_record_of(MIG_REC_OUTGOING, 101, "ab");
	round_trip(&r); /* port 0: no lazy dump */
	r.port = 40123;
	r.postcopy = true;
	round_trip(&r);
	r.recovered = true;
	round_trip(&r);
	r = mig_record_of(MIG_REC_INCOMING, 5, "beef");
	snprintf(r.host, sizeof(r.host), "198.18.0.1");
	r.port = 7777;
	r.online = true;
	round_trip(&r);
	r = mig_record_of(MIG_REC_CAPPED, 5, "beef");
	round_trip(&r);
}

/* The texts the agent wrote before record.c existed still parse. */
Test(mig_record, what_older_agents_wrote)
{
	struct mig_record r = mig_record_of(MIG_REC_OUTGOING, 1, "ab");

	cr_assert_eq(mig_record_parse(&r, "0 postcopy recovered\n", 21), 0);
	cr_assert(r.postcopy && r.recovered && r.port == 0);
	r = mig_record_of(MIG_REC_INCOMING, 1, NULL);
	cr_assert_eq(mig_record_parse(&r, "00ff 198.18.0.2 7000 0\n", 23), 0);
	cr_assert_str_eq(r.mid, "00ff");
	cr_assert_str_eq(r.host, "198.18.0.2");
	cr_assert(r.port == 7000 && !r.online);
	r = mig_record_of(MIG_REC_DECISION, 1, "ab");
	cr_assert_eq(mig_record_parse(&r, "go\n", 3), 0);
	cr_assert(r.go);
}

static void refused(enum mig_record_kind kind, const char *text, size_t len)
{
	struct mig_record r = mig_record_of(kind, 1, "ab"), before = r;

	cr_assert_neq(mig_record_parse(&r, text, len), 0, "accepted '%.*s' as kind %d", (int)len, text, (int)kind);
	cr_assert(!memcmp(&r, &before, sizeof(r)), "a refused parse changed the record");
}

Test(mig_record, truncated_or_garbage_refused)
{
	refused(MIG_REC_DECISION, "", 0);
	refused(MIG_REC_DECISION, "g", 1);
	refused(MIG_REC_DECISION, "gone\n", 5);
	refused(MIG_REC_DECISION, "go\ngo\n", 6);
	refused(MIG_REC_DECISION, "go\0", 3);
	refused(MIG_REC_DECISION, "abort\n\n", 7);
	refused(MIG_REC_DECISION, "GO\n", 3);
	refused(MIG_REC_OUTGOING, "", 0);
	refused(MIG_REC_OUTGOING, "\n", 1);
	refused(MIG_REC_OUTGOING, "65536\n", 6);
	refused(MIG_REC_OUTGOING, "-1\n", 3);
	refused(MIG_REC_OUTGOING, "12x\n", 4);
	refused(MIG_REC_OUTGOING, "12 postcop\n", 11);
	refused(MIG_REC_OUTGOING, "12 recovered postcopy\n", 22);
	refused(MIG_REC_OUTGOING, "12 postcopy ", 12);
	refused(MIG_REC_INCOMING, "00ff 198.18.0.2 7000\n", 21);
	refused(MIG_REC_INCOMING, "00ff 198.18.0.2 7000 2\n", 23);
	refused(MIG_REC_INCOMING, "zz 198.18.0.2 7000 1\n", 21);
	refused(MIG_REC_INCOMING, "00ff 198.18.0.2 7000 1 x\n", 25);
	refused(MIG_REC_INCOMING, "00ff", 4);
	refused(MIG_REC_CAPPED, "", 0);
	refused(MIG_REC_CAPPED, "xyz", 3);
	refused(MIG_REC_CAPPED, "ab cd", 5);
}

Test(mig_record, ids)
{
	cr_assert(mig_id_ok("0123456789abcdef"));
	cr_assert(!mig_id_ok(""));
	cr_assert(!mig_id_ok("0123456789ABCDEF"));
	cr_assert(!mig_id_ok("../x"));
}

Test(mig_record, format_refuses_a_short_buffer)
{
	struct mig_record r = mig_record_of(MIG_REC_DECISION, 1, "ab");
	char small[3];

	cr_assert_lt(mig_record_format(&r, small, sizeof(small)), 0);
}
