/* redisprobe [-i interval_us] [-p N] [-s bytes] [-o statusfile] IPV4 PORT:
 * a redis client outside a VE that writes to it across moves. It keeps ONE
 * TCP connection and never reconnects. First it sets pre:1 .. pre:N (-p, 0)
 * to VALUE(K); then every interval (1 ms) it sends
 *   INCR counter          expecting :N, N one more than the last
 *   SET key:N VALUE(N)    expecting +OK (VALUE: -s bytes, 100, made from N)
 * and records the longest gap between two answered pairs. A reset, a close
 * or an error reply stops the writes (state says which) and is never
 * retried: a move the client noticed is a failure.
 * It writes its status line once connected and preloaded, and
 *   SIGUSR1  write the status line
 *   SIGUSR2  verify on the same connection: GET counter is the last N and
 *            GET pre:K and key:K give VALUE(K) for every K set; then write
 *            the status line and start the next gap measurement
 *   SIGTERM  write the status line and exit (0 when state=ok)
 * Status line:
 *   preloaded=N written=N maxgap_us=N errors=N verified=N bad=N state=ok|reset|closed|error-reply|mismatch|error
 * written counts the pairs; verified and bad count the keys of the last
 * verification (0 before one), the preloaded ones included;
 * maxgap_us is the longest gap since the start or the last verification. */
#include "probe.h"

#define BATCH 256

struct conn {
	int fd;
	char buf[65536];
	size_t start, end;
};

static const char *out_path;
static uint64_t preloaded, written, maxgap, errors, verified, bad;
static const char *state = "ok";
static size_t value_len = 100;

static void report(void)
{
	char line[256];

	snprintf(line, sizeof(line),
		 "preloaded=%llu written=%llu maxgap_us=%llu errors=%llu verified=%llu bad=%llu state=%s\n",
		 (unsigned long long)preloaded, (unsigned long long)written, (unsigned long long)maxgap,
		 (unsigned long long)errors, (unsigned long long)verified, (unsigned long long)bad, state);
	wl_put_text(out_path, line);
}

/* The connection failed: record how, once, and stop using it. */
static int conn_failed(const char *how)
{
	if (!strcmp(state, "ok")) {
		errors++;
		state = how;
	}
	return -1;
}

/* Wait for EVENTS on the connection; status requests are answered while
 * waiting (the VE may be frozen for a while). -1 when told to stop. */
static int conn_wait(struct conn *c, short events)
{
	for (;;) {
		struct pollfd p = { c->fd, events, 0 };

		if (wl_check_req) {
			wl_check_req = 0;
			report();
		}
		if (wl_stop)
			return -1;
		if (poll(&p, 1, 100) > 0)
			return 0;
	}
}

static int conn_send(struct conn *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(c->fd, data, len);

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return conn_failed(errno == ECONNRESET || errno == EPIPE ? "reset" : "error");
		if (conn_wait(c, POLLOUT) < 0)
			return -1;
	}
	return 0;
}

/* The next reply line, without its CRLF, NUL-terminated in the buffer. */
static char *conn_line(struct conn *c)
{
	for (;;) {
		char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);

		if (nl) {
			char *line = c->buf + c->start;

			c->start = (size_t)(nl - c->buf) + 1;
			if (nl > line && nl[-1] == '\r')
				nl--;
			*nl = '\0';
			return line;
		}
		if (c->start > 0) {
			memmove(c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		if (c->end == sizeof(c->buf) - 1) {
			conn_failed("error");
			return NULL;
		}
		ssize_t n = read(c->fd, c->buf + c->end, sizeof(c->buf) - 1 - c->end);

		if (n > 0) {
			c->end += (size_t)n;
			continue;
		}
		if (n == 0) {
			conn_failed("closed");
			return NULL;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			conn_failed(errno == ECONNRESET ? "reset" : "error");
			return NULL;
		}
		if (conn_wait(c, POLLIN) < 0)
			return NULL;
	}
}

/* A reply that must be exactly WANT; an error reply or another value is
 * recorded. -1 when the connection failed. */
static int expect_reply(struct conn *c, const char *want)
{
	char *line = conn_line(c);

	if (!line)
		return -1;
	if (line[0] == '-') {
		fprintf(stderr, "redisprobe: error reply: %s\n", line);
		return conn_failed("error-reply");
	}
	if (strcmp(line, want)) {
		fprintf(stderr, "redisprobe: got '%s', expected '%s'\n", line, want);
		return conn_failed("mismatch");
	}
	return 0;
}

static void value_of(uint64_t n, char *v)
{
	int k = snprintf(v, value_len + 1, "v%llu-", (unsigned long long)n);

	for (size_t i = (size_t)k; i < value_len; i++)
		v[i] = (char)('a' + (n + i) % 26);
	v[value_len] = '\0';
}

/* One INCR and one SET, both answered. */
static int write_pair(struct conn *c)
{
	char cmd[512 + 4096], v[4097], want[32];
	uint64_t n = written + 1;
	int len;

	value_of(n, v);
	len = snprintf(cmd, sizeof(cmd), "INCR counter\r\nSET key:%llu %s\r\n", (unsigned long long)n, v);
	if (conn_send(c, cmd, (size_t)len) < 0)
		return -1;
	snprintf(want, sizeof(want), ":%llu", (unsigned long long)n);
	if (expect_reply(c, want) < 0 || expect_reply(c, "+OK") < 0)
		return -1;
	written = n;
	return 0;
}

/* A bulk reply: "$LEN" then the value (ours hold no CR or LF). Returns
 * the value, "" for a nil reply, NULL when the connection failed. */
static char *bulk_reply(struct conn *c)
{
	char *line = conn_line(c);

	if (!line)
		return NULL;
	if (line[0] == '-') {
		fprintf(stderr, "redisprobe: error reply: %s\n", line);
		conn_failed("error-reply");
		return NULL;
	}
	if (!strcmp(line, "$-1"))
		return "";
	return conn_line(c);
}

/* GET PREFIX:1 .. PREFIX:COUNT in batches, each compared with its VALUE;
 * adds to *ok and *wrong. -1 when the connection failed. */
static int check_keys(struct conn *c, const char *prefix, uint64_t count, uint64_t *ok, uint64_t *wrong)
{
	char cmd[BATCH * 48], v[4097], *got;

	for (uint64_t k = 1; k <= count; k += BATCH) {
		uint64_t last = k + BATCH - 1 < count ? k + BATCH - 1 : count;
		size_t len = 0;

		for (uint64_t j = k; j <= last; j++)
			len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "GET %s:%llu\r\n", prefix,
						(unsigned long long)j);
		if (conn_send(c, cmd, len) < 0)
			return -1;
		for (uint64_t j = k; j <= last; j++) {
			got = bulk_reply(c);
			if (!got)
				return -1;
			value_of(j, v);
			if (strcmp(got, v)) {
				if (!*wrong)
					fprintf(stderr, "redisprobe: %s:%llu is '%.40s'\n", prefix,
						(unsigned long long)j, got);
				++*wrong;
			} else {
				++*ok;
			}
		}
	}
	return 0;
}

