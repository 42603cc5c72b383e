/* Which pages of a VE's processes were written since the last look: the
 * dirty-page tracker behind iterative pre-copy. Three back-ends, chosen at
 * run time by what the kernel can do:
 *
 *   uffd-wp     userfaultfd write-protect in async mode with PAGEMAP_SCAN
 *               (Linux 6.7+): each process is made to create a userfaultfd
 *               (a system call injected with ptrace), which we take with
 *               pidfd_getfd() and register over its private anonymous
 *               memory; a scan reports written pages and protects them
 *               again in one call.
 *   soft-dirty  the kernel's soft-dirty bits (/proc/PID/clear_refs and
 *               pagemap bit 55), with the VE held still while a round's
 *               bits are read and cleared.
 *   none        nothing can be tracked: stop-and-copy.
 *
 * Each back-end is a table of functions (struct track_ops in track.c).
 *
 * Pages are read with pread() on /proc/PID/mem while the VE runs. What the
 * tracker cannot vouch for counts as written: a process or a mapping seen
 * for the first time, a range that could not be registered, a mapping
 * replaced behind our back. Only private anonymous memory is tracked: it
 * is what CRIU's lazy restore asks a page server for; everything else
 * travels in CRIU's images.
 *
 * Processes that cannot be stopped, or share their memory with another:
 * the uffd-wp back-end injects a system call into each process, which
 * needs a ptrace stop. A process in vfork() (waiting for its child, in
 * state D) cannot make one; nor can one in an uninterruptible sleep. It
 * is not waited for (every wait is bounded, and a task in state D is not
 * even tried): it is untracked for the round, so all its pages are sent,
 * and tried again the next round. A process that shares its memory (its
 * mm) with one already tracked (a vfork parent and its child, CLONE_VM)
 * is not given a userfaultfd of its own (the first one covers the mm):
 * it too is sent whole each round, under its own pid; when the two part
 * (the child exec'd), the tracked one's userfaultfd is dropped and both
 * start over, sent whole once. A stopped process (SIGSTOP) is injected
 * and stays stopped; a zombie has no memory and is skipped (a zombie
 * leader whose threads live on is read through a live thread). So no
 * page is ever lost: what is not tracked is sent, in the frozen round
 * too. */
#ifndef VZ_CKPT_TRACK_H
#define VZ_CKPT_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

enum vz_track_kind { VZ_TRACK_NONE, VZ_TRACK_UFFD_WP, VZ_TRACK_SOFT_DIRTY };

const char *vz_track_name(enum vz_track_kind k);

/* The best back-end this kernel offers; why says what is missing for the
 * others ("soft-dirty: ...; uffd-wp: ..."). Probes on pages of our own. */
enum vz_track_kind vz_track_detect(char *why, size_t len);

/* 0 when the kernel keeps soft-dirty bits (a write sets bit 55 again after
 * clear_refs), else a negative errno and the reason. */
int vz_soft_dirty_probe(struct vz_err *err);

/* Stop and restart every process of the VE (the soft-dirty back-end holds
 * the VE still while it reads and clears the bits). */
typedef int (*vz_track_hold_fn)(void *arg, bool hold, struct vz_err *err);

/* Pages of one process (vpid: its pid inside the VE) at vaddr. */
typedef int (*vz_track_emit_fn)(void *arg, int vpid, uint64_t vaddr, const void *data, size_t npages,
				struct vz_err *err);

struct vz_track_stats {
	uint64_t pages;	    /* pages emitted */
	uint64_t unvouched; /* of which sent because they could not be tracked */
	unsigned procs, new_procs, untracked_procs;
};

struct vz_track;

struct vz_track_opts {
	enum vz_track_kind kind;
	/* soft-dirty: holds the VE still while a round's bits are read */
	vz_track_hold_fn hold;
	void *hold_arg;
	/* uffd-wp: how long a process may take to stop for the injection
	 * (0: VZ_PTRACE_STOP_TIMEOUT_MS, 2 s); one that cannot stop in
	 * time is left running as it was, and its memory counts as written */
	unsigned stop_timeout_ms;
	/* soft-dirty: read the page table bits from pagemap_dir/PID.pagemap
	 * instead of /proc/PID/pagemap (the unit tests, on kernels without
	 * soft-dirty bits); NULL in production */
	const char *pagemap_dir;
};

struct vz_track *vz_track_new_opts(const struct vz_track_opts *o, struct vz_err *err);
/* The same with the default bound and /proc's pagemaps. */
struct vz_track *vz_track_new(enum vz_track_kind k, vz_track_hold_fn hold, void *hold_arg, struct vz_err *err);
/* Ends tracking: the processes' memory is no longer registered. */
void vz_track_free(struct vz_track *t);

/* One round over the processes pids[n] (host pids, thread-group leaders):
 * every page written since the last round, or not vouched for, is read
 * and passed to emit, and is protected again before it is read. */
int vz_track_round(struct vz_track *t, const pid_t *pids, size_t n, vz_track_emit_fn emit, void *arg,
		   struct vz_track_stats *st, struct vz_err *err);

/* The next round is the last, with the VE frozen: it reads what was
 * written without protecting it again (cheaper). */
void vz_track_last(struct vz_track *t);

/* How many pages the next round would send now, changing nothing. */
int vz_track_peek(struct vz_track *t, const pid_t *pids, size_t n, uint64_t *pages, struct vz_err *err);

#endif
