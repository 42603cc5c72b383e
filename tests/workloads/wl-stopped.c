/* wl-stopped [-n tag] [-v SECONDS]: processes that do not run. A child
 * stopped with SIGSTOP (state T); a child in vfork() whose own child
 * neither execs nor exits for SECONDS (default 3) after the workload is
 * ready, then exits 0; a zombie child nobody reaps. A parent in vfork()
 * cannot be checkpointed while its child lives (the two share one memory,
 * and the kernel lets nothing seize the parent): a checkpoint or move
 * started meanwhile waits for the vfork() to end, and this workload proves
 * that it does and that both come out whole. Verify: each is still there
 * with the same pid and parent, the stopped one is still stopped, the
 * zombie still a zombie, the vfork parent either still waits or saw its
 * child exit 0 and waits for a signal, and the workload's own loop goes
 * on. */
#include <getopt.h>
#include <sys/wait.h>

#include "wl.h"

static struct wl w;

/* State letter and parent of pid from /proc/pid/stat; 0 when gone. */
static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512], *p;
	int fd, ppid_i = 0;
	ssize_t n;
	char st = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c %d", &st, &ppid_i) != 2)
		return 0;
	if (ppid)
		*ppid = (pid_t)ppid_i;
	return st;
}

static void check_one(const char *what, pid_t pid, pid_t parent, const char *states)
{
	pid_t pp = 0;
	char st = proc_state(pid, &pp);

	if (!st)
		wl_fail(&w, "the %s (pid %d) is gone", what, (int)pid);
	else if (pp != parent)
		wl_fail(&w, "the %s (pid %d) has parent %d, not %d", what, (int)pid, (int)pp, (int)parent);
	else if (!strchr(states, st))
		wl_fail(&w, "the %s (pid %d) is in state %c, not one of %s", what, (int)pid, st, states);
}

int main(int argc, char **argv)
{
	pid_t stopped, vparent, vchild = 0, zombie, self;
	int p[2], st;
	uint64_t ticks = 0, seen = 0;
	const char *tag = NULL;
	static int vfork_s = 3; /* static: vfork() shares this frame */
	int opt;

	while ((opt = getopt(argc, argv, "n:v:")) != -1) {
		if (opt == 'n') {
			tag = optarg;
		} else if (opt == 'v') {
			vfork_s = atoi(optarg);
		} else {
			fprintf(stderr, "usage: wl-stopped [-n tag] [-v seconds]\n");
			return 2;
		}
	}
	wl_start(&w, "wl-stopped", tag);
	self = getpid();
	stopped = fork();
	if (stopped == 0) {
		for (;;)
			pause();
	}
	if (stopped < 0 || kill(stopped, SIGSTOP) != 0 || waitpid(stopped, &st, WUNTRACED) != stopped ||
	    !WIFSTOPPED(st))
		wl_abort(&w, "stop a child: %s", strerror(errno));
	if (pipe(p) != 0)
		wl_abort(&w, "pipe: %s", strerror(errno));
	vparent = fork();
	if (vparent == 0) {
		pid_t c;

		close(p[0]);
		c = vfork();
		if (c == 0) {
			/* Only system calls here: the parent's memory is ours. */
			pid_t me = (pid_t)syscall(SYS_getpid);
			struct timespec ts = { vfork_s, 0 };

			if (write(p[1], &me, sizeof(me)) != sizeof(me))
				_exit(1);
			nanosleep(&ts, NULL);
			_exit(0);
		}
		/* vfork() returned: the child must have exited 0; then wait
		 * for the workload's end (a zombie here would fail the check). */
		if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			_exit(3);
		for (;;)
			pause();
	}
	close(p[1]);
	if (vparent < 0 || read(p[0], &vchild, sizeof(vchild)) != sizeof(vchild))
		wl_abort(&w, "vfork a child: %s", strerror(errno));
	close(p[0]);
	zombie = fork();
	if (zombie == 0)
		_exit(0);
	if (zombie < 0)
		wl_abort(&w, "fork: %s", strerror(errno));
	/* Never reaped: wait until it is a zombie before saying ready. */
	for (int i = 0; i < 1000 && proc_state(zombie, NULL) != 'Z'; i++)
		wl_sleep_us(1000);
	if (proc_state(zombie, NULL) != 'Z')
		wl_abort(&w, "the child %d did not become a zombie", (int)zombie);
	wl_ready(&w);
	while (!wl_stop) {
		ticks++;
		wl_sleep_us(10000);
		if (wl_check_req) {
			if (!seen) {
				/* Progress after the request: one more tick. */
				seen = ticks;
				continue;
			}
			if (ticks == seen)
				continue;
			wl_check_req = 0;
			seen = 0;
			wl_check_pid(&w);
			check_one("stopped child", stopped, self, "tT");
			/* A vfork() parent waits killable: D (or S on old
			 * kernels); after its child exited it sleeps in pause(). */
			check_one("vfork parent", vparent, self, "DS");
			if (proc_state(vchild, NULL))
				check_one("vfork child", vchild, vparent, "S");
			check_one("zombie", zombie, self, "Z");
			wl_answer(&w);
		}
	}
	kill(stopped, SIGKILL);
	kill(vchild, SIGKILL);
	kill(vparent, SIGKILL);
	waitpid(stopped, NULL, 0);
	waitpid(vparent, NULL, 0);
	waitpid(zombie, NULL, 0);
	return 0;
}
