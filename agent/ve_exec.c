/* Running code in a VE: ve_fork_inside (a process that joins a running
 * VE's namespaces and cgroups), `vzctl exec` with the client's own stdin,
 * stdout and stderr (passed over the socket), and `vzctl enter` with a
 * pty allocated from the VE's devpts whose master goes to the client. */
#define LOG_PREFIX "exec: "
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "userns.h"
#include "util.h"
#include "ve_confine.h"
#include "ve_ops.h"

pid_t ve_fork_inside(struct vz_agent *a, unsigned veid, pid_t init, int (*fn)(void *), void *arg, struct vz_err *err)
{
	/* "time" too: a restored VE lives in a time namespace CRIU made,
	 * and a process outside it could not be checkpointed with it. */
	/* The user namespace last: joined as the host's root, each other
	 * one is ours to enter; then the VE's ids are taken in it. A VE that
	 * shares the host's has the agent's own, and joining that is refused. */
	static const char *const ns_names[] = { "cgroup", "ipc", "uts", "net", "pid", "time", "mnt", "user" };
	int nsfd[8];
	bool own_userns = ve_pid_has_userns(init);
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
		bool skip = !strcmp(ns_names[i], "user") && !own_userns;

		if (!skip && setns(nsfd[i], 0) != 0) {
			pr_perror("Join the %s namespace of VE %u", ns_names[i], veid);
			_exit(126);
		}
		close(nsfd[i]);
	}
	if (own_userns && ve_become_root(&e) < 0) {
		pr_err("VE %u: %s", veid, e.msg);
		_exit(126);
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
		if (ve_confine_self(&e) < 0) {
			pr_err("VE %u: %s", veid, e.msg);
			_exit(126);
		}
		if (!fn) {
			/* A plain program: arg is its path. */
			execve(arg, (char *[]){ arg, NULL }, (char **)ve_default_env());
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

struct exec_args {
	struct vz_call *call;
	char *cmd;
};

const char *ve_guest_shell(void)
{
	return access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
}

/* Inside the VE: the client's descriptors become 0, 1, 2. */
static int exec_inside(void *arg)
{
	struct exec_args *x = arg;
	const char *sh = ve_guest_shell();

	for (int i = 0; i < 3; i++)
		if (dup2(x->call->fds[i], i) < 0)
			return 126;
	syscall(SYS_close_range, 3, ~0U, 0);
	execve(sh, (char *[]){ (char *)sh, "-c", x->cmd, NULL }, (char **)ve_default_env());
	dprintf(2, "vzctl: Cannot run %s in the VE: %s\n", sh, strerror(errno));
	return 127;
}

/* Inside the VE: a pty from its devpts; the master goes to the client. */
static int enter_inside(void *arg)
{
	struct exec_args *x = arg;
	vz_request *req = x->call->req;
	char slave[128], term[128];
	struct winsize ws = { 0 };
	int master, status;
	pid_t sh_pid;

	master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 ||
	    ptsname_r(master, slave, sizeof(slave)) != 0) {
		pr_perror("Allocate a pty in the VE");
		return 126;
	}
	if (req->has_winsize_rows && req->has_winsize_cols) {
		ws.ws_row = (unsigned short)req->winsize_rows;
		ws.ws_col = (unsigned short)req->winsize_cols;
		ioctl(master, TIOCSWINSZ, &ws);
	}
	sh_pid = fork();
	if (sh_pid < 0)
		return 126;
	if (sh_pid == 0) {
		const char *sh = ve_guest_shell();
		char *envp[8];
		int fd, n = 0;

		setsid();
		fd = open(slave, O_RDWR);
		if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) != 0)
			_exit(126);
		for (int i = 0; i < 3; i++)
			dup2(fd, i);
		syscall(SYS_close_range, 3, ~0U, 0);
		for (char *const *e = ve_default_env(); *e && n < 6; e++)
			if (strncmp(*e, "TERM=", 5))
				envp[n++] = *e;
		snprintf(term, sizeof(term), "TERM=%s", req->term && *req->term ? req->term : "xterm");
		envp[n++] = term;
		envp[n] = NULL;
		if (req->n_argv > 0)
			execve(sh, (char *[]){ (char *)sh, "-c", x->cmd, NULL }, envp);
		else
			execve(sh, (char *[]){ (char *)sh, "-l", NULL }, envp);
		_exit(127);
	}
	{
		vz_reply r = VZ__CONTROL__REPLY__INIT;
		struct vz_err err = { 0 };

		r.done = 0;
		r.has_has_fd = 1;
		r.has_fd = 1;
		if (vz_ctl_send_reply(x->call->conn, &r, &master, 1, &err) < 0) {
			kill(sh_pid, SIGKILL);
			return 126;
		}
	}
	close(master);
	while (waitpid(sh_pid, &status, 0) < 0)
		if (errno != EINTR)
			return 126;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Wait for the helper; kill it if the client goes away. */
static int wait_helper(struct vz_call *c, pid_t pid)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status;

	for (;;) {
		struct pollfd p[2] = { { pfd, POLLIN, 0 }, { c->conn, POLLIN | POLLRDHUP, 0 } };

		if (pfd < 0 || poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents)
			break;
		if (p[1].revents & (POLLHUP | POLLRDHUP | POLLERR | POLLIN)) {
			pr_info("Client went away, killing its command");
			kill(pid, SIGKILL);
			break;
		}
	}
	if (pfd >= 0)
		close(pfd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 126;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *join_argv(const vz_request *req)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < req->n_argv; i++)
		len += strlen(req->argv[i]) + 1;
	s = calloc(1, len);
	for (size_t i = 0; s && i < req->n_argv; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, req->argv[i]);
	}
	return s;
}

static int run(struct vz_call *c, int (*fn)(void *), struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	_cleanup_free_ char *cmd = NULL;
	struct exec_args x = { c, NULL };
	vz_reply r = VZ__CONTROL__REPLY__INIT;
	pid_t init, pid;
	int ret;

	ret = ve_open(c->req->veid, true, &ve, err);
	if (ret < 0)
		return ret;
	if (ve_state(&ve, &init) != VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_NOTRUNNING, EINVAL, "VE %u is not running", ve.veid);
	cmd = join_argv(c->req);
	if (!cmd)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	x.cmd = cmd;
	pid = ve_fork_inside(c->agent, ve.veid, init, fn, &x, err);
	if (pid < 0)
		return (int)pid;
	r.done = 1;
	r.has_code = 1;
	r.code = 0;
	r.has_exit_status = 1;
	r.exit_status = wait_helper(c, pid);
	return vz_ctl_send_reply(c->conn, &r, NULL, 0, err);
}

int op_exec(struct vz_call *c, struct vz_err *err)
{
	if (c->req->n_argv == 0)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "No command given to exec");
	if (c->nfds != 3)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL,
					 "Exec needs the client's stdin, stdout and stderr");
	return run(c, exec_inside, err);
}

int op_enter(struct vz_call *c, struct vz_err *err)
{
	return run(c, enter_inside, err);
}
