/* vzcoord exec, the admin's side: its command line, the request it makes,
 * and the results printed as they come, as text or JSON. exec.h. */
#define LOG_PREFIX ""
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "cleanup.h"
#include "control.h"
#include "coord.h"
#include "exec.h"
#include "paths.h"
#include "util.h"

#define EXIT_USAGE 2

static int usage(struct vz_err *err, const char *fmt, const char *arg)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, arg);
	return vz_error_exit_msg(err, EXIT_USAGE, EINVAL, "%s (vzcoord --help)", msg);
}

static int cmp_uint(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

static int add_range(unsigned **v, size_t *n, size_t *cap, unsigned lo, unsigned hi, const char *s, struct vz_err *err)
{
	if (hi < lo)
		return usage(err, "Bad VE list '%s': a range goes up, as 102-105", s);
	if (*n + (hi - lo) + 1 > EXEC_LIST_MAX)
		return vz_error_exit_msg(err, EXIT_USAGE, EINVAL, "A VE list of more than %u VEs", EXEC_LIST_MAX);
	for (unsigned id = lo;; id++) {
		if (vz_grow((void **)v, cap, *n, sizeof(**v), 64) < 0)
			return vz_error_msg(err, ENOMEM, "Out of memory");
		(*v)[(*n)++] = id;
		if (id == hi)
			break;
	}
	return 0;
}

int exec_parse_ve_list(const char *s, unsigned **out, size_t *n_out, struct vz_err *err)
{
	_cleanup_free_ char *copy = strdup(s);
	unsigned *v = NULL;
	size_t n = 0, cap = 0, m = 0;
	char *save = NULL;

	if (!copy)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	if (!*s || *s == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
		return usage(err, "Bad VE list '%s': VEIDs and ranges, as 101,102-105", s);
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		unsigned lo, hi;
		int ret;

		if (dash)
			*dash = '\0';
		if (vz_parse_veid(tok, &lo) < 0 || (dash && vz_parse_veid(dash + 1, &hi) < 0)) {
			free(v);
			return usage(err, "Bad VE list '%s': VEIDs and ranges, as 101,102-105", s);
		}
		ret = add_range(&v, &n, &cap, lo, dash ? hi : lo, s, err);
		if (ret < 0) {
			free(v);
			return ret;
		}
	}
	qsort(v, n, sizeof(*v), cmp_uint);
	for (size_t i = 0; i < n; i++)
		if (m == 0 || v[m - 1] != v[i])
			v[m++] = v[i];
	*out = v;
	*n_out = m;
	return 0;
}

int exec_parse_pct(const char *s, unsigned *out, struct vz_err *err)
{
	char buf[16];
	size_t len = strlen(s);
	unsigned long pct;

	if (len > 0 && s[len - 1] == '%')
		len--;
	if (len == 0 || len >= sizeof(buf))
		return usage(err, "--max-fail takes a share of the VEs, 0%%..100%%, not '%s'", s);
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (vz_parse_ulong(buf, 0, 100, &pct) < 0)
		return usage(err, "--max-fail takes a share of the VEs, 0%%..100%%, not '%s'", s);
	*out = (unsigned)pct;
	return 0;
}

static int parse_uint(const char *opt, const char *s, unsigned long min, unsigned long max, unsigned *out,
		      struct vz_err *err)
{
	unsigned long v;

	if (vz_parse_ulong(s, min, max, &v) < 0)
		return vz_error_exit_msg(err, EXIT_USAGE, EINVAL, "%s takes %lu..%lu, not '%s' (vzcoord --help)", opt,
					 min, max, s);
	*out = (unsigned)v;
	return 0;
}

/* The words of the command, joined by spaces as ssh does: given to sh -c. */
static int join_command(int argc, char **argv, const char **out, struct vz_err *err)
{
	size_t len = 1;
	char *cmd;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	cmd = calloc(1, len);
	if (!cmd)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (int i = 0; i < argc; i++) {
		if (i)
			strcat(cmd, " ");
		strcat(cmd, argv[i]);
	}
	*out = cmd;
	return 0;
}

static int parse_opt(int c, struct exec_opts *o, struct vz_err *err)
{
	switch (c) {
	case 'a': o->all = true; return 0;
	case 'j': o->json = true; return 0;
	case 'H': o->host = optarg; return 0;
	case 'v':
		free(o->veids);
		o->veids = NULL;
		return exec_parse_ve_list(optarg, &o->veids, &o->n_veids, err);
	case 'p': return parse_uint("--parallel", optarg, 1, EXEC_PARALLEL_MAX, &o->parallel, err);
	case 'f': return exec_parse_pct(optarg, &o->max_fail_pct, err);
	case 't': return parse_uint("--timeout", optarg, 0, EXEC_TIMEOUT_MAX, &o->timeout_s, err);
	default: return -1;
	}
}

int exec_parse_args(int argc, char **argv, struct exec_opts *o, struct vz_err *err)
{
	static const struct option opts[] = { { "all", no_argument, NULL, 'a' },
					      { "host", required_argument, NULL, 'H' },
					      { "ve", required_argument, NULL, 'v' },
					      { "parallel", required_argument, NULL, 'p' },
					      { "max-fail", required_argument, NULL, 'f' },
					      { "timeout", required_argument, NULL, 't' },
					      { "json", no_argument, NULL, 'j' },
					      { NULL, 0, NULL, 0 } };
	int c, ret;

	*o = (struct exec_opts){ .parallel = EXEC_PARALLEL_DEFAULT, .max_fail_pct = 100 };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:aH:p:t:j", opts, NULL)) != -1) {
		if (c == '?' || c == ':') {
			exec_opts_free(o);
			return usage(err, c == '?' ? "Unknown option '%s'" : "%s needs a value", argv[optind - 1]);
		}
		ret = parse_opt(c, o, err);
		if (ret < 0) {
			exec_opts_free(o);
			return ret;
		}
	}
	if ((o->all ? 1 : 0) + (o->host ? 1 : 0) + (o->veids ? 1 : 0) != 1)
		ret = usage(err, "Choose the VEs with one of --all, --host H and --ve LIST%s", "");
	else if (optind >= argc)
		ret = usage(err, "No command given: vzcoord exec --all -- COMMAND%s", "");
	else
		ret = join_command(argc - optind, argv + optind, &o->command, err);
	if (ret == 0 && !*o->command)
		ret = usage(err, "The command is empty%s", "");
	if (ret < 0)
		exec_opts_free(o);
	return ret;
}

