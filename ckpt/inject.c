/* System calls run inside another process, through ptrace: seize one of
 * its threads, block its signals, point it at a `syscall` instruction it
 * already has (in its vDSO, so no code is written into it), single-step,
 * read the result, put every register and the signal mask back. Signals
 * that arrive meanwhile stay pending and are delivered once it runs on;
 * a system call it was blocked in is restarted as after any stop.
 *
 * No wait here is unbounded: waitpid() is polled against a deadline, and
 * a task that did not stop in time is left to vz_ptrace_thread's end to
 * detach (PTRACE_DETACH needs a stopped tracee; a tracer's exit does not).
 *
 * x86_64 only; elsewhere vz_inject_begin reports ENOTSUP and the tracker
 * falls back to stop-and-copy. */
#define LOG_PREFIX "inject: "
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include "inject.h"
#include "util.h"

#ifndef PTRACE_GETSIGMASK
#define PTRACE_GETSIGMASK 0x420a
#define PTRACE_SETSIGMASK 0x420b
#endif

static uint64_t deadline_in(unsigned timeout_ms)
{
	return vz_now_ns() + (uint64_t)(timeout_ms ? timeout_ms : VZ_PTRACE_STOP_TIMEOUT_MS) * 1000000ull;
}

/* The next stop of pid, within timeout_ms (0: the default). waitpid() has
 * no timeout: poll it, sleeping a little longer each time (at most 5 ms). */
static int wait_stop(pid_t pid, unsigned timeout_ms, int *sig, struct vz_err *err)
{
	uint64_t deadline = deadline_in(timeout_ms);
	unsigned nap_us = 50;
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, __WALL | WNOHANG);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return vz_error(err, errno, "Wait for process %d", (int)pid);
		if (r == pid && (WIFEXITED(st) || WIFSIGNALED(st)))
			return vz_error_msg(err, ESRCH, "Process %d ended", (int)pid);
		if (r == pid && WIFSTOPPED(st)) {
			*sig = WSTOPSIG(st) | (st >> 16) << 8;
			return 0;
		}
		if (vz_now_ns() >= deadline)
			return vz_error_msg(err, ETIMEDOUT, "Process %d did not stop within %u ms", (int)pid,
					    timeout_ms ? timeout_ms : VZ_PTRACE_STOP_TIMEOUT_MS);
		usleep(nap_us);
		if (nap_us < 5000)
			nap_us *= 2;
	}
}

int vz_ptrace_stop(pid_t tid, unsigned timeout_ms, int *sig, struct vz_err *err)
{
	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0)
		return vz_error(err, errno, "Seize process %d", (int)tid);
	/* The interrupt's stop comes before any signal is dequeued; a task
	 * in group-stop is seized into a trap stop at once. */
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) != 0) {
		int ret = vz_error(err, errno, "Interrupt process %d", (int)tid);

		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		return ret;
	}
	return wait_stop(tid, timeout_ms, sig, err);
}

struct ptrace_job {
	int (*fn)(void *arg);
	void *arg;
	int ret;
};

static void *ptrace_job_run(void *p)
{
	struct ptrace_job *j = p;

	j->ret = j->fn(j->arg);
	return NULL;
}

int vz_ptrace_thread(int (*fn)(void *arg), void *arg)
{
	struct ptrace_job j = { fn, arg, 0 };
	pthread_t th;
	int ret = pthread_create(&th, NULL, ptrace_job_run, &j);

	if (ret != 0)
		return -ret;
	pthread_join(th, NULL);
	return j.ret;
}

#if defined(__x86_64__)

/* The first `syscall` (0f 05) in the process's vDSO. */
static int find_syscall_insn(pid_t pid, unsigned long *ip, struct vz_err *err)
{
	char path[64], line[512];
	unsigned long lo = 0, hi = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return vz_error(err, errno, "Read %s", path);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "[vdso]") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			break;
	fclose(f);
	if (!hi || hi - lo > (1 << 20))
		return vz_error_msg(err, ENOENT, "Process %d has no vDSO", (int)pid);
	{
		size_t len = hi - lo;
		unsigned char *buf = malloc(len);
		struct iovec l = { buf, len }, r = { (void *)lo, len };
		ssize_t n = buf ? process_vm_readv(pid, &l, 1, &r, 1, 0) : -1;

		for (ssize_t i = 0; n > 1 && i + 1 < n; i++)
			if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
				*ip = lo + (unsigned long)i;
				free(buf);
				return 0;
			}
		free(buf);
	}
	return vz_error_msg(err, ENOENT, "No syscall instruction in the vDSO of process %d", (int)pid);
}

