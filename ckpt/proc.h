/* What /proc says about one process of a VE: who it is (its start time
 * tells a reused pid apart), its pid inside the VE, its state. */
#ifndef VZ_CKPT_PROC_H
#define VZ_CKPT_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct vz_proc_id {
	unsigned long long starttime; /* clock ticks since boot */
	int vpid;		      /* its pid in the innermost pid namespace */
	char state;		      /* /proc/PID/stat's letter: 'R', 'S', 'D', 'T', 'Z', ... */
};

/* What /proc/PID/stat says: the one parser of it. */
struct vz_proc_stat {
	char state; /* 'R', 'S', 'D', 'T', 't', 'Z', ... */
	pid_t ppid;
	unsigned long long starttime; /* clock ticks since boot */
};

/* 0, or a negative errno when pid is gone (or its stat does not parse). */
int vz_proc_stat(pid_t pid, struct vz_proc_stat *st);

/* 0, or a negative errno when pid is gone. */
int vz_proc_identity(pid_t pid, struct vz_proc_id *id);

/* Whether processes a and b share one mm (kcmp KCMP_VM): threads of one
 * process, or a vfork() parent and its child. */
bool vz_proc_same_mm(pid_t a, pid_t b);

/* The pid of host process pid inside its VE; a negative errno when it is
 * gone. */
int vz_proc_vpid(pid_t pid);

/* Calls fn for every thread of pids[n] until it returns non-zero, and
 * returns that value. */
int vz_proc_each_thread(const pid_t *pids, size_t n, int (*fn)(pid_t pid, pid_t tid, void *arg), void *arg);

#endif
