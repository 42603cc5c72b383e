/* The queue's decisions, as pure functions of what they are given (no
 * store, no clock, no network), so that tests can drive them: where each
 * VE of a drain goes, which queued moves start now under the limits, and
 * what becomes of a move that failed.
 *
 * Targets are chosen by capacity: the memory a target would hold after a
 * move (its memory in use, plus every move already planned or running
 * toward it) stays under PLAN_MEM_LIMIT_PCT of its total, and among those
 * that have room the VE goes to the one least full after the move, so
 * that one drain spreads over every eligible host. */
#ifndef VZ_COORD_PLAN_H
#define VZ_COORD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define PLAN_MEM_LIMIT_PCT 85
/* Two hosts whose projected fractions differ by less than this (per
 * mille) are as full as each other: the one given fewer VEs by this plan
 * is taken, so that a noisy figure does not send a whole drain to one
 * host. */
#define PLAN_TIE_PERMILLE 10
/* A move is tried on two targets at most: the first, then one other. */
#define PLAN_MAX_ATTEMPTS 2

/* A host as the planner sees it. mem_used counts the moves toward it that
 * are queued or running (the caller adds them); plan calls add their own
 * as they place VEs, and count them in planned. */
struct plan_host {
	char name[POOL_NAME_MAX];
	bool eligible;		      /* online and in no maintenance */
	uint64_t mem_total, mem_used; /* bytes */
	unsigned planned;
};

/* A VE of the host to drain, as its agent reported it. */
struct plan_ve {
	unsigned veid;
	bool running;
	bool duplicate;	   /* another host reports it too: an alert */
	uint64_t mem_used; /* bytes */
	uint64_t disk_kib;
};

/* One VE's line of a plan: target "" when it cannot move, with reason. */
struct plan_item {
	unsigned veid;
	char target[POOL_NAME_MAX];
	enum pool_move_mode mode;
	uint64_t bytes, est_ms;
	char reason[POOL_TEXT_MAX];
};

/* The host of hosts that takes mem more bytes best, as the header says,
 * other than src and avoid (either NULL or ""), or -1 when none has room;
 * the chosen host's mem_used and planned grow by the move. */
int plan_pick(struct plan_host *hosts, size_t n_hosts, const char *src, const char *avoid, uint64_t mem);

/* What a move of ve costs: bytes (its memory, for a live move, and its
 * disk) and the time at bandwidth_mbit (Mbit/s; 0 counts as 1). */
void plan_cost(const struct plan_ve *ve, bool live, unsigned bandwidth_mbit, uint64_t *bytes, uint64_t *est_ms);

/* The drain of src: out[i] for ves[i] (the caller gives them in VEID
 * order). A running VE moves precopy, or offline with offline set; a
 * stopped one offline. A VE in an alert does not move. hosts' mem_used
 * grows by each move planned. Returns how many VEs have a target. */
size_t plan_drain(struct plan_host *hosts, size_t n_hosts, const char *src, const struct plan_ve *ves, size_t n_ves,
		  bool offline, unsigned bandwidth_mbit, struct plan_item *out);

/* The limits of moves at once: outgoing and incoming per host, and in the
 * whole pool. */
struct plan_limits {
	unsigned out_per_host, in_per_host, pool;
};

/* Whether queued move m may start at all now (its hosts online, its VE
 * in no alert): the caller's judgement, for plan_schedule. */
typedef bool (*plan_ready_fn)(void *arg, const struct pool_move *m);

/* Which queued moves of moves (queued and running ones, in id order:
 * oldest first) start now: start[i] set for each, under lim, counting the
 * running ones and those it starts; one move of a VE at a time. Returns
 * how many start. */
size_t plan_schedule(const struct pool_move *moves, size_t n, const struct plan_limits *lim, plan_ready_fn ready,
		     void *arg, bool *start);

/* Move m's attempt on m->dst failed with error: queued again toward
 * another host of hosts (not src, not the one that failed), with true; or,
 * once PLAN_MAX_ATTEMPTS are spent or no other host has room for mem,
 * FAILED with false: the VE stays where it runs. */
bool plan_retry(struct pool_move *m, struct plan_host *hosts, size_t n_hosts, uint64_t mem, const char *error);

/* A move its source has no record of (ORDER_UNKNOWN at a restart), from
 * where the inventories, both sent since the question, put its VE. */
enum plan_unknown {
	PLAN_UNKNOWN_WAIT,    /* on both hosts (an alert) or on neither (a restore under way) */
	PLAN_UNKNOWN_DONE,    /* on the target only: it moved */
	PLAN_UNKNOWN_REQUEUE, /* on the source only: it never left; queued again */
};
enum plan_unknown plan_unknown_move(bool on_src, bool on_dst);

#endif
