/* The VE's root file system setup, run by its future init after clone(). */
#ifndef VZ_VE_ROOTFS_H
#define VZ_VE_ROOTFS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

/* In a fresh mount namespace, made private: the VE's root becomes the
 * working directory, a bind of root on itself, or, when idmapped >= 0,
 * that detached idmapped tree (ve_idmapped_tree) attached on root. Run
 * before the task takes the VE's ids: the path may cross directories only
 * the host's root may enter. */
int ve_rootfs_enter(const char *root, int idmapped, struct vz_err *err);

/* Then, as the VE's root: mount /proc, /sys (read-only), /dev (tmpfs with
 * null, zero, full, random, urandom, tty, devpts, shm, mqueue; the nodes
 * bound from the host's in a user namespace) in the working directory,
 * mask and make read-only what of them reaches the host (ve_mask_paths),
 * pivot_root into it and detach the host's tree. */
int ve_rootfs_setup(bool userns, struct vz_err *err);

/* Append to out (max entries, NULL-terminated unless full) the CRIU
 * externals of the device nodes a VE in a user namespace has bound from
 * the host: those of a dump, or with restore those of a restore. */
int ve_dev_externals(bool restore, const char **out, size_t max);

#endif
