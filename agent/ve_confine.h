/* Confinement of a VE's processes, in the manner of LXC's and Docker's
 * defaults: the capabilities none of them may hold, the system calls none
 * of them may make, and the paths of /proc and /sys they may neither read
 * nor write. The namespaces keep a VE from seeing the host; these keep its
 * root from reaching what the namespaces do not cover: the host's kernel,
 * clock, keyrings, hardware and kernel memory. */
#ifndef VZ_VE_CONFINE_H
#define VZ_VE_CONFINE_H

#include <stdint.h>

#include "err.h"

/* The capabilities no process of a VE may hold, as a mask of 1 << CAP_*:
 * the table in ve_confine.c, whose reasons README.md repeats. Pure. */
uint64_t ve_confine_dropped_caps(void);

/* In a process that is about to run the VE's code (its init before
 * execve, the process of `vzctl exec`, `vzctl enter` or a helper), after
 * it joined or made the VE's namespaces: drop the capabilities of
 * ve_confine_dropped_caps() from its bounding, ambient, inheritable,
 * permitted and effective sets, then install the VE's seccomp filter
 * (native x86_64 and the i386 and x32 ABIs; default allow). It does not
 * set no_new_privs, so that setuid programs in the VE (su, sudo, ping)
 * work; loading a filter without it needs CAP_SYS_ADMIN in the process's
 * user namespace, and dropping from the bounding set CAP_SETPCAP: the
 * caller holds both. Both survive execve and fork, and CRIU dumps and
 * restores them. 0 or a negative errno; on failure the process may be
 * half confined and must not run the VE's code. */
int ve_confine_self(struct vz_err *err);

/* In the VE's mount namespace, after /proc, /sys and /dev are mounted
 * under root and before pivot_root: mask (the VE's own root/dev/null bound
 * over a file, an empty read-only tmpfs over a directory) and make
 * read-only the paths runc and LXC do, keeping /proc/sys/net writable as
 * LXC does. Paths this kernel does not have are skipped. Every mount is
 * made inside the VE's tree from its own file systems, so CRIU dumps and
 * restores them with the VE. 0 or a negative errno. */
int ve_mask_paths(const char *root, struct vz_err *err);

#endif
