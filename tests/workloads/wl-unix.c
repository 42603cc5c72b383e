/* wl-unix [-n tag]: unix sockets between a parent and its child. A stream
 * socketpair echoes sequence numbers; a datagram and a seqpacket pair each
 * hold four queued messages the child leaves unread until asked (order,
 * contents and boundaries must survive); and a listening socket bound to
 * <base>.sock has one connection from the child, echoed as well. */
#include <getopt.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "wl.h"

static struct wl w;

static void queue_msgs(int fd, char tag)
{
	for (int i = 0; i < 4; i++) {
		char msg[64];
		int len =
		    snprintf(msg, sizeof(msg), "%c-message-%d-%.*s", tag, i, i * 7, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");

		if (send(fd, msg, (size_t)len, 0) != len)
			wl_fail(&w, "queue %c message %d", tag, i);
	}
}

static bool check_msgs(int fd, char tag)
{
	for (int i = 0; i < 4; i++) {
		char want[64], got[128];
		int len = snprintf(want, sizeof(want), "%c-message-%d-%.*s", tag, i, i * 7,
				   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
		ssize_t n = recv(fd, got, sizeof(got), MSG_DONTWAIT);

		if (n != len || memcmp(got, want, (size_t)len))
			return false;
	}
	return recv(fd, (char[1]){ 0 }, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* Whole 8-byte values: a freeze by CRIU may interrupt a call (EINTR) or
 * cut it short, as any signal may; neither is lost data. */
static bool xfer(int fd, void *buf, bool out)
{
	size_t done = 0;

	while (done < 8) {
		ssize_t n = out ? send(fd, (char *)buf + done, 8 - done, 0) : recv(fd, (char *)buf + done, 8 - done, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

static bool echo(int fd, uint64_t seq)
{
	uint64_t got;

	return xfer(fd, &seq, true) && xfer(fd, &got, false) && got == seq;
}

/* Child: echo on both stream sockets; on a byte from ctl check the queues. */
static void child(int st, int conn, int dg, int sp, int ctl, pid_t parent)
{
	for (;;) {
		struct pollfd p[3] = { { st, POLLIN, 0 }, { conn, POLLIN, 0 }, { ctl, POLLIN, 0 } };
		uint64_t v;

		if (poll(p, 3, -1) < 0)
			continue;
		for (int i = 0; i < 2; i++)
			if (p[i].revents) {
				if (!xfer(p[i].fd, &v, false))
					_exit(0);
				if (!xfer(p[i].fd, &v, true))
					_exit(1);
			}
		if (p[2].revents) {
			char x, res = 'Y';

			ssize_t r;

			while ((r = recv(ctl, &x, 1, 0)) < 0 && errno == EINTR)
				;
			if (r != 1)
				_exit(0);
			if (!check_msgs(dg, 'd'))
				res = 'D';
			else if (!check_msgs(sp, 's'))
				res = 'S';
			else if (getppid() != parent)
				res = 'P';
			if (send(ctl, &res, 1, 0) != 1)
				_exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	int st[2], dg[2], sp[2], ctl[2], lsn, conn, acc;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t seq = 0;
	pid_t kid;

	wl_start_args(&w, "wl-unix", argc, argv);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s.sock", w.dir, w.base);
	unlink(sa.sun_path);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) || socketpair(AF_UNIX, SOCK_STREAM, 0, ctl))
		wl_abort(&w, "socketpair: %s", strerror(errno));
	lsn = socket(AF_UNIX, SOCK_STREAM, 0);
	conn = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lsn < 0 || conn < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 4) ||
	    connect(conn, (struct sockaddr *)&sa, sizeof(sa)) || (acc = accept(lsn, NULL, NULL)) < 0)
		wl_abort(&w, "listening socket %s: %s", sa.sun_path, strerror(errno));
	queue_msgs(dg[0], 'd');
	queue_msgs(sp[0], 's');
	kid = fork();
	if (kid < 0)
		wl_abort(&w, "fork: %s", strerror(errno));
	if (kid == 0) {
		close(w.ready_fd);
		signal(SIGUSR1, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		child(st[1], conn, dg[1], sp[1], ctl[1], getppid());
	}
	close(st[1]);
	close(conn);
	close(dg[1]);
	close(sp[1]);
	close(ctl[1]);
	wl_ready(&w);
	while (!wl_stop) {
		if (!echo(st[0], ++seq) || !echo(acc, ++seq))
			wl_fail(&w, "a stream echo failed at %llu", (unsigned long long)seq);
		wl_sleep_us(1000);
		if (wl_check_req) {
			char res = 0;

			wl_check_req = 0;
			wl_check_pid(&w);
			ssize_t r = send(ctl[0], "?", 1, 0);

			if (r == 1)
				while ((r = recv(ctl[0], &res, 1, 0)) < 0 && errno == EINTR)
					;
			if (r != 1)
				wl_fail(&w, "the child does not answer");
			else if (res == 'D')
				wl_fail(&w, "the datagram queue changed");
			else if (res == 'S')
				wl_fail(&w, "the seqpacket queue changed");
			else if (res == 'P')
				wl_fail(&w, "the child has another parent");
			queue_msgs(dg[0], 'd');
			queue_msgs(sp[0], 's');
			if (waitpid(kid, NULL, WNOHANG) != 0)
				wl_fail(&w, "child %d is gone", (int)kid);
			if (!echo(st[0], ++seq) || !echo(acc, ++seq))
				wl_fail(&w, "the echo stopped");
			wl_answer(&w);
		}
	}
	kill(kid, SIGTERM);
	unlink(sa.sun_path);
	return 0;
}
