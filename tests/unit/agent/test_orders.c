/* agent/order_state.c: the records of the coordinator's move orders and
 * the epoch file are read strictly: what order_record_format writes comes
 * back the same, anything else is refused rather than half taken. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "orders.h"
#include "util.h"

static int parse(const char *text, struct order_record *r)
{
	return order_record_parse(text, strlen(text), r);
}

Test(orders, running_record_round_trip)
{
	struct order_record r = { .veid = 101, .pid = 4242, .pid_start = 987654, .at_ms = 1764680000123ull }, back;
	char buf[256];
	int n = order_record_format(&r, buf, sizeof(buf));

	cr_assert_gt(n, 0);
	cr_expect_str_eq(buf, "running 101 4242 987654 1764680000123\n");
	cr_assert_eq(order_record_parse(buf, (size_t)n, &back), 0);
	cr_expect_not(back.done);
	cr_expect_eq(back.veid, 101);
	cr_expect_eq(back.pid, 4242);
	cr_expect_eq(back.pid_start, 987654);
	cr_expect_eq(back.at_ms, 1764680000123ull);
}

Test(orders, done_record_round_trip)
{
	struct order_record r = { .done = true, .veid = 7, .exit_code = 44, .elapsed_ms = 1500, .at_ms = 99 }, back;
	char buf[1024];
	int n;

	snprintf(r.error, sizeof(r.error), "Migration of VE 7 to h2 failed: VE 7 already exists on h2");
	n = order_record_format(&r, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	cr_assert_eq(order_record_parse(buf, (size_t)n, &back), 0);
	cr_expect(back.done);
	cr_expect_eq(back.exit_code, 44);
	cr_expect_eq(back.elapsed_ms, 1500);
	cr_expect_str_eq(back.error, r.error);

	/* A success has no error line, but the line is there, empty. */
	cr_assert_eq(parse("done 7 0 1200 35 99\n\n", &back), 0);
	cr_expect_eq(back.exit_code, 0);
	cr_expect_eq(back.downtime_ms, 35);
	cr_expect_str_eq(back.error, "");
}

Test(orders, malformed_records_are_refused)
{
	static const char *const bad[] = {
		"",
		"running",
		"running 101 4242 987654\n",	 /* a field short */
		"running 101 4242 987654 1 2\n", /* a field too many */
		"running 0 4242 987654 1\n",	 /* VEID 0 is the host */
		"running 101 0 987654 1\n",	 /* no worker */
		"running 101 4242 987654 1",	 /* cut: no newline */
		"running 101 -1 987654 1\n",
		"running  101 4242 987654 1\n",
		"done 7 0 1200 35 99\n",	    /* no error line */
		"done 7 3 1200 35 99\n\n",	    /* a failure that does not say why */
		"done 7 0 1200 35 99\nwhy not\n",   /* a success with an error */
		"done 7 256 1200 35 99\nwhy\n",	    /* not an exit code */
		"done 7 3 1200 35 99\nwhy\nmore\n", /* two lines */
		"done 7 3 1200 35 99 1\nwhy\n",
		"done 99999999999 3 1 1 1\nwhy\n",
		"done 7 3 184467440737095516160 1 1\nwhy\n", /* overflows */
		"ended 7 0 1 1 1\n\n",
	};
	struct order_record r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(parse(bad[i], &r), -EINVAL, "'%s' taken", bad[i]);
	/* A NUL inside the error line. */
	cr_expect_eq(order_record_parse("done 7 3 1 1 1\nw\0y\n", 15, &r), -EINVAL);
}

Test(orders, format_refuses_what_parse_could_not_read_back)
{
	struct order_record r = { .done = true, .veid = 7, .exit_code = 3 };
	char buf[16];

	snprintf(r.error, sizeof(r.error), "two\nlines");
	cr_expect_eq(order_record_format(&r, buf, sizeof(buf)), -EINVAL);
	snprintf(r.error, sizeof(r.error), "a line longer than the buffer");
	cr_expect_eq(order_record_format(&r, buf, sizeof(buf)), -ENOSPC);
}

Test(orders, epoch_file)
{
	uint64_t e = 0;

	cr_expect_eq(order_epoch_parse("5\n", 2, &e), 0);
	cr_expect_eq(e, 5);
	cr_expect_eq(order_epoch_parse("18446744073709551615", 20, &e), 0);
	cr_expect_eq(e, UINT64_MAX);
	cr_expect_eq(order_epoch_parse("0\n", 2, &e), -EINVAL, "epoch 0 is none");
	cr_expect_eq(order_epoch_parse("", 0, &e), -EINVAL);
	cr_expect_eq(order_epoch_parse("\n", 1, &e), -EINVAL);
	cr_expect_eq(order_epoch_parse("5\n\n", 3, &e), -EINVAL);
	cr_expect_eq(order_epoch_parse(" 5", 2, &e), -EINVAL);
	cr_expect_eq(order_epoch_parse("5x", 2, &e), -EINVAL);
	cr_expect_eq(order_epoch_parse("18446744073709551616", 20, &e), -EINVAL, "overflow");
}

