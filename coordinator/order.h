/* The coordinator's orders to an agent (pool.proto: Order, OrderEvent),
 * over the agent's migration port with the coordinator's certificate.
 * Blocking calls, for a worker process of vzcoord serve (or of the admin's
 * vzcoord): each opens one connection, sends one order, reads its events
 * until the last, and closes it. Every call returns 0 when the agent
 * answered the order to its end (the outcome is in *out), or a negative
 * errno with err filled when it could not be sent or the answer was cut
 * (the agent unreachable, TLS refused, the connection lost). */
#ifndef VZ_COORD_ORDER_H
#define VZ_COORD_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "pool.pb-c.h"
#include "progress.h"

struct vz_tls;

/* Where an order goes: the agent's address and migration port, the
 * coordinator's TLS context (client side) and its epoch. */
struct coord_agent_addr {
	const char *host; /* the agent's name, for messages */
	const char *address;
	unsigned port;
	struct vz_tls *tls;
	uint64_t epoch;
};

/* The end of an order: state ORDER_DONE with exit_code 0 (done), or
 * another exit_code with error (failed, refused); QUERY may also say
 * ORDER_RUNNING or ORDER_UNKNOWN. */
struct coord_order_result {
	Vz__Pool__OrderState state;
	int exit_code;
	char error[512];
	uint64_t elapsed_ms, downtime_ms;
	uint64_t output_dropped; /* exec: output bytes past max_output, not kept */
};

/* Move veid from the agent at `at` to the agent at dest:dest_port in
 * mode; progress (NULL: nobody) gets each line the agent reports. */
int coord_order_migrate(const struct coord_agent_addr *at, unsigned veid, uint64_t move_id, const char *dest,
			unsigned dest_port, Vz__Pool__MoveMode mode, const struct vz_progress *progress,
			struct coord_order_result *out, struct vz_err *err);

/* The outcome of move move_id of the agent at `at`. */
int coord_order_query(const struct coord_agent_addr *at, uint64_t move_id, struct coord_order_result *out,
		      struct vz_err *err);

/* Put the agent's host in maintenance (draining true) or out of it. */
int coord_order_maintenance(const struct coord_agent_addr *at, bool draining, struct coord_order_result *out,
			    struct vz_err *err);

/* Run command in VE veid (sh -c), for at most timeout_s (0: no limit);
 * its output (stdout and stderr, at most max_output bytes kept, the rest
 * counted and dropped) is returned in *output (malloc'd, NUL-terminated,
 * *output_len bytes), the caller's to free. */
int coord_order_exec(const struct coord_agent_addr *at, unsigned veid, const char *command, unsigned timeout_s,
		     size_t max_output, struct coord_order_result *out, char **output, size_t *output_len,
		     struct vz_err *err);

/* The events of one order on c until its last (the calls above, after
 * sending it; a test, over a plain socket): lines to progress (NULL:
 * nobody), output kept up to max_output bytes in *output (malloc'd,
 * NUL-terminated, the caller's; output NULL: none kept), the outcome in
 * *out. 0, or a negative errno when the events stop before the last. */
struct vz_conn;
int coord_order_read(struct vz_conn *c, const struct vz_progress *progress, size_t max_output, char **output,
		     size_t *output_len, struct coord_order_result *out, struct vz_err *err);

#endif
