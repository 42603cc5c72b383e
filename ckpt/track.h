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
 * Pages are read with pread() on /proc/PID/mem while the VE runs. What the
 * tracker cannot vouch for counts as written: a process or a mapping seen
 * for the first time, a range that could not be registered, a mapping
 * replaced behind our back. Only private anonymous memory is tracked: it
 * is what CRIU's lazy restore asks a page server for; everything else
 * travels in CRIU's images. */
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
	uint64_t pages;      /* pages emitted */
	uint64_t unvouched;  /* of which sent because they could not be tracked */
	unsigned procs, new_procs, untracked_procs;
};

struct vz_track;

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



/* The pid of host process pid inside its VE (innermost pid namespace);
 * a negative errno when it is gone. */
int vz_proc_vpid(pid_t pid);

/* Bytes a digest leaves out: each thread's rseq area, where the kernel
 * writes the CPU the thread runs on (which differs between hosts). */
struct vz_mem_mask {
	int vpid;
	uint64_t addr;
	uint32_t len;
};

/* Soft-dirty back-end, tests: read the page table bits from
 * dir/PID.pagemap instead of /proc/PID/pagemap, so that its logic runs
 * on kernels that have no soft-dirty bits (this machine's). */
void vz_track_pagemap_from(struct vz_track *t, const char *dir);

/* The rseq areas of every thread of pids[n] (each thread is stopped for
 * an instant with ptrace). *out is malloc'd; so is *seen, when asked for:
 * the threads read, sorted. */
int vz_rseq_areas(const pid_t *pids, size_t n, struct vz_mem_mask **out, size_t *nout, pid_t **seen,
		  size_t *nseen, struct vz_err *err);

/* Whether every thread of pids[n] is in seen[nseen] (sorted): after a
 * freeze, that no thread started after vz_rseq_areas read them. */
bool vz_threads_seen(const pid_t *pids, size_t n, const pid_t *seen, size_t nseen);

/* Digests of the processes' writable private memory, one line per mapping
 * ("vpid start-end sha256"), sorted, with the masked bytes as zeros: the
 * same text on both hosts means the memory moved byte for byte. *text is
 * malloc'd. */
int vz_mem_digest(const pid_t *pids, size_t n, const struct vz_mem_mask *mask, size_t nmask, char **text,
		  size_t *len, struct vz_err *err);
#endif
