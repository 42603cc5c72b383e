/* The CRIU RPC client: one `criu swrk` child per request, the request and
 * its NOTIFY round trips on a SOCK_SEQPACKET pair, CRIU's answer turned
 * into our error contract with the tail of its log. */
#define LOG_PREFIX "criu: "
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "criu.h"
#include "log.h"
#include "rpc.pb-c.h"
#include "util.h"

/* CRIU's answers are small; an image never travels on this socket. */
#define RPC_MAX_MSG (1 << 20)

struct session {
	int sk;
	pid_t pid;	    /* the swrk process */
	unsigned timeout_s; /* bound on each wait for it */
	bool timed_out;	    /* it was killed for taking longer */
};

static unsigned timeout_of(const struct vz_criu_opts *o)
{
	return o && o->timeout_s ? o->timeout_s : VZ_CRIU_TIMEOUT_DEFAULT;
}

/* Kill swrk, by its pid, and reap it: it took longer than its bound. A
 * SIGSTOPped CRIU dies of SIGKILL too; its tracees are detached by the
 * kernel and run on. */
static void session_kill(struct session *s)
{
	if (s->pid <= 0)
		return;
	pr_warn("CRIU (pid %d) gave no sign for %u s: killing it", (int)s->pid, s->timeout_s);
	kill(s->pid, SIGKILL);
	while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
		;
	s->pid = -1;
	s->timed_out = true;
}

static int session_open(const struct vz_criu *c, const struct vz_criu_opts *o, struct session *s, struct vz_err *err)
{
	int sp[2];

	s->sk = -1;
	s->pid = -1;
	s->timeout_s = timeout_of(o);
	s->timed_out = false;
	if (!c->path || !*c->path)
		return vz_error_msg(err, ENOENT, "No criu configured (run deploy/install-deps)");
	if (access(c->path, X_OK) != 0)
		return vz_error(err, errno, "Cannot run criu %s", c->path);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0)
		return vz_error(err, errno, "Create the CRIU socket");
	s->pid = fork();
	if (s->pid < 0) {
		int e = errno;

		close(sp[0]);
		close(sp[1]);
		return vz_error(err, e, "Fork criu");
	}
	if (s->pid == 0) {
		char fdstr[16];
		int null = open("/dev/null", O_RDWR);

		/* CRIU's own messages go to its log; ours stay ours. */
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		signal(SIGCHLD, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		fcntl(sp[1], F_SETFD, 0);
		snprintf(fdstr, sizeof(fdstr), "%d", sp[1]);
		execl(c->path, "criu", "swrk", fdstr, (char *)NULL);
		fprintf(stderr, "Run %s: %s\n", c->path, strerror(errno));
		_exit(127);
	}
	close(sp[1]);
	s->sk = sp[0];
	return 0;
}

/* Wait for fd to become readable, at most the session's bound: 0, or
 * -ETIMEDOUT. */
static int wait_readable(struct session *s, int fd)
{
	uint64_t end = vz_now_ns() + (uint64_t)s->timeout_s * 1000000000ull;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	for (;;) {
		uint64_t now = vz_now_ns();
		int r;

		if (now >= end)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)((end - now + 999999) / 1000000));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Close our end and reap swrk; it exits once the socket is gone. One that
 * does not within the bound is killed. */
static void session_close(struct session *s)
{
	if (s->sk >= 0)
		close(s->sk);
	s->sk = -1;
	if (s->pid > 0) {
		int pfd = (int)syscall(SYS_pidfd_open, s->pid, 0);

		if (pfd >= 0 && wait_readable(s, pfd) == -ETIMEDOUT)
			session_kill(s);
		if (pfd >= 0)
			close(pfd);
	}
	if (s->pid > 0)
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
	s->pid = -1;
}

