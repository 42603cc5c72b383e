/* Checkpoint and restore of a VE on this host (vzctl chkpnt / restore,
 * suspend / resume) and the host's checkpoint report (chkpnt --check).
 *
 * chkpnt: CRIU freezes the VE through its freezer cgroup (or, when a
 * process of it is stopped, seizes the tree with ptrace alone) and dumps
 * it with its TCP connections, the network locked by nftables. At CRIU's
 * "post-dump" call, while the tasks are still frozen, the images are
 * packed into the dump file; only when that succeeded does CRIU kill the
 * tasks. Any failure before makes CRIU resume them: the VE runs on.
 *
 * restore: the whole dump file is checked (header, VEID, CRIU version,
 * checksum) before anything is made; then the root is mounted, the
 * cgroups made with the saved limits, the VE's network filter and its
 * idmapped root (ve_restore_prepare, which a migration's destination runs
 * while the VE still runs at the source), and CRIU restores the tree as
 * our child, recreating the veth pair on the bridge (ve_restore_run). On
 * failure everything made is removed and the dump file is kept. */
#define LOG_PREFIX "ckpt: "
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "ckpt.h"
#include "cleanup.h"
#include "criu.h"
#include "disk.h"
#include "dumpfile.h"
#include "log.h"
#include "paths.h"
#include "resources.h"
#include "userns.h"
#include "userns_img.h"
#include "sysctl.h"
#include "util.h"
#include "ve.h"
#include "ve_rootfs.h"

/* The dump file of a request: --dumpfile, or OpenVZ's /vz/dump/Dump.VEID. */
static int dump_path(const struct vz_call *c, char *buf, size_t len, bool *is_default, struct vz_err *err)
{
	const char *f = c->req->dumpfile;

	*is_default = !f || !*f;
	if (*is_default) {
		vz_path(buf, len, VZ_DUMP_DIR "/Dump.%u", c->req->veid);
		return 0;
	}
	if (f[0] != '/')
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Dump file %s is not an absolute path", f);
	if (strlen(f) >= len - 32)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, ENAMETOOLONG, "Dump file name is too long");
	snprintf(buf, len, "%s", f);
	return 0;
}

/* A fresh image directory under /vz/dump, and that directory's fd. */
int make_img_dir(unsigned veid, const char *what, char *dir, size_t len, int *dir_fd, int *work_fd, struct vz_err *err)
{
	char base[PATH_MAX];

	vz_path(base, sizeof(base), VZ_DUMP_DIR);
	if (vz_mkdir_p(base, 0700) < 0)
		return vz_error(err, errno, "Create %s", base);
	snprintf(dir, len, "%s/%u.%s.%d", base, veid, what, (int)getpid());
	vz_rm_rf(dir);
	if (mkdir(dir, 0700) != 0)
		return vz_error(err, errno, "Create %s", dir);
	*dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*work_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dir_fd < 0 || *work_fd < 0) {
		int e = errno;

		vz_rm_rf(dir);
		return vz_error(err, e, "Open %s", dir);
	}
	return 0;
}

static void criu_of(const struct vz_agent *a, struct vz_criu *c)
{
	c->path = a->criu;
}

struct post_dump {
	struct vz_call *call;
	const char *path;
	int images_fd;
	struct vz_criu_version ver;
	struct vz_img_stats st;
	struct vz_err err;
	bool packed;
};

/* CRIU's callbacks during a dump: pack the images while the tasks are
 * still frozen; a failure here makes CRIU resume them. */
static int dump_notify(const char *script, pid_t pid, void *arg)
{
	struct post_dump *pd = arg;
	struct vz_dump_hdr h = { 0 };

	(void)pid;
	if (strcmp(script, "post-dump"))
		return 0;
	h.veid = pd->call->req->veid;
	snprintf(h.criu_version, sizeof(h.criu_version), "%s", pd->ver.text);
	vz_ctl_progress(pd->call->conn, "Writing the dump file %s", pd->path);
	if (vz_dumpfile_write(pd->path, pd->images_fd, &h, &pd->st, &pd->err) < 0) {
		pr_err("VE %u: %s", h.veid, pd->err.msg);
		return -1;
	}
	pd->packed = true;
	return 0;
}

