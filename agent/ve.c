/* A VE's config, paths, lock, pid file, root mount and running state. */
#define LOG_PREFIX "ve: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "disk.h"
#include "log.h"
#include "proc.h"
#include "paths.h"
#include "util.h"
#include "ve.h"

int ve_open(unsigned veid, bool must_exist, struct ve *ve, struct vz_err *err)
{
	int ret;

	memset(ve, 0, sizeof(*ve));
	ve->veid = veid;
	ve->lock_fd = -EBADF;
	vz_path_ve_conf(ve->conf_path, sizeof(ve->conf_path), veid);
	vz_path_ve_private(ve->private, sizeof(ve->private), veid);
	vz_path_ve_root(ve->root, sizeof(ve->root), veid);
	if (!vz_exists(ve->conf_path)) {
		if (must_exist)
			return vz_error_exit_msg(err, VZ_EXIT_NOCONF, ENOENT, "VE %u does not exist", veid);
		return 0;
	}
	ret = vz_conf_load(&ve->conf, ve->conf_path, err);
	if (ret < 0)
		return vz_error_wrap(err, "Load config of VE %u", veid);
	return 0;
}

void ve_close(struct ve *ve)
{
	if (!ve)
		return;
	vz_conf_free(&ve->conf);
	vz_closep(&ve->lock_fd);
}

/* The lock file was not removed (a destroy unlinks it) or replaced while
 * we waited for it: a lock on a file no longer at its path locks nothing,
 * since the next taker opens the new one. */
static bool lock_is_current(int fd, const char *path)
{
	struct stat held, now;

	return fstat(fd, &held) == 0 && held.st_nlink > 0 && stat(path, &now) == 0 && held.st_dev == now.st_dev &&
	       held.st_ino == now.st_ino;
}

int ve_lock(struct ve *ve, int wait_ms, struct vz_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int fd, waited = 0;

	vz_path(dir, sizeof(dir), VZ_LOCK_DIR);
	vz_mkdir_p(dir, 0700);
	snprintf(path, sizeof(path), "%s/%u.lck", dir, ve->veid);
	for (;;) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return vz_error(err, errno, "Open lock %s", path);
		while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			if (errno != EWOULDBLOCK || waited >= wait_ms) {
				close(fd);
				return vz_error_exit_msg(err, VZ_EXIT_LOCKED, EBUSY,
							 "VE %u is locked by another operation", ve->veid);
			}
			usleep(20 * 1000);
			waited += 20;
		}
		if (lock_is_current(fd, path))
			break;
		close(fd);
	}
	ve->lock_fd = fd;
	return 0;
}

unsigned long long ve_proc_start_time(pid_t pid)
{
	struct vz_proc_stat st;

	return vz_proc_stat(pid, &st) == 0 ? st.starttime : 0;
}

static char *pidfile_path(char *buf, size_t len, unsigned veid)
{
	return vz_path(buf, len, VZ_RUN_DIR "/%u.pid", veid);
}

int ve_read_pidfile(unsigned veid, pid_t *pid, unsigned long long *start)
{
	char path[PATH_MAX];
	_cleanup_free_ char *text = NULL;
	int p;

	pidfile_path(path, sizeof(path), veid);
	if (vz_read_file(path, &text, NULL, 256) < 0)
		return -ENOENT;
	if (sscanf(text, "%d %llu", &p, start) != 2 || p <= 0)
		return -EINVAL;
	*pid = p;
	return 0;
}

int ve_write_pidfile(const struct ve *ve, pid_t init, struct vz_err *err)
{
	char path[PATH_MAX], dir[PATH_MAX], buf[64];
	int ret;

	vz_path(dir, sizeof(dir), VZ_RUN_DIR);
	vz_mkdir_p(dir, 0755);
	pidfile_path(path, sizeof(path), ve->veid);
	snprintf(buf, sizeof(buf), "%d %llu\n", (int)init, ve_proc_start_time(init));
	ret = vz_write_file(path, buf, strlen(buf), 0);
	if (ret < 0)
		return vz_error(err, -ret, "Write %s", path);
	return 0;
}

void ve_remove_pidfile(unsigned veid)
{
	char path[PATH_MAX];

	unlink(pidfile_path(path, sizeof(path), veid));
}

bool ve_is_mounted(const struct ve *ve)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192];

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX];

		/* id parent major:minor root mountpoint ... */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) == 1 && strcmp(mnt, ve->root) == 0)
			return true;
	}
	return false;
}

enum ve_state ve_state(const struct ve *ve, pid_t *init)
{
	unsigned long long start;
	pid_t pid;

	if (init)
		*init = 0;
	if (!vz_exists(ve->conf_path))
		return VE_STATE_DELETED;
	if (ve_read_pidfile(ve->veid, &pid, &start) == 0 && start && ve_proc_start_time(pid) == start) {
		if (init)
			*init = pid;
		return VE_STATE_RUNNING;
	}
	return ve_is_mounted(ve) ? VE_STATE_MOUNTED : VE_STATE_STOPPED;
}

static int cmp_veid(const void *x, const void *y)
{
	unsigned a = *(const unsigned *)x, b = *(const unsigned *)y;

	return a < b ? -1 : a > b;
}

int ve_list(unsigned **veids, size_t *n, struct vz_err *err)
{
	char dir[PATH_MAX];
	_cleanup_closedir_ DIR *d = opendir(vz_path(dir, sizeof(dir), VZ_CONF_DIR));
	_cleanup_free_ unsigned *v = NULL;
	size_t len = 0, cap = 0;
	struct dirent *de;

	while (d && (de = readdir(d))) {
		unsigned veid;
		char rest[16];

		if (sscanf(de->d_name, "%u%15s", &veid, rest) != 2 || strcmp(rest, ".conf") || veid == 0)
			continue;
		if (len == cap) {
			unsigned *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*nv));

			if (!nv)
				return vz_error_msg(err, ENOMEM, "Out of memory");
			v = nv;
		}
		v[len++] = veid;
	}
	if (len)
		qsort(v, len, sizeof(*v), cmp_veid);
	*veids = steal_ptr(v);
	*n = len;
	return 0;
}

