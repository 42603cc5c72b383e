/* The coordinator's orders, served in the migration worker that accepted
 * the connection (orders.h): who may give them (the certificate CN
 * POOL_COORD_CN, and an epoch not older than the newest seen), then each
 * order: a move through the engine (mig_source_run) with its progress as
 * OrderEvent lines and its record kept for ORDER_QUERY, the maintenance
 * flag, and exec (order_exec.c). */
#define LOG_PREFIX "orders: "
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "migrate/migrate.h"
#include "orders.h"
#include "paths.h"
#include "pool.h"
#include "util.h"
#include "ve.h"

int order_send_done(struct vz_conn *c, Vz__Pool__OrderState state, int exit_code, const char *error,
		    uint64_t elapsed_ms, uint64_t downtime_ms)
{
	Vz__Pool__OrderEvent ev = VZ__POOL__ORDER_EVENT__INIT;
	struct vz_err e = { 0 };

	ev.has_done = ev.has_state = ev.has_exit_code = ev.has_elapsed_ms = true;
	ev.done = true;
	ev.state = state;
	ev.exit_code = exit_code;
	ev.error = error && *error ? (char *)error : NULL;
	ev.elapsed_ms = elapsed_ms;
	ev.has_downtime_ms = downtime_ms > 0;
	ev.downtime_ms = downtime_ms;
	return vz_msg_send(c, &ev.base, &e);
}

/* A refusal or a failure before the order ran: its one line, done. */
static void order_failed(struct vz_conn *c, const struct vz_err *err)
{
	order_send_done(c, VZ__POOL__ORDER_STATE__ORDER_DONE, err->exit_code ? err->exit_code : VZ_EXIT_SYSTEM,
			err->msg, 0, 0);
}

/* The move's progress, sent as OrderEvent lines while the coordinator
 * listens; the move goes on without it. */
struct move_sink {
	struct vz_conn *c;
	uint64_t move_id;
	bool lost;
	uint64_t downtime_ms;
};

static void move_line(void *arg, const char *line)
{
	struct move_sink *k = arg;
	Vz__Pool__OrderEvent ev = VZ__POOL__ORDER_EVENT__INIT;
	struct vz_err e = { 0 };
	double ms;

	/* The engine's summary names the VE's pause (progress.c). */
	if (sscanf(line, " total suspended %lf ms", &ms) == 1 && ms >= 0)
		k->downtime_ms = (uint64_t)(ms + 0.5);
	if (k->lost)
		return;
	ev.line = (char *)line;
	if (vz_msg_send(k->c, &ev.base, &e) < 0) {
		k->lost = true;
		pr_warn("Move %" PRIu64 ": the coordinator no longer listens (%s): the move goes on", k->move_id,
			e.msg);
	}
}

static enum mig_mode mode_of(Vz__Pool__MoveMode m)
{
	switch (m) {
	case VZ__POOL__MOVE_MODE__MOVE_OFFLINE: return MIG_OFFLINE;
	case VZ__POOL__MOVE_MODE__MOVE_STOPCOPY: return MIG_STOP_COPY;
	case VZ__POOL__MOVE_MODE__MOVE_POSTCOPY: return MIG_POSTCOPY;
	default: return MIG_PRECOPY;
	}
}

/* An outcome as the last event. */
static void send_outcome(struct vz_conn *c, const struct order_record *r)
{
	order_send_done(c, VZ__POOL__ORDER_STATE__ORDER_DONE, r->exit_code, r->error, r->elapsed_ms, r->downtime_ms);
}

static bool migrate_order_ok(const Vz__Pool__Order *o, struct vz_err *err)
{
	if (!o->has_veid || o->veid < 1 || o->veid > INT32_MAX || !o->has_move_id || !o->move_id || !o->dest ||
	    !*o->dest || (o->has_dest_port && o->dest_port > 65535)) {
		vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL,
				  "Malformed move order: a VEID, a move id and a destination");
		return false;
	}
	return true;
}

/* A running record whose worker is gone (the agent restarted mid-move):
 * the outcome is where the VE is, once the engine's own recovery has
 * resolved the move. */
static void resolve_dead(uint64_t id, struct order_record *r, bool *running)
{
	char path[PATH_MAX];
	struct vz_err err = { 0 };

	if (mig_outgoing_pending(r->veid))
		return; /* the agent's next start decides it (mig_recover) */
	r->done = true;
	r->elapsed_ms = 0;
	if (vz_exists(vz_path_ve_conf(path, sizeof(path), r->veid))) {
		r->exit_code = VZ_EXIT_SYSTEM;
		snprintf(r->error, sizeof(r->error), "The agent restarted during the move; VE %u runs here", r->veid);
	}
	*running = false;
	if (order_record_finish(id, r, &err) < 0)
		pr_warn("Move %" PRIu64 ": %s", id, err.msg);
}

/* Answer with what is known of move id: false when nothing is. */
static bool answer_known(struct vz_conn *c, uint64_t id)
{
	struct order_record r;
	bool running;

	if (order_record_load(id, &r, &running) < 0)
		return false;
	if (running && !order_worker_alive(&r))
		resolve_dead(id, &r, &running);
	if (running)
		order_send_done(c, VZ__POOL__ORDER_STATE__ORDER_RUNNING, 0, NULL, 0, 0);
	else
		send_outcome(c, &r);
	return true;
}

