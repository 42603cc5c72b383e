/* coordinator/exec.c and exec_cli.c: the command line of vzcoord exec,
 * the VEs a request selects, the scheduler's order and failure budget,
 * the fan-out with a runner that records what ran, and what is printed. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "exec.h"
#include "log.h"
#include "members.h"
#include "util.h"

#define S 1000000000ull

static void quiet(void)
{
	vz_log_init("test", VZ_LOG_ERR, 0);
}

TestSuite(exec, .init = quiet);

Test(exec, ve_list_ranges_sorted_once)
{
	struct vz_err err = { 0 };
	unsigned *v = NULL;
	size_t n = 0;

	cr_assert_eq(exec_parse_ve_list("105,101,102-104,103", &v, &n, &err), 0, "%s", err.msg);
	cr_assert_eq(n, 5);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(v[i], 101 + i);
	free(v);
	cr_assert_eq(exec_parse_ve_list("7", &v, &n, &err), 0);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0], 7);
	free(v);
}

Test(exec, ve_list_refuses_bad_lists)
{
	const char *bad[] = {
		"", "a", "101-", "-101", "105-101", "0", ",101", "101,", "101,,102", "1-2-3", "4294967296"
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct vz_err err = { 0 };
		unsigned *v = NULL;
		size_t n = 0;

		cr_assert_lt(exec_parse_ve_list(bad[i], &v, &n, &err), 0, "'%s' taken", bad[i]);
		cr_assert_eq(err.exit_code, 2, "'%s'", bad[i]);
		cr_assert_not_null(strstr(err.msg, "VE list"), "'%s': %s", bad[i], err.msg);
	}
}

Test(exec, max_fail_takes_a_percentage)
{
	struct vz_err err = { 0 };
	unsigned p = 7;

	cr_assert_eq(exec_parse_pct("10%", &p, &err), 0);
	cr_assert_eq(p, 10);
	cr_assert_eq(exec_parse_pct("0", &p, &err), 0);
	cr_assert_eq(p, 0);
	cr_assert_eq(exec_parse_pct("100%", &p, &err), 0);
	cr_assert_eq(p, 100);
	cr_assert_lt(exec_parse_pct("101%", &p, &err), 0);
	cr_assert_lt(exec_parse_pct("-1", &p, &err), 0);
	cr_assert_lt(exec_parse_pct("%", &p, &err), 0);
	cr_assert_lt(exec_parse_pct("ten", &p, &err), 0);
	cr_assert_not_null(strstr(err.msg, "--max-fail"), "%s", err.msg);
}

static int parse(struct exec_opts *o, struct vz_err *err, ...)
{
	char *argv[32] = { "exec" };
	int argc = 1;
	va_list ap;

	va_start(ap, err);
	for (char *a; (a = va_arg(ap, char *));)
		argv[argc++] = a;
	va_end(ap);
	memset(err, 0, sizeof(*err));
	return exec_parse_args(argc, argv, o, err);
}

Test(exec, args_defaults_and_command)
{
	struct exec_opts o;
	struct vz_err err;

	cr_assert_eq(parse(&o, &err, "--all", "--", "echo", "a b", NULL), 0, "%s", err.msg);
	cr_assert(o.all);
	cr_assert_eq(o.parallel, EXEC_PARALLEL_DEFAULT);
	cr_assert_eq(o.max_fail_pct, 100);
	cr_assert_eq(o.timeout_s, 0);
	cr_assert_str_eq(o.command, "echo a b");
	exec_opts_free(&o);
	cr_assert_eq(parse(&o, &err, "--ve", "101-103", "--parallel", "4", "--max-fail", "25%", "--timeout", "9",
			   "--json", "--", "exit 3", NULL),
		     0, "%s", err.msg);
	cr_assert_eq(o.n_veids, 3);
	cr_assert_eq(o.parallel, 4);
	cr_assert_eq(o.max_fail_pct, 25);
	cr_assert_eq(o.timeout_s, 9);
	cr_assert(o.json);
	exec_opts_free(&o);
}

Test(exec, args_refused_in_one_line)
{
	struct {
		const char *want;
		char *args[6];
	} bad[] = {
		{ "No command", { "--all", NULL } },
		{ "No command", { "--all", "--", NULL } },
		{ "Choose the VEs", { "--", "true", NULL } },
		{ "Choose the VEs", { "--all", "--host", "h1", "--", "true", NULL } },
		{ "--parallel", { "--all", "--parallel", "0", "--", "true", NULL } },
		{ "--max-fail", { "--all", "--max-fail", "150%", "--", "true", NULL } },
		{ "--timeout", { "--all", "--timeout", "x", "--", "true", NULL } },
		{ "VE list", { "--ve", "1x", "--", "true", NULL } },
		{ "Unknown option", { "--bogus", "--", "true", NULL } },
		{ "needs a value", { "--all", "--parallel", NULL } },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *argv[8] = { "exec" };
		struct exec_opts o;
		struct vz_err err = { 0 };
		int argc = 1;

		for (size_t k = 0; bad[i].args[k]; k++)
			argv[argc++] = bad[i].args[k];
		cr_assert_lt(exec_parse_args(argc, argv, &o, &err), 0, "case %zu taken", i);
		cr_assert_eq(err.exit_code, 2, "case %zu", i);
		cr_assert_not_null(strstr(err.msg, bad[i].want), "case %zu: %s", i, err.msg);
		cr_assert_null(strchr(err.msg, '\n'), "case %zu", i);
	}
}

Test(exec, sched_starts_in_order_at_most_parallel_and_emits_in_order)
{
	bool run[5] = { true, true, false, true, true };
	struct exec_sched s;
	struct vz_err err = { 0 };

	cr_assert_eq(exec_sched_init(&s, 5, run, 2, 100, &err), 0);
	cr_assert_eq(exec_sched_start(&s), 0);
	cr_assert_eq(exec_sched_start(&s), 1);
	cr_assert_eq(exec_sched_start(&s), -1, "a third at once");
	exec_sched_finish(&s, 1, false);
	cr_assert_eq(exec_sched_emit(&s), -1, "1 before 0");
	cr_assert_eq(exec_sched_start(&s), 3, "2 is not to run");
	exec_sched_finish(&s, 3, true);
	cr_assert_eq(exec_sched_start(&s), 4);
	exec_sched_finish(&s, 0, false);
	cr_assert_eq(exec_sched_emit(&s), 0);
	cr_assert_eq(exec_sched_emit(&s), 1);
	cr_assert_eq(exec_sched_emit(&s), 2);
	cr_assert_eq(exec_sched_emit(&s), 3);
	cr_assert_eq(exec_sched_emit(&s), -1, "4 still runs");
	cr_assert_not(exec_sched_over(&s));
	exec_sched_finish(&s, 4, false);
	cr_assert_eq(exec_sched_emit(&s), 4);
	cr_assert(exec_sched_over(&s));
	exec_sched_free(&s);
}

Test(exec, sched_budget_spent_skips_the_rest)
{
	bool run[10];
	struct exec_sched s;
	struct vz_err err = { 0 };

	memset(run, 1, sizeof(run));
	/* 20% of 10: two failures are allowed, the third spends it. */
	cr_assert_eq(exec_sched_init(&s, 10, run, 1, 20, &err), 0);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(exec_sched_start(&s), (ssize_t)i);
		exec_sched_finish(&s, i, true);
	}
	cr_assert_eq(exec_sched_start(&s), -1);
	for (size_t i = 0; i < 10; i++) {
		cr_assert_eq(exec_sched_emit(&s), (ssize_t)i);
		cr_assert_eq(s.state[i], i < 3 ? EXEC_FINISHED : EXEC_SKIPPED);
	}
	cr_assert(exec_sched_over(&s));
	exec_sched_free(&s);
	/* 0%: the first failure stops the run; those running end. */
	cr_assert_eq(exec_sched_init(&s, 10, run, 3, 0, &err), 0);
	for (size_t i = 0; i < 3; i++)
		exec_sched_start(&s);
	exec_sched_finish(&s, 1, true);
	cr_assert_eq(exec_sched_start(&s), -1);
	cr_assert_eq(s.state[3], EXEC_SKIPPED);
	cr_assert_eq(s.state[0], EXEC_RUNNING);
	cr_assert_not(exec_sched_over(&s));
	exec_sched_finish(&s, 0, false);
	exec_sched_finish(&s, 2, false);
	for (size_t i = 0; i < 10; i++)
		cr_assert_eq(exec_sched_emit(&s), (ssize_t)i);
	cr_assert(exec_sched_over(&s));
	exec_sched_free(&s);
}

