/* Shared by the clients that run outside a VE and watch it across a move
 * (tcpprobe, redisprobe): the wl.h signals, and one TCP connection made
 * while the server may still be starting. Header-only, as wl.h. */
#ifndef PROBE_H
#define PROBE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "wl.h"

/* Connect to SA, trying again for 5 s; the socket is non-blocking, with
 * TCP_NODELAY. On failure PROG says why on stderr and the process exits 1. */
static __attribute__((unused)) int probe_connect(const char *prog, const struct sockaddr_in *sa)
{
	uint64_t deadline = wl_now_us() + 5000000;
	char ip[INET_ADDRSTRLEN];
	int one = 1;

	for (;;) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			fcntl(fd, F_SETFL, O_NONBLOCK);
			return fd;
		}
		if (fd >= 0)
			close(fd);
		if (wl_now_us() > deadline || wl_stop) {
			fprintf(stderr, "%s: cannot connect to %s:%u: %s\n", prog,
				inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip)), ntohs(sa->sin_port),
				strerror(errno));
			exit(1);
		}
		wl_sleep_us(50000);
	}
}

#endif
