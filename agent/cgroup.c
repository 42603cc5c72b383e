/* A VE's cgroups on v1 (a hierarchy per controller, found in mountinfo)
 * and v2 (one unified hierarchy): create, attach, list, freeze, kill,
 * destroy, and the path of a controller's files. */
#define LOG_PREFIX "cgroup: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "log.h"
#include "proc.h"
#include "util.h"

static const char *const v1_wanted[] = { "cpu",	    "cpuacct", "memory", "pids",	"freezer",
					 "devices", "blkio",   "cpuset", "name=systemd" };

/* Does a comma-separated option list hold ctrl? */
static bool opts_have(const char *opts, const char *ctrl)
{
	size_t len = strlen(ctrl);

	for (const char *p = opts; p && *p;) {
		if (!strncmp(p, ctrl, len) && (p[len] == ',' || p[len] == '\0'))
			return true;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return false;
}

static int find_v1(struct vz_cg *cg, struct vz_err *err)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];

	if (!f)
		return vz_error(err, errno, "Read mountinfo");
	while (fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], fstype[64], opts[1024], *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%63s %*s %1023s", fstype, opts) != 2)
			continue;
		if (strncmp(mnt, cg->fsroot, strlen(cg->fsroot)))
			continue;
		/* A hybrid host's cgroup2 mount ("unified", no controllers): the
		 * VE gets a group there too, so that its cgroup namespace has
		 * the same root in every hierarchy, as CRIU needs to restore it
		 * again after a restore. */
		if (!strcmp(fstype, "cgroup2") && cg->nhier < VZ_CG_MAX_HIER) {
			snprintf(cg->hier[cg->nhier].name, sizeof(cg->hier[0].name), "unified");
			snprintf(cg->hier[cg->nhier].path, sizeof(cg->hier[0].path), "%s", mnt);
			cg->nhier++;
			continue;
		}
		if (strcmp(fstype, "cgroup"))
			continue;
		for (size_t i = 0; i < sizeof(v1_wanted) / sizeof(v1_wanted[0]); i++) {
			bool dup = false;

			if (!opts_have(opts, v1_wanted[i]))
				continue;
			for (size_t k = 0; k < cg->nhier; k++)
				dup |= !strcmp(cg->hier[k].path, mnt);
			if (dup || cg->nhier == VZ_CG_MAX_HIER)
				break;
			snprintf(cg->hier[cg->nhier].name, sizeof(cg->hier[0].name), "%s", v1_wanted[i]);
			snprintf(cg->hier[cg->nhier].path, sizeof(cg->hier[0].path), "%s", mnt);
			/* Co-mounted controllers: record the whole option list. */
			for (size_t j = 0; j < sizeof(v1_wanted) / sizeof(v1_wanted[0]); j++)
				if (j != i && opts_have(opts, v1_wanted[j]) && strncmp(v1_wanted[j], "name=", 5)) {
					size_t l = strlen(cg->hier[cg->nhier].name);

					snprintf(cg->hier[cg->nhier].name + l, sizeof(cg->hier[0].name) - l, ",%s",
						 v1_wanted[j]);
				}
			cg->nhier++;
			break;
		}
	}
	if (cg->nhier == 0)
		return vz_error_msg(err, ENOENT, "No cgroup v1 hierarchy under %s", cg->fsroot);
	return 0;
}

int vz_cg_init(struct vz_cg *cg, const char *fsroot, const char *base, int force_mode, struct vz_err *err)
{
	struct statfs sf;

	memset(cg, 0, sizeof(*cg));
	snprintf(cg->fsroot, sizeof(cg->fsroot), "%s", fsroot ? fsroot : "/sys/fs/cgroup");
	if (!base || !*base || strchr(base, '/') || !strcmp(base, "..") || strlen(base) >= sizeof(cg->base))
		return vz_error_msg(err, EINVAL, "Invalid cgroup base name '%s'", base ? base : "");
	snprintf(cg->base, sizeof(cg->base), "%s", base);
	if (statfs(cg->fsroot, &sf) != 0)
		return vz_error(err, errno, "Inspect %s", cg->fsroot);
	if (force_mode == VZ_CG_V2 || (force_mode == 0 && sf.f_type == CGROUP2_SUPER_MAGIC)) {
		if (sf.f_type != CGROUP2_SUPER_MAGIC)
			return vz_error_msg(err, EINVAL, "%s is not a cgroup2 mount", cg->fsroot);
		cg->mode = VZ_CG_V2;
		cg->nhier = 1;
		snprintf(cg->hier[0].name, sizeof(cg->hier[0].name), "unified");
		snprintf(cg->hier[0].path, sizeof(cg->hier[0].path), "%s", cg->fsroot);
		return 0;
	}
	cg->mode = VZ_CG_V1;
	return find_v1(cg, err);
}