void exec_opts_free(struct exec_opts *o)
{
	free(o->veids);
	free((char *)o->command);
	memset(o, 0, sizeof(*o));
}

void exec_request(const struct exec_opts *o, Vz__Pool__AdminRequest *req)
{
	vz__pool__admin_request__init(req);
	req->magic = POOL_MAGIC;
	req->version = POOL_VERSION;
	req->op = VZ__POOL__ADMIN_OP__ADMIN_EXEC;
	req->has_all = o->all;
	req->all = o->all;
	req->host = (char *)o->host;
	req->veids = o->veids;
	req->n_veids = o->n_veids;
	req->has_parallel = req->has_max_fail_pct = req->has_timeout_s = true;
	req->parallel = o->parallel;
	req->max_fail_pct = o->max_fail_pct;
	req->timeout_s = o->timeout_s;
	req->command = (char *)o->command;
}

static const char *kind_word(enum exec_kind k)
{
	static const char *const words[] = {
		[EXEC_OK] = "ok", [EXEC_FAILED] = "failed", [EXEC_NOTRUN] = "not_run", [EXEC_SKIP] = "skipped"
	};

	return words[k];
}

void exec_print_text(FILE *f, const Vz__Pool__ExecResult *r)
{
	enum exec_kind k = exec_result_kind(r);
	const char *out = (const char *)r->output.data;
	size_t len = r->output.len;

	fprintf(f, "%u on %s: ", r->veid, r->host);
	if (k == EXEC_SKIP || k == EXEC_NOTRUN)
		fprintf(f, "%s: %s\n", k == EXEC_SKIP ? "skipped" : "not run", r->error ? r->error : "");
	else
		fprintf(f, "exit %d in %.2f s%s%s\n", r->status, r->elapsed_ms / 1000.0, r->error ? ": " : "",
			r->error ? r->error : "");
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(out + i, '\n', len - i);
		size_t line = nl ? (size_t)(nl - (out + i)) : len - i;

		fprintf(f, "  %.*s\n", (int)line, out + i);
		i += line + 1;
	}
	if (r->output_dropped)
		fprintf(f, "  [%llu more bytes of output not kept]\n", (unsigned long long)r->output_dropped);
}

void exec_print_summary(FILE *f, const struct exec_tally *t)
{
	fprintf(f, "%zu VE%s: %zu ok, %zu failed, %zu skipped", t->total, t->total == 1 ? "" : "s", t->ok, t->failed,
		t->skipped);
	if (t->not_run)
		fprintf(f, ", %zu not run", t->not_run);
	fputc('\n', f);
}

