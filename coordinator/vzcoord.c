/* vzcoord: the pool's coordinator (serve) and the admin's view of it
 * (status, list, events), one function per subcommand and a table. Each returns
 * an exit status, or a negative errno with err filled; only main prints
 * the error. Bad usage is one line on stderr and exit status 2. */
#define LOG_PREFIX ""
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "coord.h"
#include "exec.h"
#include "join.h"
#include "log.h"
#include "paths.h"
#include "simulate.h"
#include "util.h"

#define EXIT_USAGE 2

static const char *ve_state_word(Vz__Pool__VeState s)
{
	switch (s) {
	case VZ__POOL__VE_STATE__VE_RUNNING: return "running";
	case VZ__POOL__VE_STATE__VE_MOUNTED: return "mounted";
	case VZ__POOL__VE_STATE__VE_STOPPED: return "stopped";
	default: return "unknown";
	}
}

/* Bytes as a person reads them: 512K, 347M, 23.5G. */
static const char *human(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, len, "%.1fG", (double)bytes / (1ull << 30));
	else if (bytes >= (1ull << 20))
		snprintf(buf, len, "%lluM", (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, len, "%lluK", (unsigned long long)(bytes >> 10));
	return buf;
}

static int usage_error(struct vz_err *err, const char *fmt, const char *arg)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, arg);
	return vz_error_exit_msg(err, EXIT_USAGE, EINVAL, "%s (vzcoord --help)", msg);
}

static int cmd_serve(int argc, char **argv, struct vz_err *err)
{
	struct coord c = { 0 };
	char logpath[PATH_MAX], dir[PATH_MAX];
	int ret;

	if (argc > 1)
		return usage_error(err, "serve takes no argument, not '%s'", argv[1]);
	if (geteuid() != 0)
		return vz_error_exit_msg(err, VZ_EXIT_PERM, EPERM, "Must run as root");
	vz_mkdir_p(vz_path(dir, sizeof(dir), "/var/log"), 0755);
	if (vz_log_open(vz_path(logpath, sizeof(logpath), "/var/log/vzcoord.log")) < 0)
		fprintf(stderr, "vzcoord: Cannot open log %s: %s\n", logpath, strerror(errno));
	ret = coord_conf_load(&c.conf, err);
	if (ret < 0)
		return ret;
	signal(SIGPIPE, SIG_IGN);
	c.loop = ev_default_loop(EVFLAG_AUTO);
	ret = coord_serve(&c, err);
	return ret < 0 ? ret : 0;
}

static void print_status(const Vz__Pool__AdminReply *r)
{
	printf("%-16s %-8s %-8s %4s %9s %9s %9s %6s  %s\n", "HOST", "STATE", "DRAIN", "VES", "MEM_USED", "MEM_TOTAL",
	       "CPU", "LOAD", "ADDRESS");
	for (size_t i = 0; i < r->n_hosts; i++) {
		const Vz__Pool__HostStatus *h = r->hosts[i];
		char used[32], total[32], cpu[32];

		snprintf(cpu, sizeof(cpu), "%.2f/%u", h->cpu_permille / 1000.0, h->cores);
		printf("%-16s %-8s %-8s %4u %9s %9s %9s %6.2f  %s\n", h->name, h->state,
		       h->maint && strcmp(h->maint, "none") ? h->maint : "-", h->ves,
		       human(h->mem_used, used, sizeof(used)), human(h->mem_total, total, sizeof(total)), cpu,
		       h->load_milli / 1000.0, h->address ? h->address : "-");
	}
	for (size_t i = 0; i < r->n_alerts; i++)
		printf("ALERT: %s\n", r->alerts[i]);
}