int ve_save(struct ve *ve, struct vz_err *err)
{
	int ret = vz_conf_save(&ve->conf, ve->conf_path, err);

	if (ret < 0) {
		err->exit_code = VZ_EXIT_SAVECONF;
		return vz_error_wrap(err, "Save config of VE %u", ve->veid);
	}
	return 0;
}

int ve_mount(struct ve *ve, struct vz_err *err)
{
	int ret;

	if (ve_is_mounted(ve))
		return 0;
	if (!vz_exists(ve->private))
		return vz_error_exit_msg(err, VZ_EXIT_NOPRIVATE, ENOENT, "Private area %s of VE %u does not exist",
					 ve->private, ve->veid);
	ret = disk_mount(ve, err);
	if (ret < 0)
		return ret;
	/* Mounts made under the VE's root must not spread back to the host. */
	if (mount(NULL, ve->root, NULL, MS_PRIVATE, NULL) != 0) {
		int e = errno;

		umount2(ve->root, MNT_DETACH);
		return vz_error_exit(err, VZ_EXIT_MOUNT, e, "Make %s private", ve->root);
	}
	pr_info("VE %u: mounted %s on %s", ve->veid, ve->private, ve->root);
	return 0;
}

int ve_umount(struct ve *ve, struct vz_err *err)
{
	if (!ve_is_mounted(ve))
		return 0;
	if (umount2(ve->root, 0) != 0) {
		if (errno != EBUSY || umount2(ve->root, MNT_DETACH) != 0)
			return vz_error_exit(err, VZ_EXIT_UMOUNT, errno, "Unmount %s", ve->root);
		pr_warn("VE %u: %s was busy, detached it", ve->veid, ve->root);
	}
	pr_info("VE %u: unmounted %s", ve->veid, ve->root);
	return 0;
}

static bool yes(const char *v)
{
	return !strcmp(v, "yes") || !strcmp(v, "1");
}

bool ve_setting_yes(const struct vz_agent *a, const struct ve *ve, const char *key)
{
	const char *v = vz_conf_get(&ve->conf, key);

	if (v && *v)
		return yes(v);
	v = vz_conf_get(&a->global, key);
	return !v || !*v || yes(v);
}

int ve_netif(struct ve *ve, struct vz_agent *a, struct vz_netif *nif, struct vz_err *err)
{
	const char *s = vz_conf_get(&ve->conf, "NETIF");
	char buf[256];

	if (s && *s)
		return vz_netif_parse(s, nif, err);
	vz_netif_new(nif, ve->veid, a->bridge);
	vz_netif_format(nif, buf, sizeof(buf));
	return vz_conf_set(&ve->conf, "NETIF", buf, err);
}

/* The blocks and inodes under the private area of a plain-directory VE
 * (layout simfs), on its filesystem only; a file of several links counts
 * once (each such file is noted, and the repeats taken off at the end). */
struct du_link {
	ino_t ino;
	uint64_t kib;
};

static struct {
	uint64_t kib, inodes;
	dev_t dev;
	struct du_link *links;
	size_t n, cap;
} du;

static int du_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	uint64_t kib = (uint64_t)st->st_blocks / 2;

	(void)path;
	(void)ftw;
	if (flag == FTW_NS || st->st_dev != du.dev)
		return 0;
	if (!S_ISDIR(st->st_mode) && st->st_nlink > 1) {
		if (vz_grow((void **)&du.links, &du.cap, du.n, sizeof(*du.links), 64) < 0)
			return -1;
		du.links[du.n++] = (struct du_link){ st->st_ino, kib };
	}
	du.kib += kib;
	du.inodes++;
	return 0;
}

static int du_link_cmp(const void *a, const void *b)
{
	ino_t x = ((const struct du_link *)a)->ino, y = ((const struct du_link *)b)->ino;

	return x < y ? -1 : x > y;
}

int ve_disk_usage(const struct ve *ve, uint64_t *used_kib, uint64_t *total_kib, uint64_t *inodes)
{
	struct statvfs sv;
	struct stat st;
	int ret;

	if (statvfs(ve->root, &sv) != 0)
		return -errno;
	*total_kib = (uint64_t)sv.f_blocks * sv.f_frsize / 1024;
	if (disk_is_image(ve)) {
		/* Its own filesystem: what it holds is what it uses. */
		*used_kib = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize / 1024;
		*inodes = (uint64_t)(sv.f_files - sv.f_ffree);
		return 0;
	}
	/* A directory on the host's filesystem, whose figures are the
	 * host's: the VE's are its tree's. */
	if (stat(ve->private, &st) != 0)
		return -errno;
	du.kib = du.inodes = du.n = 0;
	du.dev = st.st_dev;
	ret = nftw(ve->private, du_one, 64, FTW_PHYS | FTW_MOUNT) != 0 ? -(errno ? errno : ENOMEM) : 0;
	qsort(du.links, du.n, sizeof(*du.links), du_link_cmp);
	for (size_t i = 1; i < du.n; i++)
		if (du.links[i].ino == du.links[i - 1].ino) {
			du.kib -= du.links[i].kib;
			du.inodes--;
		}
	vz_freep(&du.links);
	du.cap = 0;
	if (ret < 0)
		return ret;
	*used_kib = du.kib;
	*inodes = du.inodes;
	return 0;
}
