/* A VE's user namespace: the range of host ids its root maps to, given out
 * under a host-wide lock from vz.conf's USERNS_BASE in slots of
 * VE_USERNS_SIZE, and the idmapped mounts (Linux 5.12+) through which a VE
 * sees its private area and a restore gives CRIU the VE's root. An idmap
 * is taken from a user namespace's map when the mount is made, so a short-
 * lived namespace with the VE's map serves before the VE's own exists. */
#define LOG_PREFIX "userns: "
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "userns.h"
#include "util.h"
#include "ve.h"

bool ve_userns_enabled(const struct vz_agent *a, const struct ve *ve)
{
	return ve_setting_yes(a, ve, "USERNS");
}

static bool parse_id(const char *v, uint32_t *id)
{
	unsigned long n;

	if (!v || vz_parse_ulong(v, 1, UINT32_MAX, &n) < 0)
		return false;
	*id = (uint32_t)n;
	return true;
}

/* A slot of this host's pool: aligned on the base, and whole below the
 * invalid id (uid_t)-1. */
static bool is_slot(const struct vz_agent *a, uint32_t id)
{
	uint64_t end = (uint64_t)id + VE_USERNS_SIZE;

	return id >= a->userns_base && (id - a->userns_base) % VE_USERNS_SIZE == 0 && end <= UINT32_MAX;
}

/* The host ids held by the other VEs of this host, in used[0..n). */
static int held_ids(unsigned self, uint32_t **used, size_t *n, struct vz_err *err)
{
	_cleanup_free_ unsigned *veids = NULL;
	size_t nv = 0, k = 0;
	int ret = ve_list(&veids, &nv, err);

	if (ret < 0)
		return ret;
	*used = calloc(nv ? nv : 1, sizeof(**used));
	if (!*used)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (size_t i = 0; i < nv; i++) {
		_cleanup_conf_ struct vz_conf c = { 0 };
		char path[PATH_MAX];
		struct vz_err e2 = { 0 };
		uint32_t id;

		if (veids[i] == self || vz_conf_load(&c, vz_path_ve_conf(path, sizeof(path), veids[i]), &e2) < 0)
			continue;
		if (parse_id(vz_conf_get(&c, "USERNS_UID"), &id))
			(*used)[k++] = id;
	}
	*n = k;
	return 0;
}

static bool held(const uint32_t *used, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (used[i] == id)
			return true;
	return false;
}

int ve_userns_assign(struct vz_agent *a, struct ve *ve, uint32_t prefer, uint32_t *host_id, struct vz_err *err)
{
	_cleanup_close_ int lock = VZ_FD_INIT;
	_cleanup_free_ uint32_t *used = NULL;
	char path[PATH_MAX], buf[16];
	uint32_t id = 0;
	size_t n = 0;
	int ret;

	vz_mkdir_p(vz_path(path, sizeof(path), VZ_LOCK_DIR), 0755);
	vz_path(path, sizeof(path), VZ_LOCK_DIR "/userns.lck");
	lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0)
		return vz_error(err, errno, "Open %s", path);
	if (flock(lock, LOCK_EX) != 0)
		return vz_error(err, errno, "Lock %s", path);
	ret = held_ids(ve->veid, &used, &n, err);
	if (ret < 0)
		return ret;
	if (parse_id(vz_conf_get(&ve->conf, "USERNS_UID"), &id) && is_slot(a, id) && !held(used, n, id)) {
		*host_id = id;
		return 0;
	}
	if (prefer && is_slot(a, prefer) && !held(used, n, prefer)) {
		id = prefer;
	} else {
		for (id = a->userns_base; is_slot(a, id) && held(used, n, id); id += VE_USERNS_SIZE)
			;
		if (!is_slot(a, id))
			return vz_error_msg(err, ENOSPC, "No free range of %u ids left for VE %u above USERNS_BASE %u",
					    VE_USERNS_SIZE, ve->veid, a->userns_base);
	}
	snprintf(buf, sizeof(buf), "%u", id);
	ret = vz_conf_set(&ve->conf, "USERNS_UID", buf, err);
	if (ret == 0)
		ret = ve_save(ve, err);
	if (ret < 0)
		return ret;
	pr_info("VE %u: root is host id %u (%u ids)", ve->veid, id, VE_USERNS_SIZE);
	*host_id = id;
	return 0;
}

