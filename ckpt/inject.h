/* Run system calls inside another process (ptrace, no code written into
 * it). Between begin and end the thread is stopped with its signals
 * blocked; end puts registers and signal mask back and lets it go.
 *
 * Every wait for a ptrace stop is bounded: a task that cannot stop (one
 * in vfork() waiting for its child, one in an uninterruptible sleep)
 * makes vz_inject_begin fail with ETIMEDOUT instead of waiting forever.
 * Such a task is still seized with an interrupt pending, which only the
 * tracer thread's exit undoes (the kernel then detaches it and clears the
 * pending stop): run a whole begin..end sequence through vz_ptrace_thread.
 * A task in group-stop (SIGSTOP) is stopped again when it is detached. */
#ifndef VZ_CKPT_INJECT_H
#define VZ_CKPT_INJECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "err.h"

/* How long a seized task may take to stop, by default. */
#define VZ_PTRACE_STOP_TIMEOUT_MS 2000

struct vz_inject {
	pid_t pid;
	unsigned long sc_ip; /* a `syscall` instruction in its vDSO */
	bool attached, saved;
	unsigned timeout_ms; /* each wait for a stop; 0: the default */
#if defined(__x86_64__)
	struct user_regs_struct regs;
#endif
	uint64_t sigmask;
};

/* Seize and interrupt pid, waiting at most timeout_ms (0: the default)
 * for it to stop: -ETIMEDOUT when it did not, -ESRCH when it ended. */
int vz_inject_begin_timeout(struct vz_inject *in, pid_t pid, unsigned timeout_ms, struct vz_err *err);
int vz_inject_begin(struct vz_inject *in, pid_t pid, struct vz_err *err); /* the default bound */
/* *res is the call's return value (a negative errno on failure). */
int vz_inject_call(struct vz_inject *in, long nr, const long args[6], long *res, struct vz_err *err);
int vz_inject_end(struct vz_inject *in, struct vz_err *err);

/* Seize tid and wait at most timeout_ms for its stop (*sig: the stop's
 * signal and event, as wait_stop reports it); 0, -ETIMEDOUT, -ESRCH or
 * another negative errno. On failure it may still be seized: see above. */
int vz_ptrace_stop(pid_t tid, unsigned timeout_ms, int *sig, struct vz_err *err);

/* Runs fn(arg) in a thread of its own and returns what it returned; any
 * task fn left seized is detached by the kernel when that thread ends. */
int vz_ptrace_thread(int (*fn)(void *arg), void *arg);

#endif
