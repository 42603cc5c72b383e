/* A VE's private area as a stream of path, metadata and zstd-compressed
 * contents (migrate.proto FILE, DATA, FILE_END, DELETE, PASS_END).
 *
 * The first pass sends everything (holes and zero blocks skipped). It
 * remembers each entry's inode, size, times and a hash of every 1 MiB
 * block; a later pass sends only entries whose metadata changed, and of
 * those regular files only the blocks whose hash changed (a loop-mounted
 * disk image keeps its size while its contents move), and deletes what
 * is gone. The receiver trusts no path: each is relative, free of "..",
 * and resolved beneath the private area without following symlinks. */
#ifndef VZ_MIG_FILES_H
#define VZ_MIG_FILES_H

#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "err.h"

struct mig_fstate; /* what the last pass sent */

struct mig_pass_stats {
	uint64_t files, raw_bytes, wire_bytes, deleted;
};

/* Send one pass of root (a directory) over c. *st is NULL before the
 * first pass and holds its memory after; progress(arg, raw bytes so far)
 * is called now and then. */
int mig_files_send(struct vz_conn *c, const char *root, struct mig_fstate **st, struct mig_pass_stats *ps,
		   void (*progress)(void *arg, uint64_t raw), void *arg, struct vz_err *err);
void mig_fstate_free(struct mig_fstate *st);

/* Receiver: apply one message of a pass (first is FILE, DATA, FILE_END
 * or DELETE) beneath root. */
struct mig_recv;
struct mig_recv *mig_recv_new(const char *root, struct vz_err *err);
void mig_recv_free(struct mig_recv *r);
struct Vz__Migrate__Msg;
int mig_recv_msg(struct mig_recv *r, const struct Vz__Migrate__Msg *m, struct vz_err *err);
uint64_t mig_recv_bytes(const struct mig_recv *r);
/* A pass ended: the next one's data is a new compressed stream. */
void mig_recv_pass_end(struct mig_recv *r);

/* Pure: is p a safe relative path ("a/b", no "..", no "//", no leading
 * "/")? Fuzzed and unit-tested. */
bool mig_path_ok(const char *p);

#endif