/* A runner that records how many ran at once and which ran. */
struct fake {
	atomic_int running, peak, calls;
	atomic_bool ran[64];
	Vz__Pool__ExecResult got[64];
	size_t n_got;
	int emit_fail_after;
};

static void fake_run(void *arg, const struct exec_target *t, const char *command, unsigned timeout_s,
		     Vz__Pool__ExecResult *r)
{
	struct fake *f = arg;
	int now = atomic_fetch_add(&f->running, 1) + 1;
	char out[64];

	(void)timeout_s;
	for (int p = atomic_load(&f->peak); now > p && !atomic_compare_exchange_weak(&f->peak, &p, now);)
		;
	atomic_fetch_add(&f->calls, 1);
	f->ran[t->veid % 64] = true;
	/* Later VEs end sooner, so that results come out of order. */
	usleep((useconds_t)(30 - t->veid % 30) * 1000);
	snprintf(out, sizeof(out), "%s in %u\n", command, t->veid);
	r->has_status = true;
	r->status = t->veid % 3 == 0;
	r->has_output = true;
	r->output.data = (uint8_t *)strdup(out);
	r->output.len = strlen(out);
	atomic_fetch_sub(&f->running, 1);
}

static int fake_emit(void *arg, const Vz__Pool__ExecResult *r)
{
	struct fake *f = arg;
	Vz__Pool__ExecResult *c = &f->got[f->n_got++];

	vz__pool__exec_result__init(c);
	c->veid = r->veid;
	c->host = strdup(r->host);
	c->has_status = r->has_status;
	c->status = r->status;
	c->has_skipped = r->has_skipped;
	c->skipped = r->skipped;
	c->error = r->error ? strdup(r->error) : NULL;
	return f->emit_fail_after && (int)f->n_got >= f->emit_fail_after ? -1 : 0;
}