static void hier_dir(const struct vz_cg *cg, size_t i, unsigned veid, char *buf, size_t len)
{
	if (veid)
		snprintf(buf, len, "%s/%s/%u", cg->hier[i].path, cg->base, veid);
	else
		snprintf(buf, len, "%s/%s", cg->hier[i].path, cg->base);
}

static int copy_file(const char *from_dir, const char *to_dir, const char *name)
{
	char from[PATH_MAX + 32], to[PATH_MAX + 32];
	_cleanup_free_ char *text = NULL;
	int ret;

	snprintf(from, sizeof(from), "%s/%s", from_dir, name);
	snprintf(to, sizeof(to), "%s/%s", to_dir, name);
	ret = vz_read_file(from, &text, NULL, 65536);
	if (ret < 0)
		return ret;
	return vz_write_str(to, text);
}

/* v2: enable the controllers the parent offers for dir's children. */
static void v2_enable(const char *dir)
{
	static const char *const ctrls[] = { "cpu", "memory", "pids", "io", "cpuset" };
	char path[PATH_MAX + 32];
	_cleanup_free_ char *avail = NULL;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
	if (vz_read_file(path, &avail, NULL, 4096) < 0)
		return;
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	for (size_t i = 0; i < sizeof(ctrls) / sizeof(ctrls[0]); i++) {
		char word[32];

		/* Space-separated; a miss is harmless: the write just fails. */
		if (!strstr(avail, ctrls[i]))
			continue;
		snprintf(word, sizeof(word), "+%s", ctrls[i]);
		vz_write_str(path, word);
	}
}

static int make_dir(const struct vz_cg *cg, size_t i, const char *parent, const char *dir, struct vz_err *err)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return vz_error(err, errno, "Create cgroup %s", dir);
	if (cg->mode == VZ_CG_V2) {
		v2_enable(parent);
		return 0;
	}
	if (opts_have(cg->hier[i].name, "cpuset")) {
		char cpus[PATH_MAX + 32];
		_cleanup_free_ char *cur = NULL;

		snprintf(cpus, sizeof(cpus), "%s/cpuset.cpus", dir);
		if (vz_read_file(cpus, &cur, NULL, 4096) == 0 && (cur[0] == '\n' || cur[0] == '\0')) {
			copy_file(parent, dir, "cpuset.cpus");
			copy_file(parent, dir, "cpuset.mems");
		}
	}
	if (opts_have(cg->hier[i].name, "memory")) {
		char p[PATH_MAX + 32];

		snprintf(p, sizeof(p), "%s/memory.use_hierarchy", dir);
		vz_write_str(p, "1");
	}
	return 0;
}