/* GET counter, every key preloaded and every key written, on this
 * connection. */
static void verify(struct conn *c)
{
	char want[32], *got;
	uint64_t ok = 0, wrong = 0;

	got = conn_send(c, "GET counter\r\n", 13) < 0 ? NULL : bulk_reply(c);
	if (!got)
		return;
	snprintf(want, sizeof(want), "%llu", (unsigned long long)written);
	if (strcmp(got, want)) {
		fprintf(stderr, "redisprobe: counter is '%s', expected %s\n", got, want);
		wrong++;
	}
	if (check_keys(c, "pre", preloaded, &ok, &wrong) < 0 || check_keys(c, "key", written, &ok, &wrong) < 0)
		return;
	verified = ok;
	bad = wrong;
	if (wrong)
		errors++;
}

/* SET pre:1 .. pre:COUNT to their VALUEs, in batches: data that is there
 * before the writes start, and has to move as it is. */
static int preload(struct conn *c, uint64_t count)
{
	char v[4097];
	static char cmd[BATCH * (4096 + 48)];

	for (uint64_t k = 1; k <= count; k += BATCH) {
		uint64_t last = k + BATCH - 1 < count ? k + BATCH - 1 : count;
		size_t len = 0;

		for (uint64_t j = k; j <= last; j++) {
			value_of(j, v);
			len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "SET pre:%llu %s\r\n",
						(unsigned long long)j, v);
		}
		if (conn_send(c, cmd, len) < 0)
			return -1;
		for (uint64_t j = k; j <= last; j++)
			if (expect_reply(c, "+OK") < 0)
				return -1;
	}
	preloaded = count;
	return 0;
}

int main(int argc, char **argv)
{
	static struct conn c;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	long interval = 1000, npre = 0;
	uint64_t next, last_answer;
	int opt;

	while ((opt = getopt(argc, argv, "i:o:p:s:")) != -1) {
		if (opt == 'i')
			interval = atol(optarg);
		else if (opt == 'p')
			npre = atol(optarg);
		else if (opt == 'o')
			out_path = optarg;
		else if (opt == 's')
			value_len = (size_t)atol(optarg);
		else
			return 2;
	}
	if (argc - optind != 2 || interval <= 0 || npre < 0 || value_len < 24 || value_len > 4096 ||
	    inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1) {
		fprintf(stderr,
			"usage: redisprobe [-i interval_us] [-p preload] [-s 24..4096] [-o statusfile] IPV4 PORT\n");
		return 2;
	}
	sa.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
	wl_signals();
	c.fd = probe_connect("redisprobe", &sa);
	if (preload(&c, (uint64_t)npre) < 0) {
		report();
		return 1;
	}
	/* The first line says it is ready, and takes signals. */
	report();
	next = last_answer = wl_now_us();
	while (!wl_stop) {
		bool alive = !strcmp(state, "ok");
		uint64_t t = wl_now_us();

		if (wl_check_req) {
			wl_check_req = 0;
			report();
		}
		if (wl_dump_req) {
			wl_dump_req = 0;
			if (alive)
				verify(&c);
			report();
			maxgap = 0;
			next = last_answer = wl_now_us();
			continue;
		}
		if (!alive || t < next) {
			wl_sleep_us(alive ? (long)(next - t) : 100000);
			continue;
		}
		if (write_pair(&c) == 0) {
			t = wl_now_us();
			if (t - last_answer > maxgap)
				maxgap = t - last_answer;
			last_answer = t;
		}
		next += (uint64_t)interval;
		if (next < t)
			next = t + (uint64_t)interval;
	}
	report();
	return strcmp(state, "ok") ? 1 : 0;
}