static void targets(struct exec_target *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].veid = 1 + (unsigned)i;
		snprintf(t[i].host, sizeof(t[i].host), "h%zu", i % 3);
	}
}

static void free_got(struct fake *f)
{
	for (size_t i = 0; i < f->n_got; i++)
		exec_result_clear(&f->got[i]);
}

Test(exec, run_fans_out_up_to_parallel_in_veid_order)
{
	static struct fake f;
	struct exec_target t[20];
	struct exec_run run = { t, 20, "hostname", 4, 100, 0, fake_run, fake_emit, &f };
	struct vz_err err = { 0 };
	int code = -1;

	targets(t, 20);
	snprintf(t[4].why, sizeof(t[4].why), "not running (stopped)");
	cr_assert_eq(exec_run(&run, &code, &err), 0, "%s", err.msg);
	cr_assert_eq(code, VZ_EXIT_EXEC);
	cr_assert_eq(f.n_got, 20);
	cr_assert_eq(atomic_load(&f.peak), 4, "at most 4 at once, and 4 reached");
	cr_assert_eq(atomic_load(&f.calls), 19);
	cr_assert_not(f.ran[5], "VE 5 was not to run");
	for (size_t i = 0; i < 20; i++) {
		cr_assert_eq(f.got[i].veid, i + 1);
		if (i == 4) {
			cr_assert_eq(exec_result_kind(&f.got[i]), EXEC_NOTRUN);
			cr_assert_str_eq(f.got[i].error, "not running (stopped)");
			continue;
		}
		cr_assert_eq(f.got[i].status, (i + 1) % 3 == 0, "VE %zu", i + 1);
		cr_assert_str_eq(f.got[i].host, t[i].host);
	}
	free_got(&f);
}

