/* VE disks: btrfs images loop-mounted on the VE's root (layout "ploop"),
 * resized online, or plain directories (layout "simfs"). */
#define LOG_PREFIX "disk: "
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cleanup.h"
#include "disk.h"
#include "log.h"
#include "util.h"
#include "ve.h"

bool disk_is_image(const struct ve *ve)
{
	const char *l = vz_conf_get(&ve->conf, "VE_LAYOUT");

	return l && !strcmp(l, "ploop");
}

static void image_path(const struct ve *ve, char *buf, size_t len)
{
	snprintf(buf, len, "%s/" VZ_DISK_IMAGE, ve->private);
}

uint64_t disk_conf_bytes(const struct ve *ve)
{
	const char *v = vz_conf_get(&ve->conf, "DISKSPACE"), *colon;
	uint64_t kb;

	if (!v)
		return 0;
	colon = strchr(v, ':');
	if (vz_parse_size(colon ? colon + 1 : v, 1, &kb) < 0 || kb == UINT64_MAX)
		return 0;
	return kb * 1024;
}

bool disk_is_option(const char *opt)
{
	return !strcmp(opt, "diskspace") || !strcmp(opt, "diskinodes") || !strcmp(opt, "quotaugidlimit");
}

/* Can this kernel keep per-user quota at all? (a quota format driver) */
static bool kernel_has_quota_format(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/kallsyms", "re");
	char line[256];

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, " v2_read_file_info") || strstr(line, " v1_read_file_info"))
			return true;
	return false;
}

int disk_set_option(struct ve *ve, const char *opt, const char *value, struct vz_err *err)
{
	char out[64];
	uint64_t soft = 0, hard = 0;

	if (!strcmp(opt, "quotaugidlimit")) {
		if (!kernel_has_quota_format())
			return vz_error_exit_msg(
			    err, VZ_EXIT_BADVAL, EOPNOTSUPP,
			    "Second-level quota is not available: this kernel has no quota format "
			    "(CONFIG_QFMT_V2), and VE images use btrfs, which has no per-user quota");
		return vz_error_exit_msg(
		    err, VZ_EXIT_BADVAL, EOPNOTSUPP,
		    "Second-level quota is not available: VE images use btrfs, which has no per-user quota");
	}
	if (!strcmp(opt, "diskinodes"))
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EOPNOTSUPP,
					 "--diskinodes cannot be enforced: btrfs allocates inodes as it needs them");
	/* --diskspace [soft:]hard, in 1 KiB blocks or with a suffix. */
	{
		const char *colon = strchr(value, ':');
		char first[64];
		bool ok;

		if (colon) {
			snprintf(first, sizeof(first), "%.*s", (int)(colon - value), value);
			ok = (size_t)(colon - value) < sizeof(first) && vz_parse_size(first, 1024, &soft) == 0 &&
			     vz_parse_size(colon + 1, 1024, &hard) == 0;
		} else {
			ok = vz_parse_size(value, 1024, &hard) == 0;
			soft = hard;
		}
		if (!ok || hard == UINT64_MAX || soft > hard || hard < VZ_DISK_MIN)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL,
						 "Invalid value '%s' for --diskspace: [soft:]hard, at least 256M",
						 value);
	}
	if (vz_conf_get(&ve->conf, "VE_LAYOUT") && !disk_is_image(ve))
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL,
					 "VE %u keeps its files in a directory (VE_LAYOUT=simfs): --diskspace needs a "
					 "VE created with --diskspace",
					 ve->veid);
	snprintf(out, sizeof(out), "%" PRIu64 ":%" PRIu64, soft / 1024, hard / 1024);
	return vz_conf_set(&ve->conf, "DISKSPACE", out, err);
}

int disk_create(struct ve *ve, bool image, uint64_t bytes, struct vz_err *err)
{
	char img[PATH_MAX + 16];
	int ret, fd;

	ret = vz_mkdir_p(ve->private, 0700);
	if (ret < 0)
		return vz_error_exit(err, VZ_EXIT_CREATE, -ret, "Create %s", ve->private);
	if (!image)
		return 0;
	image_path(ve, img, sizeof(img));
	fd = open(img, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return vz_error_exit(err, VZ_EXIT_CREATE, errno, "Create %s", img);
	if (ftruncate(fd, (off_t)bytes) != 0) {
		int e = errno;

		close(fd);
		return vz_error_exit(err, VZ_EXIT_CREATE, e, "Size %s", img);
	}
	close(fd);
	char *argv[] = { "mkfs.btrfs", "-q", "-f", img, NULL };

	ret = vz_run_checked(argv, err);
	if (ret < 0) {
		err->exit_code = VZ_EXIT_CREATE;
		return ret;
	}
	pr_info("VE %u: image %s of %" PRIu64 " MiB", ve->veid, img, bytes >> 20);
	return 0;
}

/* The loop device under the VE's root, from mountinfo. */
static int root_device(const struct ve *ve, char *dev, size_t len)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];

	while (f && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], src[PATH_MAX], *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 || strcmp(mnt, ve->root))
			continue;
		if (sscanf(sep + 3, "%*s %4095s", src) == 1 && !strncmp(src, "/dev/loop", 9)) {
			snprintf(dev, len, "%s", src);
			return 0;
		}
	}
	return -ENOENT;
}

