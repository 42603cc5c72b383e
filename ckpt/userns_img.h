/* The user namespace in a set of CRIU images: whether there is one, the
 * host id its root maps to, and the rewrite of its maps to another range
 * (a VE restored on a host that gave it other ids). */
#ifndef VZ_USERNS_IMG_H
#define VZ_USERNS_IMG_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

/* 1 and *root_id (the host id of its uid 0) when the images in dir_fd hold
 * a user namespace, 0 when they hold none. */
int vz_userns_img_root(int dir_fd, uint32_t *root_id, struct vz_err *err);

/* Move every extent of its uid and gid maps that lies in [from, from +
 * count) to the same place in [to, to + count); other extents are refused.
 * The image is replaced atomically. */
int vz_userns_img_remap(int dir_fd, uint32_t from, uint32_t to, uint32_t count, struct vz_err *err);

/* Let host gid id read the image directory and its files (their group,
 * and g+r; the owner stays the host's root): the restored tasks open some
 * images themselves, first as the host's root in a new user namespace
 * (as owner), later as the VE's root (as group), where the host's root's
 * capabilities no longer reach. */
int vz_userns_img_own(int dir_fd, uint32_t id, struct vz_err *err);

#endif
