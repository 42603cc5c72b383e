/* vzagent's context and the handlers of control requests.
 *
 * The daemon's main process only accepts connections on the control socket
 * (root peers only), reaps, watches running VEs' inits, and serves
 * /metrics (metrics.h). Each request is
 * served in a forked worker that takes the VE's lock, does blocking work
 * and answers; the state of VEs lives on disk (configs, pid files) and in
 * the kernel (namespaces, cgroups, mounts), so a restarted agent finds and
 * adopts them again. */
#ifndef VZ_AGENT_H
#define VZ_AGENT_H

#include <ev.h>
#include <stdbool.h>
#include <sys/types.h>

#include "cgroup.h"
#include "config.h"
#include "control.h"
#include "err.h"
#include "metrics_http.h"

struct ve_watch;
struct agent_metrics;

struct vz_agent {
	struct ev_loop *loop;
	struct vz_cg cg;
	struct vz_conf global; /* vz.conf */
	char criu[4096];       /* criu executable to run */
	unsigned criu_timeout; /* seconds CRIU may go without answering or exiting */
	char bridge[16];
	unsigned ip_prefix;    /* prefix length for --ipadd without /N */
	unsigned stop_timeout; /* seconds init gets to shut down */
	unsigned userns_base;  /* first host id of the VEs' user namespaces */
	/* Why VEs' network filters cannot be had here (vz_net_filter_probe
	 * at start), "" when they can. */
	char netfilter_off[512];
	int listen_fd;
	ev_io accept_w;
	/* Migrations: TLS on mig_port, -1 when this host has no certificate. */
	int mig_fd;
	unsigned mig_port;
	unsigned mig_timeout; /* seconds without progress before a migration fails */
	ev_io mig_w;
	char host_name[64];
	char tls_ca[4096], tls_cert[4096], tls_key[4096];
	/* The pool (pool.h): coordinator "" when this host is in none. */
	char coord_host[256];
	unsigned coord_port;
	unsigned hb_interval; /* seconds between heartbeats */
	pid_t pool_pid;	      /* the member process, 0 when none runs */
	ev_timer pool_w;      /* its respawn */
	ev_signal sigterm_w, sigint_w;
	ev_child child_w;
	struct ve_watch *watches;
	/* /metrics (metrics.h): METRICS_LISTEN, "" when off. */
	char metrics_listen[128];
	struct vz_metrics_srv metrics_srv;
	struct agent_metrics *metrics;
};

/* One request being served in a worker. fds are those that came with it. */
struct vz_call {
	struct vz_agent *agent;
	int conn;
	vz_request *req;
	int fds[4];
	size_t nfds;
};

/* Read vz.conf and derive the settings above. */
int agent_load_global(struct vz_agent *a, struct vz_err *err);

/* Server: listen, accept, fork workers, watch VEs (server.c). */
int agent_listen(struct vz_agent *a, struct vz_err *err);
/* In a freshly forked worker: default signal dispositions, and none of
 * the main process's listening sockets. */
void agent_worker_detach(struct vz_agent *a);
void agent_watch_ve(struct vz_agent *a, unsigned veid, pid_t init);
/* Find running VEs from their pid files, watch them, clean dead ones. */
void agent_adopt(struct vz_agent *a);
/* Serve until SIGTERM or SIGINT. Running VEs are left running. */
int agent_run(struct vz_agent *a);

/* Listen for migrations on mig_port when this host has TLS files; each
 * accepted connection goes to mig_dest_serve (migrate/migrate.h). */
int agent_listen_migrate(struct vz_agent *a, struct vz_err *err);
/* vzmigrate's request: a mig_request for the engine (ops_migrate.c). */
int op_migrate(struct vz_call *c, struct vz_err *err);

/* Serve one request in a worker; returns the process exit status. */
int agent_dispatch(struct vz_call *call);

/* Handlers: each returns 0 or a negative errno with err filled. The
 * dispatcher sends the final reply. */
int op_create(struct vz_call *c, struct vz_err *err);
int op_destroy(struct vz_call *c, struct vz_err *err);
int op_mount(struct vz_call *c, struct vz_err *err);
int op_umount(struct vz_call *c, struct vz_err *err);
int op_start(struct vz_call *c, struct vz_err *err);
int op_stop(struct vz_call *c, struct vz_err *err);
int op_restart(struct vz_call *c, struct vz_err *err);
int op_set(struct vz_call *c, struct vz_err *err);
/* exec and enter send their own final reply (it carries the exit status). */
int op_exec(struct vz_call *c, struct vz_err *err);
int op_enter(struct vz_call *c, struct vz_err *err);
int op_status(struct vz_call *c, struct vz_err *err);
int op_list(struct vz_call *c, struct vz_err *err);
/* Checkpoint and restore (ve_ckpt.c). */
int op_chkpnt(struct vz_call *c, struct vz_err *err);
int op_restore(struct vz_call *c, struct vz_err *err);
int op_ckpt_check(struct vz_call *c, struct vz_err *err);

/* Clean up after a VE whose init is gone: cgroups, mount, pid file.
 * Idempotent; takes the VE lock. */
int ve_cleanup_dead(struct vz_agent *a, unsigned veid, struct vz_err *err);

#endif
