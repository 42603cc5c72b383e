/* vzagent's main process: the control socket (root peers only), one
 * forked worker per request, reaping, and a pidfd watch on every running
 * VE's init so that a VE whose init exits is cleaned up. */
#define LOG_PREFIX "server: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "cleanup.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "migrate/migrate.h"
#include "paths.h"
#include "pool.h"
#include "util.h"
#include "ve_ops.h"

struct ve_watch {
	ev_io io;
	struct vz_agent *agent;
	unsigned veid;
	pid_t init;
	struct ve_watch *next;
};

int agent_listen(struct vz_agent *a, struct vz_err *err)
{
	char path[PATH_MAX];
	int ret = vz_unix_listen(vz_path_agent_sock(path, sizeof(path)), "vzagent", &a->listen_fd, err);

	if (ret == 0)
		pr_info("Listening on %s", path);
	return ret;
}

int agent_listen_migrate(struct vz_agent *a, struct vz_err *err)
{
	int fd, ret;

	a->mig_fd = VZ_FD_INIT;
	if (!vz_exists(a->tls_cert) || !vz_exists(a->tls_key) || !vz_exists(a->tls_ca)) {
		pr_info("No TLS certificate at %s: this host takes no migrations (deploy/vz-certs makes one)",
			a->tls_cert);
		return 0;
	}
	ret = vz_tcp_listen(a->mig_port, &fd, err);
	if (ret < 0)
		return vz_error_wrap(err, "Migrations");
	a->mig_fd = fd;
	pr_info("Taking migrations on port %u (TLS, certificate %s)", a->mig_port, a->tls_cert);
	return 0;
}

void agent_worker_detach(struct vz_agent *a)
{
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	vz_closep(&a->listen_fd);
	vz_closep(&a->mig_fd);
	vz_metrics_forget(&a->metrics_srv);
}

static void mig_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vz_agent *a = container_of(w, struct vz_agent, mig_w);
	int conn;
	pid_t pid;

	(void)loop;
	(void)revents;
	conn = accept4(a->mig_fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return;
	pid = fork();
	if (pid == 0) {
		agent_worker_detach(a);
		mig_dest_serve(a, conn);
		_exit(0);
	}
	if (pid < 0)
		pr_perror("Fork a migration worker");
	close(conn);
}

static void refuse(int conn, const char *why)
{
	struct vz_err err = { 0 };

	vz_error_exit_msg(&err, VZ_EXIT_PERM, EPERM, "%s", why);
	vz_ctl_finish(conn, -EPERM, &err);
}

/* A forked worker: read one request, serve it, exit. */
static void worker(struct vz_agent *a, int conn)
{
	struct vz_call call = { .agent = a, .conn = conn };
	struct vz_err err = { 0 };
	int ret;

	agent_worker_detach(a);
	ret = vz_ctl_recv_request(conn, &call.req, call.fds, &call.nfds, &err);
	if (ret < 0) {
		pr_warn("Bad request: %s", err.msg);
		vz_ctl_finish(conn, ret, &err);
		_exit(1);
	}
	ret = agent_dispatch(&call);
	_exit(ret < 0 ? 1 : 0);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct vz_agent *a = container_of(w, struct vz_agent, accept_w);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int conn;
	pid_t pid;

	(void)loop;
	(void)revents;
	conn = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return;
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != 0) {
		pr_warn("Refused a client with uid %d: root only", (int)cred.uid);
		refuse(conn, "Permission denied: vzagent serves root only");
		close(conn);
		return;
	}
	pid = fork();
	if (pid < 0) {
		pr_perror("Fork a worker");
		close(conn);
		return;
	}
	if (pid == 0)
		worker(a, conn);
	close(conn);
}

static void spawn_cleanup(struct vz_agent *a, unsigned veid)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct vz_err err = { 0 };

		agent_worker_detach(a);
		if (ve_cleanup_dead(a, veid, &err) < 0) {
			pr_err("VE %u: cleanup failed: %s", veid, err.msg);
			_exit(1);
		}
		_exit(0);
	}
	if (pid < 0)
		pr_perror("Fork a cleanup worker for VE %u", veid);
}

/* The first agent since the host booted starts the ONBOOT VEs; a restarted
 * one adopts what runs and leaves stopped VEs stopped. VZ_RUN_DIR is a
 * tmpfs emptied at boot, so a marker there tells the two apart. */
static void spawn_onboot(struct vz_agent *a)
{
	char path[PATH_MAX];
	int fd;
	pid_t pid;

	vz_path(path, sizeof(path), VZ_RUN_DIR "/onboot.done");
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		if (errno == EEXIST)
			pr_info("Not the first agent since boot (%s exists): stopped VEs stay stopped", path);
		else
			pr_perror("Create %s: VEs with ONBOOT=yes are not started", path);
		return;
	}
	close(fd);
	pid = fork();
	if (pid == 0) {
		agent_worker_detach(a);
		ve_start_onboot(a);
		_exit(0);
	}
	if (pid < 0)
		pr_perror("Fork the worker that starts the ONBOOT VEs");
}