static void print_status_json(const Vz__Pool__AdminReply *r)
{
	printf("{\"hosts\": [");
	for (size_t i = 0; i < r->n_hosts; i++) {
		const Vz__Pool__HostStatus *h = r->hosts[i];

		printf("%s\n  {\"name\": ", i ? "," : "");
		vz_json_str(h->name);
		printf(", \"state\": ");
		vz_json_str(h->state);
		printf(", \"drain\": ");
		vz_json_str(h->maint ? h->maint : "none");
		printf(", \"address\": ");
		vz_json_str(h->address ? h->address : "");
		printf(", \"ves\": %u, \"mem_used\": %llu, \"mem_total\": %llu, \"cpu\": %.3f, \"cores\": %u, "
		       "\"load\": %.2f, \"disk_free_kib\": %llu, \"seen_ms_ago\": %llu}",
		       h->ves, (unsigned long long)h->mem_used, (unsigned long long)h->mem_total,
		       h->cpu_permille / 1000.0, h->cores, h->load_milli / 1000.0, (unsigned long long)h->disk_free,
		       (unsigned long long)h->seen_ms_ago);
	}
	printf("%s], \"alerts\": [", r->n_hosts ? "\n" : "");
	for (size_t i = 0; i < r->n_alerts; i++) {
		printf("%s", i ? ", " : "");
		vz_json_str(r->alerts[i]);
	}
	printf("]}\n");
}

static void print_list_json(const Vz__Pool__AdminReply *r)
{
	printf("[");
	for (size_t i = 0; i < r->n_ves; i++) {
		const Vz__Pool__VeEntry *v = r->ves[i];

		printf("%s\n  {\"veid\": %u, \"status\": ", i ? "," : "", v->veid);
		vz_json_str(ve_state_word(v->state));
		printf(", \"host\": ");
		vz_json_str(v->host);
		printf(", \"mem_used\": %llu, \"cpu\": %.3f, \"disk_used_kib\": %llu, \"nproc\": %u, \"ip\": ",
		       (unsigned long long)v->mem_used, v->cpu_permille / 1000.0, (unsigned long long)v->disk_used,
		       v->nproc);
		vz_json_str(v->ip ? v->ip : "");
		printf(", \"hostname\": ");
		vz_json_str(v->hostname ? v->hostname : "");
		printf(", \"duplicate\": %s}", v->duplicate ? "true" : "false");
	}
	printf("%s]\n", r->n_ves ? "\n" : "");
}

static void print_list(const Vz__Pool__AdminReply *r)
{
	printf("%10s %-9s %-16s %9s %6s %5s %-15s %s\n", "VEID", "STATUS", "HOST", "MEM", "CPU", "NPROC", "IP_ADDR",
	       "HOSTNAME");
	for (size_t i = 0; i < r->n_ves; i++) {
		const Vz__Pool__VeEntry *v = r->ves[i];
		char mem[32], nproc[16];

		/* As vzlist: "-" for what a VE that does not run has not. */
		snprintf(nproc, sizeof(nproc), v->state == VZ__POOL__VE_STATE__VE_RUNNING ? "%u" : "-", v->nproc);
		printf("%10u %-9s %-16s %9s %6.2f %5s %-15s %s%s\n", v->veid, ve_state_word(v->state), v->host,
		       human(v->mem_used, mem, sizeof(mem)), v->cpu_permille / 1000.0, nproc,
		       v->ip && *v->ip ? v->ip : "-", v->hostname && *v->hostname ? v->hostname : "-",
		       v->duplicate ? "  ALERT: on two hosts" : "");
	}
}

static int admin(Vz__Pool__AdminOp op, void (*print)(const Vz__Pool__AdminReply *), struct vz_err *err)
{
	Vz__Pool__AdminReply *r = NULL;
	int ret = coord_admin_call(op, &r, err);

	if (ret < 0)
		return ret;
	print(r);
	vz__pool__admin_reply__free_unpacked(r, NULL);
	return 0;
}

/* -j/--json, and no argument: status and list. */
static int json_only(int argc, char **argv, const char *cmd, bool *json, struct vz_err *err)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 } };
	char what[64];
	int c;

	opterr = 0;
	optind = 1;
	*json = false;
	while ((c = getopt_long(argc, argv, "+j", opts, NULL)) != -1) {
		snprintf(what, sizeof(what), "%s: unknown option '%%s'", cmd);
		if (c != 'j')
			return usage_error(err, what, argv[optind - 1]);
		*json = true;
	}
	snprintf(what, sizeof(what), "%s takes no argument, not '%%s'", cmd);
	if (optind < argc)
		return usage_error(err, what, argv[optind]);
	return 0;
}

static int cmd_status(int argc, char **argv, struct vz_err *err)
{
	bool json;
	int ret = json_only(argc, argv, "status", &json, err);

	if (ret < 0)
		return ret;
	return admin(VZ__POOL__ADMIN_OP__ADMIN_STATUS, json ? print_status_json : print_status, err);
}

