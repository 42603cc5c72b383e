/* vzhbdump: a stand-in coordinator for tests (not a user tool): it takes
 * one agent's connection on PORT with the certificate of --tls DIR
 * (default VZ_ROOT/etc/vz/tls), acknowledges its registration and
 * heartbeats, and prints each heartbeat as lines, until COUNT of them:
 *   hb SEQ draining=0|1 epoch=N
 *   ve VEID state=S nproc=N ip=ADDRS hostname=NAME move_id=ID
 * so that tests/integration/orders.bats can read what heartbeats carry.
 *
 *   vzhbdump [--tls DIR] PORT COUNT */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "paths.h"
#include "pool.pb-c.h"
#include "util.h"

static void print_hb(const Vz__Pool__Heartbeat *hb)
{
	printf("hb %llu draining=%d epoch=%llu\n", (unsigned long long)hb->seq, hb->has_draining && hb->draining,
	       (unsigned long long)(hb->has_epoch ? hb->epoch : 0));
	for (size_t i = 0; i < hb->n_ves; i++) {
		const Vz__Pool__VeUsage *u = hb->ves[i];

		printf("ve %u state=%d nproc=%u ip=%s hostname=%s move_id=%llu\n", u->veid, (int)u->state,
		       u->has_nproc ? u->nproc : 0, u->ip ? u->ip : "", u->hostname ? u->hostname : "",
		       (unsigned long long)(u->has_move_id ? u->move_id : 0));
	}
	fflush(stdout);
}

static int serve(struct vz_conn *c, unsigned long count, struct vz_err *err)
{
	for (unsigned long n = 0; n <= count;) {
		Vz__Pool__Ack ack = VZ__POOL__ACK__INIT;
		Vz__Pool__AgentMsg *m = NULL;
		int ret = vz_msg_recv(c, &vz__pool__agent_msg__descriptor, VZ_MSG_MAX, (ProtobufCMessage **)&m, err);

		if (ret < 0)
			return ret;
		if (m->hb) {
			print_hb(m->hb);
			ack.seq = m->hb->seq;
			n++;
		} else if (!m->reg) {
			n = count + 1;
		}
		vz__pool__agent_msg__free_unpacked(m, NULL);
		if (n > count)
			return 0;
		ret = vz_msg_send(c, &ack.base, err);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char dir[4096] = "", ca[4200], cert[4200], key[4200];
	struct vz_err err = { 0 };
	struct vz_tls *tls = NULL;
	unsigned long port, count;
	struct vz_conn c = { .fd = -EBADF };
	struct pollfd p;
	int lfd, fd, ret;

	if (argc == 5 && !strcmp(argv[1], "--tls")) {
		snprintf(dir, sizeof(dir), "%s", argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc != 3 || vz_parse_ulong(argv[1], 1, 65535, &port) < 0 || vz_parse_ulong(argv[2], 1, 1000, &count) < 0) {
		fprintf(stderr, "Usage: vzhbdump [--tls DIR] PORT COUNT\n");
		return 2;
	}
	if (!dir[0])
		vz_path(dir, sizeof(dir), "/etc/vz/tls");
	snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
	snprintf(cert, sizeof(cert), "%s/host.crt", dir);
	snprintf(key, sizeof(key), "%s/host.key", dir);
	if (vz_tls_new(&tls, ca, cert, key, true, &err) < 0 || vz_tcp_listen((unsigned)port, &lfd, &err) < 0) {
		fprintf(stderr, "vzhbdump: %s\n", err.msg);
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	p = (struct pollfd){ lfd, POLLIN, 0 };
	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
		if ((errno != EAGAIN && errno != EINTR) || poll(&p, 1, 60000) == 0)
			return 1;
	ret = vz_tls_accept(tls, fd, 10000, &c, &err);
	if (ret == 0)
		ret = serve(&c, count, &err);
	if (ret < 0)
		fprintf(stderr, "vzhbdump: %s\n", err.msg);
	vz_conn_close(&c);
	vz_tls_free(tls);
	close(lfd);
	return ret < 0 ? 1 : 0;
}
