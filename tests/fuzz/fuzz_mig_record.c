/* libFuzzer target: the records of a migration's two-phase commit
 * (agent/migrate/record.c), which a restarted agent reads back from
 * VZ_ROOT/vz/migrate: a file name, then contents of the kind the first
 * byte picks. Neither parser may crash or read out of bounds; what either
 * accepts must survive format and parse unchanged; a refused parse leaves
 * the record as it was. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"

static void same(const struct mig_record *a, const struct mig_record *b)
{
	if (a->kind != b->kind || a->veid != b->veid || strcmp(a->mid, b->mid) || a->go != b->go ||
	    a->port != b->port || a->postcopy != b->postcopy || a->recovered != b->recovered ||
	    strcmp(a->host, b->host) || a->online != b->online)
		__builtin_trap();
}

static void check_name(const uint8_t *data, size_t size)
{
	char name[300];
	struct mig_record r;

	if (size >= sizeof(name))
		size = sizeof(name) - 1;
	memcpy(name, data, size);
	name[size] = '\0';
	if (mig_record_name_parse(name, &r) == 0 && (r.veid == 0 || (r.kind <= MIG_REC_OUTGOING && !mig_id_ok(r.mid))))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mig_record r, before, back;
	char text[512];
	int n;

	check_name(data, size);
	if (size < 1)
		return 0;
	r = mig_record_of((enum mig_record_kind)(data[0] % 4), 101, "0123abcd");
	before = r;
	/* A copy of exactly the input, so that ASan sees a read past its end. */
	char *copy = malloc(size - 1 ? size - 1 : 1);

	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (mig_record_parse(&r, copy, size - 1) < 0) {
		same(&r, &before);
		free(copy);
		return 0;
	}
	free(copy);
	n = mig_record_format(&r, text, sizeof(text));
	if (n < 0)
		__builtin_trap();
	back = mig_record_of(r.kind, r.veid, r.mid);
	if (mig_record_parse(&back, text, (size_t)n) < 0)
		__builtin_trap();
	same(&r, &back);
	return 0;
}