bool ve_pid_has_userns(pid_t pid)
{
	struct stat self, other;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	return stat(path, &other) == 0 && stat("/proc/self/ns/user", &self) == 0 && other.st_ino != self.st_ino;
}

uint32_t ve_userns_running_id(const struct ve *ve, pid_t init)
{
	uint32_t id;

	if (init <= 0 || !ve_pid_has_userns(init) || !parse_id(vz_conf_get(&ve->conf, "USERNS_UID"), &id))
		return 0;
	return id;
}

int ve_become_root(struct vz_err *err)
{
	if (setresgid(0, 0, 0) != 0)
		return vz_error(err, errno, "Take the VE's gid 0");
	if (setgroups(0, NULL) != 0)
		return vz_error(err, errno, "Drop supplementary groups");
	if (setresuid(0, 0, 0) != 0)
		return vz_error(err, errno, "Take the VE's uid 0");
	return 0;
}

static int write_map(pid_t pid, const char *which, uint32_t host_id, struct vz_err *err)
{
	char path[64], map[64];
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, which);
	snprintf(map, sizeof(map), "0 %u %u\n", host_id, VE_USERNS_SIZE);
	/* The kernel takes a map in one write only. */
	ret = vz_write_str(path, map);
	if (ret < 0)
		return vz_error(err, -ret, "Write %s", path);
	return 0;
}

int ve_userns_write_maps(pid_t pid, uint32_t host_id, struct vz_err *err)
{
	int ret = write_map(pid, "uid_map", host_id, err);

	return ret < 0 ? ret : write_map(pid, "gid_map", host_id, err);
}

/* A user namespace with the VE's map, held by a child that only waits:
 * its fd stays valid once the child is gone. */
static int userns_with_map(uint32_t host_id, struct vz_err *err)
{
	_cleanup_close_ int r = VZ_FD_INIT, w = VZ_FD_INIT;
	char path[64];
	int p[2], fd, ret, status;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return vz_error(err, errno, "Create a pipe");
	r = p[0];
	w = p[1];
	pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0)
		return vz_error(err, errno, "Create a user namespace");
	if (pid == 0) {
		char c;

		close(w);
		_exit(read(r, &c, 1) < 0);
	}
	ret = ve_userns_write_maps(pid, host_id, err);
	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
	fd = ret < 0 ? ret : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && ret == 0)
		ret = vz_error(err, errno, "Open %s", path);
	vz_closep(&w);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return ret < 0 ? ret : fd;
}

int ve_idmapped_tree(const char *path, uint32_t host_id, struct vz_err *err)
{
	_cleanup_close_ int ns = userns_with_map(host_id, err), tree = VZ_FD_INIT;
	struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP };

	if (ns < 0)
		return ns;
	tree = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
	if (tree < 0)
		return vz_error(err, errno, "Clone the mount tree at %s", path);
	attr.userns_fd = (uint64_t)ns;
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) != 0)
		return vz_error(err, errno, "Idmap the mounts at %s (the file system must support idmapped mounts)",
				path);
	return steal_fd(&tree);
}

static void idroot_path(const struct ve *ve, char *buf, size_t len)
{
	char run[PATH_MAX];

	snprintf(buf, len, "%s/idroot/%u", vz_path(run, sizeof(run), VZ_RUN_DIR), ve->veid);
}

int ve_idroot_get(const struct ve *ve, uint32_t host_id, char *buf, size_t len, struct vz_err *err)
{
	_cleanup_close_ int tree = VZ_FD_INIT;

	ve_idroot_put(ve);
	idroot_path(ve, buf, len);
	if (vz_mkdir_p(buf, 0700) < 0)
		return vz_error(err, errno, "Create %s", buf);
	tree = ve_idmapped_tree(ve->root, host_id, err);
	if (tree < 0)
		return tree;
	if (move_mount(tree, "", AT_FDCWD, buf, MOVE_MOUNT_F_EMPTY_PATH) != 0)
		return vz_error(err, errno, "Attach the idmapped root of VE %u", ve->veid);
	return 0;
}

void ve_idroot_put(const struct ve *ve)
{
	char path[PATH_MAX];

	idroot_path(ve, path, sizeof(path));
	while (umount2(path, MNT_DETACH) == 0)
		;
	rmdir(path);
}
