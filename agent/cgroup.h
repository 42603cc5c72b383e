/* A VE's control groups, on cgroup v1 (one hierarchy per controller, as on
 * this machine's hybrid mount) and cgroup v2 (one unified hierarchy), behind
 * one interface. Each agent keeps its VEs under its own base directory
 * (default "vz", so VE 101 is ".../vz/101" in every hierarchy), which lets
 * several agents share one machine in tests.
 *
 * All functions return 0 or a negative errno and fill err. */
#ifndef VZ_CGROUP_H
#define VZ_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

enum vz_cg_mode { VZ_CG_V1 = 1, VZ_CG_V2 = 2 };

#define VZ_CG_MAX_HIER 16

struct vz_cg {
	enum vz_cg_mode mode;
	char base[64];	  /* agent's base directory name, e.g. "vz" */
	char fsroot[256]; /* "/sys/fs/cgroup" (v2 mount, or parent of v1 mounts) */
	/* v1: mount points of the hierarchies we use (cpu, cpuacct, memory,
	 * pids, freezer, devices, blkio, cpuset, and the named systemd one
	 * when present); v2: one entry, the unified mount. */
	size_t nhier;
	struct {
		char name[32];	/* "memory", "cpu,cpuacct", "name=systemd", "unified" */
		char path[256]; /* mount point */
	} hier[VZ_CG_MAX_HIER];
};

/* Detect the host's cgroup layout under fsroot (NULL: "/sys/fs/cgroup").
 * force_mode 0 detects (v2 when fsroot itself is cgroup2, else v1);
 * VZ_CG_V2 with fsroot pointing at a cgroup2 mount (such as this machine's
 * /sys/fs/cgroup/unified) forces v2 there, so the v2 code runs in tests. */
int vz_cg_init(struct vz_cg *cg, const char *fsroot, const char *base, int force_mode, struct vz_err *err);

/* Create the VE's groups in every hierarchy (parents too; v2 enables the
 * cpu, memory, pids, io and cpuset controllers down the path where the
 * kernel offers them; v1 cpuset copies cpus and mems from its parent).
 * Succeeds when they exist already. */
int vz_cg_create(const struct vz_cg *cg, unsigned veid, struct vz_err *err);
/* Move pid into the VE's group in every hierarchy. */
int vz_cg_attach(const struct vz_cg *cg, unsigned veid, pid_t pid, struct vz_err *err);
/* Remove the VE's groups. -EBUSY (with a message) while tasks remain. */
int vz_cg_destroy(const struct vz_cg *cg, unsigned veid, struct vz_err *err);
/* Does the VE's group exist (in the first hierarchy)? */
bool vz_cg_exists(const struct vz_cg *cg, unsigned veid);
/* Process ids (thread-group leaders) in the VE's group, recursively, as
 * host pids: malloc'd array. */
int vz_cg_pids(const struct vz_cg *cg, unsigned veid, pid_t **pids, size_t *n, struct vz_err *err);
/* The first process of the VE that is stopped (SIGSTOP, a job suspended
 * with Ctrl-Z) or stopped by a tracer, in *stopped; 0 when none is. Such
 * a process must not be frozen when CRIU seizes it: ptrace_attach then
 * waits for it to trap, which a frozen task never does. */
int vz_cg_find_stopped(const struct vz_cg *cg, unsigned veid, pid_t *stopped, struct vz_err *err);
/* A process of the VE waiting in vfork() for its child: *parent and
 * *child, or 0 and 0. Such a parent cannot stop for ptrace until its
 * child execs or exits, and the two share one memory CRIU cannot dump. */
int vz_cg_find_vfork(const struct vz_cg *cg, unsigned veid, pid_t *parent, pid_t *child, struct vz_err *err);
/* Freeze / thaw the VE (v1 freezer.state, v2 cgroup.freeze) and wait until
 * the kernel reports the new state (at most timeout_ms). */
int vz_cg_freeze(const struct vz_cg *cg, unsigned veid, int timeout_ms, struct vz_err *err);
/* Ask for the freeze and return at once (it completes as tasks can). */
int vz_cg_freeze_start(const struct vz_cg *cg, unsigned veid, struct vz_err *err);
int vz_cg_thaw(const struct vz_cg *cg, unsigned veid, struct vz_err *err);
/* SIGKILL every task in the VE's group (v2 cgroup.kill when present) and
 * wait until it is empty (at most timeout_ms). */
int vz_cg_kill_all(const struct vz_cg *cg, unsigned veid, int timeout_ms, struct vz_err *err);
/* Path of the VE's group in the hierarchy holding controller ctrl
 * ("memory", "cpu", "pids", "freezer"; anything in v2), into buf. */
int vz_cg_path(const struct vz_cg *cg, unsigned veid, const char *ctrl, char *buf, size_t len, struct vz_err *err);

#endif
