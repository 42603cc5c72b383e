/* Inside a new VE, before its init runs: the mount namespace is made
 * private, the VE's root (idmapped, for a VE in a user namespace) becomes
 * the working directory, /proc, /sys and a small /dev with devpts are
 * mounted in it, the paths of /proc and /sys that reach the host are
 * masked or made read-only (ve_confine.c), and pivot_root makes it the
 * VE's "/". Nothing of the host's mount tree or file descriptors stays
 * visible. */
#define LOG_PREFIX "rootfs: "
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "ve_confine.h"
#include "ve_rootfs.h"

static const struct {
	const char *name;
	unsigned major, minor;
	mode_t mode;
} dev_nodes[] = {
	{ "null", 1, 3, 0666 },	  { "zero", 1, 5, 0666 },    { "full", 1, 7, 0666 },
	{ "random", 1, 8, 0666 }, { "urandom", 1, 9, 0666 }, { "tty", 5, 0, 0666 },
};

/* CRIU's names for the nodes bound from the host: each is a mount whose
 * source is outside the VE, given to CRIU as external at dump ("mnt[the
 * mount point]:key") and at restore ("mnt[key]:the host's node"). */
int ve_dev_externals(bool restore, const char **out, size_t max)
{
	static char names[2][ARRAY_SIZE(dev_nodes)][64];
	size_t n = 0;

	while (n < max && out[n])
		n++;
	if (n + ARRAY_SIZE(dev_nodes) > max)
		return -ENOSPC;
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		const char *d = dev_nodes[i].name;

		if (restore)
			snprintf(names[1][i], sizeof(names[1][i]), "mnt[vzdev-%s]:/dev/%s", d, d);
		else
			snprintf(names[0][i], sizeof(names[0][i]), "mnt[/dev/%s]:vzdev-%s", d, d);
		out[n++] = names[restore][i];
	}
	return 0;
}

static const struct {
	const char *target, *link;
} dev_links[] = {
	{ "/proc/self/fd", "fd" },	 { "/proc/self/fd/0", "stdin" }, { "/proc/self/fd/1", "stdout" },
	{ "/proc/self/fd/2", "stderr" }, { "pts/ptmx", "ptmx" },
};

static int mount_in(const char *root, const char *dir, const char *src, const char *type, unsigned long flags,
		    const char *data, struct vz_err *err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s%s", root, dir);
	/* A symlink planted by the VE must not redirect a mount to the host. */
	struct stat st;

	if (lstat(path, &st) == 0 && !S_ISDIR(st.st_mode))
		return vz_error_msg(err, ENOTDIR, "%s in the VE is not a directory", dir);
	if (vz_mkdir_p(path, 0755) < 0)
		return vz_error(err, errno, "Create %s", path);
	if (mount(src, path, type, flags, data) != 0)
		return vz_error(err, errno, "Mount %s on %s", type, dir);
	return 0;
}

/* The device nodes: made in the VE's /dev when the VE shares the host's
 * user namespace; bound from the host's /dev in a VE's own, where mknod is
 * refused and a node on a file system mounted there could not be opened. */
static int dev_node(const char *root, size_t i, bool userns, struct vz_err *err)
{
	char path[PATH_MAX], host[64];
	_cleanup_close_ int fd = VZ_FD_INIT;

	snprintf(path, sizeof(path), "%s/dev/%s", root, dev_nodes[i].name);
	if (!userns) {
		if (mknod(path, S_IFCHR | dev_nodes[i].mode, makedev(dev_nodes[i].major, dev_nodes[i].minor)) != 0)
			return vz_error(err, errno, "Create /dev/%s", dev_nodes[i].name);
		chmod(path, dev_nodes[i].mode);
		return 0;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0)
		return vz_error(err, errno, "Create /dev/%s", dev_nodes[i].name);
	snprintf(host, sizeof(host), "/dev/%s", dev_nodes[i].name);
	if (mount(host, path, NULL, MS_BIND, NULL) != 0)
		return vz_error(err, errno, "Bind the host's %s", host);
	return 0;
}

static int setup_dev(const char *root, bool userns, struct vz_err *err)
{
	char path[PATH_MAX];
	int ret;

	ret = mount_in(root, "/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k", err);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		ret = dev_node(root, i, userns, err);
		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < ARRAY_SIZE(dev_links); i++) {
		snprintf(path, sizeof(path), "%s/dev/%s", root, dev_links[i].link);
		if (symlink(dev_links[i].target, path) != 0)
			return vz_error(err, errno, "Create /dev/%s", dev_links[i].link);
	}
	ret = mount_in(root, "/dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
		       "newinstance,ptmxmode=0666,mode=0620,gid=5", err);
	if (ret < 0)
		return ret;
	ret = mount_in(root, "/dev/shm", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k", err);
	if (ret < 0)
		return ret;
	return mount_in(root, "/dev/mqueue", "mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
}

int ve_rootfs_enter(const char *root, int idmapped, struct vz_err *err)
{
	/* Nothing we mount may propagate to the host, and host mount events
	 * must not reach the VE. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return vz_error(err, errno, "Make mounts private");
	if (idmapped >= 0) {
		/* The idmapped copy of the VE's tree goes over its root, and
		 * the fd then names that copy's top. */
		if (move_mount(idmapped, "", AT_FDCWD, root, MOVE_MOUNT_F_EMPTY_PATH) != 0)
			return vz_error(err, errno, "Attach the idmapped root on %s", root);
		if (fchdir(idmapped) != 0)
			return vz_error(err, errno, "Enter %s", root);
		return 0;
	}
	/* The root must be a mount point of its own for pivot_root. */
	if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) != 0)
		return vz_error(err, errno, "Bind %s", root);
	if (chdir(root) != 0)
		return vz_error(err, errno, "Enter %s", root);
	return 0;
}

int ve_rootfs_setup(bool userns, struct vz_err *err)
{
	int ret;

	ret = mount_in(".", "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err);
	if (ret == 0)
		ret = mount_in(".", "/sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL, err);
	if (ret == 0)
		ret = setup_dev(".", userns, err);
	if (ret == 0)
		ret = ve_mask_paths(".", err);
	if (ret < 0)
		return ret;
	/* pivot_root(".", ".") stacks the old root on top of the new one;
	 * detaching it leaves only the VE's tree. */
	if (syscall(SYS_pivot_root, ".", ".") != 0)
		return vz_error(err, errno, "pivot_root into the VE's root");
	if (umount2(".", MNT_DETACH) != 0)
		return vz_error(err, errno, "Detach the host's root");
	if (chdir("/") != 0)
		return vz_error(err, errno, "Enter /");
	return 0;
}
