/* The rebalancing planner (issue 15, item 1): a pure function from a
 * snapshot of the pool to a plan of moves and the decision log that
 * explains it. No I/O, no clock, no global state: the time is in the
 * snapshot, the counters it keeps from round to round are handed back in
 * the plan, and the same snapshot always gives the same plan (hosts and
 * VEs are looked at in name and VEID order whatever order they come in).
 *
 * The rule (README: "Rebalancing: the planner"):
 *  - a host's load is its dominant resource, max(cpu, mem): cpu the sum
 *    of its VEs' CPU (averaged over minutes) over its cores, mem the sum of
 *    its VEs' memory in use over its memory;
 *  - the imbalance is the coefficient of variation (population standard
 *    deviation over mean) of the loads of the eligible hosts: online and
 *    not in maintenance (draining, drained, partial);
 *  - a round acts only when a host has been over hot_threshold for
 *    trigger_rounds rounds in a row and the imbalance is over
 *    imbalance_threshold;
 *  - it then moves one VE of a hot host at a time to the target that
 *    lowers the imbalance most, accepting it only if that lowers the
 *    imbalance by at least min_gain of itself, with at least
 *    gain_per_gib of that relative gain per GiB copied, the target staying
 *    under hot_threshold and mem_limit; never a pinned VE, a VE moved
 *    less than cooldown ago or in flight, a target not online or in
 *    maintenance, or a target holding a VE of the same anti-affinity
 *    label; at most max_in_flight moves at once and moves_per_hour. */
#ifndef VZ_REBALANCE_H
#define VZ_REBALANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define RB_NAME_MAX 64
/* last_moved of a VE never moved */
#define RB_NEVER INT64_MIN

enum rb_host_state { RB_HOST_ONLINE, RB_HOST_SUSPECT, RB_HOST_OFFLINE };

struct rb_host {
	char name[RB_NAME_MAX];
	enum rb_host_state state;
	bool maintenance; /* draining, drained or partial: neither source nor target */
	unsigned cores;
	uint64_t mem_total;
	unsigned over_rounds; /* rounds in a row it was hot, before this one */
};

struct rb_ve {
	unsigned veid;
	char host[RB_NAME_MAX];	     /* where it runs */
	char moving_to[RB_NAME_MAX]; /* "" or the target of its move in flight */
	unsigned cpu_permille;	     /* of one CPU, averaged over minutes */
	uint64_t mem_used;
	uint64_t copy_bytes;		 /* what a move copies: memory and disk */
	bool pinned;			 /* vzctl set --pin yes */
	char anti_affinity[RB_NAME_MAX]; /* "" or a label */
	int64_t last_moved;		 /* seconds, or RB_NEVER */
};

struct rb_settings {
	double hot_threshold;	    /* host load over which a host is hot (0.70) */
	double imbalance_threshold; /* no move under this imbalance (0.20) */
	unsigned trigger_rounds;    /* rounds in a row hot before acting (3) */
	double min_gain;	    /* relative lowering of the imbalance a move must bring (0.10) */
	double gain_per_gib;	    /* that relative gain per GiB copied, at least (0.01) */
	double mem_limit;	    /* a target's memory after the move stays under (0.85) */
	int64_t cooldown_s;	    /* a VE is not moved again before (6 h) */
	unsigned moves_per_hour;    /* budget (4) */
	unsigned max_in_flight;	    /* moves at once (1) */
	uint64_t bandwidth;	    /* bytes/s a move's time is estimated at (125e6, 1 Gbit/s) */
};

struct rb_snapshot {
	int64_t now; /* seconds, any epoch the VEs' last_moved share */
	struct rb_settings set;
	const struct rb_host *hosts;
	size_t n_hosts;
	const struct rb_ve *ves;
	size_t n_ves;
	unsigned moves_last_hour; /* moves started in (now - 1 h, now] */
	unsigned in_flight;	  /* moves started and not yet done */
};

struct rb_move {
	unsigned veid;
	char from[RB_NAME_MAX], to[RB_NAME_MAX];
	double imbalance_before, imbalance_after;
	uint64_t bytes;
	unsigned seconds; /* estimated: bytes at the bandwidth setting, at least 1 */
};

struct rb_plan {
	double imbalance;	/* at the start of the round */
	double imbalance_after; /* once its moves are done */
	struct rb_move *moves;
	size_t n_moves;
	char **log; /* the decision log of the round, one line each, no newline */
	size_t n_log;
	/* For the next round, in the order of the snapshot's hosts: the
	 * rounds in a row each has been hot, this one included. */
	unsigned *over_rounds;
};

/* The defaults above. */
void rb_settings_default(struct rb_settings *set);

/* The load of each host of s (loads[i] for s->hosts[i], 0 for a host not
 * eligible) and the imbalance of the eligible ones (0 with fewer than two
 * or a mean of 0). -EINVAL with err set for a VE on a host s does not
 * have, two hosts of one name or a host of 0 cores or memory. */
int rb_loads(const struct rb_snapshot *s, double *loads, double *imbalance, struct vz_err *err);

/* One round: plan holds the moves to start now, in order, and why (its
 * log); free it with rb_plan_free. 0, or -EINVAL (as rb_loads) or
 * -ENOMEM with err set and plan empty. */
int rb_plan_round(const struct rb_snapshot *s, struct rb_plan *plan, struct vz_err *err);
/* Free what plan holds; safe on a zeroed or freed plan. */
void rb_plan_free(struct rb_plan *plan);

#endif
