/* A CRIU image directory as one byte stream and back: records of file
 * name, mode, size and contents, compressed with streaming zstd. A dump
 * file holds one such stream after its header; a migration sends one over
 * its connection.
 *
 * Decompressed stream:
 *   "VZIMG\0\0\1"                          magic and version
 *   { u8 1, u16 namelen, name, u32 mode, u64 size, size bytes }...
 *   u8 2, u32 nfiles, u64 total bytes       end
 * (integers big-endian). Names are single file names of [A-Za-z0-9._-];
 * only regular files travel. The reader trusts nothing: every length is
 * checked against what is left of the caller's cap before it is used. */
#ifndef VZ_CKPT_IMGSTREAM_H
#define VZ_CKPT_IMGSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct vz_img_stats {
	uint32_t nfiles;
	uint64_t raw_bytes;  /* file contents, uncompressed */
	uint64_t wire_bytes; /* compressed stream */
};

/* Receives compressed bytes; returns 0 or a negative errno with err set. */
typedef int (*vz_img_sink)(void *arg, const void *buf, size_t len, struct vz_err *err);

/* Pack every regular file of dir_fd (sorted by name) into sink. */
int vz_img_pack(int dir_fd, int zstd_level, vz_img_sink sink, void *arg, struct vz_img_stats *st, struct vz_err *err);

/* Record parser over decompressed bytes (pure: no I/O of its own). */
struct vz_img_parser;
/* Callbacks of the parser: a file begins (name is NUL-terminated), bytes
 * of it, it ends. Each returns 0 or a negative errno with err set. */
struct vz_img_ops {
	int (*begin)(void *arg, const char *name, uint32_t mode, uint64_t size, struct vz_err *err);
	int (*data)(void *arg, const void *buf, size_t len, struct vz_err *err);
	int (*end)(void *arg, struct vz_err *err);
};
struct vz_img_parser *vz_img_parser_new(uint64_t max_bytes, const struct vz_img_ops *ops, void *arg);
void vz_img_parser_free(struct vz_img_parser *p);
/* Feed decompressed bytes; -EBADMSG (with a message) on a malformed
 * stream, or what a callback returned. */
int vz_img_parser_feed(struct vz_img_parser *p, const uint8_t *buf, size_t len, struct vz_err *err);
/* The end record has been read and matched the files seen. */
bool vz_img_parser_done(const struct vz_img_parser *p);

/* Streaming unpacker: compressed bytes in, files created in dir_fd (which
 * should be empty; an existing name is an error). At most max_bytes of
 * contents are accepted. */
struct vz_img_unpacker;
struct vz_img_unpacker *vz_img_unpacker_new(int dir_fd, uint64_t max_bytes, struct vz_err *err);
int vz_img_unpacker_feed(struct vz_img_unpacker *u, const void *buf, size_t len, struct vz_err *err);
/* The stream ended: it must have been complete, with nothing after it. */
int vz_img_unpacker_finish(struct vz_img_unpacker *u, struct vz_img_stats *st, struct vz_err *err);
void vz_img_unpacker_free(struct vz_img_unpacker *u);

#endif