static int cmd_list(int argc, char **argv, struct vz_err *err)
{
	bool json;
	int ret = json_only(argc, argv, "list", &json, err);

	if (ret < 0)
		return ret;
	return admin(VZ__POOL__ADMIN_OP__ADMIN_LIST, json ? print_list_json : print_list, err);
}

/* On a terminal, a move's passing progress is one line written over
 * itself (cut to 100 columns) and the decisions stay; otherwise every line
 * is plain, as it came. */
static bool progress_pending;

static void print_line(const char *line, bool progress)
{
	static int tty = -1;
	bool pending = progress_pending;

	if (tty < 0)
		tty = isatty(STDOUT_FILENO);
	if (!tty) {
		printf("%s\n", line);
	} else if (progress) {
		printf("\r\033[K%.100s", line);
		progress_pending = true;
	} else {
		printf("%s%s\n", pending ? "\r\033[K" : "", line);
		progress_pending = false;
	}
	fflush(stdout);
}

static void print_reply(void *arg, const Vz__Pool__AdminReply *r)
{
	(void)arg;
	if (r->line)
		print_line(r->line, r->has_progress && r->progress);
}

/* --json: the replies gathered as the members of one object's arrays. */
struct json_out {
	char *lines, *moves;
	size_t lines_len, moves_len;
	FILE *l, *m;
	unsigned n_lines, n_moves;
};

static void json_reply(void *arg, const Vz__Pool__AdminReply *r)
{
	struct json_out *j = arg;
	const Vz__Pool__MoveOutcome *o = r->outcome;

	if (r->line && !(r->has_progress && r->progress)) {
		fputs(j->n_lines++ ? ", " : "", j->l);
		vz_json_fstr(j->l, r->line, strlen(r->line));
	}
	if (!o)
		return;
	fprintf(j->m, "%s{\"veid\": %u, \"src\": ", j->n_moves++ ? ", " : "", o->veid);
	vz_json_fstr(j->m, o->src, strlen(o->src));
	fputs(", \"dst\": ", j->m);
	vz_json_fstr(j->m, o->dst, strlen(o->dst));
	fprintf(j->m, ", \"moved\": %s", o->moved ? "true" : "false");
	if (o->moved)
		fprintf(j->m, ", \"elapsed_ms\": %llu, \"downtime_ms\": %llu", (unsigned long long)o->elapsed_ms,
			(unsigned long long)o->downtime_ms);
	if (o->error) {
		fputs(", \"error\": ", j->m);
		vz_json_fstr(j->m, o->error, strlen(o->error));
	}
	fputc('}', j->m);
}

/* One streamed request with its replies as one JSON object on stdout:
 * {"command", "ok", "error" (when not ok), "moves": [outcomes], "lines":
 * [what the human output says, progress left out]}. */
static int stream_json(Vz__Pool__AdminRequest *req, const char *what, struct vz_err *err)
{
	struct json_out j = { 0 };
	int ret;

	j.l = open_memstream(&j.lines, &j.lines_len);
	j.m = open_memstream(&j.moves, &j.moves_len);
	if (!j.l || !j.m) {
		if (j.l)
			fclose(j.l);
		if (j.m)
			fclose(j.m);
		free(j.lines);
		free(j.moves);
		return vz_error_msg(err, ENOMEM, "Out of memory");
	}
	ret = coord_admin_stream(req, json_reply, &j, err);
	fclose(j.l);
	fclose(j.m);
	printf("{\"command\": \"%s\", \"ok\": %s, ", what, ret < 0 ? "false" : "true");
	if (ret < 0) {
		printf("\"error\": ");
		vz_json_str(err->msg);
		printf(", ");
	}
	printf("\"moves\": [%s], \"lines\": [%s]}\n", j.moves ? j.moves : "", j.lines ? j.lines : "");
	fflush(stdout);
	free(j.lines);
	free(j.moves);
	return ret;
}

/* A VEID as vzctl takes them. */
static int parse_veid(const char *arg, unsigned *veid, struct vz_err *err)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || v == 0 || v > INT32_MAX)
		return usage_error(err, "Bad VEID '%s'", arg);
	*veid = (unsigned)v;
	return 0;
}

/* migrate, drain and undrain: their options, then one streamed request.
 * what: "migrate" (VEID HOST), "drain" or "undrain" (HOST). */