static void order_query(struct vz_conn *c, const Vz__Pool__Order *o)
{
	if (!o->has_move_id || !answer_known(c, o->move_id))
		order_send_done(c, VZ__POOL__ORDER_STATE__ORDER_UNKNOWN, 0, NULL, 0, 0);
}

static void order_migrate(struct vz_agent *a, struct vz_conn *c, const Vz__Pool__Order *o)
{
	struct move_sink k = { .c = c, .move_id = o->move_id };
	struct vz_progress progress = { move_line, &k };
	struct mig_request req = MIG_REQUEST_INIT;
	struct order_record r = { 0 };
	struct vz_err err = { 0 };
	uint64_t t0 = vz_now_ns();
	int ret;

	if (!migrate_order_ok(o, &err))
		return order_failed(c, &err);
	/* An order given twice (the coordinator retried) runs once. */
	if (answer_known(c, o->move_id))
		return;
	ret = order_record_start(o->move_id, o->veid, &err);
	if (ret == -EEXIST && answer_known(c, o->move_id))
		return;
	if (ret < 0)
		return order_failed(c, &err);
	pr_info("Move %" PRIu64 ": VE %u to %s:%u", o->move_id, o->veid, o->dest, o->dest_port);
	req.veid = o->veid;
	req.dest = o->dest;
	req.port = o->has_dest_port ? o->dest_port : 0;
	req.mode = mode_of(o->has_mode ? o->mode : VZ__POOL__MOVE_MODE__MOVE_PRECOPY);
	ret = mig_source_run(a, &req, &progress, &err);
	r = (struct order_record){ .done = true, .veid = o->veid, .elapsed_ms = (vz_now_ns() - t0) / 1000000 };
	r.downtime_ms = k.downtime_ms;
	if (ret < 0) {
		r.exit_code = err.exit_code ? err.exit_code : VZ_EXIT_SYSTEM;
		snprintf(r.error, sizeof(r.error), "%s", err.msg);
	}
	vz_err_clear(&err);
	if (order_record_finish(o->move_id, &r, &err) < 0)
		pr_err("Move %" PRIu64 ": %s", o->move_id, err.msg);
	pr_info("Move %" PRIu64 " of VE %u: %s", o->move_id, o->veid, r.exit_code ? r.error : "done");
	if (!k.lost)
		send_outcome(c, &r);
}

static void order_maintenance(struct vz_agent *a, struct vz_conn *c, const Vz__Pool__Order *o)
{
	bool on = o->has_draining && o->draining;
	struct vz_err err = { 0 };

	if (agent_maintenance_set(on, &err) < 0)
		return order_failed(c, &err);
	pr_info("%s", on ? "Maintenance on (vzcoord drain): no new VE, no incoming move"
			 : "Maintenance off: new VEs and incoming moves are taken again");
	(void)a;
	order_send_done(c, VZ__POOL__ORDER_STATE__ORDER_DONE, 0, NULL, 0, 0);
}

/* The packed Order, its magic and version checked. */
static Vz__Pool__Order *unpack_order(const Vz__Migrate__Msg *m, struct vz_err *err)
{
	Vz__Pool__Order *o = m->has_order ? vz__pool__order__unpack(NULL, m->order.len, m->order.data) : NULL;

	if (!o) {
		vz_error_exit_msg(err, VZ_EXIT_INVAL, EBADMSG, "An order that does not parse");
		return NULL;
	}
	if (o->magic != ORDER_MAGIC || o->version != ORDER_VERSION) {
		vz_error_exit_msg(err, VZ_EXIT_INVAL, EPROTO, "An order of magic %#x version %u: not one of ours",
				  o->magic, o->version);
		vz__pool__order__free_unpacked(o, NULL);
		return NULL;
	}
	return o;
}

void agent_order_serve(struct vz_agent *a, struct vz_conn *c, const Vz__Migrate__Msg *m)
{
	struct vz_err err = { 0 };
	char addr[64] = "";
	Vz__Pool__Order *o;

	if (strcmp(c->peer, POOL_COORD_CN)) {
		vz_sock_peer_host(c->fd, addr, sizeof(addr));
		if (!strncmp(addr, "::ffff:", 7))
			memmove(addr, addr + 7, strlen(addr + 7) + 1);
		pr_warn("Refused an order from %s (%s): orders come from %s only", c->peer, addr[0] ? addr : "-",
			POOL_COORD_CN);
		vz_error_exit_msg(&err, VZ_EXIT_PERM, EPERM, "%s takes orders from %s only, not from %s", a->host_name,
				  POOL_COORD_CN, c->peer);
		return order_failed(c, &err);
	}
	o = unpack_order(m, &err);
	if (!o || order_epoch_take(o->epoch, &err) < 0) {
		pr_warn("Refused an order from %s: %s", c->peer, err.msg);
		order_failed(c, &err);
		if (o)
			vz__pool__order__free_unpacked(o, NULL);
		return;
	}
	switch (o->op) {
	case VZ__POOL__ORDER_OP__ORDER_MIGRATE: order_migrate(a, c, o); break;
	case VZ__POOL__ORDER_OP__ORDER_EXEC: order_exec(a, c, o); break;
	case VZ__POOL__ORDER_OP__ORDER_MAINTENANCE: order_maintenance(a, c, o); break;
	case VZ__POOL__ORDER_OP__ORDER_QUERY: order_query(c, o); break;
	default: vz_error_exit_msg(&err, VZ_EXIT_INVAL, EINVAL, "Unknown order %d", (int)o->op); order_failed(c, &err);
	}
	vz__pool__order__free_unpacked(o, NULL);
}