int vz_cg_create(const struct vz_cg *cg, unsigned veid, struct vz_err *err)
{
	for (size_t i = 0; i < cg->nhier; i++) {
		char base[PATH_MAX], dir[PATH_MAX];
		int ret;

		hier_dir(cg, i, 0, base, sizeof(base));
		hier_dir(cg, i, veid, dir, sizeof(dir));
		ret = make_dir(cg, i, cg->hier[i].path, base, err);
		if (ret == 0)
			ret = make_dir(cg, i, base, dir, err);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int vz_cg_attach(const struct vz_cg *cg, unsigned veid, pid_t pid, struct vz_err *err)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (size_t i = 0; i < cg->nhier; i++) {
		char path[PATH_MAX + 32];
		int ret;

		hier_dir(cg, i, veid, path, sizeof(path));
		strcat(path, "/cgroup.procs");
		ret = vz_write_str(path, buf);
		if (ret < 0)
			return vz_error(err, -ret, "Move pid %d into %s", (int)pid, path);
	}
	return 0;
}

/* rmdir dir's children, deepest first, then dir. */
static int rmdir_tree(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		char sub[PATH_MAX];

		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		rmdir_tree(sub);
	}
	if (rmdir(dir) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int vz_cg_destroy(const struct vz_cg *cg, unsigned veid, struct vz_err *err)
{
	int first = 0;

	for (size_t i = 0; i < cg->nhier; i++) {
		char dir[PATH_MAX];
		int ret;

		hier_dir(cg, i, veid, dir, sizeof(dir));
		ret = rmdir_tree(dir);
		if (ret < 0 && !first) {
			first = ret;
			if (ret == -EBUSY)
				vz_error_msg(err, EBUSY, "Remove cgroup %s: tasks remain in it", dir);
			else
				vz_error(err, -ret, "Remove cgroup %s", dir);
		}
	}
	return first;
}

bool vz_cg_exists(const struct vz_cg *cg, unsigned veid)
{
	char dir[PATH_MAX];

	if (cg->nhier == 0)
		return false;
	hier_dir(cg, 0, veid, dir, sizeof(dir));
	return vz_exists(dir);
}

int vz_cg_path(const struct vz_cg *cg, unsigned veid, const char *ctrl, char *buf, size_t len, struct vz_err *err)
{
	for (size_t i = 0; i < cg->nhier; i++)
		if (cg->mode == VZ_CG_V2 || opts_have(cg->hier[i].name, ctrl)) {
			hier_dir(cg, i, veid, buf, len);
			return 0;
		}
	return vz_error_msg(err, ENOENT, "This host has no cgroup hierarchy with the %s controller", ctrl);
}

static int collect(const char *dir, pid_t **pids, size_t *n, size_t *cap)
{
	char path[PATH_MAX + 32];
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_closedir_ DIR *d = NULL;
	struct dirent *de;
	int pid;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fscanf(f, "%d", &pid) == 1) {
		bool dup = false;

		for (size_t i = 0; i < *n; i++)
			dup |= (*pids)[i] == pid;
		if (dup)
			continue;
		if (vz_grow((void **)pids, cap, *n, sizeof(**pids), 64) < 0)
			return -ENOMEM;
		(*pids)[(*n)++] = pid;
	}
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		char sub[PATH_MAX];
		int ret;

		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		ret = collect(sub, pids, n, cap);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int vz_cg_pids(const struct vz_cg *cg, unsigned veid, pid_t **pids, size_t *n, struct vz_err *err)
{
	char dir[PATH_MAX];
	size_t cap = 0;
	int ret;

	*pids = NULL;
	*n = 0;
	if (vz_cg_path(cg, veid, "pids", dir, sizeof(dir), NULL) < 0 &&
	    vz_cg_path(cg, veid, "freezer", dir, sizeof(dir), err) < 0)
		return -ENOENT;
	ret = collect(dir, pids, n, &cap);
	if (ret < 0)
		return vz_error(err, -ret, "List tasks of VE %u", veid);
	return 0;
}

/* State letter and parent of a process; 0 when it is gone. */
static char proc_state(pid_t pid, pid_t *ppid)
{
	struct vz_proc_stat st;

	if (vz_proc_stat(pid, &st) < 0)
		return 0;
	if (ppid)
		*ppid = st.ppid;
	return st.state;
}

int vz_cg_find_stopped(const struct vz_cg *cg, unsigned veid, pid_t *stopped, struct vz_err *err)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;
	int ret;

	*stopped = 0;
	ret = vz_cg_pids(cg, veid, &pids, &n, err);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n && !*stopped; i++) {
		char st = proc_state(pids[i], NULL);

		if (st == 'T' || st == 't')
			*stopped = pids[i];
	}
	return 0;
}

int vz_cg_find_vfork(const struct vz_cg *cg, unsigned veid, pid_t *parent, pid_t *child, struct vz_err *err)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;
	int ret;

	*parent = *child = 0;
	ret = vz_cg_pids(cg, veid, &pids, &n, err);
	if (ret < 0)
		return ret;
	/* Two processes (not threads of one) on one mm: a vfork() that has
	 * neither exec'd nor exited yet, or a clone(CLONE_VM) alike. */
	for (size_t i = 0; i < n && !*parent; i++) {
		pid_t pp = 0;

		if (!proc_state(pids[i], &pp) || pp <= 1)
			continue;
		for (size_t j = 0; j < n; j++)
			if (pids[j] == pp && vz_proc_same_mm(pids[i], pp)) {
				*parent = pp;
				*child = pids[i];
				break;
			}
	}
	return 0;
}

