/* CRIU driven through its RPC: `criu swrk FD` is started as our child on
 * one end of a SOCK_SEQPACKET pair and serves one request (plus the NOTIFY
 * callbacks it makes while serving it). The messages are those of CRIU's
 * rpc.proto, which Debian's criu package installs; the code for them is
 * generated at build time.
 *
 * Every function returns 0 or a negative errno and fills err. When CRIU
 * itself fails, err holds CRIU's message and the last error lines of its
 * log (when a log was asked for), and err->exit_code is left for the
 * caller to set. */
#ifndef VZ_CKPT_CRIU_H
#define VZ_CKPT_CRIU_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct vz_criu_version {
	int major, minor, sublevel;
	char text[32]; /* "4.1.1" */
};

/* Called for each NOTIFY ("post-dump", "pre-resume", "network-lock", ...);
 * pid is the root task when CRIU sends one. A negative return is answered
 * as a failure: CRIU then aborts (after "post-dump": it resumes the tasks). */
typedef int (*vz_criu_notify_fn)(const char *script, pid_t pid, void *arg);

/* What a dump or restore needs. Strings may be NULL. */
#define VZ_CRIU_MAX_EXTERNALS 16

struct vz_criu_opts {
	int images_dir_fd;			      /* required: an open directory */
	int work_dir_fd;			      /* logs go here; -1: the images dir */
	const char *log_file;			      /* file name in work dir, e.g. "dump.log" */
	int log_level;				      /* 0..4, 0 means 4 (everything) */
	pid_t pid;				      /* dump: root of the tree */
	const char *root;			      /* restore: the VE's root */
	const char *freeze_cgroup;		      /* dump: freezer group to freeze with */
	const char *cgroup_root;		      /* restore: where the tree's cgroups go */
	const char *externals[VZ_CRIU_MAX_EXTERNALS]; /* "veth[eth0]:veth101.0@vzbr0", ... */
	bool tcp_established;
	bool leave_running;	/* dump: keep the tasks running */
	bool nftables_lock;	/* lock the network with nftables */
	bool lazy_pages;	/* dump: serve pages lazily; restore: via uffd */
	bool track_mem;		/* pre-dump: soft-dirty tracking */
	const char *parent_img; /* dump after pre-dump: "../N" */
	const char *ps_address; /* page server (dump: send to it) */
	int ps_port;
	const char *config_file; /* CRIU options file (e.g. "address 127.0.0.1") */
	vz_criu_notify_fn notify;
	void *notify_arg;
	/* Bound on every wait for CRIU: each answer it owes and its exit
	 * once done (0: VZ_CRIU_TIMEOUT_DEFAULT; time in notify is ours and
	 * not counted). When it runs out, CRIU is killed by its pid and the
	 * call fails with -ETIMEDOUT and the one line "CRIU dump timed out
	 * after N s". Requests without options use the default. */
	unsigned timeout_s;
};

/* Seconds CRIU may go without answering (each RPC read) or without
 * exiting once done, when vz.conf's CRIU_TIMEOUT does not say. */
#define VZ_CRIU_TIMEOUT_DEFAULT 300

/* Path of the criu executable (the agent's configured one). */
struct vz_criu {
	const char *path;
};

int vz_criu_version(const struct vz_criu *c, struct vz_criu_version *v, struct vz_err *err);

/* CRIU's own check of the kernel (`criu check`): 0 when it passes. Its
 * log goes to dir_fd/check.log. */
int vz_criu_check(const struct vz_criu *c, int dir_fd, struct vz_err *err);

struct vz_criu_features {
	bool mem_track;	 /* soft-dirty: pre-dump works */
	bool lazy_pages; /* userfaultfd: lazy restore works */
	bool pidfd_store;
};
int vz_criu_features(const struct vz_criu *c, struct vz_criu_features *f, struct vz_err *err);

/* Dump the tree under o->pid into o->images_dir_fd. Unless
 * leave_running, the tasks are gone on success and running again (thawed
 * by CRIU) on failure. */
int vz_criu_dump(const struct vz_criu *c, const struct vz_criu_opts *o, struct vz_err *err);

/* One pre-dump round (soft-dirty), leaving the tasks running. */
int vz_criu_pre_dump(const struct vz_criu *c, const struct vz_criu_opts *o, struct vz_err *err);

/* Restore as our child (CRIU's rst_sibling); *pid gets the root task's
 * host pid. On failure CRIU has killed whatever it restored. */
int vz_criu_restore(const struct vz_criu *c, const struct vz_criu_opts *o, pid_t *pid, struct vz_err *err);

/* Start a page server on address:port serving images into
 * o->images_dir_fd; returns its pid (it runs until its peer closes). */
int vz_criu_page_server(const struct vz_criu *c, const struct vz_criu_opts *o, pid_t *pid, struct vz_err *err);

/* CPU features: the source writes cpuinfo.img into dir_fd, the
 * destination checks that image against its own CPU (a VE restored on a
 * CPU lacking a feature it used would crash). */
int vz_criu_cpuinfo_dump(const struct vz_criu *c, int dir_fd, struct vz_err *err);
int vz_criu_cpuinfo_check(const struct vz_criu *c, int dir_fd, struct vz_err *err);

/* Append "; criu log: <last error lines>" from dir_fd/log_file to err. */
void vz_criu_log_tail(int dir_fd, const char *log_file, struct vz_err *err);

#endif