Test(exec, run_max_fail_skips_and_never_runs_the_rest)
{
	static struct fake f;
	struct exec_target t[12];
	/* 10% of 12: one failure is allowed, VE 6 (the second) spends it. */
	struct exec_run run = { t, 12, "x", 1, 10, 0, fake_run, fake_emit, &f };
	struct vz_err err = { 0 };
	int code = -1;

	targets(t, 12);
	cr_assert_eq(exec_run(&run, &code, &err), 0, "%s", err.msg);
	cr_assert_eq(code, VZ_EXIT_EXEC);
	cr_assert_eq(f.n_got, 12);
	cr_assert_eq(atomic_load(&f.calls), 6);
	for (size_t i = 0; i < 12; i++) {
		cr_assert_eq(f.got[i].veid, i + 1);
		cr_assert_eq(exec_result_kind(&f.got[i]) == EXEC_SKIP, i >= 6, "VE %zu", i + 1);
		cr_assert_eq(f.ran[i + 1], i < 6, "VE %zu", i + 1);
	}
	free_got(&f);
}

Test(exec, run_all_ok_exits_0_and_a_gone_admin_stops_new_starts)
{
	static struct fake f, g;
	struct exec_target t[9] = { 0 };
	unsigned ok[] = { 1, 2, 4, 5, 7, 8 };
	struct exec_run run = { t, 6, "x", 2, 100, 0, fake_run, fake_emit, &f };
	struct vz_err err = { 0 };
	int code = -1;

	for (size_t i = 0; i < 6; i++) {
		t[i].veid = ok[i];
		snprintf(t[i].host, sizeof(t[i].host), "h1");
	}
	cr_assert_eq(exec_run(&run, &code, &err), 0, "%s", err.msg);
	cr_assert_eq(code, 0);
	free_got(&f);
	g.emit_fail_after = 1;
	run.arg = &g;
	run.parallel = 1;
	cr_assert_eq(exec_run(&run, &code, &err), 0, "%s", err.msg);
	cr_assert_eq(g.n_got, 1, "nothing sent after the admin went");
	cr_assert_leq(atomic_load(&g.calls), 2, "at most the one running when the admin went");
	cr_assert_eq(code, VZ_EXIT_EXEC);
	free_got(&g);
}

static void join(struct pool *p, const char *name, uint64_t now)
{
	Vz__Pool__Register r = VZ__POOL__REGISTER__INIT;
	struct vz_err err = { 0 };

	r.host = (char *)name;
	r.address = "198.18.0.1";
	r.has_mig_port = true;
	r.mig_port = 7801;
	r.has_interval_ms = true;
	r.interval_ms = 2000;
	cr_assert_eq(pool_register(p, &r, now, &err), 0, "%s", err.msg);
}

/* A heartbeat of host name: VEs as "101r 102s" (running, stopped). */
static void beat(struct pool *p, const char *name, const char *ves, uint64_t now)
{
	Vz__Pool__Heartbeat hb = VZ__POOL__HEARTBEAT__INIT;
	Vz__Pool__VeUsage u[16], *pu[16];
	struct vz_err err = { 0 };
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", ves);
	for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		size_t i = hb.n_ves++;

		vz__pool__ve_usage__init(&u[i]);
		u[i].veid = (uint32_t)strtoul(w, NULL, 10);
		u[i].state = w[strlen(w) - 1] == 'r' ? VZ__POOL__VE_STATE__VE_RUNNING : VZ__POOL__VE_STATE__VE_STOPPED;
		u[i].has_nproc = true;
		u[i].nproc = u[i].veid % 7;
		u[i].ip = "198.18.1.1 198.18.1.2";
		u[i].hostname = "ve.example";
		pu[i] = &u[i];
	}
	hb.ves = pu;
	hb.seq = now / S;
	cr_assert_eq(pool_heartbeat(p, name, &hb, now, &err), 0, "%s", err.msg);
}

