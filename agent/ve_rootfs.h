/* The VE's root file system setup, run by its future init after clone(). */
#ifndef VZ_VE_ROOTFS_H
#define VZ_VE_ROOTFS_H

#include "err.h"

/* In a fresh mount namespace: mount /proc, /sys (read-only), /dev (tmpfs
 * with null, zero, full, random, urandom, tty, devpts, shm, mqueue) under
 * root, mask and make read-only what of them reaches the host
 * (ve_mask_paths), then pivot_root into it and detach the host's tree. */
int ve_rootfs_setup(const char *root, struct vz_err *err);

#endif
