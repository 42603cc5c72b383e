/* vzcoord simulate (issue 15, item 2): the rebalancing planner
 * (rebalance.h) run over a synthetic load trace in simulated time.
 * simulate.c parses a trace and runs it; simulate_cli.c is the command,
 * its output, the TSV and the plot.
 *
 * A trace is text, one statement a line, `#` to the end of a line a
 * comment, words separated by blanks:
 *
 *   settings KEY=VALUE...     the planner's settings (any of, defaults of
 *                             rb_settings_default): hot=0.70 imbalance=0.20
 *                             rounds=3 gain=10% per-gib=1% mem-limit=85%
 *                             cooldown=6h budget=4 inflight=1
 *                             bandwidth=125000000 (bytes/s, K M G suffixes)
 *   host NAME cores=N mem=SIZE [state=online|suspect|offline] [maintenance]
 *   ve VEID on=HOST mem=SIZE [disk=SIZE] cpu=LOAD [pin] [anti=LABEL]
 *   at TIME host NAME [state=online|suspect|offline] [maintenance|active]
 *                             from TIME on, the host is so (a drain, an
 *                             undrain, an agent lost); in time order
 *
 * SIZE is vzctl's (512M, 2G); a fraction is 0.25 or 25%; a duration is
 * seconds or 30s, 5m, 2h, 1d. LOAD, in permille of one CPU, over time t:
 *
 *   const:P                         P
 *   square:HIGH:LOW:period=D[:phase=D]  HIGH the first half of each period, LOW the second
 *   sine:MEAN:AMP:period=D[:phase=D]    MEAN + AMP sin(2 pi (t + phase) / period), at least 0
 *   steps:T=P,T=P...                P from each T on (the first T is 0, the Ts grow)
 *
 * A VE's memory in use is its mem=; what a move copies is mem + disk. A
 * host's VEs stay on it through its maintenance or absence: moving them
 * off is the drain's (the queue's) business, not the planner's. */
#ifndef VZ_SIMULATE_H
#define VZ_SIMULATE_H

#include <stdint.h>

#include "err.h"
#include "rebalance.h"

enum sim_fn { SIM_CONST, SIM_SQUARE, SIM_SINE, SIM_STEPS };

struct sim_load {
	enum sim_fn fn;
	double a, b; /* const: a; square: high a, low b; sine: mean a, amplitude b */
	int64_t period, phase;
	size_t n_steps;
	int64_t *step_at;
	double *step_val;
};

/* A change of a host at a time: -1 for what it leaves as it is. */
struct sim_event {
	int64_t at;
	size_t host;
	int state;	 /* enum rb_host_state */
	int maintenance; /* 1 in maintenance (a drain), 0 back */
};

struct sim_trace {
	struct rb_settings set;
	struct rb_host *hosts;
	size_t n_hosts;
	struct rb_ve *ves;
	struct sim_load *loads; /* loads[i] is ves[i]'s CPU */
	size_t n_ves;
	struct sim_event *events; /* in time order */
	size_t n_events;
};

/* A move the simulation started, at t (seconds from the start). */
struct sim_move {
	int64_t t;
	struct rb_move move;
};

/* The pool at one round, before its moves. */
struct sim_sample {
	int64_t t;
	double imbalance;
	unsigned moves; /* started at this round */
};

struct sim_result {
	struct sim_move *moves;
	size_t n_moves;
	struct sim_sample *samples;
	size_t n_samples;
	double *loads;		/* n_samples rows of n_hosts: each host's load at each round */
	double start, end, max; /* imbalance at the first round, after the last move, highest seen */
};

/* Called with each line of each round's decision log; non-zero stops. */
typedef int (*sim_log_fn)(void *arg, int64_t t, const char *line);

/* Parse the trace text (name: for messages, "FILE:LINE: ..."). 0 or
 * -EINVAL with err's exit code VZ_EXIT_BADVAL, or -ENOMEM. */
int sim_trace_parse(const char *text, const char *name, struct sim_trace *t, struct vz_err *err);
void sim_trace_free(struct sim_trace *t);
/* Load (permille) at time t. */
double sim_load_at(const struct sim_load *l, int64_t t);

/* Run the planner every step seconds from 0 to duration on t (changed:
 * its VEs end where the moves took them). A VE's CPU at a round is its
 * load averaged over the 5 minutes before; a move takes its estimated
 * seconds, then the VE's load is its new host's. log may be NULL. */
int sim_run(struct sim_trace *t, int64_t duration, int64_t step, sim_log_fn log, void *arg, struct sim_result *r,
	    struct vz_err *err);
void sim_result_free(struct sim_result *r);

/* vzcoord simulate TRACE [--hours H] [--step S] [--log] [--tsv FILE] [--plot FILE] */
int sim_cmd(int argc, char **argv, struct vz_err *err);

#endif