static void unwatch(struct vz_agent *a, struct ve_watch *w)
{
	for (struct ve_watch **pp = &a->watches; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	ev_io_stop(a->loop, &w->io);
	close(w->io.fd);
	free(w);
}

static void init_exit_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ve_watch *w = container_of(io, struct ve_watch, io);
	struct vz_agent *a = w->agent;
	unsigned veid = w->veid;

	(void)loop;
	(void)revents;
	pr_info("VE %u: init %d exited", veid, (int)w->init);
	unwatch(a, w);
	spawn_cleanup(a, veid);
}

void agent_watch_ve(struct vz_agent *a, unsigned veid, pid_t init)
{
	struct ve_watch *w;
	int pfd;

	for (w = a->watches; w; w = w->next)
		if (w->veid == veid && w->init == init)
			return;
	pfd = (int)syscall(SYS_pidfd_open, init, 0);
	if (pfd < 0) {
		spawn_cleanup(a, veid);
		return;
	}
	fcntl(pfd, F_SETFD, FD_CLOEXEC);
	w = calloc(1, sizeof(*w));
	if (!w) {
		close(pfd);
		return;
	}
	w->agent = a;
	w->veid = veid;
	w->init = init;
	ev_io_init(&w->io, init_exit_cb, pfd, EV_READ);
	ev_io_start(a->loop, &w->io);
	w->next = a->watches;
	a->watches = w;
	pr_debug("VE %u: watching init %d", veid, (int)init);
}

void agent_adopt(struct vz_agent *a)
{
	char dir[PATH_MAX];
	_cleanup_closedir_ DIR *d = opendir(vz_path(dir, sizeof(dir), VZ_RUN_DIR));
	struct dirent *de;

	while (d && (de = readdir(d))) {
		unsigned long long start;
		unsigned veid;
		pid_t pid;
		char tail[8];

		if (sscanf(de->d_name, "%u.pi%1s", &veid, tail) != 2 || strcmp(strchr(de->d_name, '.'), ".pid"))
			continue;
		if (ve_read_pidfile(veid, &pid, &start) < 0)
			continue;
		if (start && ve_proc_start_time(pid) == start) {
			bool known = false;

			for (struct ve_watch *w = a->watches; w; w = w->next)
				known |= w->veid == veid && w->init == pid;
			if (!known) {
				pr_info("VE %u: running, init pid %d", veid, (int)pid);
				agent_watch_ve(a, veid, pid);
			}
		} else {
			/* Only when no worker is busy with this VE: the pid file
			 * of a VE being started is written before we look. */
			pr_info("VE %u: init %d is gone", veid, (int)pid);
			spawn_cleanup(a, veid);
		}
	}
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct vz_agent *a = container_of(w, struct vz_agent, child_w);

	(void)loop;
	(void)revents;
	agent_pool_reaped(a, w->rpid);
	/* A worker may have started a VE: look for new pid files. */
	agent_adopt(a);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	pr_info("Signal %d: leaving; running VEs keep running", w->signum);
	sd_notify(0, "STOPPING=1");
	ev_break(loop, EVBREAK_ALL);
}

int agent_run(struct vz_agent *a)
{
	char path[PATH_MAX];

	ev_io_init(&a->accept_w, accept_cb, a->listen_fd, EV_READ);
	ev_io_start(a->loop, &a->accept_w);
	if (a->mig_fd >= 0) {
		ev_io_init(&a->mig_w, mig_accept_cb, a->mig_fd, EV_READ);
		ev_io_start(a->loop, &a->mig_w);
	}
	ev_child_init(&a->child_w, child_cb, 0, 0);
	ev_child_start(a->loop, &a->child_w);
	ev_signal_init(&a->sigterm_w, signal_cb, SIGTERM);
	ev_signal_start(a->loop, &a->sigterm_w);
	ev_signal_init(&a->sigint_w, signal_cb, SIGINT);
	ev_signal_start(a->loop, &a->sigint_w);
	agent_adopt(a);
	mig_recover(a);
	spawn_onboot(a);
	agent_pool_start(a);
	/* Under systemd (Type=notify): the sockets listen, VEs are adopted. */
	sd_notify(0, "READY=1");
	ev_run(a->loop, 0);
	agent_pool_stop(a);
	agent_metrics_stop(a);
	close(a->listen_fd);
	unlink(vz_path_agent_sock(path, sizeof(path)));
	while (a->watches)
		unwatch(a, a->watches);
	return 0;
}