static int moves_cmd(int argc, char **argv, Vz__Pool__AdminOp op, const char *what, struct vz_err *err)
{
	static const struct option opts[] = {
		{ "offline", no_argument, NULL, 'o' },	 { "dry-run", no_argument, NULL, 'n' },
		{ "no-return", no_argument, NULL, 'r' }, { "no-wait", no_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },	 { NULL, 0, NULL, 0 }
	};
	Vz__Pool__AdminRequest req = VZ__POOL__ADMIN_REQUEST__INIT;
	bool migrate = op == VZ__POOL__ADMIN_OP__ADMIN_MIGRATE;
	bool rebalance = op == VZ__POOL__ADMIN_OP__ADMIN_REBALANCE;
	bool json = false;
	char bad[64];
	int c, ret;

	opterr = 0;
	optind = 1;
	req.op = op;
	req.has_wait = req.wait = 1;
	/* Options after the arguments too: vzcoord drain h1 --dry-run. */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		snprintf(bad, sizeof(bad), "%s: unknown option '%%s'", what);
		if (c == 'w')
			req.wait = 0;
		else if (c == 'j')
			json = true;
		else if (c == 'o' && op != VZ__POOL__ADMIN_OP__ADMIN_UNDRAIN && !rebalance)
			req.has_offline = req.offline = 1;
		else if (c == 'n' &&
			 (op == VZ__POOL__ADMIN_OP__ADMIN_DRAIN || op == VZ__POOL__ADMIN_OP__ADMIN_REBALANCE))
			req.has_dry_run = req.dry_run = 1;
		else if (c == 'r' && op == VZ__POOL__ADMIN_OP__ADMIN_UNDRAIN)
			req.has_no_return = req.no_return = 1;
		else
			return usage_error(err, bad, argv[optind - 1]);
	}
	snprintf(bad, sizeof(bad), "%s takes %s%%s", what, migrate ? "VEID HOST" : rebalance ? "no argument" : "HOST");
	if (argc - optind != (migrate ? 2 : rebalance ? 0 : 1))
		return usage_error(err, bad, "");
	if (migrate && (ret = parse_veid(argv[optind++], &req.veid, err)) < 0)
		return ret;
	req.has_veid = migrate;
	req.host = rebalance ? NULL : argv[optind];
	if (json) {
		ret = stream_json(&req, what, err);
		return ret < 0 ? ret : 0;
	}
	ret = coord_admin_stream(&req, print_reply, NULL, err);
	if (progress_pending)
		printf("\r\033[K");
	return ret < 0 ? ret : 0;
}

static int cmd_migrate(int argc, char **argv, struct vz_err *err)
{
	return moves_cmd(argc, argv, VZ__POOL__ADMIN_OP__ADMIN_MIGRATE, "migrate", err);
}

static int cmd_drain(int argc, char **argv, struct vz_err *err)
{
	return moves_cmd(argc, argv, VZ__POOL__ADMIN_OP__ADMIN_DRAIN, "drain", err);
}

static int cmd_undrain(int argc, char **argv, struct vz_err *err)
{
	return moves_cmd(argc, argv, VZ__POOL__ADMIN_OP__ADMIN_UNDRAIN, "undrain", err);
}

static int cmd_rebalance(int argc, char **argv, struct vz_err *err)
{
	return moves_cmd(argc, argv, VZ__POOL__ADMIN_OP__ADMIN_REBALANCE, "rebalance", err);
}

static int print_event(void *arg, const struct pool_event *ev, struct vz_err *err)
{
	char when[32];
	time_t t = (time_t)(ev->time_ms / 1000);
	struct tm tm;

	(void)arg;
	(void)err;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
	printf("%6llu %s.%03d %-10s %-12s %s\n", (unsigned long long)ev->id, when, (int)(ev->time_ms % 1000), ev->kind,
	       ev->host[0] ? ev->host : "-", ev->text);
	return 0;
}

/* What the coordinator decided and saw, from its store (read directly:
 * a reader of SQLite's WAL never waits for the coordinator). */
