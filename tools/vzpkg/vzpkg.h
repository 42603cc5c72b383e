/* vzpkg: template caches. One file per subcommand, builders apart. */
#ifndef VZPKG_H
#define VZPKG_H

#include <stddef.h>

#include "config.h"
#include "err.h"

/* Check a template name: letters, digits, '.', '_', '-'; no "..". */
int vzpkg_check_name(const char *name, struct vz_err *err);
/* $VZ_ROOT/vz/template/NAME, seeded from the shipped metadata when it does
 * not exist yet; -ENOENT (exit 91) when there is none anywhere. */
int vzpkg_meta_dir(const char *name, char *buf, size_t len, struct vz_err *err);
/* Set when SIGINT or SIGTERM arrived: builders stop at the next step. */
extern volatile int vzpkg_interrupted;

/* Builders fill an empty directory with a root file system. */
int vzpkg_build_busybox(const char *tree, const struct vz_conf *meta, struct vz_err *err);
int vzpkg_build_debootstrap(const char *tree, const char *meta_dir, const struct vz_conf *meta, struct vz_err *err);

int cmd_create(int argc, char **argv, struct vz_err *err);
int cmd_update(int argc, char **argv, struct vz_err *err);
int cmd_list(int argc, char **argv, struct vz_err *err);
int cmd_remove(int argc, char **argv, struct vz_err *err);

#endif