int vz_inject_begin_timeout(struct vz_inject *in, pid_t pid, unsigned timeout_ms, struct vz_err *err)
{
	uint64_t all = ~0ull;
	int sig, ret;

	memset(in, 0, sizeof(*in));
	in->pid = pid;
	in->timeout_ms = timeout_ms;
	ret = find_syscall_insn(pid, &in->sc_ip, err);
	if (ret < 0)
		return ret;
	in->attached = true;
	ret = vz_ptrace_stop(pid, timeout_ms, &sig, err);
	if (ret < 0)
		goto fail;
	if (ptrace(PTRACE_GETREGS, pid, NULL, &in->regs) != 0 ||
	    ptrace(PTRACE_GETSIGMASK, pid, (void *)sizeof(in->sigmask), &in->sigmask) != 0 ||
	    ptrace(PTRACE_SETSIGMASK, pid, (void *)sizeof(all), &all) != 0) {
		ret = vz_error(err, errno, "Registers of process %d", (int)pid);
		goto fail;
	}
	in->saved = true;
	return 0;
fail:
	/* Fails with ESRCH when it never stopped: then only the tracer
	 * thread's end detaches it (vz_ptrace_thread). */
	ptrace(PTRACE_DETACH, pid, NULL, NULL);
	in->attached = false;
	return ret;
}

int vz_inject_begin(struct vz_inject *in, pid_t pid, struct vz_err *err)
{
	return vz_inject_begin_timeout(in, pid, 0, err);
}

int vz_inject_call(struct vz_inject *in, long nr, const long args[6], long *res, struct vz_err *err)
{
	struct user_regs_struct r = in->regs;
	int sig, ret;

	r.rax = (unsigned long)nr;
	r.orig_rax = (unsigned long)-1; /* not in a system call: nothing to restart */
	r.rip = in->sc_ip;
	r.rdi = (unsigned long)args[0];
	r.rsi = (unsigned long)args[1];
	r.rdx = (unsigned long)args[2];
	r.r10 = (unsigned long)args[3];
	r.r8 = (unsigned long)args[4];
	r.r9 = (unsigned long)args[5];
	if (ptrace(PTRACE_SETREGS, in->pid, NULL, &r) != 0 || ptrace(PTRACE_SINGLESTEP, in->pid, NULL, NULL) != 0)
		return vz_error(err, errno, "Run a system call in process %d", (int)in->pid);
	for (;;) {
		ret = wait_stop(in->pid, in->timeout_ms, &sig, err);
		if (ret < 0)
			return ret;
		if (ptrace(PTRACE_GETREGS, in->pid, NULL, &r) != 0)
			return vz_error(err, errno, "Registers of process %d", (int)in->pid);
		if ((sig & 0xff) == SIGTRAP && r.rip == in->sc_ip + 2)
			break;
		/* A stop before the step completed (only SIGKILL/SIGSTOP get
		 * through the mask): step again from where it is. */
		if (ptrace(PTRACE_SINGLESTEP, in->pid, NULL, NULL) != 0)
			return vz_error(err, errno, "Step process %d", (int)in->pid);
	}
	*res = (long)r.rax;
	return 0;
}

int vz_inject_end(struct vz_inject *in, struct vz_err *err)
{
	int ret = 0;

	if (!in->attached)
		return 0;
	if (in->saved && (ptrace(PTRACE_SETREGS, in->pid, NULL, &in->regs) != 0 ||
			  ptrace(PTRACE_SETSIGMASK, in->pid, (void *)sizeof(in->sigmask), &in->sigmask) != 0))
		ret = vz_error(err, errno, "Put back the registers of process %d", (int)in->pid);
	if (ptrace(PTRACE_DETACH, in->pid, NULL, NULL) != 0 && ret == 0)
		ret = vz_error(err, errno, "Detach from process %d", (int)in->pid);
	in->attached = false;
	return ret;
}

#else

int vz_inject_begin_timeout(struct vz_inject *in, pid_t pid, unsigned timeout_ms, struct vz_err *err)
{
	(void)timeout_ms;
	memset(in, 0, sizeof(*in));
	in->pid = pid;
	return vz_error_msg(err, ENOTSUP, "System call injection is only written for x86_64");
}

int vz_inject_begin(struct vz_inject *in, pid_t pid, struct vz_err *err)
{
	return vz_inject_begin_timeout(in, pid, 0, err);
}

int vz_inject_call(struct vz_inject *in, long nr, const long args[6], long *res, struct vz_err *err)
{
	(void)in;
	(void)nr;
	(void)args;
	(void)res;
	return vz_error_msg(err, ENOTSUP, "System call injection is only written for x86_64");
}

int vz_inject_end(struct vz_inject *in, struct vz_err *err)
{
	(void)in;
	(void)err;
	return 0;
}

#endif