static int image_size(const struct ve *ve, uint64_t *bytes)
{
	char img[PATH_MAX + 16];
	struct stat st;

	image_path(ve, img, sizeof(img));
	if (stat(img, &st) != 0)
		return -errno;
	*bytes = (uint64_t)st.st_size;
	return 0;
}

int disk_mount(struct ve *ve, struct vz_err *err)
{
	char img[PATH_MAX + 16], loop[64];
	uint64_t want = disk_conf_bytes(ve), have = 0;
	int ret;

	ret = vz_mkdir_p(ve->root, 0755);
	if (ret < 0)
		return vz_error_exit(err, VZ_EXIT_MOUNT, -ret, "Create %s", ve->root);
	if (!disk_is_image(ve)) {
		if (mount(ve->private, ve->root, NULL, MS_BIND, NULL) != 0)
			return vz_error_exit(err, VZ_EXIT_MOUNT, errno, "Mount %s on %s", ve->private, ve->root);
		return 0;
	}
	image_path(ve, img, sizeof(img));
	if (!vz_exists(img))
		return vz_error_exit_msg(err, VZ_EXIT_NOPRIVATE, ENOENT, "Image %s of VE %u does not exist", img,
					 ve->veid);
	/* autoclear: the loop device goes away with the last unmount. */
	char *argv[] = { "mount", "-o", "loop,noatime", img, ve->root, NULL };

	ret = vz_run_checked(argv, err);
	if (ret < 0) {
		err->exit_code = VZ_EXIT_MOUNT;
		return vz_error_wrap(err, "Mount image of VE %u", ve->veid);
	}
	/* A size changed while the VE was down takes effect now. */
	if (want && image_size(ve, &have) == 0 && have != want && root_device(ve, loop, sizeof(loop)) == 0) {
		ret = disk_resize(ve, want, err);
		if (ret < 0)
			pr_warn("VE %u: %s", ve->veid, err->msg);
		vz_err_clear(err);
	}
	return 0;
}

static int set_image_size(const struct ve *ve, const char *loop, uint64_t bytes, struct vz_err *err)
{
	char img[PATH_MAX + 16];
	char *argv[] = { "losetup", "-c", (char *)loop, NULL };

	image_path(ve, img, sizeof(img));
	if (truncate(img, (off_t)bytes) != 0)
		return vz_error(err, errno, "Resize %s", img);
	return vz_run_checked(argv, err);
}

int disk_resize(struct ve *ve, uint64_t bytes, struct vz_err *err)
{
	char loop[64], size[32];
	uint64_t have;
	int ret;

	if (!disk_is_image(ve))
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "VE %u has no disk image", ve->veid);
	if (root_device(ve, loop, sizeof(loop)) < 0 || image_size(ve, &have) < 0)
		return vz_error_msg(err, ENOENT, "VE %u: its image is not mounted", ve->veid);
	snprintf(size, sizeof(size), "%" PRIu64, bytes);
	if (bytes > have) {
		/* Grow the image, then the file system into it. */
		char *argv[] = { "btrfs", "-q", "filesystem", "resize", "max", ve->root, NULL };

		ret = set_image_size(ve, loop, bytes, err);
		if (ret == 0)
			ret = vz_run_checked(argv, err);
	} else if (bytes < have) {
		/* Shrink the file system first: btrfs refuses what does not fit,
		 * and then nothing has changed. */
		char *argv[] = { "btrfs", "-q", "filesystem", "resize", size, ve->root, NULL };

		ret = vz_run_checked(argv, err);
		if (ret < 0)
			return vz_error_exit_msg(err, VZ_EXIT_NOSPACE, ENOSPC,
						 "Cannot shrink the disk of VE %u to %" PRIu64
						 " MiB: its files do not fit",
						 ve->veid, bytes >> 20);
		ret = set_image_size(ve, loop, bytes, err);
	} else {
		return 0;
	}
	if (ret < 0)
		return vz_error_wrap(err, "Resize the disk of VE %u", ve->veid);
	pr_info("VE %u: disk resized from %" PRIu64 " to %" PRIu64 " MiB", ve->veid, have >> 20, bytes >> 20);
	return 0;
}
