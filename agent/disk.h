/* A VE's disk: first-level quota through a disk image of its own.
 *
 * Layout "ploop" (as Virtuozzo's): VE_PRIVATE/root.hdd is a sparse image
 * with a btrfs file system, loop-mounted on VE_ROOT; --diskspace is its
 * size, grown and shrunk online (btrfs resizes a mounted file system both
 * ways; the kernel refuses sizes under 256 MiB). Layout "simfs": the
 * private area is a plain directory bind-mounted on VE_ROOT, with no
 * first-level quota. */
#ifndef VZ_DISK_H
#define VZ_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

struct ve;

#define VZ_DISK_MIN   (256ULL << 20)
#define VZ_DISK_IMAGE "root.hdd"

/* Does the VE use an image? (VE_LAYOUT="ploop" in its config) */
bool disk_is_image(const struct ve *ve);
/* Make the private area: an image of `bytes` with a file system on it
 * (layout ploop), or a directory. */
int disk_create(struct ve *ve, bool image, uint64_t bytes, struct vz_err *err);
/* Mount the VE's root (loop-mount the image, or bind the directory). */
int disk_mount(struct ve *ve, struct vz_err *err);
/* Resize the image of a mounted VE to bytes. Shrinking below what the
 * VE holds fails (VZ_EXIT_NOSPACE) and changes nothing. */
int disk_resize(struct ve *ve, uint64_t bytes, struct vz_err *err);
/* Size the config asks for (DISKSPACE hard limit, 1 KiB blocks). */
uint64_t disk_conf_bytes(const struct ve *ve);
/* Check --diskspace / --diskinodes / --quotaugidlimit and store them. */
int disk_set_option(struct ve *ve, const char *opt, const char *value, struct vz_err *err);
bool disk_is_option(const char *opt);

#endif