static int cmd_events(int argc, char **argv, struct vz_err *err)
{
	static const struct option opts[] = { { "since", required_argument, NULL, 's' }, { NULL, 0, NULL, 0 } };
	_cleanup_pool_store_ struct pool_store *st = NULL;
	struct coord_conf conf;
	unsigned long long since = 0;
	char *end;
	int c, ret;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+s:", opts, NULL)) != -1) {
		if (c != 's')
			return usage_error(err, "events: unknown option '%s'", argv[optind - 1]);
		errno = 0;
		since = strtoull(optarg, &end, 10);
		if (errno || end == optarg || *end)
			return usage_error(err, "events: --since takes an event id, not '%s'", optarg);
	}
	if (optind < argc)
		return usage_error(err, "events takes no argument, not '%s'", argv[optind]);
	if (geteuid() != 0)
		return vz_error_exit_msg(err, VZ_EXIT_PERM, EPERM, "Must run as root");
	ret = coord_conf_load(&conf, err);
	if (ret == 0 && !vz_exists(conf.store))
		return vz_error_exit_msg(err, VZ_EXIT_SYSTEM, ENOENT, "No store at %s: the coordinator never ran here",
					 conf.store);
	if (ret == 0)
		ret = pool_store_open(&pool_store_sqlite, conf.store, &st, err);
	if (ret == 0)
		ret = pool_store_event_list(st, since, print_event, NULL, err);
	return ret < 0 ? ret : 0;
}

static int cmd_exec(int argc, char **argv, struct vz_err *err)
{
	struct exec_opts o;
	int ret = exec_parse_args(argc, argv, &o, err);

	if (ret < 0)
		return ret;
	ret = exec_call(&o, err);
	exec_opts_free(&o);
	return ret;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv, struct vz_err *err);
	const char *usage;
} cmds[] = {
	{ "serve", cmd_serve, "serve            run the coordinator (VZ_ROOT/etc/vz/vzcoord.conf)" },
	{ "status", cmd_status, "status [-j|--json]  hosts: state, drain, VEs, memory, CPU; and alerts (JSON)" },
	{ "list", cmd_list, "list [-j|--json]  every VE of the pool with its host (JSON)" },
	{ "migrate", cmd_migrate, "migrate VEID HOST [--offline] [--no-wait] [--json]  move a VE through the queue" },
	{ "drain", cmd_drain,
	  "drain HOST [--dry-run] [--offline] [--no-wait] [--json]  move every VE off HOST, for maintenance" },
	{ "undrain", cmd_undrain,
	  "undrain HOST [--no-return] [--no-wait] [--json]  end HOST's maintenance, bring its VEs back" },
	{ "rebalance", cmd_rebalance,
	  "rebalance [--dry-run] [--no-wait] [--json]  one round of the rebalancing planner now, its moves queued" },
	{ "exec", cmd_exec,
	  "exec --all|--host H|--ve LIST [--parallel N] [--max-fail P%] [--timeout S] [--json] -- COMMAND\n"
	  "                 run COMMAND (sh -c) in every selected running VE, N at once (5)" },
	{ "events", cmd_events, "events [--since ID]  what was decided and seen: host states, alerts" },
	{ "join", coord_cmd_join,
	  "join [USER@]HOST [--port N] [--identity KEY] [--known-hosts FILE]\n"
	  "                           enroll a host over SSH: its certificate, COORDINATOR, its agent restarted" },
	{ "leave", coord_cmd_leave,
	  "leave [USER@]HOST [--port N] [--identity KEY] [--known-hosts FILE]\n"
	  "                           let a host with no VE running go: COORDINATOR cleared, the host forgotten" },
	{ "simulate", sim_cmd,
	  "simulate TRACE [--hours H] [--step S] [--log] [--tsv FILE] [--plot FILE.png]\n"
	  "                 the rebalancing planner over a load trace, in simulated time" },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: vzcoord COMMAND\n");
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		fprintf(f, "  vzcoord %s\n", cmds[i].usage);
}

int main(int argc, char **argv)
{
	struct vz_err err = { 0 };
	int ret;

	vz_log_init("vzcoord", VZ_LOG_INFO, 1);
	if (argc < 2) {
		fprintf(stderr, "vzcoord: No command given (vzcoord --help)\n");
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		ret = cmds[i].fn(argc - 1, argv + 1, &err);
		if (ret >= 0)
			return ret;
		fprintf(stderr, "vzcoord: %s\n", err.msg);
		return err.exit_code ? err.exit_code : VZ_EXIT_SYSTEM;
	}
	fprintf(stderr, "vzcoord: Unknown command '%s' (vzcoord --help)\n", argv[1]);
	return EXIT_USAGE;
}
