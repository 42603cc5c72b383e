/* One VE as the agent sees it: its config, paths, lock and state. */
#ifndef VZ_VE_H
#define VZ_VE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "agent.h"
#include "config.h"
#include "err.h"
#include "net.h"

struct ve {
	unsigned veid;
	struct vz_conf conf;
	char conf_path[PATH_MAX];
	char private[PATH_MAX];
	char root[PATH_MAX];
	int lock_fd;
};

enum ve_state { VE_STATE_DELETED, VE_STATE_STOPPED, VE_STATE_MOUNTED, VE_STATE_RUNNING };

/* Fill paths for veid; load its config when it exists (must_exist: error
 * VZ_EXIT_NOCONF "VE N does not exist" when not). */
int ve_open(unsigned veid, bool must_exist, struct ve *ve, struct vz_err *err);
void ve_close(struct ve *ve);
#define _cleanup_ve_ __attribute__((cleanup(ve_close)))

/* Take the VE's lock (VZ_ROOT/vz/lock/VEID.lck, flock). Waits up to
 * wait_ms, then fails with VZ_EXIT_LOCKED. Released by ve_close. */
int ve_lock(struct ve *ve, int wait_ms, struct vz_err *err);

/* Running: the pid file names a live process with the recorded start time.
 * *init gets its host pid (0 when not running). */
enum ve_state ve_state(const struct ve *ve, pid_t *init);
bool ve_is_mounted(const struct ve *ve);
int ve_write_pidfile(const struct ve *ve, pid_t init, struct vz_err *err);
void ve_remove_pidfile(unsigned veid);
/* Read the pid file without checking liveness. */
int ve_read_pidfile(unsigned veid, pid_t *pid, unsigned long long *start);
/* Start time (clock ticks since boot) of pid, 0 when gone. */
unsigned long long proc_start_time(pid_t pid);

int ve_save(struct ve *ve, struct vz_err *err);

/* Bind-mount the private area on the root (idempotent) / unmount it. */
int ve_mount(struct ve *ve, struct vz_err *err);
int ve_umount(struct ve *ve, struct vz_err *err);

/* The VE's interface from NETIF, created (and stored in conf, unsaved)
 * when the VE has none. */
int ve_netif(struct ve *ve, struct vz_agent *a, struct vz_netif *nif, struct vz_err *err);

/* Validate every OpenVZ option of the request before changing anything,
 * then store them in ve->conf; when init > 0 also apply them to the
 * running VE. Unknown or malformed options fail with VZ_EXIT_INVAL or
 * VZ_EXIT_BADVAL and change nothing. */
int ve_apply_params(struct vz_call *c, struct ve *ve, pid_t init, struct vz_err *err);
/* Apply the saved network settings to a VE that has just started. */
int ve_net_start(struct vz_agent *a, struct ve *ve, pid_t init, struct vz_err *err);

/* Fork a process that has joined every namespace and the cgroups of the
 * running VE whose init is `init`, and runs fn(arg) there as a member of
 * the VE's pid namespace; returns its host pid (parent) — the child never
 * returns. */
pid_t ve_fork_inside(struct vz_agent *a, unsigned veid, pid_t init, int (*fn)(void *), void *arg,
		     struct vz_err *err);

/* SIGKILL init (when > 0) and everything left in the VE's cgroups, and
 * wait for them to be gone. */
void ve_kill(struct vz_agent *a, unsigned veid, pid_t init);
/* Undo what a start (or restore) made: pid file, cgroups, root mount. The
 * VE's processes must be gone. */
int ve_teardown(struct vz_agent *a, struct ve *ve, struct vz_err *err);

/* Restore a VE from the CRIU images in img_fd (ve_ckpt.c): mount, cgroups
 * with its limits, CRIU restore as our child, pid file. With leave_frozen
 * the tree is frozen before it runs a single instruction (a migration's
 * destination thaws it on the source's go). On failure nothing is left. */
int ve_restore_images(struct vz_agent *a, struct ve *ve, int img_fd, int work_fd, const char *logname,
		      bool leave_frozen, bool lazy, pid_t *pid, struct vz_err *err);
/* A fresh directory VZ_ROOT/vz/dump/VEID.WHAT.PID (dir, its fd) and the
 * dump directory's fd for CRIU's logs. */
int make_img_dir(unsigned veid, const char *what, char *dir, size_t len, int *dir_fd, int *work_fd,
		 struct vz_err *err);

/* Start a stopped VE / stop a running one (progress to c->conn). */
int ve_do_start(struct vz_call *c, struct ve *ve, struct vz_err *err);
int ve_do_stop(struct vz_call *c, struct ve *ve, pid_t init, struct vz_err *err);
/* Unmount, remove the private area, the root directory and the config. */
int ve_destroy_files(struct ve *ve, struct vz_err *err);

/* Value of the last option `name` in the request ("" when it has none),
 * NULL when absent. */
const char *ve_req_param(const vz_request *req, const char *name);

/* Inside the VE (after pivot_root): write /etc/hostname, /etc/hosts and
 * /etc/resolv.conf from the config. Logs, never fails the caller. */
void ve_write_guest_files(const struct vz_conf *conf);

/* Environment given to the VE's init and to commands run inside. */
char *const *ve_default_env(void);

#endif