/* The stored epoch under a VZ_ROOT of the test's own (each test runs in
 * a process of its own: vz_root is read once). */
Test(orders, epoch_taken_when_not_older)
{
	char root[] = "/tmp/vz-test-orders-XXXXXX", path[PATH_MAX];
	struct vz_err err = { 0 };

	cr_assert_not_null(mkdtemp(root));
	setenv("VZ_ROOT", root, 1);
	snprintf(path, sizeof(path), "%s/vz", root);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_expect_eq(order_epoch_seen(), 0);
	cr_expect_eq(order_epoch_take(3, &err), 0, "%s", err.msg);
	cr_expect_eq(order_epoch_seen(), 3);
	cr_expect_eq(order_epoch_take(2, &err), -ESTALE);
	cr_expect_str_eq(err.msg, "Order of epoch 2 refused: this agent has seen epoch 3 (a newer coordinator)");
	cr_expect_eq(order_epoch_seen(), 3);
	vz_err_clear(&err);
	cr_expect_eq(order_epoch_take(3, &err), 0, "the same epoch: %s", err.msg);
	cr_expect_eq(order_epoch_take(5, &err), 0, "%s", err.msg);
	cr_expect_eq(order_epoch_seen(), 5);
	cr_expect_lt(order_epoch_take(0, &err), 0, "no epoch");
	cr_expect_eq(order_epoch_seen(), 5);
	cr_expect_eq(vz_rm_rf(root), 0);
}

static void put(const char *root, const char *name, const char *text)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/vz/orders/%s", root, name);
	cr_assert_eq(vz_write_file(path, text, strlen(text), 0), 0, "%s", path);
}

static bool there(const char *root, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/vz/orders/%s", root, name);
	return vz_exists(path);
}

/* An outcome replaces its running record; outcomes older than a day go,
 * and of the rest the newest ORDER_KEEP_MAX stay. */
Test(orders, outcomes_kept_a_day_and_a_thousand_at_most)
{
	char root[] = "/tmp/vz-test-orders-XXXXXX", path[PATH_MAX], text[128];
	struct order_record r = { .done = true, .veid = 5, .exit_code = 3 }, back;
	struct vz_err err = { 0 };
	struct timespec now;
	uint64_t ms;
	bool running;

	cr_assert_not_null(mkdtemp(root));
	setenv("VZ_ROOT", root, 1);
	snprintf(path, sizeof(path), "%s/vz/orders", root);
	cr_assert_eq(vz_mkdir_p(path, 0700), 0);
	clock_gettime(CLOCK_REALTIME, &now);
	ms = (uint64_t)now.tv_sec * 1000;
	/* 1000 outcomes of the last hour, oldest first, one of two days ago. */
	for (int i = 1; i <= ORDER_KEEP_MAX; i++) {
		char name[32];

		snprintf(name, sizeof(name), "%d.done", i);
		snprintf(text, sizeof(text), "done 5 0 1 0 %llu\n\n", (unsigned long long)(ms - 3600000 + (uint64_t)i));
		put(root, name, text);
	}
	snprintf(text, sizeof(text), "done 5 0 1 0 %llu\n\n", (unsigned long long)(ms - 2 * ORDER_KEEP_MS));
	put(root, "5000.done", text);
	put(root, "6000.run", "running 5 4242 1 1\n");

	snprintf(r.error, sizeof(r.error), "Migration of VE 5 to h2 failed");
	cr_assert_eq(order_record_finish(6000, &r, &err), 0, "%s", err.msg);
	cr_expect_not(there(root, "6000.run"), "the running record stays");
	cr_assert_eq(order_record_load(6000, &back, &running), 0);
	cr_expect_not(running);
	cr_expect_eq(back.exit_code, 3);
	cr_expect_str_eq(back.error, r.error);
	cr_expect_not(there(root, "5000.done"), "an outcome of two days ago stays");
	/* 1001 of the last day: the oldest goes. */
	cr_expect_not(there(root, "1.done"), "more than %d outcomes kept", ORDER_KEEP_MAX);
	cr_expect(there(root, "2.done"));
	cr_expect(there(root, "1000.done"));
	cr_expect_eq(order_record_load(4242, &back, &running), -ENOENT);
	cr_expect_eq(vz_rm_rf(root), 0);
}