/* h1 online: 101 running, 102 stopped, 105 running (also on h3); h2
 * offline: 103 running; h3 online: 104 running, 105 running. */
static void pool_of_three(struct pool *p)
{
	memset(p, 0, sizeof(*p));
	p->suspect_after = 3;
	p->offline_after_ns = 20 * S;
	join(p, "h2", 1 * S);
	beat(p, "h2", "103r", 1 * S);
	join(p, "h1", 99 * S);
	beat(p, "h1", "101r 102s 105r", 100 * S);
	join(p, "h3", 99 * S);
	beat(p, "h3", "104r 105r", 100 * S);
}

static void selection(const struct pool *p, Vz__Pool__AdminRequest *req, char *out, size_t len)
{
	struct exec_target *t = NULL;
	struct vz_err err = { 0 };
	size_t n = 0, off = 0;

	req->command = "true";
	cr_assert_eq(exec_select(p, 100 * S, req, &t, &n, &err), 0, "%s", err.msg);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(out + off, len - off, "%u@%s:%s;", t[i].veid, t[i].host,
					t[i].why[0] ? t[i].why : "run");
	free(t);
}

Test(exec, select_all_host_and_list)
{
	Vz__Pool__AdminRequest req = VZ__POOL__ADMIN_REQUEST__INIT;
	unsigned list[] = { 100, 101, 102, 104, 200 };
	struct pool p;
	char got[1024];

	pool_of_three(&p);
	req.has_all = req.all = true;
	selection(&p, &req, got, sizeof(got));
	cr_assert_str_eq(got, "101@h1:run;103@h2:its host h2 is offline;104@h3:run;"
			      "105@h1:reported by 2 hosts (h1 and h3): neither is acted on;");
	req.all = false;
	req.host = "h3";
	selection(&p, &req, got, sizeof(got));
	cr_assert_str_eq(got, "104@h3:run;105@h1:reported by 2 hosts (h1 and h3): neither is acted on;");
	req.host = NULL;
	req.veids = list;
	req.n_veids = ARRAY_SIZE(list);
	selection(&p, &req, got, sizeof(got));
	cr_assert_str_eq(got, "100@-:not in the pool;101@h1:run;102@h1:not running (stopped);104@h3:run;"
			      "200@-:not in the pool;");
	pool_free(&p);
}

Test(exec, select_refuses_an_unknown_host_and_no_choice)
{
	Vz__Pool__AdminRequest req = VZ__POOL__ADMIN_REQUEST__INIT;
	struct exec_target *t = NULL;
	struct vz_err err = { 0 };
	struct pool p;
	size_t n;

	pool_of_three(&p);
	req.command = "true";
	req.host = "h9";
	cr_assert_eq(exec_select(&p, 100 * S, &req, &t, &n, &err), -EINVAL);
	cr_assert_str_eq(err.msg, "No host h9 in the pool");
	req.host = NULL;
	cr_assert_eq(exec_select(&p, 100 * S, &req, &t, &n, &err), -EINVAL);
	req.has_all = req.all = true;
	req.command = "";
	cr_assert_eq(exec_select(&p, 100 * S, &req, &t, &n, &err), -EINVAL);
	cr_assert_str_eq(err.msg, "No command to run");
	pool_free(&p);
}

Test(exec, list_reports_nproc_ip_hostname)
{
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct vz_err err = { 0 };
	struct pool p;

	pool_of_three(&p);
	/* Again, to see the previous inventory's strings freed and replaced. */
	beat(&p, "h1", "101r 101r 102s", 101 * S);
	cr_assert_eq(pool_report(&p, 101 * S, &r, &err), 0, "%s", err.msg);
	cr_assert_eq(r.n_ves, 5);
	cr_assert_eq(r.ves[0]->veid, 101);
	cr_assert(r.ves[0]->has_nproc);
	cr_assert_eq(r.ves[0]->nproc, 101 % 7);
	cr_assert_str_eq(r.ves[0]->ip, "198.18.1.1 198.18.1.2");
	cr_assert_str_eq(r.ves[0]->hostname, "ve.example");
	pool_report_free(&r);
	pool_free(&p);
}

