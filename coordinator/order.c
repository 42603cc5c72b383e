/* The coordinator's side of its orders to agents (order.h): one TLS
 * connection per order to the agent's migration port, the Order packed
 * inside a migrate Msg of type T_ORDER, then the agent's OrderEvents until
 * the one with done: progress lines to a sink, an exec's output kept up to
 * a cap, the outcome into a coord_order_result. */
#define LOG_PREFIX "order: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "conn.h"
#include "coord.h"
#include "migrate.pb-c.h"
#include "order.h"

#define ORDER_MAGIC	 0x565a5031u /* "VZP1" */
#define ORDER_VERSION	 1
#define ORDER_CONNECT_MS 5000
/* Sending the order, and the whole of a short order (query, maintenance). */
#define ORDER_SHORT_MS 10000
/* Between two events of a move: its progress can be silent for a while
 * (a big file pass, CRIU's dump, the restore); the agent's engine fails a
 * move whose peer is silent for MIGRATE_TIMEOUT long before this, and
 * TCP keepalive (transport/conn.c) notices a dead host within seconds. */
#define ORDER_MIGRATE_MS (15 * 60 * 1000)
/* An exec's events come within its timeout, and this after it. */
#define ORDER_EXEC_SLACK_MS 30000
/* An event is a line or an output chunk (at most 64 KiB from the agent). */
#define ORDER_EVENT_MAX (1u << 20)

/* What one order gathers from its events. */
struct order_sink {
	const struct vz_progress *progress;
	char *out; /* exec: the output kept, NUL-terminated */
	size_t len, max;
	uint64_t dropped;
};

static void result_init(struct coord_order_result *out)
{
	memset(out, 0, sizeof(*out));
	out->state = VZ__POOL__ORDER_STATE__ORDER_UNKNOWN;
	out->exit_code = -1;
}

static int keep_output(struct order_sink *k, const uint8_t *data, size_t len, struct vz_err *err)
{
	size_t room = k->max > k->len ? k->max - k->len : 0, take = len < room ? len : room;
	char *p;

	k->dropped += len - take;
	if (!take)
		return 0;
	p = realloc(k->out, k->len + take + 1);
	if (!p)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	memcpy(p + k->len, data, take);
	k->len += take;
	p[k->len] = '\0';
	k->out = p;
	return 0;
}

static void take_done(const Vz__Pool__OrderEvent *ev, struct coord_order_result *out)
{
	out->state = ev->has_state ? ev->state : VZ__POOL__ORDER_STATE__ORDER_DONE;
	out->exit_code = ev->has_exit_code ? ev->exit_code : 0;
	snprintf(out->error, sizeof(out->error), "%s", ev->error ? ev->error : "");
	out->elapsed_ms = ev->has_elapsed_ms ? ev->elapsed_ms : 0;
	out->downtime_ms = ev->has_downtime_ms ? ev->downtime_ms : 0;
}

/* Events until the one with done. */
static int read_events(struct vz_conn *c, struct order_sink *k, struct coord_order_result *out, struct vz_err *err)
{
	for (;;) {
		Vz__Pool__OrderEvent *ev = NULL;
		bool done;
		int ret =
		    vz_msg_recv(c, &vz__pool__order_event__descriptor, ORDER_EVENT_MAX, (ProtobufCMessage **)&ev, err);

		if (ret < 0)
			return ret;
		if (ev->line)
			vz_say(k->progress, "%s", ev->line);
		if (ev->has_output)
			ret = keep_output(k, ev->output.data, ev->output.len, err);
		done = ev->has_done && ev->done;
		if (done)
			take_done(ev, out);
		vz__pool__order_event__free_unpacked(ev, NULL);
		if (ret < 0 || done)
			return ret;
	}
}

int coord_order_read(struct vz_conn *c, const struct vz_progress *progress, size_t max_output, char **output,
		     size_t *output_len, struct coord_order_result *out, struct vz_err *err)
{
	struct order_sink k = { .progress = progress, .max = max_output };
	int ret;

	result_init(out);
	ret = read_events(c, &k, out, err);
	if (ret == 0 && output && !k.out)
		k.out = calloc(1, 1);
	if (ret == 0 && output && !k.out)
		ret = vz_error_msg(err, ENOMEM, "Out of memory");
	if (ret < 0 || !output) {
		free(k.out);
		return ret;
	}
	*output = k.out;
	*output_len = k.len;
	out->output_dropped = k.dropped;
	return 0;
}

