/* Starting and stopping VEs: clone of the VE's init into new pid, mount,
 * uts, ipc, net and cgroup namespaces, its network and cgroups, shutdown
 * with a timeout, and cleanup after an init that is gone. Also the helper
 * that runs code inside a running VE (exec, enter, set). */
#define LOG_PREFIX "start: "
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "net.h"
#include "paths.h"
#include "resources.h"
#include "util.h"
#include "ve.h"
#include "ve_rootfs.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static char *const ve_env[] = {
	"container=vzcluster", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root", "TERM=linux", NULL,
};

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

/* Child side of the clone: wait for the go, build the root, exec init. */
static int ve_init_child(struct ve *ve, int go_fd, int err_fd)
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
	if (ve_rootfs_setup(ve->root, &err) < 0)
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
	execve("/sbin/init", (char *[]){ "init", NULL }, ve_env);
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
	return ve_umount(ve, err);
}

int ve_do_start(struct vz_call *c, struct ve *ve, struct vz_err *err)
{
	struct vz_agent *a = c->agent;
	char path[PATH_MAX], msg[1024];
	int go[2] = { -1, -1 }, errp[2] = { -1, -1 }, ret;
	pid_t init;
	ssize_t n;

	vz_ctl_progress(c->conn, "Starting VE ...");
	ret = ve_mount(ve, err);
	if (ret < 0)
		return ret;
	vz_ctl_progress(c->conn, "VE is mounted");
	snprintf(path, sizeof(path), "%s/sbin/init", ve->root);
	if (!vz_exists(path)) {
		ret = vz_error_exit_msg(err, VZ_EXIT_BROKEN, ENOENT, "VE %u is broken: no /sbin/init", ve->veid);
		goto on_umount;
	}
	ret = vz_cg_create(&a->cg, ve->veid, err);
	if (ret < 0)
		goto on_umount;
	/* The VE starts with its saved limits, before its init runs. */
	ret = res_apply(&a->cg, ve->veid, &ve->conf, err);
	if (ret < 0)
		goto on_teardown;
	if (pipe2(go, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
		ret = vz_error(err, errno, "Create pipes");
		goto on_teardown;
	}
	init = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
						 CLONE_NEWNET | SIGCHLD,
			      NULL, NULL, NULL, NULL);
	if (init < 0) {
		ret = vz_error(err, errno, "Create the VE's namespaces");
		goto on_teardown;
	}
	if (init == 0) {
		close(go[1]);
		close(errp[0]);
		ve_init_child(ve, go[0], errp[1]);
	}
	close(go[0]);
	close(errp[1]);
	go[0] = errp[1] = -1;

	ret = vz_cg_attach(&a->cg, ve->veid, init, err);
	if (ret == 0)
		ret = ve_net_start(a, ve, init, err);
	if (ret < 0)
		goto on_kill;
	if (write(go[1], "g", 1) != 1) {
		ret = vz_error(err, errno, "Release the VE's init");
		goto on_kill;
	}
	/* EOF means init was executed; bytes are the child's error. */
	n = read(errp[0], msg, sizeof(msg) - 1);
	if (n > 0) {
		msg[n] = '\0';
		ret = vz_error_msg(err, EIO, "%s", msg);
		goto on_kill;
	}
	ret = ve_write_pidfile(ve, init, err);
	if (ret < 0)
		goto on_kill;
	/* A generated NETIF (MACs) must stay the same across restarts. */
	if (vz_conf_get(&ve->conf, "NETIF"))
		ve_save(ve, err);
	close(go[1]);
	close(errp[0]);
	pr_info("VE %u: started, init is pid %d", ve->veid, (int)init);
	vz_ctl_progress(c->conn, "VE start in progress...");
	return 0;

on_kill:
	ve_kill(a, ve->veid, init);
	waitpid(init, NULL, 0);
on_teardown:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	{
		struct vz_err e2 = { 0 };

		ve_teardown(a, ve, &e2);
	}
	return vz_error_wrap(err, "Start VE %u", ve->veid);
on_umount:
	{
		struct vz_err e2 = { 0 };

		ve_umount(ve, &e2);
	}
	return ret;
}

/* Ask init to shut down (the VE's own poweroff, else SIGPWR), wait, kill. */
int ve_do_stop(struct vz_call *c, struct ve *ve, pid_t init, struct vz_err *err)
{
	struct vz_agent *a = c->agent;
	int ret;

	vz_ctl_progress(c->conn, "Stopping VE ...");
	if (!c->req->fast) {
		char path[PATH_MAX];

		uint64_t end = vz_now_ns() + (uint64_t)a->stop_timeout * 1000000000ULL;

		snprintf(path, sizeof(path), "%s/sbin/poweroff", ve->root);
		if (!vz_exists(path))
			kill(init, SIGPWR);
		ret = -ETIMEDOUT;
		while (ret == -ETIMEDOUT && vz_now_ns() < end) {
			int left_ms = (int)((end - vz_now_ns()) / 1000000), status = 0;

			if (vz_exists(path)) {
				/* An init still booting may not listen yet (sysvinit's
				 * fifo): ask again until it does or time runs out. */
				pid_t pid = ve_fork_inside(a, ve->veid, init, NULL, "/sbin/poweroff", err);

				if (pid > 0)
					waitpid(pid, &status, 0);
				if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
					left_ms = left_ms < 500 ? left_ms : 500;
			}
			ret = wait_gone(init, left_ms);
		}
		if (ret == -ETIMEDOUT) {
			pr_warn("VE %u: init did not stop in %u s, killing", ve->veid, a->stop_timeout);
			vz_ctl_progress(c->conn, "Stop timeout: killing VE");
		}
	}
	ve_kill(a, ve->veid, init);
	ret = ve_teardown(a, ve, err);
	if (ret < 0)
		return vz_error_exit_msg(err, VZ_EXIT_STOP, -ret, "Stop VE %u: %s", ve->veid, err->msg);
	pr_info("VE %u: stopped", ve->veid);
	vz_ctl_progress(c->conn, "VE was stopped");
	vz_ctl_progress(c->conn, "VE is unmounted");
	return 0;
}

