/* tcpprobe [-i interval_us] [-o statusfile] HOST PORT: a client outside a
 * VE that measures how long the VE is away. It keeps one TCP connection to
 * an echo server, sends an 8-byte sequence number every interval (1 ms),
 * checks every echo, and records the longest gap between two answers. On
 * SIGUSR1 and at exit it writes one line:
 *   sent=N received=N maxgap_us=N errors=N state=ok|reset|closed|mismatch
 * After a reset or close it stops sending but keeps running until told to
 * exit, so its state can be read. Exit status 0 when state=ok. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "wl.h"

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static const char *out_path;
static uint64_t sent, received, maxgap, errors;
static const char *state = "ok";

static void report(void)
{
	char line[256], tmp[600];
	int fd;

	snprintf(line, sizeof(line), "sent=%llu received=%llu maxgap_us=%llu errors=%llu state=%s\n",
		 (unsigned long long)sent, (unsigned long long)received, (unsigned long long)maxgap,
		 (unsigned long long)errors, state);
	if (!out_path) {
		fputs(line, stdout);
		fflush(stdout);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", out_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, strlen(line)) < 0) {
		close(fd);
		return;
	}
	close(fd);
	rename(tmp, out_path);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	long interval = 1000;
	uint64_t next, last_answer, expect = 1, deadline;
	uint8_t inbuf[8];
	size_t inlen = 0;
	int fd = -1, opt, one = 1;
	bool alive = true;
	struct sigaction act = { 0 };

	while ((opt = getopt(argc, argv, "i:o:")) != -1) {
		if (opt == 'i')
			interval = atol(optarg);
		else if (opt == 'o')
			out_path = optarg;
		else
			return 2;
	}
	if (argc - optind != 2 || interval <= 0 || inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1) {
		fprintf(stderr, "usage: tcpprobe [-i interval_us] [-o statusfile] IPV4 PORT\n");
		return 2;
	}
	sa.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
	act.sa_handler = wl_on_usr1;
	sigaction(SIGUSR1, &act, NULL);
	act.sa_handler = wl_on_term;
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (deadline = now_us() + 5000000; !wl_stop;) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (now_us() > deadline) {
			fprintf(stderr, "tcpprobe: cannot connect to %s:%s: %s\n", argv[optind], argv[optind + 1],
				strerror(errno));
			return 1;
		}
		wl_sleep_us(50000);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(fd, F_SETFL, O_NONBLOCK);
	next = last_answer = now_us();
	while (!wl_stop) {
		struct pollfd p = { fd, POLLIN, 0 };
		uint64_t t = now_us();
		int wait_ms = alive ? (int)(next > t ? (next - t + 999) / 1000 : 0) : 100;

		if (wl_check_req) {
			wl_check_req = 0;
			report();
		}
		if (poll(&p, 1, wait_ms) < 0 && errno != EINTR)
			break;
		t = now_us();
		if (alive && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
			ssize_t r;

			while ((r = read(fd, inbuf + inlen, sizeof(inbuf) - inlen)) > 0) {
				inlen += (size_t)r;
				if (inlen < sizeof(inbuf))
					continue;
				inlen = 0;
				uint64_t v = 0;

				for (int i = 0; i < 8; i++)
					v = v << 8 | inbuf[i];
				if (v != expect) {
					errors++;
					state = "mismatch";
				}
				expect = v + 1;
				received++;
				if (t - last_answer > maxgap)
					maxgap = t - last_answer;
				last_answer = t;
			}
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				errors++;
				state = r == 0 ? "closed" : errno == ECONNRESET ? "reset" : "error";
				alive = false;
			}
		}
		if (alive && t >= next) {
			uint8_t b[8];
			uint64_t v = sent + 1;

			for (int i = 7; i >= 0; i--, v >>= 8)
				b[i] = (uint8_t)v;
			/* A full send buffer while the VE is away: try again. */
			if (write(fd, b, 8) == 8)
				sent++;
			else if (errno != EAGAIN && errno != EINTR) {
				errors++;
				state = errno == ECONNRESET ? "reset" : "error";
				alive = false;
			}
			next += (uint64_t)interval;
			if (next < t)
				next = t + (uint64_t)interval;
		}
	}
	report();
	return strcmp(state, "ok") ? 1 : 0;
}
