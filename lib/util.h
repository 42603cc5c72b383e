/* Small helpers several components need: files, directories, processes,
 * number and size parsing. All return 0 or a negative errno unless noted. */
#ifndef VZ_UTIL_H
#define VZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"

/* Read a whole file into a NUL-terminated malloc'd buffer of at most max
 * bytes (-EFBIG beyond). *len excludes the NUL. */
int vz_read_file(const char *path, char **buf, size_t *len, size_t max);
/* Write buf to path (O_TRUNC, or O_APPEND when append). No message. */
int vz_write_file(const char *path, const char *buf, size_t len, int append);
/* Write buf to path as a whole: readers see the old file or the new one,
 * never a part (a temporary file renamed over it). With durable, the file
 * and its directory are on disk before it returns. No message. */
int vz_write_file_replace(const char *path, const void *buf, size_t len, mode_t mode, bool durable);
/* Create path holding buf, whole, unless it exists (-EEXIST, and the file
 * there is left as it is): the file appears complete or not at all, so a
 * reader that finds it never reads it half-written, as it could one made
 * with O_CREAT | O_EXCL. On disk, with its directory, when it returns 0;
 * removed again when that cannot be made sure of. */
int vz_write_file_excl(const char *path, const void *buf, size_t len, mode_t mode);
/* Write all of buf to fd (retrying short writes and EINTR). No message. */
int vz_write_all(int fd, const void *buf, size_t len);
/* Room in the array *p (capacity *cap elements of size bytes) for element
 * index n: the capacity doubles, from `first`. On -ENOMEM *p and *cap stay
 * as they were. */
int vz_grow(void **p, size_t *cap, size_t n, size_t size, size_t first);
/* Write a string to a sysfs/cgroup-like file. No message. */
int vz_write_str(const char *path, const char *s);
/* mkdir -p with mode for created components. */
int vz_mkdir_p(const char *path, mode_t mode);
/* rm -rf that stays on one file system and never follows symlinks. */
int vz_rm_rf(const char *path);
/* 1 if path exists (lstat), 0 if not. */
int vz_exists(const char *path);
/* du: the bytes the tree at path occupies (blocks of every entry, symlinks
 * not followed). Entries that cannot be read count 0. 0 or a negative errno. */
int vz_du(const char *path, uint64_t *bytes);

/* fork + execvp argv; stdin from /dev/null; stdout and stderr captured into
 * out (malloc'd, may be NULL to discard, capped at 64 KiB). Returns the
 * exit status (0..255), 128+signal, or a negative errno if it could not run. */
int vz_run(char *const argv[], char **out);
/* Like vz_run, but a non-zero status becomes an error naming the command
 * and the last line of its output. */
int vz_run_checked(char *const argv[], struct vz_err *err);

/* Strictly parse a decimal unsigned number in [min, max]. */
int vz_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out);
/* A VEID: decimal 1..2147483647 (0 is the host in OpenVZ). */
int vz_parse_veid(const char *s, unsigned *veid);
/* Sizes as OpenVZ takes them: a number with an optional K, M, G, T suffix
 * (bytes by default, or units of `unit` bytes for plain numbers, as for
 * pages), or "unlimited" (UINT64_MAX). */
int vz_parse_size(const char *s, uint64_t unit, uint64_t *bytes);
/* "256M" style rendering of a byte count into buf. */
const char *vz_fmt_size(uint64_t bytes, char *buf, size_t len);

/* Monotonic clock in nanoseconds. */
uint64_t vz_now_ns(void);

/* s as a JSON string, quotes and escapes included, on stdout. */
void vz_json_str(const char *s);
/* The len bytes at s (NULs too) as a JSON string, on f. */
void vz_json_fstr(FILE *f, const char *s, size_t len);

/* Last non-empty line of text, copied into buf. */
const char *vz_last_line(const char *text, char *buf, size_t len);

#endif
