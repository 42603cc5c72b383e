/* Starting and stopping VEs: clone of the VE's init into new pid, mount,
 * uts, ipc, net and cgroup namespaces, its network and cgroups, shutdown
 * with a timeout, cleanup after an init that is gone, the start of the
 * ONBOOT VEs when the host's agent starts, and the start, stop and restart
 * requests. */
#define LOG_PREFIX "start: "
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "migrate/migrate.h"
#include "net.h"
#include "paths.h"
#include "resources.h"
#include "userns.h"
#include "util.h"
#include "ve_confine.h"
#include "ve_ops.h"
#include "ve_rootfs.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Wait until pid has exited, at most timeout_ms (-1: forever). 0 when
 * gone, -ETIMEDOUT otherwise. Works for processes that are not our
 * children. */
static int wait_gone(pid_t pid, int timeout_ms)
{
	_cleanup_close_ int pfd = pidfd_open_(pid);
	struct pollfd p;

	if (pfd < 0)
		return errno == ESRCH ? 0 : -errno;
	p.fd = pfd;
	p.events = POLLIN;
	for (;;) {
		int r = poll(&p, 1, timeout_ms);

		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* How init is made: host_id is the host id of the VE's root when the VE
 * has a user namespace of its own (0: it shares the host's), idmapped
 * the detached idmapped tree of its root then (-1 otherwise). */
struct init_spec {
	uint32_t host_id;
	int idmapped;
};

/* Child side of the clone: wait for the go, build the root, exec init. */
static int ve_init_child(struct ve *ve, const struct init_spec *spec, int go_fd, int err_fd)
{
	struct vz_err err = { 0 };
	char c;
	int null;

	if (read(go_fd, &c, 1) != 1)
		_exit(1); /* the agent gave up on this start */
	close(go_fd);
	if (unshare(CLONE_NEWCGROUP) != 0) {
		vz_error(&err, errno, "Create cgroup namespace");
		goto fail;
	}
	if (ve_rootfs_enter(ve->root, spec->idmapped, &err) < 0)
		goto fail;
	if (spec->host_id && ve_become_root(&err) < 0)
		goto fail;
	if (ve_rootfs_setup(spec->host_id != 0, &err) < 0)
		goto fail;
	ve_write_guest_files(&ve->conf);
	null = open("/dev/null", O_RDWR);
	if (null < 0) {
		vz_error(&err, errno, "Open /dev/null");
		goto fail;
	}
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	/* No descriptor of the agent may leak into the VE. */
	syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
	fcntl(err_fd, F_SETFD, FD_CLOEXEC);
	setsid();
	if (ve_confine_self(&err) < 0)
		goto fail;
	execve("/sbin/init", (char *[]){ "init", NULL }, (char **)ve_default_env());
	vz_error(&err, errno, "Run /sbin/init");
fail:
	if (write(err_fd, err.msg, strlen(err.msg)) < 0)
		_exit(2);
	_exit(1);
}

void ve_kill(struct vz_agent *a, unsigned veid, pid_t init)
{
	struct vz_err err = { 0 };

	if (init > 0)
		kill(init, SIGKILL);
	if (init > 0 && wait_gone(init, 5000) < 0)
		pr_warn("VE %u: init %d did not exit after SIGKILL", veid, (int)init);
	/* Processes that joined the VE's cgroup from outside its pid
	 * namespace (helpers of exec) do not die with its init. */
	if (vz_cg_exists(&a->cg, veid) && vz_cg_kill_all(&a->cg, veid, 5000, &err) < 0)
		pr_warn("VE %u: %s", veid, err.msg);
}

/* The host end of a VE's veth goes with the VE's network namespace, but
 * the kernel frees a namespace in its own time, after the last task is
 * gone: remove it now, so that a stopped VE leaves nothing behind. */
static void veth_gone(const struct ve *ve)
{
	const char *s = vz_conf_get(&ve->conf, "NETIF");
	struct vz_err e = { 0 };
	struct vz_netif nif;

	if (!s || !*s || vz_netif_parse(s, &nif, &e) < 0)
		return;
	if (vz_net_veth_del(&nif, &e) < 0)
		pr_debug("VE %u: %s", ve->veid, e.msg);
}

int ve_teardown(struct vz_agent *a, struct ve *ve, struct vz_err *err)
{
	int ret = 0;

	ve_remove_pidfile(ve->veid);
	for (int i = 0; i < 100 && vz_cg_exists(&a->cg, ve->veid); i++) {
		vz_err_clear(err);
		ret = vz_cg_destroy(&a->cg, ve->veid, err);
		if (ret != -EBUSY)
			break;
		usleep(20 * 1000);
	}
	if (ret < 0)
		return ret;
	veth_gone(ve);
	ve_net_filter_gone(a, ve);
	return ve_umount(ve, err);
}

/* After the clone, in the agent: put init in the VE's cgroups and
 * network, let it go, and learn whether it reached exec. go_w and err_r
 * are the agent's ends of the two pipes. */
static int release_init(struct vz_agent *a, struct ve *ve, const struct init_spec *spec, pid_t init, int go_w,
			int err_r, struct vz_err *err)
{
	char msg[1024];
	ssize_t n;
	int ret = 0;

	if (spec->host_id)
		ret = ve_userns_write_maps(init, spec->host_id, err);
	if (ret == 0)
		ret = vz_cg_attach(&a->cg, ve->veid, init, err);
	if (ret == 0)
		ret = ve_net_start(a, ve, init, err);
	if (ret < 0)
		return ret;
	if (write(go_w, "g", 1) != 1)
		return vz_error(err, errno, "Release the VE's init");
	/* EOF means init was executed; bytes are the child's error. */
	n = read(err_r, msg, sizeof(msg) - 1);
	if (n > 0) {
		msg[n] = '\0';
		return vz_error_msg(err, EIO, "%s", msg);
	}
	return ve_write_pidfile(ve, init, err);
}

/* Clone init into its namespaces and bring it up to a running /sbin/init.
 * The VE's cgroups exist and hold its limits. On failure init is dead and
 * reaped. */
static int spawn_init(struct vz_agent *a, struct ve *ve, const struct init_spec *spec, pid_t *pinit, struct vz_err *err)
{
	_cleanup_close_ int go_r = VZ_FD_INIT, go_w = VZ_FD_INIT, err_r = VZ_FD_INIT, err_w = VZ_FD_INIT;
	_cleanup_pid_ pid_t init = 0;
	int go[2], errp[2], ret;

	if (pipe2(go, O_CLOEXEC) != 0)
		return vz_error(err, errno, "Create pipes");
	go_r = go[0];
	go_w = go[1];
	if (pipe2(errp, O_CLOEXEC) != 0)
		return vz_error(err, errno, "Create pipes");
	err_r = errp[0];
	err_w = errp[1];
	/* With CLONE_NEWUSER the other namespaces belong to the VE's own
	 * user namespace, and its root holds capabilities only over them. */
	init = (pid_t)syscall(SYS_clone,
			      CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET |
				  (spec->host_id ? CLONE_NEWUSER : 0) | SIGCHLD,
			      NULL, NULL, NULL, NULL);
	if (init < 0)
		return vz_error(err, errno, "Create the VE's namespaces");
	if (init == 0) {
		close(go_w);
		close(err_r);
		ve_init_child(ve, spec, go_r, err_w);
	}
	vz_closep(&go_r);
	vz_closep(&err_w);
	ret = release_init(a, ve, spec, init, go_w, err_r, err);
	if (ret < 0) {
		ve_kill(a, ve->veid, init);
		return ret; /* init is reaped on the way out */
	}
	*pinit = steal_pid(&init);
	return 0;
}

/* The user namespace of a VE about to start: its range (given now to a
 * VE that has none) and the idmapped tree of its mounted root. */
static int prepare_userns(struct vz_agent *a, struct ve *ve, struct init_spec *spec, const struct vz_progress *p,
			  struct vz_err *err)
{
	int ret;

	if (!ve_userns_enabled(a, ve))
		return 0;
	ret = ve_userns_assign(a, ve, 0, &spec->host_id, err);
	if (ret < 0)
		return ret;
	spec->idmapped = ve_idmapped_tree(ve->root, spec->host_id, err);
	if (spec->idmapped < 0)
		return spec->idmapped;
	vz_say(p, "VE root is host uid %u (user namespace, %u ids)", spec->host_id, VE_USERNS_SIZE);
	return 0;
}

int ve_do_start(struct vz_agent *a, struct ve *ve, const struct vz_progress *p, struct vz_err *err)
{
	struct init_spec spec = { .host_id = 0, .idmapped = -EBADF };
	struct vz_err e2 = { 0 };
	char path[PATH_MAX];
	pid_t init = 0;
	int ret;

	vz_say(p, "Starting VE ...");
	ret = ve_mount(ve, err);
	if (ret < 0)
		return ret;
	vz_say(p, "VE is mounted");
	snprintf(path, sizeof(path), "%s/sbin/init", ve->root);
	if (!vz_exists(path)) {
		ret = vz_error_exit_msg(err, VZ_EXIT_BROKEN, ENOENT, "VE %u is broken: no /sbin/init", ve->veid);
		ve_umount(ve, &e2);
		return ret;
	}
	ret = vz_cg_create(&a->cg, ve->veid, err);
	if (ret < 0) {
		ve_umount(ve, &e2);
		return ret;
	}
	/* The VE starts with its saved limits, before its init runs. */
	ret = res_apply(&a->cg, ve->veid, &ve->conf, err);
	if (ret == 0)
		ret = prepare_userns(a, ve, &spec, p, err);
	if (ret == 0)
		ret = spawn_init(a, ve, &spec, &init, err);
	vz_closep(&spec.idmapped);
	if (ret < 0) {
		ve_teardown(a, ve, &e2);
		return vz_error_wrap(err, "Start VE %u", ve->veid);
	}
	/* A generated NETIF (MACs) must stay the same across restarts. */
	if (vz_conf_get(&ve->conf, "NETIF") && ve_save(ve, &e2) < 0)
		pr_warn("VE %u: %s", ve->veid, e2.msg);
	pr_info("VE %u: started, init is pid %d", ve->veid, (int)init);
	vz_say(p, "VE start in progress...");
	return 0;
}

/* Ask init to shut down (the VE's own poweroff, else SIGPWR) and wait for
 * it up to a->stop_timeout seconds: 0 when it is gone, -ETIMEDOUT. */
static int shutdown_init(struct vz_agent *a, struct ve *ve, pid_t init)
{
	uint64_t end = vz_now_ns() + (uint64_t)a->stop_timeout * 1000000000ULL;
	char path[PATH_MAX];
	int ret = -ETIMEDOUT;

	snprintf(path, sizeof(path), "%s/sbin/poweroff", ve->root);
	if (!vz_exists(path))
		kill(init, SIGPWR);
	while (ret == -ETIMEDOUT && vz_now_ns() < end) {
		int left_ms = (int)((end - vz_now_ns()) / 1000000), status = 0;

		if (vz_exists(path)) {
			/* An init still booting may not listen yet (sysvinit's
			 * fifo): ask again until it does or time runs out. */
			struct vz_err err = { 0 };
			pid_t pid = ve_fork_inside(a, ve->veid, init, NULL, "/sbin/poweroff", &err);

			if (pid > 0)
				waitpid(pid, &status, 0);
			if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
				left_ms = left_ms < 500 ? left_ms : 500;
		}
		ret = wait_gone(init, left_ms);
	}
	return ret;
}

int ve_do_stop(struct vz_agent *a, struct ve *ve, pid_t init, bool fast, const struct vz_progress *p,
	       struct vz_err *err)
{
	int ret;

	vz_say(p, "Stopping VE ...");
	if (!fast && shutdown_init(a, ve, init) == -ETIMEDOUT) {
		pr_warn("VE %u: init did not stop in %u s, killing", ve->veid, a->stop_timeout);
		vz_say(p, "Stop timeout: killing VE");
	}
	ve_kill(a, ve->veid, init);
	ret = ve_teardown(a, ve, err);
	if (ret < 0) {
		err->exit_code = VZ_EXIT_STOP;
		return vz_error_wrap(err, "Stop VE %u", ve->veid);
	}
	pr_info("VE %u: stopped", ve->veid);
	vz_say(p, "VE was stopped");
	vz_say(p, "VE is unmounted");
	return 0;
}

static int open_locked(struct vz_call *c, struct ve *ve, struct vz_err *err)
{
	int ret = ve_open(c->req->veid, true, ve, err);

	if (ret == 0)
		ret = ve_lock(ve, 2000, err);
	return ret;
}

/* Why a stopped VE may not start, or 0. */
static int check_startable(struct ve *ve, struct vz_err *err)
{
	const char *disabled;

	if (ve_state(ve, NULL) == VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_RUNNING, EBUSY, "VE %u is already running", ve->veid);
	/* Its config is here from the move's start (and its restore is
	 * prepared), while it runs at the source. */
	if (mig_incoming_pending(ve->veid))
		return vz_error_exit_msg(err, VZ_EXIT_LOCKED, EBUSY, "VE %u is migrating to this host", ve->veid);
	disabled = vz_conf_get(&ve->conf, "DISABLED");
	if (disabled && !strcmp(disabled, "yes"))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EPERM, "VE %u start is disabled (DISABLED=yes)", ve->veid);
	return 0;
}

int op_start(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	struct vz_progress p = vz_ctl_progress_sink(c->conn);
	int ret = open_locked(c, &ve, err);

	if (ret == 0)
		ret = check_startable(&ve, err);
	if (ret < 0)
		return ret;
	return ve_do_start(c->agent, &ve, &p, err);
}

int op_stop(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	struct vz_progress p = vz_ctl_progress_sink(c->conn);
	pid_t init;
	int ret = open_locked(c, &ve, err);

	if (ret < 0)
		return ret;
	if (ve_state(&ve, &init) != VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_NOTRUNNING, EINVAL, "Unable to stop: VE %u is not running",
					 ve.veid);
	return ve_do_stop(c->agent, &ve, init, c->req->fast, &p, err);
}

int op_restart(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	struct vz_progress p = vz_ctl_progress_sink(c->conn);
	pid_t init;
	int ret = open_locked(c, &ve, err);

	if (ret < 0)
		return ret;
	vz_say(&p, "Restarting VE");
	if (ve_state(&ve, &init) == VE_STATE_RUNNING) {
		ret = ve_do_stop(c->agent, &ve, init, c->req->fast, &p, err);
		if (ret < 0)
			return ret;
	}
	return ve_do_start(c->agent, &ve, &p, err);
}

int ve_cleanup_dead(struct vz_agent *a, unsigned veid, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	pid_t init;
	int ret = ve_open(veid, false, &ve, err);

	if (ret == 0)
		ret = ve_lock(&ve, 120 * 1000, err);
	if (ret < 0)
		return ret;
	if (ve_state(&ve, &init) == VE_STATE_RUNNING)
		return 0; /* restarted meanwhile */
	/* Without its pid file the VE was cleaned up (stopped, destroyed, or
	 * made again) while we waited for the lock: its mounts are not ours. */
	if (ve_read_pidfile(veid, &init, &(unsigned long long){ 0 }) != 0)
		return 0;
	pr_info("VE %u: init is gone, cleaning up", veid);
	ve_kill(a, veid, 0);
	return ve_teardown(a, &ve, err);
}

/* Start one ONBOOT VE, as `vzctl start` would; logs what happened. */
static void start_onboot_ve(struct vz_agent *a, unsigned veid)
{
	_cleanup_ve_ struct ve ve;
	struct vz_err err = { 0 };
	const char *onboot;
	int ret = ve_open(veid, true, &ve, &err);

	if (ret < 0)
		return;
	onboot = vz_conf_get(&ve.conf, "ONBOOT");
	if (!onboot || strcmp(onboot, "yes"))
		return;
	ret = ve_lock(&ve, 2000, &err);
	if (ret == 0 && ve_state(&ve, NULL) == VE_STATE_RUNNING)
		return; /* adopted: it kept running while no agent ran */
	if (ret == 0)
		ret = check_startable(&ve, &err);
	if (ret == 0)
		ret = ve_do_start(a, &ve, NULL, &err);
	if (ret < 0)
		pr_err("VE %u: not started at boot (ONBOOT=yes): %s", veid, err.msg);
	else
		pr_info("VE %u: started at boot (ONBOOT=yes)", veid);
}

void ve_start_onboot(struct vz_agent *a)
{
	_cleanup_free_ unsigned *veids = NULL;
	struct vz_err err = { 0 };
	size_t n = 0;

	if (ve_list(&veids, &n, &err) < 0) {
		pr_err("Start at boot: %s", err.msg);
		return;
	}
	/* In VEID order, one after the other, as OpenVZ's vz service. */
	for (size_t i = 0; i < n; i++)
		start_onboot_ve(a, veids[i]);
	pr_info("Start at boot: done (%zu VE configs looked at)", n);
}
