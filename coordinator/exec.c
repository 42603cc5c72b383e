/* vzcoord exec, the coordinator's side: which VEs a request selects, and
 * the fan-out to their agents (the scheduler's order and failure budget,
 * one thread per running VE). exec.h. */
#define LOG_PREFIX "exec: "
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "exec.h"
#include "log.h"
#include "util.h"

static bool listed(const Vz__Pool__AdminRequest *req, unsigned veid)
{
	size_t lo = 0, hi = req->n_veids;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (req->veids[mid] == veid)
			return true;
		if (req->veids[mid] < veid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* What --all would take of one host's VE: a running one, or one last
 * known running of a host that is silent now (reported, not run). */
static bool counts_for_all(const struct pool_held *h)
{
	return h->ve->state == VZ__POOL__VE_STATE__VE_RUNNING;
}

static bool group_selected(const struct pool *p, const Vz__Pool__AdminRequest *req, const struct pool_held *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (req->n_veids)
			return listed(req, g[i].veid);
		if (!counts_for_all(&g[i]))
			continue;
		if (req->all || !strcmp(req->host, p->hosts[g[i].host]->name))
			return true;
	}
	return false;
}

static const char *state_word(Vz__Pool__VeState s)
{
	return s == VZ__POOL__VE_STATE__VE_MOUNTED ? "mounted" : "stopped";
}

/* One selected VEID held by n hosts: where it runs, or why not. */
static void target_of(const struct pool *p, uint64_t now, const struct pool_held *g, size_t n, struct exec_target *t)
{
	const struct pool_node *h = p->hosts[g[0].host];
	enum pool_host_state hs = pool_host_state_at(p, h, now);

	memset(t, 0, sizeof(*t));
	t->veid = g[0].veid;
	snprintf(t->host, sizeof(t->host), "%s", h->name);
	if (n > 1)
		snprintf(t->why, sizeof(t->why), "reported by %zu hosts (%s and %s%s): neither is acted on", n, h->name,
			 p->hosts[g[1].host]->name, n > 2 ? ", ..." : "");
	else if (hs != POOL_HOST_ONLINE)
		snprintf(t->why, sizeof(t->why), "its host %s is %s", h->name, pool_host_state_name(hs));
	else if (g[0].ve->state != VZ__POOL__VE_STATE__VE_RUNNING)
		snprintf(t->why, sizeof(t->why), "not running (%s)", state_word(g[0].ve->state));
	else if (!h->address[0] || !h->mig_port)
		snprintf(t->why, sizeof(t->why), "its host %s gave no address for orders", h->name);
	snprintf(t->address, sizeof(t->address), "%s", h->address);
	t->port = h->mig_port;
}

static bool has_host(const struct pool *p, const char *name)
{
	for (size_t i = 0; i < p->n_hosts; i++)
		if (!strcmp(p->hosts[i]->name, name))
			return true;
	return false;
}

int exec_select(const struct pool *p, uint64_t now, const Vz__Pool__AdminRequest *req, struct exec_target **out,
		size_t *n_out, struct vz_err *err)
{
	_cleanup_free_ struct pool_held *all = NULL;
	struct exec_target *t;
	size_t n = 0, nt = 0, k = 0;
	int ret;

	if (!req->command || !*req->command)
		return vz_error_msg(err, EINVAL, "No command to run");
	if ((req->all ? 1 : 0) + (req->host ? 1 : 0) + (req->n_veids ? 1 : 0) != 1)
		return vz_error_msg(err, EINVAL, "Choose the VEs with one of --all, --host H and --ve LIST");
	if (req->host && !has_host(p, req->host))
		return vz_error_msg(err, EINVAL, "No host %s in the pool", req->host);
	for (size_t i = 1; i < req->n_veids; i++)
		if (req->veids[i] <= req->veids[i - 1])
			return vz_error_msg(err, EINVAL, "The VE list is not in order");
	ret = pool_held_list(p, &all, &n, err);
	if (ret < 0)
		return ret;
	t = calloc(n + req->n_veids + 1, sizeof(*t));
	if (!t)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && all[j].veid == all[i].veid; j++)
			;
		/* A listed VE that no host reports comes first, in order. */
		for (; k < req->n_veids && req->veids[k] < all[i].veid; k++)
			t[nt++] = (struct exec_target){ .veid = req->veids[k], .host = "-", .why = "not in the pool" };
		if (k < req->n_veids && req->veids[k] == all[i].veid)
			k++;
		if (group_selected(p, req, &all[i], j - i))
			target_of(p, now, &all[i], j - i, &t[nt++]);
	}
	for (; k < req->n_veids; k++)
		t[nt++] = (struct exec_target){ .veid = req->veids[k], .host = "-", .why = "not in the pool" };
	*out = t;
	*n_out = nt;
	return 0;
}

