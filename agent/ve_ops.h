/* What the agent does to a VE: start, stop, options, code run inside it,
 * checkpoint plumbing. Every function takes the agent, the VE and, for
 * the long ones, a progress sink (lib/progress.h; NULL: nobody listens),
 * never a control request: the op_* handlers (ve_start.c, ve_create.c,
 * dispatch.c), the migration engine and the coordinator all drive them.
 * Functions return 0 or a negative errno with err filled (err last). */
#ifndef VZ_VE_OPS_H
#define VZ_VE_OPS_H

#include <stdbool.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"
#include "err.h"
#include "progress.h"
#include "ve.h"

struct vz_criu_opts;

/* ---- start and stop (ve_start.c) ---- */

/* Start a stopped VE: mount, cgroups with its limits, init in new
 * namespaces, network, pid file. On failure nothing is left. */
int ve_do_start(struct vz_agent *a, struct ve *ve, const struct vz_progress *p, struct vz_err *err);
/* Stop the running VE whose init is `init`: ask it to shut down (unless
 * fast) for up to a->stop_timeout seconds, then kill what is left and
 * undo the start. */
int ve_do_stop(struct vz_agent *a, struct ve *ve, pid_t init, bool fast, const struct vz_progress *p,
	       struct vz_err *err);
/* SIGKILL init (when > 0) and everything left in the VE's cgroups, and
 * wait for them to be gone. */
void ve_kill(struct vz_agent *a, unsigned veid, pid_t init);
/* Undo what a start (or restore) made: pid file, cgroups, root mount. The
 * VE's processes must be gone. */
int ve_teardown(struct vz_agent *a, struct ve *ve, struct vz_err *err);
/* Start every stopped VE whose config says ONBOOT="yes" (and not
 * DISABLED="yes"), in VEID order, one after the other, as OpenVZ's vz
 * service did at boot; logs each start. Blocks: the agent runs it in a
 * worker of its own (server.c), once per boot. */
void ve_start_onboot(struct vz_agent *a);

/* ---- options (ve_params.c) ---- */

/* One option of `vzctl create` / `vzctl set`: --name value. */
struct ve_opt {
	const char *name;
	const char *value; /* "" for a flag without a value, never NULL */
};

struct ve_opts {
	struct ve_opt *v;
	size_t n;
};

/* The request's options; the strings stay the request's (free only
 * opts->v, with ve_opts_free). */
int ve_opts_from_req(const vz_request *req, struct ve_opts *opts, struct vz_err *err);
void ve_opts_free(struct ve_opts *opts);
#define _cleanup_ve_opts_ __attribute__((cleanup(ve_opts_free)))
/* Value of the last option `name` ("" when it has none), NULL when absent. */
const char *ve_opt_get(const struct ve_opts *opts, const char *name);
/* The same, read from a control request. */
const char *ve_req_param(const vz_request *req, const char *name);

/* Validate every OpenVZ option before changing anything, then store them
 * in ve->conf; when init > 0 also apply them to the running VE. Unknown
 * or malformed options fail with VZ_EXIT_INVAL or VZ_EXIT_BADVAL and
 * change nothing. */
int ve_apply_params(struct vz_agent *a, struct ve *ve, pid_t init, const struct ve_opts *opts,
		    const struct vz_progress *p, struct vz_err *err);

/* ---- the guest's side (ve_guest.c) ---- */

/* Apply the saved network settings to a VE that has just started. */
int ve_net_start(struct vz_agent *a, struct ve *ve, pid_t init, struct vz_err *err);
/* Make (or replace) the VE's network filter (net.h) from its config as it
 * is in ve->conf: NETIF's MAC and IP_ADDRESS; with ANTISPOOF="no" remove
 * it instead. Nothing when this host cannot filter (a->netfilter_off).
 * Needs no interface yet: call it before the veth reaches the bridge. */
int ve_net_filter(struct vz_agent *a, struct ve *ve, const struct vz_netif *nif, struct vz_err *err);
/* Remove the VE's network filter, if there is one; logs a failure. */
void ve_net_filter_gone(struct vz_agent *a, const struct ve *ve);
/* Inside the VE (after pivot_root): write /etc/hostname, /etc/hosts and
 * /etc/resolv.conf from the config. Logs, never fails the caller. */
void ve_write_guest_files(const struct vz_conf *conf);
/* Environment given to the VE's init and to commands run inside. */
char *const *ve_default_env(void);

/* ---- code inside a running VE (ve_exec.c) ---- */