/* Whether CRIU may freeze the VE through its freezer cgroup, and whether
 * it can be checkpointed at all now. A parent in vfork() cannot stop for
 * ptrace until its child execs or exits; most do so at once, so wait a
 * little before refusing. A stopped process must not be frozen when CRIU
 * seizes it (the kernel's ptrace_attach then waits for a trap a frozen
 * task never makes, and CRIU hangs in D state): then CRIU seizes the
 * tree itself, which stops each task in turn and handles stopped ones. */
int ve_ckpt_precheck(struct vz_agent *a, unsigned veid, bool *use_freezer, struct vz_err *err)
{
	uint64_t end = vz_now_ns() + VE_VFORK_WAIT_S * 1000000000ull;
	pid_t parent = 0, child = 0, stopped = 0;
	int ret;

	for (;;) {
		ret = vz_cg_find_vfork(&a->cg, veid, &parent, &child, err);
		if (ret < 0 || !parent || vz_now_ns() > end)
			break;
		usleep(20000);
	}
	if (ret < 0)
		return ret;
	if (parent)
		return vz_error_msg(err, EBUSY,
				    "Process %d waits in vfork() for its child %d, which has neither exec'd nor exited "
				    "in %d s: CRIU cannot checkpoint the two (they share one memory)",
				    (int)parent, (int)child, VE_VFORK_WAIT_S);
	ret = vz_cg_find_stopped(&a->cg, veid, &stopped, err);
	if (ret < 0)
		return ret;
	*use_freezer = !stopped;
	if (stopped)
		pr_info("VE %u: process %d is stopped: CRIU seizes the tree without the freezer", veid, (int)stopped);
	return 0;
}

int ve_ckpt_dump_externals(pid_t init, struct vz_criu_opts *o, struct vz_err *err)
{
	if (ve_pid_has_userns(init) && ve_dev_externals(false, o->externals, ARRAY_SIZE(o->externals)) < 0)
		return vz_error_msg(err, ENOSPC, "Too many external mounts for CRIU");
	return 0;
}

