/* The live side of the rebalancing planner (issue 15, item 2): the
 * planner's snapshot built from the pool the coordinator sees and its
 * store's moves (a pure function, coord_rb_snapshot), and the rounds that
 * hand its moves to the queue: `vzcoord rebalance` by hand, and one every
 * REBALANCE_INTERVAL seconds when that is set (coord_rebalance_tick).
 *
 * A round by hand is a decision the admin asked for: the rule of
 * trigger_rounds rounds in a row hot is waived (a host hot now counts as
 * hot for as many rounds), every other rule holds. The automatic rounds
 * keep each host's hot-round counter (pool_node.rb_over_rounds) from one
 * round to the next. */
#ifndef VZ_REBALANCE_LIVE_H
#define VZ_REBALANCE_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "members.h"
#include "rebalance.h"
#include "store.h"

/* A snapshot and the arrays it points into (free with coord_rb_free). */
struct coord_rb_snap {
	struct rb_snapshot s;
	struct rb_host *hosts;
	struct rb_ve *ves;
};

/* The planner's snapshot of p at now_ns (monotonic: the hosts' states)
 * and now_ms (the store's clock: the moves' times), under set:
 *  - every host with its state, maintenance (the coordinator's or its
 *    agent's), cores, memory and hot-round counter (by_hand: at least
 *    set->trigger_rounds - 1, so that a host hot now triggers);
 *  - every VE of each host's last inventory with its CPU, memory in use,
 *    bytes to copy (memory and disk), pin and label; a VEID two hosts
 *    report is pinned (never acted on) and kept once, on the first;
 *  - from moves (any states): each VE's last DONE move as its last_moved
 *    (the move's end, in s), a queued or running move as its moving_to and
 *    in flight, and the moves created in the last hour.
 * 0, or -ENOMEM with err set. */
int coord_rb_snapshot(const struct pool *p, uint64_t now_ns, int64_t now_ms, const struct pool_move *moves,
		      size_t n_moves, const struct rb_settings *set, bool by_hand, struct coord_rb_snap *out,
		      struct vz_err *err);
void coord_rb_free(struct coord_rb_snap *snap);

#endif