static char *render(void (*fn)(FILE *, const Vz__Pool__ExecResult *), const Vz__Pool__ExecResult *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	fn(f, r);
	fclose(f);
	return buf;
}

static void json_one(FILE *f, const Vz__Pool__ExecResult *r)
{
	exec_print_json_result(f, r, true);
}

Test(exec, text_and_json_forms)
{
	Vz__Pool__ExecResult r = VZ__POOL__EXEC_RESULT__INIT;
	struct exec_tally t = { 0 };
	char *s, *buf = NULL;
	size_t len;
	FILE *f;

	r.veid = 101;
	r.host = "h1";
	r.has_status = true;
	r.status = 0;
	r.has_elapsed_ms = true;
	r.elapsed_ms = 120;
	r.output.data = (uint8_t *)"ve101\nsecond \"line\"";
	r.output.len = strlen((char *)r.output.data);
	s = render(exec_print_text, &r);
	cr_assert_str_eq(s, "101 on h1: exit 0 in 0.12 s\n  ve101\n  second \"line\"\n");
	free(s);
	r.has_output_dropped = true;
	r.output_dropped = 5000;
	s = render(exec_print_text, &r);
	cr_assert_str_eq(s, "101 on h1: exit 0 in 0.12 s\n  ve101\n  second \"line\"\n"
			    "  [5000 more bytes of output not kept]\n");
	free(s);
	r.output_dropped = 0;
	s = render(json_one, &r);
	cr_assert_str_eq(s,
			 "\n  {\"veid\": 101, \"host\": \"h1\", \"result\": \"ok\", \"status\": 0, \"elapsed_ms\": "
			 "120, \"output\": \"ve101\\nsecond \\\"line\\\"\", \"output_dropped\": 0, \"error\": null}");
	free(s);
	exec_tally_add(&t, &r);
	r.status = 1;
	exec_tally_add(&t, &r);
	r.status = -1;
	r.output.len = 0;
	r.error = "not running (stopped)";
	s = render(exec_print_text, &r);
	cr_assert_str_eq(s, "101 on h1: not run: not running (stopped)\n");
	free(s);
	exec_tally_add(&t, &r);
	r.has_skipped = r.skipped = true;
	exec_tally_add(&t, &r);
	f = open_memstream(&buf, &len);
	exec_print_summary(f, &t);
	fclose(f);
	cr_assert_str_eq(buf, "4 VEs: 1 ok, 1 failed, 1 skipped, 1 not run\n");
	free(buf);
}

/* A move that ended shows the VE where it runs before either host's next
 * heartbeat: an exec (or a drain's plan) that follows at once acts there. */
Test(exec, a_finished_move_is_seen_at_once)
{
	Vz__Pool__AdminRequest req = VZ__POOL__ADMIN_REQUEST__INIT;
	struct vz_err err = { 0 };
	struct pool p;
	char got[1024];

	pool_of_three(&p);
	cr_assert_eq(pool_ve_moved(&p, 101, "h1", "h3", &err), 0, "%s", err.msg);
	req.has_all = req.all = true;
	selection(&p, &req, got, sizeof(got));
	cr_assert_str_eq(got, "101@h3:run;103@h2:its host h2 is offline;104@h3:run;"
			      "105@h1:reported by 2 hosts (h1 and h3): neither is acted on;");
	/* Told again (the heartbeats already said so): nothing changes. */
	cr_assert_eq(pool_ve_moved(&p, 101, "h1", "h3", &err), 0, "%s", err.msg);
	selection(&p, &req, got, sizeof(got));
	cr_assert_str_eq(got, "101@h3:run;103@h2:its host h2 is offline;104@h3:run;"
			      "105@h1:reported by 2 hosts (h1 and h3): neither is acted on;");
	cr_assert_eq(pool_ve_moved(&p, 101, "h1", "h9", &err), -ENOENT);
	pool_free(&p);
}
