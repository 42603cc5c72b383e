/* The host's sysctls the agent changes. There is one of each per kernel,
 * whatever VZ_ROOT an agent runs with, so what is shared about them lives
 * outside VZ_ROOT (VZ_HOST_RUN_DIR).
 *
 * - A floor raised once, for good: fs.pipe-max-size for CRIU's lazy pages
 *   (vz_sysctl_ensure_min).
 * - A value held only while someone needs it: vm.unprivileged_userfaultfd
 *   while a lazy restore of a VE in a user namespace runs. Holds overlap
 *   (migration workers are processes of their own, and several agents may
 *   share the kernel): the first hold records the value it found and sets
 *   the new one, the last release puts the recorded value back. The
 *   holders are counted by the kernel: each keeps a shared flock on
 *   LOCKDIR/sysctl-NAME.hold (NAME: the path's last component), so a
 *   holder that dies is no longer counted; LOCKDIR/sysctl-NAME.lck
 *   serialises holds and releases, and LOCKDIR/sysctl-NAME.orig keeps
 *   the value found while the new one is set. When the last holder died
 *   without its release, the next hold, or vz_sysctl_recover (at the
 *   agent's start), finds that file with nobody holding and puts the
 *   value back.
 *
 * Every function returns 0 or a negative errno with err filled. Paths are
 * parameters, so tests use plain files. */
#ifndef VZ_SYSCTL_H
#define VZ_SYSCTL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define VZ_SYSCTL_PIPE_MAX    "/proc/sys/fs/pipe-max-size"
#define VZ_SYSCTL_UNPRIV_UFFD "/proc/sys/vm/unprivileged_userfaultfd"
/* Not under VZ_ROOT: the kernel's sysctls are the same for every agent. */
#define VZ_HOST_RUN_DIR "/run/vz"

/* Raise the number in path to want when it is lower: *raised says
 * whether it was raised, *was what it was (either may be NULL). */
int vz_sysctl_ensure_min(const char *path, unsigned long want, unsigned long *was, bool *raised, struct vz_err *err);

struct vz_sysctl_hold {
	int fd; /* the shared flock on the .hold file; -1: not held */
	char path[PATH_MAX], lockdir[PATH_MAX];
	char value[32]; /* what is held */
	char orig[32];	/* what the first holder found, to be put back */
	bool first;	/* no other holder: this hold set the value */
	bool recovered; /* the last holder before had died holding it */
	uint64_t since_ns;
};

/* Set path to value (unless another holder already has) and count this
 * hold. h is filled whether or not it succeeds; a failed hold holds
 * nothing. Its descriptor is close-on-exec; a child forked without exec
 * during the hold shares it, and vz_sysctl_release ends it for both. */
int vz_sysctl_hold(const char *path, const char *value, const char *lockdir, struct vz_sysctl_hold *h,
		   struct vz_err *err);
/* End the hold (nothing when h holds nothing). The last holder puts the
 * recorded value back: *restored (may be NULL) says whether this release
 * did. On failure the hold has ended all the same. */
int vz_sysctl_release(struct vz_sysctl_hold *h, bool *restored, struct vz_err *err);
/* Nobody holds path but a value is recorded (the last holder died): put
 * it back. *restored says whether it did; orig (len bytes) gets the value
 * put back. */
int vz_sysctl_recover(const char *path, const char *lockdir, bool *restored, char *orig, size_t len,
		      struct vz_err *err);

#endif
