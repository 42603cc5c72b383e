/* OpenVZ-style configuration files: KEY="value" lines, comments with '#'.
 * Order, comments and unknown keys survive a load/set/save round trip. */
#ifndef VZ_CONFIG_H
#define VZ_CONFIG_H

#include <stddef.h>

#include "err.h"

struct vz_conf_line {
	char *key;   /* NULL for a comment or blank line */
	char *value; /* unquoted value, or the raw line when key is NULL */
};

struct vz_conf {
	struct vz_conf_line *lines;
	size_t n, cap;
};

/* Parse text into conf (appending). Malformed lines are errors naming the
 * line number. Pure function of its input: fuzzed and unit-tested. */
int vz_conf_parse(struct vz_conf *conf, const char *text, size_t len, struct vz_err *err);
/* Load a file; -ENOENT (with a message) when it does not exist. */
int vz_conf_load(struct vz_conf *conf, const char *path, struct vz_err *err);
/* Value of key or NULL. The pointer lives until the key is set again. */
const char *vz_conf_get(const struct vz_conf *conf, const char *key);
/* Set (or add at the end) key to value; value NULL removes the key. */
int vz_conf_set(struct vz_conf *conf, const char *key, const char *value, struct vz_err *err);
/* Write atomically (temporary file, fsync, rename), mode 0644. */
int vz_conf_save(const struct vz_conf *conf, const char *path, struct vz_err *err);
/* dst becomes a deep copy of src (dst must be empty). */
int vz_conf_copy(struct vz_conf *dst, const struct vz_conf *src, struct vz_err *err);
void vz_conf_free(struct vz_conf *conf);

static inline void vz_conf_freep(struct vz_conf *c)
{
	vz_conf_free(c);
}
#define _cleanup_conf_ __attribute__((cleanup(vz_conf_freep)))

#endif
