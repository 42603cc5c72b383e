/* libFuzzer target: MEMHASH, the digests a migration's source sends for
 * --verify-memory (agent/migrate/memhash.c): the masks it opens with, and
 * the verdict on two digest texts, the first byte picking where the input
 * is cut in two. Neither may crash or read out of bounds; a text is the
 * same as itself exactly when it holds a line; two texts that differ
 * (other than by a last newline) never go. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_int.h"

static char *text_of(const uint8_t *data, size_t size)
{
	char *t = malloc(size + 1);

	if (!t)
		return NULL;
	memcpy(t, data, size);
	t[size] = '\0';
	return t;
}

/* The text without one last newline, for comparing as lines. */
static size_t body_len(const char *t)
{
	size_t n = strlen(t);

	return n && t[n - 1] == '\n' ? n - 1 : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vz_mem_mask *mask = NULL;
	struct vz_err err = { 0 };
	const char *rest = NULL;
	size_t nmask = 0, ranges = 0, cut;
	char *a, *b;
	int ret;

	if (size < 1)
		return 0;
	cut = 1 + data[0] % size;
	a = text_of(data + 1, cut - 1);
	b = text_of(data + cut, size - cut);
	if (!a || !b)
		goto out;
	if (mig_memhash_masks(a, &mask, &nmask, &rest, &err) == 0 && (!rest || (nmask && !mask)))
		__builtin_trap();
	free(mask);
	ret = mig_memhash_verdict(a, a, &ranges, &err);
	if ((ret == 0) != (*a != '\0') || (ret == 0 && ranges == 0) || (ret < 0 && ret != -EIO))
		__builtin_trap();
	ret = mig_memhash_verdict(a, b, &ranges, &err);
	if (ret == 0 && (body_len(a) != body_len(b) || memcmp(a, b, body_len(a))))
		__builtin_trap();
	if (ret < 0 && (ret != -EIO || strlen(err.msg) >= sizeof(err.msg) || !err.msg[0]))
		__builtin_trap();
out:
	free(a);
	free(b);
	return 0;
}