static int send_req(struct session *s, const CriuReq *req, struct vz_err *err)
{
	size_t len = criu_req__get_packed_size(req);
	_cleanup_free_ uint8_t *buf = malloc(len ? len : 1);

	if (!buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	criu_req__pack(req, buf);
	if (send(s->sk, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		return vz_error(err, errno ? errno : EIO, "Send a request to criu");
	return 0;
}

static int recv_resp(struct session *s, CriuResp **resp, struct vz_err *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	ssize_t n;

	if (wait_readable(s, s->sk) == -ETIMEDOUT) {
		session_kill(s);
		return vz_error_msg(err, ETIMEDOUT, "No answer from CRIU for %u s", s->timeout_s);
	}
	for (;;) {
		n = recv(s->sk, NULL, 0, MSG_PEEK | MSG_TRUNC);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n == 0)
		return vz_error_msg(err, EPIPE, "CRIU exited without an answer");
	if (n < 0)
		return vz_error(err, errno, "Read CRIU's answer");
	if (n > RPC_MAX_MSG)
		return vz_error_msg(err, EMSGSIZE, "CRIU's answer is too large (%zd bytes)", n);
	buf = malloc((size_t)n);
	if (!buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	if (recv(s->sk, buf, (size_t)n, 0) != n)
		return vz_error(err, EIO, "Read CRIU's answer");
	*resp = criu_resp__unpack(NULL, (size_t)n, buf);
	if (!*resp)
		return vz_error_msg(err, EBADMSG, "CRIU's answer does not parse");
	return 0;
}

void vz_criu_log_tail(int dir_fd, const char *log_file, struct vz_err *err)
{
	char lines[3][256] = { { 0 } }, line[1024];
	size_t nl = 0, used;
	_cleanup_fclose_ FILE *f = NULL;
	int fd;

	if (!log_file || dir_fd < 0)
		return;
	fd = openat(dir_fd, log_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !(f = fdopen(fd, "r"))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	/* The last three lines that say "Error", minus noise CRIU logs on
	 * every run without CAP_SYS_RESOURCE. */
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "Error");

		if (!p || strstr(line, "RLIMIT_NOFILE") || strstr(line, "tables"))
			continue;
		line[strcspn(line, "\n")] = '\0';
		memmove(lines[0], lines[1], sizeof(lines[0]) * 2);
		snprintf(lines[2], sizeof(lines[2]), "%s", p);
		nl++;
	}
	used = strlen(err->msg);
	for (size_t i = nl >= 3 ? 0 : 3 - nl; i < 3 && used < sizeof(err->msg) - 1; i++) {
		snprintf(err->msg + used, sizeof(err->msg) - used, "%s%s", used ? "; " : "", lines[i]);
		used = strlen(err->msg);
	}
}

/* Send req, answer NOTIFYs through o's callback, and return the final
 * answer of the request's type in *out (caller frees). */
static int call(struct session *s, const CriuReq *req, const struct vz_criu_opts *o, CriuResp **out, struct vz_err *err)
{
	int ret = send_req(s, req, err);

	while (ret == 0) {
		CriuResp *resp = NULL;

		ret = recv_resp(s, &resp, err);
		if (ret < 0)
			break;
		if (resp->type == CRIU_REQ_TYPE__NOTIFY) {
			CriuReq ack = CRIU_REQ__INIT;
			const char *script = resp->notify && resp->notify->script ? resp->notify->script : "";
			pid_t pid = resp->notify && resp->notify->has_pid ? resp->notify->pid : 0;
			int r = 0;

			if (o && o->notify)
				r = o->notify(script, pid, o->notify_arg);
			pr_debug("Notify %s (pid %d): %s", script, (int)pid, r < 0 ? "refused" : "ok");
			criu_resp__free_unpacked(resp, NULL);
			ack.type = CRIU_REQ_TYPE__NOTIFY;
			ack.has_notify_success = true;
			ack.notify_success = r >= 0;
			ret = send_req(s, &ack, err);
			continue;
		}
		if (resp->type != req->type) {
			criu_resp__free_unpacked(resp, NULL);
			return vz_error_msg(err, EBADMSG, "CRIU answered a request we did not make");
		}
		*out = resp;
		return 0;
	}
	return ret;
}

/* A failed answer as an error: CRIU's message, errno, and its log. */
static int resp_error(const CriuResp *r, const char *what, const struct vz_criu_opts *o, struct vz_err *err)
{
	int e = r->has_cr_errno && r->cr_errno > 0 ? r->cr_errno : EIO;

	/* CRIU's message is its first error, which without CAP_SYS_RESOURCE
	 * is the harmless RLIMIT_NOFILE one: the log's last errors say more. */
	if (r->cr_errmsg && *r->cr_errmsg && !strstr(r->cr_errmsg, "RLIMIT_NOFILE"))
		vz_error_msg(err, e, "%s failed: %s", what, r->cr_errmsg);
	else
		vz_error_msg(err, e, "%s failed", what);
	if (o)
		vz_criu_log_tail(o->work_dir_fd >= 0 ? o->work_dir_fd : o->images_dir_fd, o->log_file, err);
	/* One line. */
	for (char *c = err->msg; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	return -e;
}

/* The one line a request that ran out of time ends with. */
static int timed_out(const struct session *s, const char *what, struct vz_err *err)
{
	return vz_error_msg(err, ETIMEDOUT, "%s timed out after %u s", what, s->timeout_s);
}

/* A request with no options: VERSION, CHECK, FEATURE_CHECK. */
static int simple_call(const struct vz_criu *c, const char *what, CriuReq *req, CriuResp **resp, struct vz_err *err)
{
	struct session s;
	int ret = session_open(c, NULL, &s, err);

	if (ret == 0)
		ret = call(&s, req, NULL, resp, err);
	session_close(&s);
	if (ret < 0 && s.timed_out)
		return timed_out(&s, what, err);
	return ret;
}

int vz_criu_version(const struct vz_criu *c, struct vz_criu_version *v, struct vz_err *err)
{
	CriuReq req = CRIU_REQ__INIT;
	CriuResp *resp = NULL;
	int ret;

	req.type = CRIU_REQ_TYPE__VERSION;
	ret = simple_call(c, "CRIU version", &req, &resp, err);
	if (ret < 0)
		return ret;
	if (!resp->success || !resp->version) {
		criu_resp__free_unpacked(resp, NULL);
		return vz_error_msg(err, ENOTSUP, "criu %s does not report its version", c->path);
	}
	v->major = resp->version->major_number;
	v->minor = resp->version->minor_number;
	v->sublevel = resp->version->has_sublevel ? resp->version->sublevel : 0;
	if (v->sublevel)
		snprintf(v->text, sizeof(v->text), "%d.%d.%d", v->major, v->minor, v->sublevel);
	else
		snprintf(v->text, sizeof(v->text), "%d.%d", v->major, v->minor);
	criu_resp__free_unpacked(resp, NULL);
	return 0;
}

int vz_criu_features(const struct vz_criu *c, struct vz_criu_features *f, struct vz_err *err)
{
	CriuReq req = CRIU_REQ__INIT;
	CriuFeatures want = CRIU_FEATURES__INIT;
	CriuResp *resp = NULL;
	int ret;

	/* Ask for each; CRIU answers with the ones that work set true. */
	want.has_mem_track = want.mem_track = true;
	want.has_lazy_pages = want.lazy_pages = true;
	want.has_pidfd_store = want.pidfd_store = true;
	req.type = CRIU_REQ_TYPE__FEATURE_CHECK;
	req.features = &want;
	ret = simple_call(c, "CRIU feature check", &req, &resp, err);
	if (ret < 0)
		return ret;
	memset(f, 0, sizeof(*f));
	if (resp->features) {
		f->mem_track = resp->features->has_mem_track && resp->features->mem_track;
		f->lazy_pages = resp->features->has_lazy_pages && resp->features->lazy_pages;
		f->pidfd_store = resp->features->has_pidfd_store && resp->features->pidfd_store;
	}
	criu_resp__free_unpacked(resp, NULL);
	return 0;
}

/* CriuOpts from ours; strings are borrowed, so opts lives no longer. */
struct opts_buf {
	CriuOpts opts;
	CgroupRoot cgr;
	CgroupRoot *pcgr[1];
	CriuPageServerInfo ps;
	char *ext[VZ_CRIU_MAX_EXTERNALS];
};

static void opts_fill(const struct vz_criu_opts *o, struct opts_buf *b)
{
	CriuOpts *x = &b->opts;

	criu_opts__init(x);
	x->images_dir_fd = o->images_dir_fd;
	if (o->work_dir_fd >= 0) {
		x->has_work_dir_fd = true;
		x->work_dir_fd = o->work_dir_fd;
	}
	x->log_file = (char *)o->log_file;
	x->has_log_level = true;
	x->log_level = o->log_level ? o->log_level : 4;
	if (o->pid > 0) {
		x->has_pid = true;
		x->pid = o->pid;
	}
	x->root = (char *)o->root;
	x->freeze_cgroup = (char *)o->freeze_cgroup;
	x->parent_img = (char *)o->parent_img;
	x->has_tcp_established = true;
	x->tcp_established = o->tcp_established;
	x->has_leave_running = true;
	x->leave_running = o->leave_running;
	x->has_lazy_pages = o->lazy_pages;
	x->lazy_pages = o->lazy_pages;
	x->has_track_mem = o->track_mem;
	x->track_mem = o->track_mem;
	if (o->nftables_lock) {
		x->has_network_lock = true;
		x->network_lock = CRIU_NETWORK_LOCK_METHOD__NFTABLES;
	}
	/* The agent makes the VE's groups and sets their limits itself;
	 * CRIU only puts the tasks back in them. */
	x->has_manage_cgroups_mode = true;
	x->manage_cgroups_mode = CRIU_CG_MODE__SOFT;
	if (o->cgroup_root) {
		cgroup_root__init(&b->cgr);
		b->cgr.path = (char *)o->cgroup_root;
		b->pcgr[0] = &b->cgr;
		x->n_cg_root = 1;
		x->cg_root = b->pcgr;
	}
	for (size_t i = 0; i < ARRAY_SIZE(o->externals) && o->externals[i]; i++)
		b->ext[x->n_external++] = (char *)o->externals[i];
	x->external = b->ext;
	if (o->ps_address) {
		criu_page_server_info__init(&b->ps);
		b->ps.address = (char *)o->ps_address;
		b->ps.has_port = true;
		b->ps.port = o->ps_port;
		x->ps = &b->ps;
	}
	x->config_file = (char *)o->config_file;
	x->has_notify_scripts = o->notify != NULL;
	x->notify_scripts = o->notify != NULL;
	x->has_shell_job = false;
	x->has_file_locks = true;
	x->file_locks = true;
	/* Deleted-but-open files travel in the images, up to 64 MiB each. */
	x->has_ghost_limit = true;
	x->ghost_limit = 64u << 20;
	/* An open file whose name is gone but which is still linked elsewhere
	 * (a hard link, a removed directory's file with another name) is
	 * dumped by linking it to a temporary name in its file system, which
	 * the restore opens and removes; without it CRIU refuses the dump. */
	x->has_link_remap = true;
	x->link_remap = true;
}

static int run_op(const struct vz_criu *c, CriuReqType type, const char *what, const struct vz_criu_opts *o,
		  CriuResp **out, struct vz_err *err)
{
	struct opts_buf b;
	CriuReq req = CRIU_REQ__INIT;
	CriuResp *resp = NULL;
	struct session s;
	int ret;

	opts_fill(o, &b);
	/* The restored init becomes our child, as a started one is. */
	if (type == CRIU_REQ_TYPE__RESTORE) {
		b.opts.has_rst_sibling = true;
		b.opts.rst_sibling = true;
	}
	req.type = type;
	req.opts = &b.opts;
	ret = session_open(c, o, &s, err);
	if (ret == 0)
		ret = call(&s, &req, o, &resp, err);
	if (ret < 0) {
		session_close(&s);
		if (s.timed_out)
			return timed_out(&s, what, err);
		vz_criu_log_tail(o->work_dir_fd >= 0 ? o->work_dir_fd : o->images_dir_fd, o->log_file, err);
		return vz_error_wrap(err, "%s", what);
	}
	if (!resp->success) {
		ret = resp_error(resp, what, o, err);
		criu_resp__free_unpacked(resp, NULL);
		session_close(&s);
		return ret;
	}
	session_close(&s);
	if (out)
		*out = resp;
	else
		criu_resp__free_unpacked(resp, NULL);
	return 0;
}

int vz_criu_check(const struct vz_criu *c, int dir_fd, struct vz_err *err)
{
	struct vz_criu_opts o = { .images_dir_fd = dir_fd, .work_dir_fd = -1, .log_file = "check.log" };
	CriuResp *resp = NULL;
	int ret;

	/* CRIU reads its options for CHECK too, images dir included. */
	ret = run_op(c, CRIU_REQ_TYPE__CHECK, "criu check", &o, &resp, err);
	if (ret == 0)
		criu_resp__free_unpacked(resp, NULL);
	return ret;
}

int vz_criu_cpuinfo_dump(const struct vz_criu *c, int dir_fd, struct vz_err *err)
{
	struct vz_criu_opts o = { .images_dir_fd = dir_fd, .work_dir_fd = -1, .log_file = "cpuinfo.log" };

	return run_op(c, CRIU_REQ_TYPE__CPUINFO_DUMP, "CRIU cpuinfo dump", &o, NULL, err);
}

int vz_criu_cpuinfo_check(const struct vz_criu *c, int dir_fd, struct vz_err *err)
{
	struct vz_criu_opts o = { .images_dir_fd = dir_fd, .work_dir_fd = -1, .log_file = "cpuinfo.log" };

	return run_op(c, CRIU_REQ_TYPE__CPUINFO_CHECK, "CRIU cpuinfo check", &o, NULL, err);
}

int vz_criu_dump(const struct vz_criu *c, const struct vz_criu_opts *o, struct vz_err *err)
{
	return run_op(c, CRIU_REQ_TYPE__DUMP, "CRIU dump", o, NULL, err);
}

int vz_criu_pre_dump(const struct vz_criu *c, const struct vz_criu_opts *o, struct vz_err *err)
{
	return run_op(c, CRIU_REQ_TYPE__PRE_DUMP, "CRIU pre-dump", o, NULL, err);
}

int vz_criu_restore(const struct vz_criu *c, const struct vz_criu_opts *o, pid_t *pid, struct vz_err *err)
{
	CriuResp *resp = NULL;
	int ret;

	ret = run_op(c, CRIU_REQ_TYPE__RESTORE, "CRIU restore", o, &resp, err);
	if (ret < 0)
		return ret;
	*pid = resp->restore ? resp->restore->pid : 0;
	criu_resp__free_unpacked(resp, NULL);
	if (*pid <= 0)
		return vz_error_msg(err, EIO, "CRIU restore did not name the restored task");
	return 0;
}

int vz_criu_page_server(const struct vz_criu *c, const struct vz_criu_opts *o, pid_t *pid, struct vz_err *err)
{
	CriuResp *resp = NULL;
	int ret = run_op(c, CRIU_REQ_TYPE__PAGE_SERVER, "CRIU page server", o, &resp, err);

	if (ret < 0)
		return ret;
	*pid = resp->ps && resp->ps->has_pid ? resp->ps->pid : 0;
	criu_resp__free_unpacked(resp, NULL);
	if (*pid <= 0)
		return vz_error_msg(err, EIO, "CRIU did not start a page server");
	return 0;
}
