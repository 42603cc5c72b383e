/* libFuzzer target: what an agent keeps of the coordinator's orders
 * (agent/order_record.c) and reads back from VZ_ROOT/vz: a move order's
 * record and the epoch file. Neither parser may crash or read out of
 * bounds, and what the record parser accepts must survive format and
 * parse unchanged. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "orders.h"

static void same(const struct order_record *a, const struct order_record *b)
{
	if (a->done != b->done || a->veid != b->veid || a->pid != b->pid || a->pid_start != b->pid_start ||
	    a->exit_code != b->exit_code || a->elapsed_ms != b->elapsed_ms || a->downtime_ms != b->downtime_ms ||
	    a->at_ms != b->at_ms || strcmp(a->error, b->error))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct order_record r, back;
	char text[ORDER_ERROR_MAX + 128];
	uint64_t epoch;
	int n;

	if (order_epoch_parse((const char *)data, size, &epoch) == 0 && epoch == 0)
		__builtin_trap();
	if (order_record_parse((const char *)data, size, &r) < 0)
		return 0;
	if (r.veid == 0 || (!r.done && r.pid <= 0) || (r.done && (r.exit_code != 0) != (r.error[0] != '\0')))
		__builtin_trap();
	n = order_record_format(&r, text, sizeof(text));
	if (n < 0 || order_record_parse(text, (size_t)n, &back) < 0)
		__builtin_trap();
	same(&r, &back);
	return 0;
}
