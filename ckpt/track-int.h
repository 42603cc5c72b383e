/* Inside the tracker (track.c and its back-ends, track-uffd.c and
 * track-softdirty.c): the processes it knows, a round's context, and the
 * table of functions each back-end fills, as CRIU's struct page_xfer. */
#ifndef VZ_CKPT_TRACK_INT_H
#define VZ_CKPT_TRACK_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "track.h"
#include "uffd.h"

#define PAGE	      4096ull
#define CHUNK_PAGES   256  /* read and emit at most 1 MiB at a time */
#define VEC_LEN	      4096 /* regions per PAGEMAP_SCAN call */
#define PM_SOFT_DIRTY (1ull << 55)
#define PM_PRESENT    (1ull << 63)
#define PM_SWAP	      (1ull << 62)

struct range {
	uint64_t start, end;
};

struct tproc {
	pid_t pid;
	pid_t task; /* whose /proc files are read: pid, or a live thread of a zombie leader */
	int vpid;
	unsigned long long starttime;
	int uffd;	   /* -1: untracked (soft-dirty: unused) */
	bool seen, failed; /* failed: could not be given a userfaultfd */
	pid_t shares_with; /* shares its mm with this tracked process: not given a uffd of its own */
	bool sd_clean;	   /* soft-dirty: bits cleared at least once */
	struct range *sd;  /* soft-dirty: ranges to read once the VE runs */
	size_t nsd, capsd;
	bool sd_unvouched;
	struct range *reg; /* registered mappings */
	size_t nreg, capreg;
};

struct ctx;

/* A back-end, as CRIU's struct page_xfer: NULL members do nothing. */
struct track_ops {
	const char *name;
	bool can_peek; /* whether a peek can tell what a round would send */
	/* Before and after the processes' scan (soft-dirty: hold the VE,
	 * then clear the bits, let it go and read what was dirty); round_end
	 * gets the scan's result and returns the round's. */
	int (*round_begin)(struct vz_track *t, struct vz_err *err);
	int (*round_end)(struct vz_track *t, struct ctx *c, int ret, struct vz_err *err);
	/* Ready a process for its scan (uffd-wp: its userfaultfd); false:
	 * it is not tracked this round. */
	bool (*proc_ready)(struct vz_track *t, struct tproc *p);
	/* Its pagemap, opened. */
	int (*open_pagemap)(struct vz_track *t, const struct tproc *p);
	/* Emit (or note) what counts in its mappings v[nv]. */
	int (*scan)(struct ctx *c, int pm, const struct range *v, size_t nv, bool peek, struct vz_err *err);
};

struct vz_track {
	const struct track_ops *ops;
	struct vz_track_opts o;
	char pm_dir[256];
	bool last; /* the VE is frozen: nothing to protect again */
	struct tproc *p;
	size_t np, capp;
	uint8_t *buf;
	struct page_region *vec;
	uint64_t *pm; /* soft-dirty: pagemap entries */
};

struct ctx {
	struct vz_track *t;
	struct tproc *p;
	int mem;
	vz_track_emit_fn emit;
	void *arg;
	struct vz_track_stats *st;
	bool unvouched;
	bool collect;	/* soft-dirty: note ranges, read them later */
	uint64_t count; /* peek */
};

extern const struct track_ops vz_track_none_ops, vz_track_uffd_ops, vz_track_sd_ops;

/* track.c */
struct tproc *trk_proc_find(struct vz_track *t, pid_t pid);
/* Close its userfaultfd and forget what was registered. */
void trk_proc_forget_uffd(struct tproc *p);
/* /proc/TASK/pagemap of its memory task, opened; a negative errno. */
int trk_proc_pagemap(struct vz_track *t, const struct tproc *p);
/* Read pages [s, e) and pass them on (or count them: a peek; or note
 * them: soft-dirty). */
int trk_emit_range(struct ctx *c, uint64_t s, uint64_t e, struct vz_err *err);

/* track-uffd.c: the scan of uffd-wp and none. */
int trk_uffd_scan(struct ctx *c, int pm, const struct range *v, size_t nv, bool peek, struct vz_err *err);

#endif