static int open_locked(struct vz_call *c, struct ve *ve, struct vz_err *err)
{
	int ret = ve_open(c->req->veid, true, ve, err);

	if (ret == 0)
		ret = ve_lock(ve, 2000, err);
	return ret;
}

int op_start(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	const char *disabled;
	int ret = open_locked(c, &ve, err);

	if (ret < 0)
		return ret;
	if (ve_state(&ve, NULL) == VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_RUNNING, EBUSY, "VE %u is already running", ve.veid);
	disabled = vz_conf_get(&ve.conf, "DISABLED");
	if (disabled && !strcmp(disabled, "yes"))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EPERM, "VE %u start is disabled (DISABLED=yes)", ve.veid);
	return ve_do_start(c, &ve, err);
}

int op_stop(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	pid_t init;
	int ret = open_locked(c, &ve, err);

	if (ret < 0)
		return ret;
	if (ve_state(&ve, &init) != VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_NOTRUNNING, EINVAL, "Unable to stop: VE %u is not running",
				     ve.veid);
	return ve_do_stop(c, &ve, init, err);
}

int op_restart(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	pid_t init;
	int ret = open_locked(c, &ve, err);

	if (ret < 0)
		return ret;
	vz_ctl_progress(c->conn, "Restarting VE");
	if (ve_state(&ve, &init) == VE_STATE_RUNNING) {
		ret = ve_do_stop(c, &ve, init, err);
		if (ret < 0)
			return ret;
	}
	return ve_do_start(c, &ve, err);
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
	pr_info("VE %u: init is gone, cleaning up", veid);
	ve_kill(a, veid, 0);
	return ve_teardown(a, &ve, err);
}

struct inside_args {
	int (*fn)(void *);
	void *arg;
};

pid_t ve_fork_inside(struct vz_agent *a, unsigned veid, pid_t init, int (*fn)(void *), void *arg,
		     struct vz_err *err)
{
	/* "time" too: a restored VE lives in a time namespace CRIU made,
	 * and a process outside it could not be checkpointed with it. */
	static const char *const ns_names[] = { "cgroup", "ipc", "uts", "net", "pid", "time", "mnt" };
	int nsfd[7];
	pid_t pid;

	for (size_t i = 0; i < ARRAY_SIZE(ns_names); i++) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)init, ns_names[i]);
		nsfd[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (nsfd[i] < 0) {
			int e = errno;

			while (i-- > 0)
				close(nsfd[i]);
			return vz_error(err, e, "Open %s of VE %u", path, veid);
		}
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;

		for (size_t i = 0; i < ARRAY_SIZE(ns_names); i++)
			close(nsfd[i]);
		return vz_error(err, e, "Fork");
	}
	if (pid > 0) {
		for (size_t i = 0; i < ARRAY_SIZE(ns_names); i++)
			close(nsfd[i]);
		return pid;
	}

	/* Child: join the VE, then fork once more to be inside its pid
	 * namespace. Dies with its parent, and kills what it runs when so. */
	struct vz_err e = { 0 };
	pid_t inner;
	int status;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (vz_cg_attach(&a->cg, veid, getpid(), &e) < 0) {
		pr_err("VE %u: %s", veid, e.msg);
		_exit(126);
	}
	for (size_t i = 0; i < ARRAY_SIZE(ns_names); i++) {
		if (setns(nsfd[i], 0) != 0) {
			pr_perror("Join the %s namespace of VE %u", ns_names[i], veid);
			_exit(126);
		}
		close(nsfd[i]);
	}
	inner = fork();
	if (inner < 0)
		_exit(126);
	if (inner == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* A session led from outside the VE's pid namespace would
		 * outlive our helper in what it leaves running, and CRIU
		 * cannot dump such a VE. */
		setsid();
		if (chdir("/") != 0)
			_exit(126);
		if (!fn) {
			/* A plain program: arg is its path. */
			execve(arg, (char *[]){ arg, NULL }, ve_env);
			_exit(127);
		}
		_exit(fn(arg));
	}
	while (waitpid(inner, &status, 0) < 0)
		if (errno != EINTR)
			_exit(126);
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	_exit(128 + WTERMSIG(status));
}

char *const *ve_default_env(void)
{
	return ve_env;
}
