/* --verify-memory: a digest of a VE's writable private memory, computed
 * on both hosts once the VE is frozen (source) and restored (destination):
 * the same text means the memory moved byte for byte. What the kernel
 * writes differently on each host (each thread's rseq area, where it
 * stores the CPU the thread runs on) is masked. */
#ifndef VZ_CKPT_MEMVERIFY_H
#define VZ_CKPT_MEMVERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "proc.h"

/* Bytes a digest leaves out: each thread's rseq area. */
struct vz_mem_mask {
	int vpid;
	uint64_t addr;
	uint32_t len;
};

/* The rseq areas of every thread of pids[n] (each thread is stopped for
 * an instant with ptrace, at most VZ_PTRACE_STOP_TIMEOUT_MS: a thread
 * that cannot stop, in vfork() say, is left as it was and its area is not
 * masked; a stopped thread stays stopped). *out is malloc'd; so is *seen,
 * when asked for: the threads that existed, sorted. */
int vz_rseq_areas(const pid_t *pids, size_t n, struct vz_mem_mask **out, size_t *nout, pid_t **seen, size_t *nseen,
		  struct vz_err *err);

/* Whether every thread of pids[n] is in seen[nseen] (sorted): after a
 * freeze, that no thread started after vz_rseq_areas read them. */
bool vz_threads_seen(const pid_t *pids, size_t n, const pid_t *seen, size_t nseen);

/* Digests of the processes' writable private memory, one line per range
 * of adjacent mappings ("vpid start-end sha256"), sorted, with the masked
 * bytes as zeros. *text is malloc'd. */
int vz_mem_digest(const pid_t *pids, size_t n, const struct vz_mem_mask *mask, size_t nmask, char **text, size_t *len,
		  struct vz_err *err);

#endif