/* Fork a process that has joined every namespace and the cgroups of the
 * running VE whose init is `init`, and runs fn(arg) there as a member of
 * the VE's pid namespace (fn NULL: arg is the path of a program to run);
 * returns its host pid (parent) — the child never returns. */
pid_t ve_fork_inside(struct vz_agent *a, unsigned veid, pid_t init, int (*fn)(void *), void *arg, struct vz_err *err);
/* Inside the VE: its shell for a command (/bin/bash, else /bin/sh). */
const char *ve_guest_shell(void);

/* ---- checkpoint plumbing (ve_ckpt.c) ---- */

/* What a restore makes before CRIU runs, whatever the images hold:
 * the root mounted, the cgroups with the VE's limits, the bridge, the
 * VE's network filter and, for a VE in a user namespace, its range here
 * and the idmapped root CRIU is given. Made by ve_restore_prepare, used
 * by ve_restore_run, removed by either on failure or by ve_restore_undo. */
struct ve_restore_prep {
	bool prepared; /* something to undo */
	bool has_net;
	struct vz_netif nif;
	uint32_t userns_id; /* the idroot is made for this range (0: none yet) */
	char idroot[PATH_MAX];
};

/* Make what a restore needs that no image decides. userns_id: the host id
 * the VE's root had where it was dumped, when known (0: the images will
 * say); a wrong guess is corrected by the run. files_final false: the
 * private area may still change (a migration's second file pass), so a
 * disk image is mounted, and its idroot made, only by the run. On failure
 * nothing is left. Logs how long it took (debug). */
int ve_restore_prepare(struct vz_agent *a, struct ve *ve, uint32_t userns_id, bool files_final,
		       struct ve_restore_prep *p, struct vz_err *err);
/* Restore the prepared VE from the CRIU images in img_fd: CRIU restore as
 * our child, pid file. With leave_frozen the tree is frozen before it runs
 * a single instruction (a migration's destination thaws it on the source's
 * go). On success the running VE owns what p held (p->prepared false); on
 * failure nothing of the run nor of the prepare is left. */
int ve_restore_run(struct vz_agent *a, struct ve *ve, struct ve_restore_prep *p, int img_fd, int work_fd,
		   const char *logname, bool leave_frozen, bool lazy, pid_t *pid, struct vz_err *err);
/* Remove what ve_restore_prepare made when no run follows; idempotent. */
void ve_restore_undo(struct vz_agent *a, struct ve *ve, struct ve_restore_prep *p);
/* ve_restore_prepare (files final, userns from the images), then
 * ve_restore_run. */
int ve_restore_images(struct vz_agent *a, struct ve *ve, int img_fd, int work_fd, const char *logname,
		      bool leave_frozen, bool lazy, pid_t *pid, struct vz_err *err);
/* How long a dump waits for a vfork() in the VE to end (the child to exec
 * or exit): a shell's vfork lasts microseconds; one that lasts longer is a
 * program that made its child sleep. */
#define VE_VFORK_WAIT_S 10

/* Before a dump (ve_ckpt.c): refuse, after up to VE_VFORK_WAIT_S, a VE where
 * a parent waits in vfork() (CRIU cannot seize or dump it), and say whether CRIU
 * may freeze the VE through its freezer: not when a process is stopped
 * (ptrace_attach of a stopped, frozen task never returns). With
 * *use_freezer false the dump must pass no freeze_cgroup and the VE must
 * not be frozen when CRIU starts. */
int ve_ckpt_precheck(struct vz_agent *a, unsigned veid, bool *use_freezer, struct vz_err *err);
/* The mounts of a dump of the VE whose init is init that CRIU must take as
 * external (the device nodes bound from the host in a VE of its own user
 * namespace), appended to o->externals. */
int ve_ckpt_dump_externals(pid_t init, struct vz_criu_opts *o, struct vz_err *err);
/* At the agent's start: put vm.unprivileged_userfaultfd back when an
 * agent ended while it held it raised for a lazy restore (logged). */
void ve_uffd_sysctl_recover(void);
/* Whether the VE has a veth pair (NETIF or an address): its images hold
 * one, and its restore must name it to CRIU, only then. */
bool ve_has_veth(const struct ve *ve);
/* A fresh directory VZ_ROOT/vz/dump/VEID.WHAT.PID (dir, its fd) and the
 * dump directory's fd for CRIU's logs. */
int ve_make_img_dir(unsigned veid, const char *what, char *dir, size_t len, int *dir_fd, int *work_fd,
		    struct vz_err *err);
/* Transitional: ve_ckpt.c defines, and migrate.c calls, the old name. */
#define make_img_dir ve_make_img_dir

#endif