static void nap(unsigned *us)
{
	usleep(*us);
	if (*us < 20000)
		*us *= 2;
}

static bool is_frozen(const struct vz_cg *cg, const char *dir)
{
	char path[PATH_MAX + 32];
	_cleanup_free_ char *text = NULL;

	if (cg->mode == VZ_CG_V2) {
		snprintf(path, sizeof(path), "%s/cgroup.events", dir);
		return vz_read_file(path, &text, NULL, 4096) == 0 && strstr(text, "frozen 1");
	}
	snprintf(path, sizeof(path), "%s/freezer.state", dir);
	return vz_read_file(path, &text, NULL, 4096) == 0 && !strncmp(text, "FROZEN", 6);
}

static int freezer_write(const struct vz_cg *cg, const char *dir, bool freeze)
{
	char path[PATH_MAX + 32];

	if (cg->mode == VZ_CG_V2) {
		snprintf(path, sizeof(path), "%s/cgroup.freeze", dir);
		return vz_write_str(path, freeze ? "1" : "0");
	}
	snprintf(path, sizeof(path), "%s/freezer.state", dir);
	return vz_write_str(path, freeze ? "FROZEN" : "THAWED");
}

int vz_cg_freeze(const struct vz_cg *cg, unsigned veid, int timeout_ms, struct vz_err *err)
{
	char dir[PATH_MAX];
	uint64_t end = vz_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	unsigned us = 1000;
	int ret;

	ret = vz_cg_path(cg, veid, "freezer", dir, sizeof(dir), err);
	if (ret < 0)
		return ret;
	ret = freezer_write(cg, dir, true);
	if (ret < 0)
		return vz_error(err, -ret, "Freeze VE %u", veid);
	while (!is_frozen(cg, dir)) {
		if (vz_now_ns() > end) {
			freezer_write(cg, dir, false);
			return vz_error_msg(err, ETIMEDOUT, "Freeze VE %u: not frozen after %d ms", veid, timeout_ms);
		}
		/* v1 may stay FREEZING until asked again. */
		if (cg->mode == VZ_CG_V1)
			freezer_write(cg, dir, true);
		nap(&us);
	}
	return 0;
}

int vz_cg_freeze_start(const struct vz_cg *cg, unsigned veid, struct vz_err *err)
{
	char dir[PATH_MAX];
	int ret = vz_cg_path(cg, veid, "freezer", dir, sizeof(dir), err);

	if (ret == 0 && (ret = freezer_write(cg, dir, true)) < 0)
		return vz_error(err, -ret, "Freeze VE %u", veid);
	return ret;
}

int vz_cg_thaw(const struct vz_cg *cg, unsigned veid, struct vz_err *err)
{
	char dir[PATH_MAX];
	int ret = vz_cg_path(cg, veid, "freezer", dir, sizeof(dir), err);

	if (ret < 0)
		return ret;
	ret = freezer_write(cg, dir, false);
	if (ret < 0)
		return vz_error(err, -ret, "Thaw VE %u", veid);
	return 0;
}

int vz_cg_kill_all(const struct vz_cg *cg, unsigned veid, int timeout_ms, struct vz_err *err)
{
	uint64_t end = vz_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	char dir[PATH_MAX], path[PATH_MAX + 32];
	unsigned us = 1000;

	if (vz_cg_path(cg, veid, "freezer", dir, sizeof(dir), err) < 0)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	for (;;) {
		pid_t *pids = NULL;
		size_t n = 0;
		int ret = vz_cg_pids(cg, veid, &pids, &n, err);

		if (ret < 0)
			return ret;
		if (n == 0) {
			free(pids);
			return 0;
		}
		if (vz_now_ns() > end) {
			free(pids);
			return vz_error_msg(err, ETIMEDOUT, "VE %u: %zu tasks still alive after SIGKILL", veid, n);
		}
		if (cg->mode == VZ_CG_V2 && access(path, F_OK) == 0) {
			vz_write_str(path, "1");
		} else {
			/* Freeze first so nothing forks between listing and killing. */
			bool frozen = freezer_write(cg, dir, true) == 0;

			for (size_t i = 0; i < n; i++)
				kill(pids[i], SIGKILL);
			if (frozen)
				freezer_write(cg, dir, false);
		}
		free(pids);
		nap(&us);
	}
}
