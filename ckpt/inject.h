/* Run system calls inside another process (ptrace, no code written into
 * it). Between begin and end the thread is stopped with its signals
 * blocked; end puts registers and signal mask back and lets it go. */
#ifndef VZ_CKPT_INJECT_H
#define VZ_CKPT_INJECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "err.h"

struct vz_inject {
	pid_t pid;
	unsigned long sc_ip; /* a `syscall` instruction in its vDSO */
	bool attached, saved;
#if defined(__x86_64__)
	struct user_regs_struct regs;
#endif
	uint64_t sigmask;
};

int vz_inject_begin(struct vz_inject *in, pid_t pid, struct vz_err *err);
/* *res is the call's return value (a negative errno on failure). */
int vz_inject_call(struct vz_inject *in, long nr, const long args[6], long *res, struct vz_err *err);
int vz_inject_end(struct vz_inject *in, struct vz_err *err);

#endif