int exec_sched_init(struct exec_sched *s, size_t n, const bool *runnable, unsigned parallel, unsigned max_fail_pct,
		    struct vz_err *err)
{
	memset(s, 0, sizeof(*s));
	s->state = calloc(n ? n : 1, sizeof(*s->state));
	if (!s->state)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	s->n = n;
	s->parallel = parallel ? parallel : 1;
	s->max_fail_pct = max_fail_pct > 100 ? 100 : max_fail_pct;
	for (size_t i = 0; i < n; i++) {
		s->state[i] = runnable[i] ? EXEC_WAITING : EXEC_NOT_RUN;
		s->to_run += runnable[i];
	}
	return 0;
}

void exec_sched_free(struct exec_sched *s)
{
	free(s->state);
	s->state = NULL;
}

ssize_t exec_sched_start(struct exec_sched *s)
{
	if (s->stopped || s->running >= s->parallel)
		return -1;
	while (s->next_start < s->n && s->state[s->next_start] != EXEC_WAITING)
		s->next_start++;
	if (s->next_start == s->n)
		return -1;
	s->state[s->next_start] = EXEC_RUNNING;
	s->running++;
	return (ssize_t)s->next_start++;
}

void exec_sched_stop(struct exec_sched *s)
{
	s->stopped = true;
	for (size_t i = s->next_start; i < s->n; i++)
		if (s->state[i] == EXEC_WAITING)
			s->state[i] = EXEC_SKIPPED;
}

void exec_sched_finish(struct exec_sched *s, size_t i, bool failed)
{
	if (i >= s->n || s->state[i] != EXEC_RUNNING)
		return;
	s->state[i] = EXEC_FINISHED;
	s->running--;
	s->failed += failed;
	/* Spent once the failures exceed the share: with 0% the first one. */
	if (s->failed * 100 > (size_t)s->max_fail_pct * s->to_run)
		exec_sched_stop(s);
}

ssize_t exec_sched_emit(struct exec_sched *s)
{
	enum exec_state st;

	if (s->next_emit == s->n)
		return -1;
	st = s->state[s->next_emit];
	if (st == EXEC_WAITING || st == EXEC_RUNNING)
		return -1;
	return (ssize_t)s->next_emit++;
}

bool exec_sched_over(const struct exec_sched *s)
{
	return s->next_emit == s->n && s->running == 0;
}

enum exec_kind exec_result_kind(const Vz__Pool__ExecResult *r)
{
	if (r->skipped)
		return EXEC_SKIP;
	if (!r->has_status || r->status < 0)
		return EXEC_NOTRUN;
	return r->status == 0 ? EXEC_OK : EXEC_FAILED;
}

void exec_tally_add(struct exec_tally *t, const Vz__Pool__ExecResult *r)
{
	size_t *count[] = {
		[EXEC_OK] = &t->ok, [EXEC_FAILED] = &t->failed, [EXEC_NOTRUN] = &t->not_run, [EXEC_SKIP] = &t->skipped
	};

	t->total++;
	(*count[exec_result_kind(r)])++;
}

void exec_result_clear(Vz__Pool__ExecResult *r)
{
	free(r->host);
	free(r->error);
	free(r->output.data);
	vz__pool__exec_result__init(r);
}

/* The run shared by the threads, under mu. */
struct fanout {
	const struct exec_run *run;
	struct exec_sched s;
	Vz__Pool__ExecResult *res;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool listening; /* the admin reads the results */
};

struct job {
	struct fanout *f;
	size_t i;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	struct fanout *f = j->f;
	const struct exec_run *run = f->run;
	Vz__Pool__ExecResult *r = &f->res[j->i];

	run->run(run->arg, &run->targets[j->i], run->command, run->timeout_s, r);
	pthread_mutex_lock(&f->mu);
	/* A command that ran and failed, or one that could not be given: both
	 * spend the budget (ansible counts an unreachable host as failed). */
	exec_sched_finish(&f->s, j->i, exec_result_kind(r) != EXEC_OK);
	pthread_cond_signal(&f->cv);
	pthread_mutex_unlock(&f->mu);
	free(j);
	return NULL;
}

