/* Shared harness of the self-checking workloads (zdtm's manner): each
 * wl-NAME program is started inside a VE, daemonizes, sets up one kind of
 * state, says ready, and keeps changing and checking that state.
 *
 * Contract:
 *  - The launching process exits 0 only once the daemon is ready (or 1
 *    with the daemon's error on stderr). The daemon leads its own
 *    session, has /dev/null as stdio and no other inherited descriptor.
 *  - $WL_DIR (default /run) holds <base>.pid (written when ready) and
 *    <base>.result; base is "wl-NAME", or "wl-NAME-TAG" with -n TAG.
 *  - SIGUSR1: verify. The answer, "PASS" or "FAIL: reason", replaces
 *    <base>.result atomically. Verification requires the state intact,
 *    no inconsistency seen since start, the recorded pids unchanged, and
 *    progress after the request (the state is still alive).
 *  - SIGUSR2: workload-specific dump (wl-mem: digest of its memory).
 *  - SIGTERM: exit.
 * Header-only: each workload is one static binary. */
#ifndef WL_H
#define WL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct wl {
	const char *dir;
	char base[128];
	int ready_fd;
	pid_t pid;
	char fail[512]; /* first inconsistency seen, "" when none */
};

static volatile sig_atomic_t wl_check_req, wl_dump_req, wl_stop;

static void wl_on_usr1(int s)
{
	(void)s;
	wl_check_req = 1;
}

static void wl_on_usr2(int s)
{
	(void)s;
	wl_dump_req = 1;
}

static __attribute__((unused)) void wl_on_term(int s)
{
	(void)s;
	wl_stop = 1;
}

static __attribute__((unused)) uint64_t wl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static __attribute__((unused)) void wl_sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !wl_stop && !wl_check_req)
		;
}

/* A 64-bit mixer (splitmix64's finaliser): content and choices derived
 * from small numbers. */
static __attribute__((unused)) uint64_t wl_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

/* Sleep until *next + ms and make that the next deadline; a loop that fell
 * behind starts again from now instead of catching up in a burst. */
static __attribute__((unused)) void wl_tick(uint64_t *next, unsigned ms)
{
	uint64_t now = wl_now_ms();

	*next += ms;
	if (*next > now)
		wl_sleep_us((long)(*next - now) * 1000);
	else
		*next = now;
}

/* Record the first inconsistency; later ones add nothing. */
static __attribute__((unused)) void wl_fail(struct wl *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static __attribute__((unused)) void wl_fail(struct wl *w, const char *fmt, ...)
{
	va_list ap;

	if (w->fail[0])
		return;
	va_start(ap, fmt);
	vsnprintf(w->fail, sizeof(w->fail), fmt, ap);
	va_end(ap);
}

static __attribute__((unused)) uint64_t wl_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Replace the file PATH with TEXT atomically (written beside it, then
 * renamed), or print TEXT on stdout when PATH is NULL. */
static __attribute__((unused)) void wl_put_text(const char *path, const char *text)
{
	char tmp[600];
	int fd;

	if (!path) {
		fputs(text, stdout);
		fflush(stdout);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0) {
		close(fd);
		return;
	}
	close(fd);
	rename(tmp, path);
}

static __attribute__((unused)) void wl_write_file(struct wl *w, const char *suffix, const char *text)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s.%s", w->dir, w->base, suffix);
	wl_put_text(path, text);
}

/* Write the verdict: PASS unless a failure was ever recorded. */
static __attribute__((unused)) void wl_answer(struct wl *w)
{
	char buf[600];

	if (w->fail[0])
		snprintf(buf, sizeof(buf), "FAIL: %s\n", w->fail);
	else
		snprintf(buf, sizeof(buf), "PASS\n");
	wl_write_file(w, "result", buf);
}

/* SIGUSR1, SIGUSR2, SIGTERM and SIGINT set the flags above (no
 * SA_RESTART: a blocking call ends with EINTR); SIGPIPE is ignored. */
static __attribute__((unused)) void wl_signals(void)
{
	struct sigaction sa = { 0 };

	signal(SIGPIPE, SIG_IGN);
	sa.sa_handler = wl_on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = wl_on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = wl_on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* Become the daemon. Returns in the daemon only; the launcher waits for
 * wl_ready() or an error and exits with it. */
static __attribute__((unused)) void wl_start(struct wl *w, const char *name, const char *tag)
{
	int p[2];
	pid_t pid;

	memset(w, 0, sizeof(*w));
	w->dir = getenv("WL_DIR") ? getenv("WL_DIR") : "/run";
	if (tag && *tag)
		snprintf(w->base, sizeof(w->base), "%s-%s", name, tag);
	else
		snprintf(w->base, sizeof(w->base), "%s", name);
	if (pipe(p) != 0) {
		perror("pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid > 0) {
		char msg[512];
		ssize_t n;

		close(p[1]);
		n = read(p[0], msg, sizeof(msg) - 1);
		if (n == 1 && msg[0] == 'R')
			exit(0);
		if (n > 0) {
			msg[n] = '\0';
			fprintf(stderr, "%s: %s\n", w->base, msg);
		} else {
			fprintf(stderr, "%s: the daemon died before it was ready\n", w->base);
		}
		exit(1);
	}
	close(p[0]);
	setsid();
	if (chdir("/") != 0)
		_exit(1);
	{
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	/* Nothing from outside the VE may stay open in it. */
	if (p[1] != 3) {
		dup2(p[1], 3);
		close(p[1]);
	}
	syscall(SYS_close_range, 4, ~0U, 0);
	w->ready_fd = 3;
	fcntl(w->ready_fd, F_SETFD, FD_CLOEXEC);
	w->pid = getpid();
	wl_signals();
}

/* wl_start for a workload whose only option is -n TAG; anything else
 * exits 2 with the usage line. */
static __attribute__((unused)) void wl_start_args(struct wl *w, const char *name, int argc, char **argv)
{
	const char *tag = NULL;
	int c;

	while ((c = getopt(argc, argv, "n:")) != -1) {
		if (c != 'n') {
			fprintf(stderr, "usage: %s [-n tag]\n", name);
			exit(2);
		}
		tag = optarg;
	}
	wl_start(w, name, tag);
}

/* Setup failed: tell the launcher why, and exit. */
static __attribute__((unused)) void wl_abort(struct wl *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
static __attribute__((unused)) void wl_abort(struct wl *w, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->ready_fd >= 0 && write(w->ready_fd, msg, strlen(msg)) < 0)
		_exit(2);
	_exit(1);
}

/* The state is set up: write the pid file and release the launcher. The
 * ready descriptor is closed so it is not part of the checkpoint. */
static __attribute__((unused)) void wl_ready(struct wl *w)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	wl_write_file(w, "pid", buf);
	if (write(w->ready_fd, "R", 1) != 1)
		_exit(1);
	close(w->ready_fd);
	w->ready_fd = -1;
}

/* Common identity check of verification. */
static __attribute__((unused)) void wl_check_pid(struct wl *w)
{
	if (getpid() != w->pid)
		wl_fail(w, "pid changed from %d to %d", (int)w->pid, (int)getpid());
}

#endif
