/* What this host can do for checkpoints and migrations, found by trying
 * each thing rather than by reading version numbers: CRIU's own check and
 * feature probes, and the kernel's userfaultfd write-protect and
 * PAGEMAP_SCAN exercised on a page of our own. */
#ifndef VZ_CKPT_H
#define VZ_CKPT_H

#include <stdbool.h>
#include <stddef.h>

#include "criu.h"

enum vz_feat_state { VZ_FEAT_YES, VZ_FEAT_NO, VZ_FEAT_WARN };

struct vz_feat {
	const char *name; /* what a user reads: "Established TCP connections" */
	enum vz_feat_state state;
	bool required;	  /* without it nothing can be checkpointed */
	char detail[256]; /* why not, or what was found */
};

#define VZ_FEAT_MAX 16

struct vz_ckpt_report {
	struct vz_criu_version criu;
	struct vz_feat feat[VZ_FEAT_MAX];
	size_t n;
	bool can_checkpoint; /* every required item is there */
	/* Dirty-memory tracking for pre-copy: "uffd-wp", "soft-dirty" or
	 * "none" (stop-and-copy). */
	const char *tracker;
};

/* Probe everything; never fails (what cannot be probed is reported).
 * CRIU's log of its check goes to work_fd/check.log. */
void vz_ckpt_probe(const struct vz_criu *c, int work_fd, const char *freezer_path, struct vz_ckpt_report *r);

/* Kernel's userfaultfd write-protect in async mode with PAGEMAP_SCAN:
 * 0 when a write to a protected page is seen by a scan, else a negative
 * errno with the reason in err. */
int vz_uffd_wp_probe(struct vz_err *err);

#endif