static void set_read_timeout(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Send order o to the agent at `at` and read its events (read_ms between
 * two of them, 0: no limit), as coord_order_read. */
static int order_run(const struct coord_agent_addr *at, Vz__Pool__Order *o, int read_ms,
		     const struct vz_progress *progress, size_t max_output, char **output, size_t *output_len,
		     struct coord_order_result *out, struct vz_err *err)
{
	const char *name = at->host && *at->host ? at->host : at->address;
	Vz__Migrate__Msg m = VZ__MIGRATE__MSG__INIT;
	struct vz_conn c;
	uint8_t *packed;
	size_t len;
	int ret;

	result_init(out);
	if (!at->address || !*at->address || !at->tls)
		return vz_error_msg(err, EINVAL, "Order to %s: no address or no TLS context", name ? name : "?");
	o->magic = ORDER_MAGIC;
	o->version = ORDER_VERSION;
	o->epoch = at->epoch;
	len = vz__pool__order__get_packed_size(o);
	packed = malloc(len ? len : 1);
	if (!packed)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	vz__pool__order__pack(o, packed);
	m.type = VZ__MIGRATE__TYPE__T_ORDER;
	m.has_order = true;
	m.order.data = packed;
	m.order.len = len;
	ret = vz_tls_connect(at->tls, at->address, at->port, ORDER_CONNECT_MS, ORDER_SHORT_MS, &c, err);
	if (ret < 0) {
		free(packed);
		return vz_error_wrap(err, "Order to %s", name);
	}
	/* Any host of the cluster CA answers TLS: the order is for an agent,
	 * and for the one it names. */
	if (!strcmp(c.peer, COORD_CN) || (at->host && *at->host && strcmp(c.peer, at->host)))
		ret = vz_error_msg(err, EACCES, "Order to %s: %s:%u presents the certificate of %s", name, at->address,
				   at->port, c.peer);
	if (ret == 0)
		ret = vz_msg_send(&c, &m.base, err);
	free(packed);
	if (ret == 0) {
		set_read_timeout(c.fd, read_ms);
		ret = coord_order_read(&c, progress, max_output, output, output_len, out, err);
	}
	vz_conn_close(&c);
	if (ret < 0 && strncmp(err->msg, "Order to ", 9))
		return vz_error_wrap(err, "Order to %s", name);
	return ret;
}

/* An order with no events but its last. */
static int short_order(const struct coord_agent_addr *at, Vz__Pool__Order *o, struct coord_order_result *out,
		       struct vz_err *err)
{
	return order_run(at, o, ORDER_SHORT_MS, NULL, 0, NULL, NULL, out, err);
}

int coord_order_migrate(const struct coord_agent_addr *at, unsigned veid, uint64_t move_id, const char *dest,
			unsigned dest_port, Vz__Pool__MoveMode mode, const struct vz_progress *progress,
			struct coord_order_result *out, struct vz_err *err)
{
	Vz__Pool__Order o = VZ__POOL__ORDER__INIT;

	o.op = VZ__POOL__ORDER_OP__ORDER_MIGRATE;
	o.has_veid = o.has_move_id = o.has_dest_port = o.has_mode = true;
	o.veid = veid;
	o.move_id = move_id;
	o.dest = (char *)dest;
	o.dest_port = dest_port;
	o.mode = mode;
	return order_run(at, &o, ORDER_MIGRATE_MS, progress, 0, NULL, NULL, out, err);
}

int coord_order_query(const struct coord_agent_addr *at, uint64_t move_id, struct coord_order_result *out,
		      struct vz_err *err)
{
	Vz__Pool__Order o = VZ__POOL__ORDER__INIT;

	o.op = VZ__POOL__ORDER_OP__ORDER_QUERY;
	o.has_move_id = true;
	o.move_id = move_id;
	return short_order(at, &o, out, err);
}

int coord_order_maintenance(const struct coord_agent_addr *at, bool draining, struct coord_order_result *out,
			    struct vz_err *err)
{
	Vz__Pool__Order o = VZ__POOL__ORDER__INIT;

	o.op = VZ__POOL__ORDER_OP__ORDER_MAINTENANCE;
	o.has_draining = true;
	o.draining = draining;
	return short_order(at, &o, out, err);
}

int coord_order_exec(const struct coord_agent_addr *at, unsigned veid, const char *command, unsigned timeout_s,
		     size_t max_output, struct coord_order_result *out, char **output, size_t *output_len,
		     struct vz_err *err)
{
	Vz__Pool__Order o = VZ__POOL__ORDER__INIT;
	/* Without a limit, a command may be silent as long as it likes;
	 * keepalive still ends the wait for a dead host. */
	int read_ms = timeout_s && timeout_s <= 86400 ? (int)timeout_s * 1000 + ORDER_EXEC_SLACK_MS : 0;

	o.op = VZ__POOL__ORDER_OP__ORDER_EXEC;
	o.has_veid = o.has_timeout_s = true;
	o.veid = veid;
	o.command = (char *)command;
	o.timeout_s = timeout_s;
	return order_run(at, &o, read_ms, NULL, max_output, output, output_len, out, err);
}
