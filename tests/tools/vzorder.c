/* vzorder: a test client of the coordinator's orders (coordinator/order.c),
 * for tests/integration/orders.bats; not a user tool. It sends one order
 * with the certificate of --tls DIR (default VZ_ROOT/etc/vz/tls, which is
 * the coordinator's on the sandbox's coord host), prints the progress
 * lines and an exec's output on stdout, the outcome on stderr, and exits
 * with the order's exit code (255: the order could not be sent or its
 * answer was cut).
 *
 *   vzorder [--tls DIR] [--epoch N] [--host CN] ADDRESS[:PORT] ORDER
 *   ORDER: migrate VEID MOVE_ID DEST[:PORT] [offline|stopcopy|precopy|postcopy]
 *          query MOVE_ID
 *          maintenance on|off
 *          exec VEID TIMEOUT_S COMMAND */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "order.h"
#include "paths.h"
#include "util.h"

#define MIG_PORT_DEFAULT 7799

static void line_out(void *arg, const char *line)
{
	(void)arg;
	printf("%s\n", line);
	fflush(stdout);
}

static int usage(void)
{
	fprintf(stderr, "Usage: vzorder [--tls DIR] [--epoch N] [--host CN] ADDRESS[:PORT] migrate VEID MOVE_ID "
			"DEST[:PORT] [MODE] | query MOVE_ID | maintenance on|off | exec VEID TIMEOUT_S COMMAND\n");
	return 2;
}

/* "address[:port]" into addr and *port (default when absent). */
static int split_port(const char *s, char *addr, size_t len, unsigned *port)
{
	const char *colon = strrchr(s, ':');
	unsigned long n;

	*port = MIG_PORT_DEFAULT;
	if (!colon) {
		snprintf(addr, len, "%s", s);
		return 0;
	}
	if (vz_parse_ulong(colon + 1, 1, 65535, &n) < 0)
		return -EINVAL;
	snprintf(addr, len, "%.*s", (int)(colon - s), s);
	*port = (unsigned)n;
	return 0;
}

static int mode_of(const char *s, Vz__Pool__MoveMode *m)
{
	static const char *const names[] = { "offline", "stopcopy", "precopy", "postcopy" };

	for (size_t i = 0; i < 4; i++)
		if (!strcmp(s, names[i])) {
			*m = (Vz__Pool__MoveMode)i;
			return 0;
		}
	return -EINVAL;
}

static int run_order(struct coord_agent_addr *at, int argc, char **argv, struct coord_order_result *r,
		     struct vz_err *err)
{
	struct vz_progress progress = { line_out, NULL };
	const char *op = argv[0];
	unsigned long veid, n;

	if (!strcmp(op, "migrate") && (argc == 4 || argc == 5)) {
		Vz__Pool__MoveMode mode = VZ__POOL__MOVE_MODE__MOVE_PRECOPY;
		char dest[256];
		unsigned port;

		if (vz_parse_ulong(argv[1], 1, 2147483647, &veid) < 0 || vz_parse_ulong(argv[2], 1, ~0UL, &n) < 0 ||
		    split_port(argv[3], dest, sizeof(dest), &port) < 0 || (argc == 5 && mode_of(argv[4], &mode) < 0))
			return -EINVAL;
		return coord_order_migrate(at, (unsigned)veid, n, dest, port, mode, &progress, r, err);
	}
	if (!strcmp(op, "query") && argc == 2) {
		if (vz_parse_ulong(argv[1], 1, ~0UL, &n) < 0)
			return -EINVAL;
		return coord_order_query(at, n, r, err);
	}
	if (!strcmp(op, "maintenance") && argc == 2 && (!strcmp(argv[1], "on") || !strcmp(argv[1], "off")))
		return coord_order_maintenance(at, !strcmp(argv[1], "on"), r, err);
	if (!strcmp(op, "exec") && argc == 4) {
		char *out = NULL;
		size_t len = 0;
		int ret;

		if (vz_parse_ulong(argv[1], 1, 2147483647, &veid) < 0 || vz_parse_ulong(argv[2], 0, 86400, &n) < 0)
			return -EINVAL;
		ret = coord_order_exec(at, (unsigned)veid, argv[3], (unsigned)n, 1 << 20, r, &out, &len, err);
		if (ret == 0)
			fwrite(out, 1, len, stdout);
		free(out);
		return ret;
	}
	return -EINVAL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "tls", required_argument, NULL, 't' },
					      { "epoch", required_argument, NULL, 'e' },
					      { "host", required_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	struct coord_agent_addr at = { .epoch = 1 };
	char dir[4096] = "", ca[4200], cert[4200], key[4200], addr[256];
	struct coord_order_result r;
	struct vz_err err = { 0 };
	unsigned long n;
	int c, ret;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 't')
			snprintf(dir, sizeof(dir), "%s", optarg);
		else if (c == 'e' && vz_parse_ulong(optarg, 0, ~0UL, &n) == 0)
			at.epoch = n;
		else if (c == 'h')
			at.host = optarg;
		else
			return usage();
	}
	if (argc - optind < 2 || split_port(argv[optind], addr, sizeof(addr), &at.port) < 0)
		return usage();
	at.address = addr;
	if (!dir[0])
		vz_path(dir, sizeof(dir), "/etc/vz/tls");
	snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
	snprintf(cert, sizeof(cert), "%s/host.crt", dir);
	snprintf(key, sizeof(key), "%s/host.key", dir);
	if (vz_tls_new(&at.tls, ca, cert, key, false, &err) < 0) {
		fprintf(stderr, "vzorder: %s\n", err.msg);
		return 255;
	}
	ret = run_order(&at, argc - optind - 1, argv + optind + 1, &r, &err);
	vz_tls_free(at.tls);
	if (ret == -EINVAL && !err.msg[0])
		return usage();
	if (ret < 0) {
		fprintf(stderr, "vzorder: %s\n", err.msg);
		return 255;
	}
	fflush(stdout);
	if (r.state == VZ__POOL__ORDER_STATE__ORDER_RUNNING)
		fprintf(stderr, "running\n");
	else if (r.state == VZ__POOL__ORDER_STATE__ORDER_UNKNOWN)
		fprintf(stderr, "unknown\n");
	else
		fprintf(stderr, "done exit=%d elapsed_ms=%llu downtime_ms=%llu%s%s\n", r.exit_code,
			(unsigned long long)r.elapsed_ms, (unsigned long long)r.downtime_ms,
			r.error[0] ? " error=" : "", r.error);
	return r.exit_code < 0 ? 255 : r.exit_code;
}