void exec_print_json_begin(FILE *f)
{
	fputs("{\"results\": [", f);
}

void exec_print_json_result(FILE *f, const Vz__Pool__ExecResult *r, bool first)
{
	enum exec_kind k = exec_result_kind(r);

	fprintf(f, "%s\n  {\"veid\": %u, \"host\": ", first ? "" : ",", r->veid);
	vz_json_fstr(f, r->host, strlen(r->host));
	fprintf(f, ", \"result\": \"%s\", \"status\": ", kind_word(k));
	if (k == EXEC_OK || k == EXEC_FAILED)
		fprintf(f, "%d, \"elapsed_ms\": %llu", r->status, (unsigned long long)r->elapsed_ms);
	else
		fputs("null, \"elapsed_ms\": null", f);
	fputs(", \"output\": ", f);
	vz_json_fstr(f, r->output.data ? (const char *)r->output.data : "", r->output.len);
	fprintf(f, ", \"output_dropped\": %llu, \"error\": ", (unsigned long long)r->output_dropped);
	if (r->error)
		vz_json_fstr(f, r->error, strlen(r->error));
	else
		fputs("null", f);
	fputc('}', f);
}

void exec_print_json_end(FILE *f, const struct exec_tally *t, int exit_code)
{
	fprintf(
	    f,
	    "%s],\n \"summary\": {\"ves\": %zu, \"ok\": %zu, \"failed\": %zu, \"skipped\": %zu, \"not_run\": %zu},\n"
	    " \"exit_code\": %d}\n",
	    t->total ? "\n" : "", t->total, t->ok, t->failed, t->skipped, t->not_run, exit_code);
}

static int stream_open(const Vz__Pool__AdminRequest *req, struct vz_conn *conn, struct vz_err *err)
{
	char path[PATH_MAX];
	int fd = VZ_FD_INIT, ret;

	ret = vz_unix_connect(vz_path(path, sizeof(path), COORD_SOCK), "vzcoord serve", &fd, err);
	if (ret < 0)
		return ret;
	vz_conn_plain(conn, fd);
	snprintf(conn->peer, sizeof(conn->peer), "vzcoord");
	ret = vz_msg_send(conn, &req->base, err);
	if (ret < 0)
		vz_conn_close(conn);
	return ret;
}

/* The replies until done: each result printed as it comes. */
static int stream(struct vz_conn *conn, const struct exec_opts *o, struct vz_err *err)
{
	struct exec_tally t = { 0 };

	for (;;) {
		Vz__Pool__AdminReply *r = NULL;
		int ret = vz_msg_recv(conn, &vz__pool__admin_reply__descriptor, EXEC_OUTPUT_MAX * 2,
				      (ProtobufCMessage **)&r, err);

		if (ret < 0)
			return vz_error_wrap(err, "The coordinator's answer was cut after %zu results", t.total);
		if (r->result && t.total == 0 && o->json)
			exec_print_json_begin(stdout);
		if (r->result) {
			if (o->json)
				exec_print_json_result(stdout, r->result, t.total == 0);
			else
				exec_print_text(stdout, r->result);
			exec_tally_add(&t, r->result);
			fflush(stdout);
		}
		if (r->error || r->done) {
			int code = r->has_exit_code ? r->exit_code : VZ_EXIT_SYSTEM;

			if (r->error)
				ret = vz_error_exit_msg(err, code ? code : VZ_EXIT_SYSTEM, EIO,
							"The coordinator says: %s", r->error);
			else if (o->json && t.total == 0)
				exec_print_json_begin(stdout);
			if (!r->error && o->json)
				exec_print_json_end(stdout, &t, code);
			else if (!r->error)
				exec_print_summary(stdout, &t);
			vz__pool__admin_reply__free_unpacked(r, NULL);
			return ret < 0 ? ret : code;
		}
		vz__pool__admin_reply__free_unpacked(r, NULL);
	}
}

int exec_call(const struct exec_opts *o, struct vz_err *err)
{
	Vz__Pool__AdminRequest req;
	struct vz_conn conn;
	int ret;

	exec_request(o, &req);
	ret = stream_open(&req, &conn, err);
	if (ret < 0)
		return ret;
	/* A run takes as long as its commands: no timeout on the answer. */
	ret = stream(&conn, o, err);
	vz_conn_close(&conn);
	return ret;
}
