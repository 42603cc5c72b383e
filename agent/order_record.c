/* The pure parsers and formatter of what orders.h keeps on disk: a move
 * order's record and the epoch file, read strictly (unit-tested in
 * tests/unit/agent, fuzzed by tests/fuzz/fuzz_order_record.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "orders.h"

/* One decimal number and the rest after it; false when there is none. */
static bool take_u64(const char **p, const char *end, uint64_t *v)
{
	const char *s = *p;
	uint64_t n = 0;

	if (s >= end || *s < '0' || *s > '9')
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		uint64_t d = (uint64_t)(*s - '0');

		if (n > UINT64_MAX / 10 || (n == UINT64_MAX / 10 && d > UINT64_MAX % 10))
			return false;
		n = n * 10 + d;
	}
	*v = n;
	*p = s;
	return true;
}

/* " N" fields, count of them, then a newline. */
static bool take_fields(const char **p, const char *end, uint64_t *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (*p >= end || **p != ' ')
			return false;
		(*p)++;
		if (!take_u64(p, end, &f[i]))
			return false;
	}
	if (*p >= end || **p != '\n')
		return false;
	(*p)++;
	return true;
}

int order_record_parse(const char *text, size_t len, struct order_record *r)
{
	const char *p = text, *end = text + len, *nl;
	uint64_t f[5];

	memset(r, 0, sizeof(*r));
	if (len > 7 && !memcmp(p, "running", 7)) {
		p += 7;
		if (!take_fields(&p, end, f, 4) || p != end || f[0] < 1 || f[0] > INT32_MAX || f[1] < 1 ||
		    f[1] > INT32_MAX)
			return -EINVAL;
		r->veid = (unsigned)f[0];
		r->pid = (pid_t)f[1];
		r->pid_start = f[2];
		r->at_ms = f[3];
		return 0;
	}
	if (len < 4 || memcmp(p, "done", 4))
		return -EINVAL;
	p += 4;
	/* EXIT is 0..255 (a command's status, or vzctl's codes). */
	if (!take_fields(&p, end, f, 5) || f[0] < 1 || f[0] > INT32_MAX || f[1] > 255)
		return -EINVAL;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl || nl + 1 != end || (size_t)(nl - p) >= sizeof(r->error) || memchr(p, '\0', (size_t)(nl - p)))
		return -EINVAL;
	r->done = true;
	r->veid = (unsigned)f[0];
	r->exit_code = (int)f[1];
	r->elapsed_ms = f[2];
	r->downtime_ms = f[3];
	r->at_ms = f[4];
	memcpy(r->error, p, (size_t)(nl - p));
	r->error[nl - p] = '\0';
	/* A failure says why; a success has nothing to say. */
	if ((r->exit_code != 0) != (r->error[0] != '\0'))
		return -EINVAL;
	return 0;
}

int order_record_format(const struct order_record *r, char *buf, size_t len)
{
	int n;

	if (r->done) {
		if (strchr(r->error, '\n'))
			return -EINVAL;
		n = snprintf(buf, len, "done %u %d %" PRIu64 " %" PRIu64 " %" PRIu64 "\n%s\n", r->veid, r->exit_code,
			     r->elapsed_ms, r->downtime_ms, r->at_ms, r->error);
	} else {
		n = snprintf(buf, len, "running %u %d %llu %" PRIu64 "\n", r->veid, (int)r->pid, r->pid_start,
			     r->at_ms);
	}
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int order_epoch_parse(const char *text, size_t len, uint64_t *epoch)
{
	const char *p = text, *end = text + len;

	if (len && end[-1] == '\n')
		end--;
	if (!take_u64(&p, end, epoch) || p != end || *epoch == 0)
		return -EINVAL;
	return 0;
}
