/* ORDER_EXEC: the coordinator's command in a running VE, through its sh
 * -c as `vzctl exec` runs it (ve_fork_inside), its stdout and stderr
 * merged into one pipe and sent as OrderEvent output chunks, its status
 * (128+N for signal N) in the last event. Past its timeout every process
 * the command made is killed, those that left its session included, and
 * the status is 124.
 *
 * The process inside the VE that forks the shell is a child subreaper:
 * whatever the command leaves behind (a daemon, a background job) is
 * reparented to it rather than to the VE's init, so the command's whole
 * tree stays below it, where the timeout finds it. */
#define LOG_PREFIX "orders: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "orders.h"
#include "util.h"
#include "ve.h"

#define EXEC_TIMED_OUT 124
#define TREE_MAX       4096

struct exec_inside {
	const char *cmd;
	int rfd, wfd;
};

/* Inside the VE: the shell with stdin /dev/null and stdout and stderr
 * the pipe; its status. */
static int exec_inside(void *arg)
{
	struct exec_inside *x = arg;
	int status = 0;
	pid_t sh, p;

	close(x->rfd);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	sh = fork();
	if (sh < 0)
		return 126;
	if (sh == 0) {
		const char *shell = ve_guest_shell();
		int in = open("/dev/null", O_RDONLY);

		if (in < 0 || dup2(in, 0) < 0)
			close(0);
		if (dup2(x->wfd, 1) < 0 || dup2(x->wfd, 2) < 0)
			_exit(126);
		syscall(SYS_close_range, 3, ~0U, 0);
		execve(shell, (char *[]){ (char *)shell, "-c", (char *)x->cmd, NULL }, (char **)ve_default_env());
		dprintf(2, "Cannot run %s in the VE: %s\n", shell, strerror(errno));
		_exit(127);
	}
	close(x->wfd);
	/* Reap what is reparented to us meanwhile, until the shell ends. */
	while ((p = waitpid(-1, &status, 0)) != sh)
		if (p < 0 && errno != EINTR)
			return 126;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The living descendants of pid (host pids), appended to out[*n]. */
static void descendants(pid_t pid, pid_t *out, size_t *n)
{
	char dir[64], path[PATH_MAX];
	_cleanup_closedir_ DIR *dd = NULL;
	struct dirent *de;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	dd = opendir(dir);
	while (dd && (de = readdir(dd))) {
		_cleanup_fclose_ FILE *f = NULL;
		int child;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/children", dir, de->d_name);
		f = fopen(path, "re");
		while (f && *n < TREE_MAX && fscanf(f, "%d", &child) == 1) {
			if (order_proc_gone(child))
				continue;
			out[(*n)++] = child;
			descendants(child, out, n);
		}
	}
}

/* The first child of the helper ve_fork_inside made: the subreaper. */
static pid_t first_child(pid_t pid)
{
	char path[64];
	_cleanup_fclose_ FILE *f = NULL;
	int child = 0;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	f = fopen(path, "re");
	if (!f || fscanf(f, "%d", &child) != 1)
		return 0;
	return child;
}

/* Kill the command's whole tree below the helper: the subreaper is
 * stopped first, so that it stays there to take what the killed leave
 * behind, then everything below it until nothing lives, then itself. */
static void kill_tree(pid_t helper)
{
	_cleanup_free_ pid_t *pids = calloc(TREE_MAX, sizeof(*pids));
	pid_t sub = first_child(helper);

	if (sub > 0 && pids) {
		kill(sub, SIGSTOP);
		for (int round = 0; round < 500; round++) {
			size_t n = 0;

			descendants(sub, pids, &n);
			if (n == 0)
				break;
			for (size_t i = 0; i < n; i++)
				kill(pids[i], SIGKILL);
			usleep(2000);
		}
		kill(sub, SIGKILL);
	}
	kill(helper, SIGKILL);
}

/* The exec's output as events, while the coordinator listens. */
struct exec_out {
	struct vz_conn *c;
	bool lost;
	uint8_t buf[ORDER_OUTPUT_CHUNK];
};

static void send_chunk(struct exec_out *x, size_t len)
{
	Vz__Pool__OrderEvent ev = VZ__POOL__ORDER_EVENT__INIT;
	struct vz_err e = { 0 };

	if (x->lost)
		return;
	ev.has_output = true;
	ev.output.data = x->buf;
	ev.output.len = len;
	if (vz_msg_send(x->c, &ev.base, &e) < 0) {
		x->lost = true;
		pr_warn("Exec: the coordinator no longer listens (%s)", e.msg);
	}
}

/* Read what is in the pipe now; false at its end. */
static bool read_some(struct exec_out *x, int fd)
{
	ssize_t n = read(fd, x->buf, sizeof(x->buf));

	if (n < 0)
		return errno == EINTR;
	if (n == 0)
		return false;
	send_chunk(x, (size_t)n);
	return true;
}

/* Pump the pipe until the helper ends (killing the command's tree at the
 * deadline, timeout_s 0: none, and *timed_out set); its status. */
static int pump(struct exec_out *x, int rfd, pid_t helper, unsigned timeout_s, bool *timed_out)
{
	int pfd = (int)syscall(SYS_pidfd_open, helper, 0), status = 0;
	uint64_t deadline = timeout_s ? vz_now_ns() + (uint64_t)timeout_s * 1000000000ull : 0;
	bool pipe_open = true;

	while (pfd >= 0) {
		struct pollfd p[2] = { { pfd, POLLIN, 0 }, { rfd, POLLIN, 0 } };
		int wait_ms = -1, r;

		if (deadline) {
			uint64_t now = vz_now_ns();

			wait_ms = now >= deadline ? 0 : (int)((deadline - now) / 1000000 + 1);
		}
		r = poll(p, pipe_open ? 2 : 1, wait_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		if (r == 0) {
			pr_info("Exec: timed out after %u s: killing the command", timeout_s);
			kill_tree(helper);
			*timed_out = true;
			deadline = 0;
			continue;
		}
		if (pipe_open && p[1].revents)
			pipe_open = read_some(x, rfd);
		if (p[0].revents)
			break;
	}
	if (pfd >= 0)
		close(pfd);
	else
		pr_perror("Exec: pidfd of the helper %d", (int)helper);
	/* What the command wrote before it ended; what it left running may
	 * hold the pipe open, so no waiting for its end. */
	fcntl(rfd, F_SETFL, O_NONBLOCK);
	while (pipe_open && read_some(x, rfd) && !x->lost)
		;
	while (waitpid(helper, &status, 0) < 0)
		if (errno != EINTR)
			return 126;
	if (*timed_out)
		return EXEC_TIMED_OUT;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void exec_refused(struct vz_conn *c, const struct vz_err *err)
{
	order_send_done(c, VZ__POOL__ORDER_STATE__ORDER_DONE, err->exit_code ? err->exit_code : VZ_EXIT_SYSTEM,
			err->msg, 0, 0);
}

void order_exec(struct vz_agent *a, struct vz_conn *c, const Vz__Pool__Order *o)
{
	_cleanup_ve_ struct ve ve = { .lock_fd = VZ_FD_INIT };
	_cleanup_free_ struct exec_out *x = calloc(1, sizeof(*x));
	_cleanup_close_ int rfd = VZ_FD_INIT;
	struct vz_err err = { 0 };
	uint64_t t0 = vz_now_ns();
	struct exec_inside in;
	int p[2], status;
	bool timed_out = false;
	char why[64] = "";
	pid_t init, pid;

	if (!x)
		return exec_refused(c, &(struct vz_err){ .exit_code = VZ_EXIT_SYSTEM, .msg = "Out of memory" });
	x->c = c;
	if (!o->has_veid || !o->veid || o->veid > INT32_MAX || !o->command || !*o->command) {
		vz_error_exit_msg(&err, VZ_EXIT_INVAL, EINVAL, "Malformed exec order: a VEID and a command");
		return exec_refused(c, &err);
	}
	if (ve_open(o->veid, false, &ve, &err) < 0)
		return exec_refused(c, &err);
	if (!vz_exists(ve.conf_path)) {
		vz_error_exit_msg(&err, VZ_EXIT_NOCONF, ENOENT, "VE %u does not exist on %s", ve.veid, a->host_name);
		return exec_refused(c, &err);
	}
	if (ve_state(&ve, &init) != VE_STATE_RUNNING) {
		vz_error_exit_msg(&err, VZ_EXIT_NOTRUNNING, EINVAL, "VE %u is not running on %s", ve.veid,
				  a->host_name);
		return exec_refused(c, &err);
	}
	if (pipe2(p, O_CLOEXEC) != 0) {
		vz_error(&err, errno, "Pipe");
		return exec_refused(c, &err);
	}
	rfd = p[0];
	in = (struct exec_inside){ o->command, p[0], p[1] };
	pid = ve_fork_inside(a, ve.veid, init, exec_inside, &in, &err);
	close(p[1]);
	if (pid < 0)
		return exec_refused(c, &err);
	pr_info("Exec in VE %u (timeout %u s): %s", ve.veid, o->timeout_s, o->command);
	status = pump(x, rfd, pid, o->has_timeout_s ? o->timeout_s : 0, &timed_out);
	if (timed_out)
		snprintf(why, sizeof(why), "Timed out after %u s", o->timeout_s);
	pr_info("Exec in VE %u: status %d%s%s", ve.veid, status, why[0] ? ", " : "", why);
	order_send_done(c, VZ__POOL__ORDER_STATE__ORDER_DONE, status, why, (vz_now_ns() - t0) / 1000000, 0);
}
