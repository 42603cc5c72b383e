/* tcpprobe [-i interval_us] [-o statusfile] HOST PORT: a client outside a
 * VE that measures how long the VE is away. It keeps one TCP connection to
 * an echo server, sends an 8-byte sequence number every interval (1 ms),
 * checks every echo, and records the longest gap between two answers. On
 * SIGUSR1, at exit and once connected it writes one line:
 *   sent=N received=N maxgap_us=N errors=N state=ok|reset|closed|mismatch
 * After a reset or close it stops sending but keeps running until told to
 * exit, so its state can be read. Exit status 0 when state=ok. */
#include "probe.h"

static const char *out_path;
static uint64_t sent, received, maxgap, errors;
static const char *state = "ok";

static void report(void)
{
	char line[256];

	snprintf(line, sizeof(line), "sent=%llu received=%llu maxgap_us=%llu errors=%llu state=%s\n",
		 (unsigned long long)sent, (unsigned long long)received, (unsigned long long)maxgap,
		 (unsigned long long)errors, state);
	wl_put_text(out_path, line);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	long interval = 1000;
	uint64_t next, last_answer, expect = 1;
	uint8_t inbuf[8];
	size_t inlen = 0;
	int fd, opt;
	bool alive = true;

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
	wl_signals();
	fd = probe_connect("tcpprobe", &sa);
	/* The first line says it is connected, and takes signals. */
	report();
	next = last_answer = wl_now_us();
	while (!wl_stop) {
		struct pollfd p = { fd, POLLIN, 0 };
		uint64_t t = wl_now_us();
		int wait_ms = alive ? (int)(next > t ? (next - t + 999) / 1000 : 0) : 100;

		if (wl_check_req) {
			wl_check_req = 0;
			report();
		}
		if (poll(&p, 1, wait_ms) < 0 && errno != EINTR)
			break;
		t = wl_now_us();
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
