/* MEMHASH, --verify-memory's message, read by the destination: pure
 * functions (no I/O: unit-tested and fuzzed, the source is a peer). The
 * masks it opens with, and the verdict on the source's digests and the
 * destination's own: the same text, line for line, lets the move go on to
 * the go; anything else refuses it, naming the first mapping that differs.
 * A verification that compared nothing verified nothing: it refuses too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate_int.h"

int mig_memhash_masks(const char *text, struct vz_mem_mask **out, size_t *nout, const char **rest, struct vz_err *err)
{
	struct vz_mem_mask *mask = NULL;
	size_t n = 0;

	while (!strncmp(text, "mask ", 5)) {
		struct vz_mem_mask mk, *nm;
		unsigned long long addr;

		if (sscanf(text, "mask %d %llx %u", &mk.vpid, &addr, &mk.len) != 3 ||
		    !(nm = realloc(mask, (n + 1) * sizeof(*mask)))) {
			free(mask);
			return vz_error_msg(err, EPROTO, "Malformed MEMHASH");
		}
		mk.addr = addr;
		mask = nm;
		mask[n++] = mk;
		text = strchr(text, '\n');
		text = text ? text + 1 : "";
	}
	*out = mask;
	*nout = n;
	*rest = text;
	return 0;
}

/* One digest line: "vpid start-end sha256". */
struct dline {
	const char *p; /* NULL: past the last line */
	size_t len;    /* without the newline */
	size_t klen;   /* "vpid start-end", without the space after it */
};

static struct dline dline_at(const char *p)
{
	struct dline l = { .p = *p ? p : NULL };
	const char *sp;

	if (!l.p)
		return l;
	l.len = strcspn(p, "\n");
	sp = memchr(p, ' ', l.len);
	sp = sp ? memchr(sp + 1, ' ', l.len - (size_t)(sp + 1 - p)) : NULL;
	l.klen = sp ? (size_t)(sp - p) : l.len;
	return l;
}

static const char *dline_next(const struct dline *l)
{
	return l->p[l->len] ? l->p + l->len + 1 : l->p + l->len;
}

static size_t count_lines(const char *p)
{
	size_t n = 0;

	for (struct dline l = dline_at(p); l.p; l = dline_at(dline_next(&l)))
		n++;
	return n;
}

/* The order vz_mem_digest sorts its lines in: the vpid as a number, then
 * the text. */
static int dline_cmp_key(const struct dline *a, const struct dline *b)
{
	long va = strtol(a->p, NULL, 10), vb = strtol(b->p, NULL, 10);
	int c;

	if (va != vb)
		return va < vb ? -1 : 1;
	c = memcmp(a->p, b->p, a->klen < b->klen ? a->klen : b->klen);
	return c ? c : (a->klen > b->klen) - (a->klen < b->klen);
}

static int cap_len(size_t len, int max)
{
	return len < (size_t)max ? (int)len : max;
}

/* "mapping START-END of pid VPID" of a line (each part cut short: the
 * source's lines are a peer's bytes). */
static void dline_name(const struct dline *l, char *buf, size_t len)
{
	const char *sp = memchr(l->p, ' ', l->klen);

	if (sp)
		snprintf(buf, len, "mapping %.*s of pid %.*s", cap_len(l->klen - (size_t)(sp + 1 - l->p), 80), sp + 1,
			 cap_len((size_t)(sp - l->p), 16), l->p);
	else
		snprintf(buf, len, "mapping \"%.*s\"", cap_len(l->klen, 80), l->p);
}

int mig_memhash_verdict(const char *src, const char *dst, size_t *ranges, struct vz_err *err)
{
	size_t ns = count_lines(src), nd = count_lines(dst);
	struct dline a = dline_at(src), b = dline_at(dst);
	char name[160], counts[64] = "";
	const char *where;

	*ranges = 0;
	while (a.p && b.p && a.len == b.len && !memcmp(a.p, b.p, a.len)) {
		(*ranges)++;
		a = dline_at(dline_next(&a));
		b = dline_at(dline_next(&b));
	}
	if (!a.p && !b.p) {
		if (*ranges == 0)
			return vz_error_msg(err, EIO,
					    "Memory not verified: neither host found a writable private mapping "
					    "in the VE to compare");
		return 0;
	}
	if (ns != nd)
		snprintf(counts, sizeof(counts), " (%zu mappings on the source, %zu here)", ns, nd);
	if (a.p && b.p && a.klen == b.klen && !memcmp(a.p, b.p, a.klen)) {
		dline_name(&a, name, sizeof(name));
		where = "differs";
	} else if (a.p && (!b.p || dline_cmp_key(&a, &b) < 0)) {
		dline_name(&a, name, sizeof(name));
		where = "is missing here";
	} else {
		dline_name(&b, name, sizeof(name));
		where = "is not in the source's";
	}
	return vz_error_msg(err, EIO, "Restored memory differs from the source's: %s %s%s", name, where, counts);
}