int op_chkpnt(struct vz_call *c, struct vz_err *err)
{
	struct vz_agent *a = c->agent;
	_cleanup_ve_ struct ve ve;
	_cleanup_close_ int img_fd = -1, work_fd = -1;
	struct post_dump pd = { .call = c };
	struct vz_criu_opts o = { 0 };
	struct vz_criu criu;
	char path[PATH_MAX], dir[PATH_MAX], freezer[PATH_MAX], logname[64];
	bool is_default, use_freezer = true;
	uint64_t t0 = vz_now_ns();
	pid_t init;
	int ret;

	ret = dump_path(c, path, sizeof(path), &is_default, err);
	if (ret == 0)
		ret = ve_open(c->req->veid, true, &ve, err);
	if (ret == 0)
		ret = ve_lock(&ve, 2000, err);
	if (ret < 0)
		return ret;
	if (ve_state(&ve, &init) != VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_NOTRUNNING, EINVAL, "Unable to checkpoint: VE %u is not running",
					 ve.veid);
	criu_of(a, &criu);
	ret = vz_criu_version(&criu, &pd.ver, err);
	if (ret == 0)
		ret = vz_cg_path(&a->cg, ve.veid, "freezer", freezer, sizeof(freezer), err);
	if (ret == 0)
		ret = ve_ckpt_precheck(a, ve.veid, &use_freezer, err);
	if (ret == 0)
		ret = make_img_dir(ve.veid, "dump", dir, sizeof(dir), &img_fd, &work_fd, err);
	if (ret < 0)
		return vz_error_exit_msg(err, VZ_EXIT_CHKPNT, -ret, "Unable to checkpoint VE %u: %s", ve.veid,
					 err->msg);

	vz_ctl_progress(c->conn, "Setting up checkpoint...");
	snprintf(logname, sizeof(logname), "%u.dump.log", ve.veid);
	o.images_dir_fd = img_fd;
	o.work_dir_fd = work_fd;
	o.log_file = logname;
	o.pid = init;
	o.freeze_cgroup = use_freezer ? freezer : NULL;
	o.timeout_s = a->criu_timeout;
	o.tcp_established = true;
	o.nftables_lock = true;
	o.notify = dump_notify;
	o.notify_arg = &pd;
	ret = ve_ckpt_dump_externals(init, &o, err);
	if (ret < 0)
		return ret;
	pd.path = path;
	pd.images_fd = img_fd;
	vz_ctl_progress(c->conn, "Checkpointing VE %u ...", ve.veid);
	ret = vz_criu_dump(&criu, &o, err);
	vz_rm_rf(dir);
	if (ret < 0 || !pd.packed) {
		struct vz_err e2 = { 0 };

		if (pd.err.msg[0] && !pd.packed)
			snprintf(err->msg, sizeof(err->msg), "%s", pd.err.msg);
		/* Written, but CRIU failed after (or was killed): the VE runs
		 * on, and a dump of a past state must not be resumed later. */
		if (pd.packed)
			unlink(path);
		/* CRIU resumes the tasks when it fails; make sure of it. */
		if (ve_state(&ve, &init) == VE_STATE_RUNNING && vz_cg_thaw(&a->cg, ve.veid, &e2) < 0)
			pr_warn("VE %u: %s", ve.veid, e2.msg);
		return vz_error_exit_msg(err, VZ_EXIT_CHKPNT, ret < 0 ? -ret : EIO,
					 "Checkpointing failed for VE %u: %s (log: %s/%s)", ve.veid,
					 err->msg[0] ? err->msg : "unknown error",
					 vz_path(freezer, sizeof(freezer), VZ_DUMP_DIR), logname);
	}
	/* CRIU has killed the tasks; remove the rest of the running VE. */
	ve_kill(a, ve.veid, 0);
	ret = ve_teardown(a, &ve, err);
	if (ret < 0)
		pr_warn("VE %u: after checkpoint: %s", ve.veid, err->msg);
	vz_err_clear(err);
	pr_info("VE %u: checkpointed to %s in %llu ms (%u files, %llu bytes, %llu on disk)", ve.veid, path,
		(unsigned long long)((vz_now_ns() - t0) / 1000000), pd.st.nfiles, (unsigned long long)pd.st.raw_bytes,
		(unsigned long long)pd.st.wire_bytes);
	vz_ctl_progress(c->conn, "Dump file: %s (%llu bytes, %llu before compression)", path,
			(unsigned long long)pd.st.wire_bytes + VZ_DUMP_HDR_SIZE, (unsigned long long)pd.st.raw_bytes);
	vz_ctl_progress(c->conn, "Checkpointing completed successfully");
	return 0;
}

/* CRIU restores a periodic timerfd that was overdue when the VE froze
 * with it_value 0, which disarms it for good (criu#3162): a VE whose
 * timer ticks faster than a checkpoint takes would stop ticking. Re-arm
 * such timers one period ahead, through a copy of the descriptor. */
