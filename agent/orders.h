/* The coordinator's orders to this agent (pool.proto: Order, OrderEvent),
 * over the migration port: a vz.migrate.Msg T_ORDER from the peer whose
 * certificate CN is POOL_COORD_CN, then OrderEvents back until the one
 * with done. Each order runs in the migration worker that accepted its
 * connection (orders.c, order_exec.c).
 *
 * What this agent keeps of them on disk (order_state.c), under VZ_ROOT:
 *   /vz/coord-epoch      the newest coordinator epoch seen ("N\n"); an
 *                        order of an older one is refused
 *   /vz/maintenance      present: the host is in maintenance (draining):
 *                        no `vzctl create`, no incoming move
 *   /vz/orders/ID.run    a move order running: "running VEID PID START MS"
 *                        (START: the worker's start time in clock ticks,
 *                        so that a dead worker is told from a reused pid)
 *   /vz/orders/ID.done   its outcome: "done VEID EXIT ELAPSED DOWNTIME MS"
 *                        and the error line (MS: wall clock, ms)
 * ID is the coordinator's move id, decimal. Outcomes are kept for a day,
 * 1000 at most. */
#ifndef VZ_AGENT_ORDERS_H
#define VZ_AGENT_ORDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "err.h"
#include "migrate.pb-c.h"
#include "pool.pb-c.h"

struct vz_agent;

#define ORDER_MAGIC	   0x565a5031u /* "VZP1" */
#define ORDER_VERSION	   1
#define ORDERS_DIR	   "/vz/orders"
#define ORDER_EPOCH_FILE   "/vz/coord-epoch"
#define MAINTENANCE_FILE   "/vz/maintenance"
#define ORDER_KEEP_MS	   (24ull * 3600 * 1000)
#define ORDER_KEEP_MAX	   1000
#define ORDER_OUTPUT_CHUNK (64u << 10)
#define ORDER_ERROR_MAX	   512

/* A move order's record, running or done. */
struct order_record {
	bool done;
	unsigned veid;
	pid_t pid;		      /* running: the worker */
	unsigned long long pid_start; /* running: its start time, clock ticks since boot */
	int exit_code;		      /* done */
	uint64_t elapsed_ms, downtime_ms;
	uint64_t at_ms;		     /* wall clock: started (running), ended (done) */
	char error[ORDER_ERROR_MAX]; /* done: "" when it moved */
};

/* Pure: a record's text (len bytes, not necessarily terminated) into r;
 * 0, or -EINVAL for anything order_record_format does not write. */
int order_record_parse(const char *text, size_t len, struct order_record *r);
/* Pure: r as text into buf; its length, or -ENOSPC. */
int order_record_format(const struct order_record *r, char *buf, size_t len);
/* Pure: the epoch file's text; 0, or -EINVAL unless a decimal 1.. with
 * an optional newline. */
int order_epoch_parse(const char *text, size_t len, uint64_t *epoch);

/* The newest epoch seen (0: none yet). */
uint64_t order_epoch_seen(void);
/* Take epoch if it is not older than the newest seen (a newer one is
 * stored, durably, under a lock: order workers run at once); an older
 * one is refused with one line naming both. */
int order_epoch_take(uint64_t epoch, struct vz_err *err);

/* Is this host in maintenance? */
bool agent_maintenance(void);
/* Set or clear it (durable). */
int agent_maintenance_set(bool on, struct vz_err *err);
/* `vzctl create` here: refused in maintenance, with one line. */
int agent_maintenance_check_create(const struct vz_agent *a, struct vz_err *err);

/* The record of move id (done first, then running) into r: 0, or
 * -ENOENT when there is none. *running_path tells which was found. */
int order_record_load(uint64_t id, struct order_record *r, bool *running);
/* Write the running record of move id for this process, exclusively:
 * -EEXIST when one is there. */
int order_record_start(uint64_t id, unsigned veid, struct vz_err *err);
/* Write the outcome r of move id, remove its running record, and forget
 * outcomes older than ORDER_KEEP_MS or past ORDER_KEEP_MAX. */
int order_record_finish(uint64_t id, const struct order_record *r, struct vz_err *err);
/* Has process pid ended (gone, or a zombie not reaped yet)? */
bool order_proc_gone(pid_t pid);
/* Does the worker of running record r still run? */
bool order_worker_alive(const struct order_record *r);
/* The move id of the order moving VE veid from here now, 0 when none. */
uint64_t order_move_of(unsigned veid);

/* The order in message m, from the peer of c: checked, run, answered. */
void agent_order_serve(struct vz_agent *a, struct vz_conn *c, const Vz__Migrate__Msg *m);

/* order_exec.c: ORDER_EXEC, its output and its end sent on c. */
void order_exec(struct vz_agent *a, struct vz_conn *c, const Vz__Pool__Order *o);
/* Send the last event: exit code, error (NULL: none), elapsed. */
int order_send_done(struct vz_conn *c, Vz__Pool__OrderState state, int exit_code, const char *error,
		    uint64_t elapsed_ms, uint64_t downtime_ms);

#endif
