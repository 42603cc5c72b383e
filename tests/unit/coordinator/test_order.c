/* coordinator/order.c: the events of an order as the client reads them,
 * over a plain socket pair: progress lines to the sink, an exec's output
 * kept up to its cap and the rest counted, the outcome from the last
 * event, and an answer cut before it an error. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "order.h"

static void plain_pair(struct vz_conn *a, struct vz_conn *b)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	vz_conn_plain(a, sv[0]);
	vz_conn_plain(b, sv[1]);
}

static void send_line(struct vz_conn *c, const char *line)
{
	Vz__Pool__OrderEvent ev = VZ__POOL__ORDER_EVENT__INIT;
	struct vz_err err = { 0 };

	ev.line = (char *)line;
	cr_assert_eq(vz_msg_send(c, &ev.base, &err), 0, "%s", err.msg);
}

static void send_output(struct vz_conn *c, const char *data)
{
	Vz__Pool__OrderEvent ev = VZ__POOL__ORDER_EVENT__INIT;
	struct vz_err err = { 0 };

	ev.has_output = true;
	ev.output.data = (uint8_t *)data;
	ev.output.len = strlen(data);
	cr_assert_eq(vz_msg_send(c, &ev.base, &err), 0, "%s", err.msg);
}

static void send_done(struct vz_conn *c, Vz__Pool__OrderState state, int exit_code, const char *error)
{
	Vz__Pool__OrderEvent ev = VZ__POOL__ORDER_EVENT__INIT;
	struct vz_err err = { 0 };

	ev.has_done = ev.has_state = ev.has_exit_code = ev.has_elapsed_ms = ev.has_downtime_ms = true;
	ev.done = true;
	ev.state = state;
	ev.exit_code = exit_code;
	ev.error = (char *)error;
	ev.elapsed_ms = 1500;
	ev.downtime_ms = 42;
	cr_assert_eq(vz_msg_send(c, &ev.base, &err), 0, "%s", err.msg);
}

struct lines {
	char text[256];
	int n;
	struct vz_progress p;
};

static void collect(void *arg, const char *line)
{
	struct lines *l = arg;

	strncat(l->text, line, sizeof(l->text) - strlen(l->text) - 2);
	strcat(l->text, "|");
	l->n++;
}

Test(order, lines_output_and_outcome)
{
	struct vz_conn agent, coord;
	struct lines l = { .p = { collect, &l } };
	struct coord_order_result r;
	struct vz_err err = { 0 };
	char *out = NULL;
	size_t len = 0;

	plain_pair(&agent, &coord);
	send_line(&agent, "Connecting to h2");
	send_output(&agent, "abc");
	send_line(&agent, "VE 101 migrated to h2");
	send_output(&agent, "defgh");
	send_output(&agent, "ij");
	send_done(&agent, VZ__POOL__ORDER_STATE__ORDER_DONE, 3, "Why it failed");
	cr_assert_eq(coord_order_read(&coord, &l.p, 6, &out, &len, &r, &err), 0, "%s", err.msg);
	cr_expect_str_eq(l.text, "Connecting to h2|VE 101 migrated to h2|");
	cr_expect_eq(len, 6);
	cr_expect_str_eq(out, "abcdef");
	cr_expect_eq(r.output_dropped, 4, "dropped %llu", (unsigned long long)r.output_dropped);
	cr_expect_eq(r.state, VZ__POOL__ORDER_STATE__ORDER_DONE);
	cr_expect_eq(r.exit_code, 3);
	cr_expect_str_eq(r.error, "Why it failed");
	cr_expect_eq(r.elapsed_ms, 1500);
	cr_expect_eq(r.downtime_ms, 42);
	free(out);
	vz_conn_close(&agent);
	vz_conn_close(&coord);
}

Test(order, no_output_is_an_empty_string_and_running_is_said)
{
	struct vz_conn agent, coord;
	struct coord_order_result r;
	struct vz_err err = { 0 };
	char *out = NULL;
	size_t len = 7;

	plain_pair(&agent, &coord);
	send_done(&agent, VZ__POOL__ORDER_STATE__ORDER_RUNNING, 0, NULL);
	cr_assert_eq(coord_order_read(&coord, NULL, 1024, &out, &len, &r, &err), 0, "%s", err.msg);
	cr_assert_not_null(out);
	cr_expect_str_eq(out, "");
	cr_expect_eq(len, 0);
	cr_expect_eq(r.state, VZ__POOL__ORDER_STATE__ORDER_RUNNING);
	cr_expect_str_eq(r.error, "");
	free(out);
	vz_conn_close(&agent);
	vz_conn_close(&coord);
}

Test(order, an_answer_cut_before_its_end_is_an_error)
{
	struct lines l = { .p = { collect, &l } };
	struct vz_conn agent, coord;
	struct vz_err err = { 0 };
	struct coord_order_result r;

	plain_pair(&agent, &coord);
	send_line(&agent, "First file pass");
	vz_conn_close(&agent);
	cr_expect_lt(coord_order_read(&coord, &l.p, 0, NULL, NULL, &r, &err), 0);
	cr_expect_neq(err.msg[0], '\0');
	cr_expect_eq(l.n, 1);
	cr_expect_eq(r.state, VZ__POOL__ORDER_STATE__ORDER_UNKNOWN, "no outcome");
	cr_expect_eq(r.exit_code, -1);
	vz_conn_close(&coord);
}