static void rearm_timerfds(pid_t pid)
{
	char dir[64];
	_cleanup_closedir_ DIR *d = NULL;
	_cleanup_close_ int pidfd = -1;
	struct dirent *de;

	snprintf(dir, sizeof(dir), "/proc/%d/fdinfo", (int)pid);
	d = opendir(dir);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	while (d && pidfd >= 0 && (de = readdir(d))) {
		char path[128], line[128];
		long long vs = -1, vns = -1, is = 0, ins = 0;
		_cleanup_fclose_ FILE *f = NULL;
		bool tfd = false;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_name[0] == '.' || !(f = fopen(path, "re")))
			continue;
		while (fgets(line, sizeof(line), f)) {
			tfd |= !strncmp(line, "clockid:", 8);
			sscanf(line, "it_value: (%lld, %lld)", &vs, &vns);
			sscanf(line, "it_interval: (%lld, %lld)", &is, &ins);
		}
		if (!tfd || vs != 0 || vns != 0 || (is == 0 && ins == 0))
			continue;
		{
			struct itimerspec its = { { is, ins }, { is, ins } };
			int fd = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name), 0);

			if (fd >= 0 && timerfd_settime(fd, 0, &its, NULL) == 0)
				pr_info("Re-armed periodic timerfd %s of pid %d that CRIU left disarmed", de->d_name,
					(int)pid);
			if (fd >= 0)
				close(fd);
		}
	}
}