/* Start what may start now (under mu). A thread that cannot be made is
 * the VE not run. */
static void start_jobs(struct fanout *f)
{
	ssize_t i;

	while ((i = exec_sched_start(&f->s)) >= 0) {
		struct job *j = malloc(sizeof(*j));
		pthread_attr_t attr;
		pthread_t tid;
		int ret = j ? 0 : ENOMEM;

		if (j) {
			*j = (struct job){ f, (size_t)i };
			pthread_attr_init(&attr);
			pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
			ret = pthread_create(&tid, &attr, job_main, j);
			pthread_attr_destroy(&attr);
		}
		if (ret == 0)
			continue;
		free(j);
		f->res[i].has_status = true;
		f->res[i].status = -1;
		f->res[i].error = strdup("no thread to run it");
		exec_sched_finish(&f->s, (size_t)i, true);
	}
}

static void fill_unrun(struct fanout *f)
{
	for (size_t i = 0; i < f->s.n; i++) {
		Vz__Pool__ExecResult *r = &f->res[i];
		const struct exec_target *t = &f->run->targets[i];

		r->veid = t->veid;
		r->host = strdup(t->host);
		r->has_status = true;
		r->status = -1;
		if (f->s.state[i] == EXEC_NOT_RUN)
			r->error = strdup(t->why);
	}
}

/* A result final now: those skipped are said so here. */
static void finalize(struct fanout *f, size_t i)
{
	Vz__Pool__ExecResult *r = &f->res[i];
	char why[96];

	if (f->s.state[i] != EXEC_SKIPPED)
		return;
	r->has_skipped = r->skipped = true;
	if (f->listening)
		snprintf(why, sizeof(why), "the failure budget (--max-fail %u%%) was spent", f->run->max_fail_pct);
	else
		snprintf(why, sizeof(why), "the admin went away");
	free(r->error);
	r->error = strdup(why);
}

int exec_run(const struct exec_run *run, int *exit_code, struct vz_err *err)
{
	_cleanup_free_ bool *runnable = calloc(run->n ? run->n : 1, sizeof(bool));
	struct fanout f = { .run = run, .listening = true };
	struct exec_tally t = { 0 };
	int ret;

	if (!runnable)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (size_t i = 0; i < run->n; i++)
		runnable[i] = !run->targets[i].why[0];
	ret = exec_sched_init(&f.s, run->n, runnable, run->parallel, run->max_fail_pct, err);
	if (ret < 0)
		return ret;
	f.res = calloc(run->n ? run->n : 1, sizeof(*f.res));
	if (!f.res) {
		exec_sched_free(&f.s);
		return vz_error_msg(err, ENOMEM, "Out of memory");
	}
	for (size_t i = 0; i < run->n; i++)
		vz__pool__exec_result__init(&f.res[i]);
	fill_unrun(&f);
	pthread_mutex_init(&f.mu, NULL);
	pthread_cond_init(&f.cv, NULL);
	pthread_mutex_lock(&f.mu);
	while (!exec_sched_over(&f.s)) {
		ssize_t i;
		bool gone;

		/* Results first: an admin gone shows at a send, and then nothing
		 * more starts. */
		while ((i = exec_sched_emit(&f.s)) >= 0) {
			finalize(&f, (size_t)i);
			exec_tally_add(&t, &f.res[i]);
			/* A result is left alone once final: send it unlocked. */
			pthread_mutex_unlock(&f.mu);
			gone = f.listening && run->emit(run->arg, &f.res[i]) < 0;
			pthread_mutex_lock(&f.mu);
			if (gone)
				f.listening = false;
			if (!f.listening && !f.s.stopped) {
				pr_warn("The admin went away: no new VE starts");
				exec_sched_stop(&f.s);
			}
		}
		start_jobs(&f);
		if (!exec_sched_over(&f.s) && f.s.running > 0)
			pthread_cond_wait(&f.cv, &f.mu);
	}
	pthread_mutex_unlock(&f.mu);
	pthread_cond_destroy(&f.cv);
	pthread_mutex_destroy(&f.mu);
	for (size_t i = 0; i < run->n; i++)
		exec_result_clear(&f.res[i]);
	free(f.res);
	exec_sched_free(&f.s);
	*exit_code = t.ok == t.total ? 0 : VZ_EXIT_EXEC;
	return 0;
}
