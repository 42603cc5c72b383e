/* vzcoord exec in vzcoord serve: the admin's request is checked and its
 * VEs picked in the loop, then a worker process runs it to its end (the
 * loop never waits on an agent), giving each VE's command to its agent as
 * an ORDER_EXEC (order.h) and streaming the results to the admin. exec.h. */
#define LOG_PREFIX "exec: "
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "coord.h"
#include "exec.h"
#include "log.h"
#include "order.h"
#include "util.h"

/* An admin that reads nothing for this long has gone: no new VE starts. */
#define EXEC_SEND_TIMEOUT_S 60

struct worker {
	struct vz_conn *conn;
	struct vz_tls *tls;
	uint64_t epoch;
};

struct exec_child {
	ev_child w;
	char what[96];
};

static void run_one(void *arg, const struct exec_target *t, const char *command, unsigned timeout_s,
		    Vz__Pool__ExecResult *r)
{
	struct worker *w = arg;
	struct coord_agent_addr at = { t->host, t->address, t->port, w->tls, w->epoch };
	struct coord_order_result out = { 0 };
	struct vz_err err = { 0 };
	uint64_t t0 = vz_now_ns();
	char *output = NULL;
	size_t len = 0;
	int ret = coord_order_exec(&at, t->veid, command, timeout_s, EXEC_OUTPUT_MAX, &out, &output, &len, &err);

	r->has_elapsed_ms = true;
	r->elapsed_ms = out.elapsed_ms ? out.elapsed_ms : (vz_now_ns() - t0) / 1000000;
	if (ret < 0) {
		pr_warn("VE %u on %s: not run: %s", t->veid, t->host, err.msg);
		free(output);
		r->error = strdup(err.msg);
		return;
	}
	/* The agent's one line beside a status is a refusal (the VE does not
	 * run there, a bad order), but for the timeout's: that one ran. */
	if (out.error[0] && out.exit_code != EXEC_TIMED_OUT) {
		pr_warn("VE %u on %s: not run: %s", t->veid, t->host, out.error);
		free(output);
		r->error = strdup(out.error);
		return;
	}
	r->status = out.exit_code;
	if (out.error[0])
		r->error = strdup(out.error);
	r->has_output_dropped = out.output_dropped > 0;
	r->output_dropped = out.output_dropped;
	r->has_output = output != NULL;
	r->output.data = (uint8_t *)output;
	r->output.len = len;
}

static int emit(void *arg, const Vz__Pool__ExecResult *res)
{
	struct worker *w = arg;
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct vz_err err = { 0 };

	r.result = (Vz__Pool__ExecResult *)res;
	if (vz_msg_send(w->conn, &r.base, &err) < 0) {
		pr_warn("The admin: %s", err.msg);
		return -1;
	}
	return 0;
}

static void reply_end(struct vz_conn *conn, const char *error, int exit_code)
{
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct vz_err err = { 0 };

	r.error = (char *)error;
	r.has_done = r.done = true;
	r.has_exit_code = true;
	r.exit_code = exit_code;
	if (vz_msg_send(conn, &r.base, &err) < 0)
		pr_warn("The admin: %s", err.msg);
}

/* The worker, in its own process: the loop's signals and sockets are not
 * its own, and it leaves with _exit (the store and TLS are the loop's). */
static void __attribute__((noreturn))
worker_main(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req, struct exec_target *t, size_t n)
{
	struct timeval tv = { EXEC_SEND_TIMEOUT_S, 0 };
	struct worker w = { .conn = conn, .epoch = c->epoch };
	struct exec_run run = { .targets = t,
				.n = n,
				.command = req->command,
				.parallel = req->has_parallel && req->parallel ? req->parallel : EXEC_PARALLEL_DEFAULT,
				.max_fail_pct = req->has_max_fail_pct ? req->max_fail_pct : 100,
				.timeout_s = req->timeout_s,
				.run = run_one,
				.emit = emit,
				.arg = &w };
	struct vz_err err = { 0 };
	sigset_t all;
	int code = VZ_EXIT_SYSTEM;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	coord_forget_fds(c);
	setsockopt(conn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (run.parallel > EXEC_PARALLEL_MAX)
		run.parallel = EXEC_PARALLEL_MAX;
	if (vz_tls_new(&w.tls, c->conf.tls_ca, c->conf.tls_cert, c->conf.tls_key, false, &err) < 0 ||
	    exec_run(&run, &code, &err) < 0)
		reply_end(conn, err.msg, VZ_EXIT_SYSTEM);
	else
		reply_end(conn, NULL, code);
	pr_info("Exec of %zu VEs: exit status %d", n, code);
	_exit(0);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct exec_child *ch = container_of(w, struct exec_child, w);

	(void)revents;
	ev_child_stop(loop, w);
	if (!WIFEXITED(w->rstatus) || WEXITSTATUS(w->rstatus))
		pr_warn("%s: the worker ended with status %#x", ch->what, w->rstatus);
	free(ch);
}

static int check(const Vz__Pool__AdminRequest *req, struct vz_err *err)
{
	if (req->has_parallel && (req->parallel < 1 || req->parallel > EXEC_PARALLEL_MAX))
		return vz_error_msg(err, EINVAL, "--parallel must be 1..%u", EXEC_PARALLEL_MAX);
	if (req->has_max_fail_pct && req->max_fail_pct > 100)
		return vz_error_msg(err, EINVAL, "--max-fail must be 0%%..100%%");
	if (req->timeout_s > EXEC_TIMEOUT_MAX)
		return vz_error_msg(err, EINVAL, "--timeout must be 0..%u s", EXEC_TIMEOUT_MAX);
	return 0;
}

void coord_exec_start(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	_cleanup_free_ struct exec_target *t = NULL;
	struct exec_child *ch = calloc(1, sizeof(*ch));
	struct vz_err err = { 0 };
	size_t n = 0;
	pid_t pid;

	if (!ch) {
		reply_end(conn, "Out of memory", VZ_EXIT_SYSTEM);
		return;
	}
	if (check(req, &err) < 0 || exec_select(&c->pool, vz_now_ns(), req, &t, &n, &err) < 0) {
		reply_end(conn, err.msg, err.errnum == EINVAL ? 2 : VZ_EXIT_SYSTEM);
		free(ch);
		return;
	}
	pid = fork();
	if (pid == 0)
		worker_main(c, conn, req, t, n);
	if (pid < 0) {
		vz_error(&err, errno, "Fork the worker of an exec");
		reply_end(conn, err.msg, VZ_EXIT_SYSTEM);
		free(ch);
		return;
	}
	snprintf(ch->what, sizeof(ch->what), "Exec of %zu VEs (pid %d)", n, (int)pid);
	pr_info("%s: %s", ch->what, req->command);
	ev_child_init(&ch->w, child_cb, pid, 0);
	ev_child_start(c->loop, &ch->w);
}