static void rearm_ve_timerfds(struct vz_agent *a, unsigned veid)
{
	pid_t *pids = NULL;
	size_t n = 0;

	if (vz_cg_pids(&a->cg, veid, &pids, &n, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			rearm_timerfds(pids[i]);
	free(pids);
}

/* Whether the VE has a veth pair: the condition under which its start
 * makes one (ve_net_start). A VE started without NETIF and without any
 * address has no network device but lo, so its images hold none. */
bool ve_has_veth(const struct ve *ve)
{
	const char *netif = vz_conf_get(&ve->conf, "NETIF");
	const char *ips = vz_conf_get(&ve->conf, "IP_ADDRESS");

	return (netif && *netif) || (ips && *ips);
}

struct restore_ctx {
	struct vz_agent *a;
	unsigned veid;
	bool leave_frozen;
	int frozen;
	const char *host_ifname, *bridge;
};

/* Freeze the restored tree before CRIU lets it run, when asked: a
 * migration's destination holds it until the source says go. Traced and
 * stopped tasks count as frozen, so this holds them at once. */
static int restore_notify(const char *script, pid_t pid, void *arg)
{
	struct restore_ctx *r = arg;
	struct vz_err err = { 0 };

	pr_debug("Restore notify %s (pid %d)", script, (int)pid);
	if (r->leave_frozen && !strcmp(script, "post-restore") && r->host_ifname) {
		/* Held for a migration: nothing of it reaches the network
		 * before the go (not a retransmission, not a reset should the
		 * move be undone); the go attaches it to the bridge again. */
		if (vz_net_bridge_port(r->bridge, r->host_ifname, false, &err) < 0) {
			pr_err("VE %u: %s", r->veid, err.msg);
			return -1;
		}
		return 0;
	}
	if (!r->leave_frozen || strcmp(script, "pre-resume"))
		return 0;
	if (vz_cg_freeze(&r->a->cg, r->veid, 5000, &err) < 0) {
		pr_err("VE %u: %s", r->veid, err.msg);
		return -1;
	}
	r->frozen = 1;
	return 0;
}

/* The prepare's part of restore_userns: the VE's range here, preferring
 * the one it had, and the idmapped root of that range. */
static int prepare_idroot(struct vz_agent *a, struct ve *ve, uint32_t dumped, struct ve_restore_prep *p,
			  struct vz_err *err)
{
	uint32_t id = 0;
	int ret = ve_userns_assign(a, ve, dumped, &id, err);

	if (ret == 0)
		ret = ve_idroot_get(ve, id, p->idroot, sizeof(p->idroot), err);
	if (ret < 0)
		return ret;
	p->userns_id = id;
	return 0;
}

/* A VE whose images hold a user namespace is restored in one with the range
 * of ids this host gives it (its own, else the one the images name when
 * free here, else another, the images then moved to it), its root seen
 * through an idmapped mount of that range: the one the prepare made when
 * it guessed that the images hold a user namespace, else made now. */
static int restore_userns(struct vz_agent *a, struct ve *ve, struct ve_restore_prep *p, int img_fd,
			  struct vz_criu_opts *o, struct vz_err *err)
{
	uint32_t dumped = 0, id;
	int ret = vz_userns_img_root(img_fd, &dumped, err);

	if (ret <= 0 && p->userns_id) {
		/* Guessed wrong: the VE ran in the host's namespace. */
		ve_idroot_put(ve);
		p->userns_id = 0;
	}
	if (ret <= 0)
		return ret;
	ret = p->userns_id ? 0 : prepare_idroot(a, ve, dumped, p, err);
	if (ret < 0)
		return ret;
	id = p->userns_id;
	if (id != dumped)
		ret = vz_userns_img_remap(img_fd, dumped, id, VE_USERNS_SIZE, err);
	if (ret == 0)
		ret = vz_userns_img_own(img_fd, id, err);
	if (ret == 0 && ve_dev_externals(true, o->externals, ARRAY_SIZE(o->externals)) < 0)
		ret = vz_error_msg(err, ENOSPC, "Too many external mounts for CRIU");
	if (ret < 0)
		return ret;
	o->root = p->idroot;
	pr_info("VE %u: restored in a user namespace, root is host id %u%s", ve->veid, id,
		id != dumped ? " (the images' ids moved)" : "");
	return 0;
}

/* CRIU's restorer makes, in each task of a lazy restore, a userfaultfd
 * that must handle the kernel's faults too (a write() from a page not
 * there yet); in a user namespace that takes vm.unprivileged_userfaultfd
 * at 1. It is 1 from here until uffd_sysctl_lower, for the restore call
 * only (see sysctl.h for overlapping restores). */
static int uffd_sysctl_raise(unsigned veid, struct vz_sysctl_hold *h, struct vz_err *err)
{
	int ret = vz_sysctl_hold(VZ_SYSCTL_UNPRIV_UFFD, "1", VZ_HOST_RUN_DIR, h, err);

	if (ret < 0)
		return vz_error_wrap(err, "Raise vm.unprivileged_userfaultfd for the lazy restore of VE %u", veid);
	if (!h->first)
		pr_info("Kept vm.unprivileged_userfaultfd at 1 for the lazy restore of VE %u too (another restore "
			"holds it)",
			veid);
	else if (h->recovered)
		pr_info("Raised vm.unprivileged_userfaultfd to 1 for the lazy restore of VE %u (an agent that had "
			"raised it ended without putting back %s, which is put back after)",
			veid, h->orig);
	else if (strcmp(h->orig, "1"))
		pr_info("Raised vm.unprivileged_userfaultfd to 1 for the lazy restore of VE %u (it was %s)", veid,
			h->orig);
	else
		pr_info("Found vm.unprivileged_userfaultfd at 1 already for the lazy restore of VE %u", veid);
	return 0;
}

static void uffd_sysctl_lower(unsigned veid, struct vz_sysctl_hold *h)
{
	double ms = (double)(vz_now_ns() - h->since_ns) / 1e6;
	struct vz_err err = { 0 };
	bool restored = false;

	if (h->fd < 0)
		return;
	if (vz_sysctl_release(h, &restored, &err) < 0)
		pr_warn("VE %u: %s", veid, err.msg);
	else if (restored)
		pr_info("Put vm.unprivileged_userfaultfd back to %s after the lazy restore of VE %u: held %.0f ms",
			h->orig, veid, ms);
	else
		pr_info("Left vm.unprivileged_userfaultfd at 1 for another restore after the lazy restore of VE %u: "
			"held %.0f ms",
			veid, ms);
}

void ve_uffd_sysctl_recover(void)
{
	struct vz_err err = { 0 };
	bool restored = false;
	char orig[32];

	if (vz_sysctl_recover(VZ_SYSCTL_UNPRIV_UFFD, VZ_HOST_RUN_DIR, &restored, orig, sizeof(orig), &err) < 0)
		pr_warn("%s", err.msg);
	else if (restored)
		pr_info("Put vm.unprivileged_userfaultfd back to %s: an agent had raised it for a lazy restore and "
			"ended without putting it back",
			orig);
}

void ve_restore_undo(struct vz_agent *a, struct ve *ve, struct ve_restore_prep *p)
{
	struct vz_err e2 = { 0 };

	if (!p->prepared)
		return;
	ve_idroot_put(ve);
	p->userns_id = 0;
	if (ve_teardown(a, ve, &e2) < 0)
		pr_warn("VE %u: cleanup after a failed restore: %s", ve->veid, e2.msg);
	if (p->has_net && vz_net_veth_del(&p->nif, &e2) < 0)
		pr_warn("VE %u: %s", ve->veid, e2.msg);
	p->prepared = false;
}

int ve_restore_prepare(struct vz_agent *a, struct ve *ve, uint32_t userns_id, bool files_final,
		       struct ve_restore_prep *p, struct vz_err *err)
{
	/* A disk image must not be mounted while a file pass writes it. */
	bool mount = files_final || !disk_is_image(ve);
	uint64_t t0 = vz_now_ns();
	int ret;

	memset(p, 0, sizeof(*p));
	p->has_net = ve_has_veth(ve);
	ret = p->has_net ? ve_netif(ve, a, &p->nif, err) : 0;
	if (ret < 0)
		return ret;
	p->prepared = true;
	if (mount)
		ret = ve_mount(ve, err);
	if (ret == 0)
		ret = vz_cg_create(&a->cg, ve->veid, err);
	if (ret == 0)
		ret = res_apply(&a->cg, ve->veid, &ve->conf, err);
	if (ret == 0 && p->has_net)
		ret = vz_net_bridge_ensure(p->nif.bridge, err);
	/* CRIU puts the veth it makes on the bridge and lets the VE run: its
	 * filter must be there first. */
	if (ret == 0 && p->has_net)
		ret = ve_net_filter(a, ve, &p->nif, err);
	if (ret == 0 && mount && userns_id)
		ret = prepare_idroot(a, ve, userns_id, p, err);
	if (ret < 0) {
		ve_restore_undo(a, ve, p);
		return ret;
	}
	pr_debug("VE %u: prepared the restore in %.1f ms%s", ve->veid, (double)(vz_now_ns() - t0) / 1e6,
		 mount ? "" : " (its disk image is mounted at the restore)");
	return 0;
}

int ve_restore_run(struct vz_agent *a, struct ve *ve, struct ve_restore_prep *p, int img_fd, int work_fd,
		   const char *logname, bool leave_frozen, bool lazy, pid_t *pidp, struct vz_err *err)
{
	struct restore_ctx rc = { .a = a, .veid = ve->veid, .leave_frozen = leave_frozen };
	struct vz_criu_opts o = { 0 };
	struct vz_sysctl_hold uffd_hold = { .fd = -1 };
	struct vz_criu criu;
	char cgroot[128], ext[96];
	pid_t pid = 0;
	int ret;

	if (!p->prepared)
		return vz_error_msg(err, EINVAL, "Restore of VE %u run without its prepare", ve->veid);
	criu_of(a, &criu);
	/* Idempotent: only a disk image the prepare left is mounted now. */
	ret = ve_mount(ve, err);
	if (ret < 0)
		goto fail;
	snprintf(cgroot, sizeof(cgroot), "/%s/%u", a->cg.base, ve->veid);
	/* CRIU looks up the host end of every external veth it is given,
	 * whether or not the images hold that device: a VE that has none must
	 * be given none. */
	if (p->has_net) {
		snprintf(ext, sizeof(ext), "veth[%s]:%s@%s", p->nif.ifname, p->nif.host_ifname, p->nif.bridge);
		o.externals[0] = ext;
		rc.host_ifname = p->nif.host_ifname;
		rc.bridge = p->nif.bridge;
	}
	o.images_dir_fd = img_fd;
	o.work_dir_fd = work_fd;
	o.log_file = logname;
	o.root = ve->root;
	ret = restore_userns(a, ve, p, img_fd, &o, err);
	if (ret < 0)
		goto fail;
	o.cgroup_root = cgroot;
	o.tcp_established = true;
	o.lazy_pages = lazy;
	o.timeout_s = a->criu_timeout;
	o.notify = restore_notify;
	o.notify_arg = &rc;
	if (lazy && o.root == p->idroot) {
		ret = uffd_sysctl_raise(ve->veid, &uffd_hold, err);
		if (ret < 0)
			goto fail;
	}
	ret = vz_criu_restore(&criu, &o, &pid, err);
	ve_idroot_put(ve);
	p->userns_id = 0;
	uffd_sysctl_lower(ve->veid, &uffd_hold);
	if (ret == 0 && leave_frozen && !rc.frozen)
		ret = vz_error_msg(err, EIO, "CRIU restored VE %u without a pre-resume call to freeze it", ve->veid);
	if (ret == 0)
		ret = ve_write_pidfile(ve, pid, err);
	if (ret < 0)
		goto fail;
	rearm_ve_timerfds(a, ve->veid);
	if (p->has_net) {
		struct vz_err e2 = { 0 };

		if (vz_net_host_mac(&p->nif, &e2) < 0)
			pr_warn("VE %u: %s", ve->veid, e2.msg);
	}
	/* The running VE holds it all now. */
	p->prepared = false;
	*pidp = pid;
	return 0;
fail : {
	struct vz_err e2 = { 0 };

	/* Frozen tasks die only once thawed. */
	vz_cg_thaw(&a->cg, ve->veid, &e2);
	ve_kill(a, ve->veid, pid);
	ve_restore_undo(a, ve, p);
}
	return ret;
}

int ve_restore_images(struct vz_agent *a, struct ve *ve, int img_fd, int work_fd, const char *logname,
		      bool leave_frozen, bool lazy, pid_t *pidp, struct vz_err *err)
{
	struct ve_restore_prep p;
	int ret = ve_restore_prepare(a, ve, 0, true, &p, err);

	return ret < 0 ? ret : ve_restore_run(a, ve, &p, img_fd, work_fd, logname, leave_frozen, lazy, pidp, err);
}

int op_restore(struct vz_call *c, struct vz_err *err)
{
	struct vz_agent *a = c->agent;
	_cleanup_ve_ struct ve ve;
	_cleanup_close_ int img_fd = -1, work_fd = -1;
	struct vz_criu_version ver;
	struct vz_dump_hdr h;
	struct vz_img_stats st;
	struct vz_criu criu;
	char path[PATH_MAX], dir[PATH_MAX], logname[64];
	bool is_default;
	uint64_t t0 = vz_now_ns();
	pid_t pid = 0;
	int ret;

	ret = dump_path(c, path, sizeof(path), &is_default, err);
	if (ret == 0)
		ret = ve_open(c->req->veid, true, &ve, err);
	if (ret == 0)
		ret = ve_lock(&ve, 2000, err);
	if (ret < 0)
		return ret;
	if (ve_state(&ve, NULL) == VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_RUNNING, EBUSY, "Unable to restore: VE %u is already running",
					 ve.veid);
	if (!vz_exists(path))
		return vz_error_exit_msg(err, VZ_EXIT_RESTORE, ENOENT, "Unable to restore VE %u: no dump file %s",
					 ve.veid, path);
	criu_of(a, &criu);
	ret = vz_criu_version(&criu, &ver, err);
	if (ret < 0)
		return vz_error_exit_msg(err, VZ_EXIT_RESTORE, -ret, "Unable to restore VE %u: %s", ve.veid, err->msg);
	/* Everything about the file is checked before anything is made. */
	vz_ctl_progress(c->conn, "Checking the dump file %s", path);
	ret = vz_dumpfile_verify(path, ve.veid, &ver, &h, err);
	if (ret < 0)
		return vz_error_exit_msg(err, VZ_EXIT_RESTORE, -ret, "Unable to restore VE %u: %s", ve.veid, err->msg);
	ret = make_img_dir(ve.veid, "restore", dir, sizeof(dir), &img_fd, &work_fd, err);
	if (ret < 0)
		return vz_error_exit_msg(err, VZ_EXIT_RESTORE, -ret, "Unable to restore VE %u: %s", ve.veid, err->msg);
	ret = vz_dumpfile_unpack(path, img_fd, &st, err);
	if (ret == 0) {
		vz_ctl_progress(c->conn, "Restoring VE %u ...", ve.veid);
		snprintf(logname, sizeof(logname), "%u.restore.log", ve.veid);
		ret = ve_restore_images(a, &ve, img_fd, work_fd, logname, false, false, &pid, err);
	}
	vz_rm_rf(dir);
	if (ret < 0)
		return vz_error_exit_msg(err, VZ_EXIT_RESTORE, -ret, "Restoring failed for VE %u: %s", ve.veid,
					 err->msg);
	/* The default dump is used up; one the user named stays theirs. */
	if (is_default)
		unlink(path);
	pr_info("VE %u: restored from %s in %llu ms, init is pid %d", ve.veid, path,
		(unsigned long long)((vz_now_ns() - t0) / 1000000), (int)pid);
	vz_ctl_progress(c->conn, "Restoring completed successfully");
	return 0;
}

int op_ckpt_check(struct vz_call *c, struct vz_err *err)
{
	struct vz_agent *a = c->agent;
	struct vz_ckpt_report r;
	struct vz_criu criu;
	char freezer[PATH_MAX] = "", dir[PATH_MAX];
	_cleanup_close_ int work_fd = -1;
	const char *fz = NULL;

	criu_of(a, &criu);
	for (size_t i = 0; i < a->cg.nhier; i++)
		if (a->cg.mode == VZ_CG_V2 || strstr(a->cg.hier[i].name, "freezer")) {
			snprintf(freezer, sizeof(freezer), "%s", a->cg.hier[i].path);
			fz = freezer;
			break;
		}
	vz_path(dir, sizeof(dir), VZ_DUMP_DIR);
	if (vz_mkdir_p(dir, 0700) < 0)
		return vz_error(err, errno, "Create %s", dir);
	work_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (work_fd < 0)
		return vz_error(err, errno, "Open %s", dir);
	vz_ckpt_probe(&criu, work_fd, fz, &r);
	/* Not CRIU's, but what a restored or moved VE gets back. */
	if (a->netfilter_off[0])
		vz_ctl_progress(c->conn, "no   VE network filter: unsupported: %s", a->netfilter_off);
	else
		vz_ctl_progress(c->conn, "yes  VE network filter: nftables bridge family");
	for (size_t i = 0; i < r.n; i++) {
		const struct vz_feat *f = &r.feat[i];
		const char *state = f->state == VZ_FEAT_YES ? "yes" : f->state == VZ_FEAT_WARN ? "warn" : "no";

		vz_ctl_progress(c->conn, "%-4s %s: %s", state, f->name, f->detail);
	}
	if (!strcmp(r.tracker, "uffd-wp"))
		vz_ctl_progress(c->conn, "Live migration: memory pre-copy with userfaultfd write-protect");
	else if (!strcmp(r.tracker, "soft-dirty"))
		vz_ctl_progress(c->conn, "Live migration: memory pre-copy with CRIU pre-dump (soft-dirty)");
	else
		vz_ctl_progress(c->conn, "Live migration: stop-and-copy only (no dirty-memory tracking)");
	if (!r.can_checkpoint)
		return vz_error_exit_msg(err, VZ_EXIT_CHKPNT, ENOTSUP,
					 "This host cannot checkpoint VEs: see the lines above");
	vz_ctl_progress(c->conn, "This host can checkpoint and restore VEs");
	return 0;
}
