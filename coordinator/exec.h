/* vzcoord exec: one command in every selected running VE of the pool,
 * OpenVZ's "mass management" (a security update in every VE with one
 * script).
 *
 * The admin's vzcoord parses the command line (exec_parse_args) and sends
 * one AdminRequest of op ADMIN_EXEC; vzcoord serve picks the VEs from the
 * pool (exec_select), forks a worker that fans the command out to the
 * VEs' agents (exec_run, ORDER_EXEC), at most `parallel` at once, and
 * streams one AdminReply with a result per VE in VEID order, then one with
 * done and the exit status. The admin's side prints them (exec_print_*).
 *
 * The pure parts (the parsers, the selection, the scheduler, the tally and
 * the rendering) take everything as arguments, for the unit tests.
 * Functions return 0 or a negative errno with err filled. */
#ifndef VZ_COORD_EXEC_H
#define VZ_COORD_EXEC_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"
#include "members.h"
#include "pool.pb-c.h"

/* As ansible's forks: five VEs at once unless told. */
#define EXEC_PARALLEL_DEFAULT 5
#define EXEC_PARALLEL_MAX     256
#define EXEC_TIMEOUT_MAX      86400
/* The status of a command its agent ended at --timeout (as timeout(1)). */
#define EXEC_TIMED_OUT 124
#define EXEC_LIST_MAX  POOL_MAX_VES
/* The output kept of each VE's command (the rest is counted, dropped). */
#define EXEC_OUTPUT_MAX (256u << 10)

struct exec_opts {
	bool all, json;
	const char *host; /* --host */
	unsigned *veids;  /* --ve, sorted, each once (malloc'd) */
	size_t n_veids;
	unsigned parallel, max_fail_pct, timeout_s;
	const char *command; /* the words after --, joined by spaces (malloc'd) */
};

/* argv of `exec` (argv[0] is "exec") into o; bad usage fails with exit
 * status 2 and one line. Free o with exec_opts_free. */
int exec_parse_args(int argc, char **argv, struct exec_opts *o, struct vz_err *err);
void exec_opts_free(struct exec_opts *o);
/* "101,102-105" into sorted VEIDs, each once (malloc'd). */
int exec_parse_ve_list(const char *s, unsigned **out, size_t *n, struct vz_err *err);
/* "10%" or "10" into 0..100. */
int exec_parse_pct(const char *s, unsigned *out, struct vz_err *err);
/* The request that o makes. Points into o. */
void exec_request(const struct exec_opts *o, Vz__Pool__AdminRequest *req);

/* One selected VE: where its command runs, or why it is not run. */
struct exec_target {
	unsigned veid;
	char host[64];
	char address[64];
	unsigned port;
	char why[192]; /* "": to run */
};

/* The VEs req selects in the pool at now, in VEID order: --all every
 * running VE of an online host, --host H those of H, --ve LIST those
 * listed. A VE of the selection that cannot run (stopped, its host not
 * online, not in the pool, on two hosts) is in it with its reason; a
 * stopped VE is only in the selection of --ve. An unknown host or a
 * request that selects nothing by its form is -EINVAL. *out is malloc'd. */
int exec_select(const struct pool *p, uint64_t now, const Vz__Pool__AdminRequest *req, struct exec_target **out,
		size_t *n_out, struct vz_err *err);

/* The fan-out's order and budget, without threads or sockets: VEs start
 * in VEID order, at most `parallel` at once; results are given in VEID
 * order, each once every earlier one is final; once the failures exceed
 * max_fail_pct percent of the VEs to run, no new one starts and those not
 * started are skipped. */
enum exec_state {
	EXEC_WAITING,
	EXEC_RUNNING,
	EXEC_FINISHED,
	EXEC_NOT_RUN, /* never to run: its reason is known before the start */
	EXEC_SKIPPED,
};

struct exec_sched {
	enum exec_state *state;
	size_t n, to_run, next_start, next_emit, running, failed;
	unsigned parallel, max_fail_pct;
	bool stopped; /* the budget spent, or the run stopped */
};

/* runnable[i]: VE i is to run. */
int exec_sched_init(struct exec_sched *s, size_t n, const bool *runnable, unsigned parallel, unsigned max_fail_pct,
		    struct vz_err *err);
void exec_sched_free(struct exec_sched *s);
/* The next VE to start now (it is running from then), or -1. */
ssize_t exec_sched_start(struct exec_sched *s);
/* VE i ended; failed: it counts against the budget. */
void exec_sched_finish(struct exec_sched *s, size_t i, bool failed);
/* No new VE starts (the admin went away): the waiting ones are skipped. */
void exec_sched_stop(struct exec_sched *s);
/* The next result to give, in VEID order, or -1 while it is not final. */
ssize_t exec_sched_emit(struct exec_sched *s);
/* Every result given. */
bool exec_sched_over(const struct exec_sched *s);

/* Run one VE's command: r comes with its veid and host; fill its status
 * (-1 and error when it did not run), output and elapsed_ms (malloc'd strings and bytes, freed by
 * exec_result_clear). Called from several threads at once. */
typedef void (*exec_runner_fn)(void *arg, const struct exec_target *t, const char *command, unsigned timeout_s,
			       Vz__Pool__ExecResult *r);
/* Give one final result, in VEID order; below 0: nobody listens any more
 * (the run starts no new VE and ends once the running ones end). */
typedef int (*exec_emit_fn)(void *arg, const Vz__Pool__ExecResult *r);

struct exec_run {
	const struct exec_target *targets;
	size_t n;
	const char *command;
	unsigned parallel, max_fail_pct, timeout_s;
	exec_runner_fn run;
	exec_emit_fn emit;
	void *arg;
};

/* Run the fan-out to its end; *exit_code: 0 when every VE ran and its
 * command exited 0, else VZ_EXIT_EXEC. */
int exec_run(const struct exec_run *run, int *exit_code, struct vz_err *err);
void exec_result_clear(Vz__Pool__ExecResult *r);

/* What a result counts as. */
enum exec_kind { EXEC_OK, EXEC_FAILED, EXEC_NOTRUN, EXEC_SKIP };
enum exec_kind exec_result_kind(const Vz__Pool__ExecResult *r);

struct exec_tally {
	size_t total, ok, failed, not_run, skipped;
};
void exec_tally_add(struct exec_tally *t, const Vz__Pool__ExecResult *r);

/* The text form: "101 on h1: exit 0 in 0.12 s", then the output, each
 * line indented by two spaces. */
void exec_print_text(FILE *f, const Vz__Pool__ExecResult *r);
/* "20 VEs: 18 ok, 1 failed, 1 skipped" (and "N not run" when some were). */
void exec_print_summary(FILE *f, const struct exec_tally *t);
/* The JSON form: {"results": [...], "summary": {...}, "exit_code": N},
 * its results printed as they come (first: the first one). */
void exec_print_json_begin(FILE *f);
void exec_print_json_result(FILE *f, const Vz__Pool__ExecResult *r, bool first);
void exec_print_json_end(FILE *f, const struct exec_tally *t, int exit_code);

/* The admin's side: send o's request to vzcoord serve, print its results
 * as they come; the exit status of the run, or a negative errno. */
int exec_call(const struct exec_opts *o, struct vz_err *err);

#endif
