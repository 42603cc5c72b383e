/* The /metrics endpoint (metrics_http.h): a listener and its connections,
 * each a read watcher until the request's head is in, then a write
 * watcher until the answer is out, under one deadline. */
#define LOG_PREFIX "metrics: "
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "metrics_http.h"
#include "util.h"

struct vz_metrics_conn {
	ev_io io;
	ev_timer deadline;
	struct vz_metrics_srv *srv;
	int fd;
	char req[VZ_METRICS_REQ_MAX];
	size_t len;
	char *out; /* the answer, head and body */
	size_t out_len, out_off;
	struct vz_metrics_conn *next;
};

int vz_metrics_addr_parse(const char *addr, char *host, size_t hlen, unsigned *port)
{
	const char *colon, *h = addr;
	size_t n;
	unsigned long p;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		h = addr + 1;
		n = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
			return -EINVAL;
		n = (size_t)(colon - addr);
	}
	if (n == 0 || n >= hlen || vz_parse_ulong(colon + 1, 1, 65535, &p) < 0)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (unsigned)p;
	return 0;
}

int vz_metrics_conf(const struct vz_conf *f, const char *path, const char *def, char *out, size_t len,
		    struct vz_err *err)
{
	const char *v = vz_conf_get(f, "METRICS_LISTEN");
	char host[128];
	unsigned port;

	snprintf(out, len, "%s", v ? v : def);
	if (*out && vz_metrics_addr_parse(out, host, sizeof(host), &port) < 0)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL,
					 "%s: METRICS_LISTEN must be ADDRESS:PORT (as %s) or empty, not '%s'", path,
					 def, out);
	return 0;
}

static void conn_free(struct vz_metrics_conn *c)
{
	struct vz_metrics_srv *s = c->srv;

	for (struct vz_metrics_conn **pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	ev_io_stop(s->loop, &c->io);
	ev_timer_stop(s->loop, &c->deadline);
	/* Workers forked meanwhile hold a copy of fd: end the stream itself. */
	shutdown(c->fd, SHUT_RDWR);
	close(c->fd);
	free(c->out);
	free(c);
	s->nconns--;
}

/* The answer: status line, head, and body (NULL: a one-line reason). */
static void answer(struct vz_metrics_conn *c, int code, const char *reason, const char *body, size_t blen,
		   bool head_only)
{
	FILE *f = open_memstream(&c->out, &c->out_len);

	if (!f) {
		conn_free(c);
		return;
	}
	if (!body) {
		body = reason;
		blen = strlen(reason);
	}
	fprintf(f, "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code,
		reason, code == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8",
		blen + (code == 200 ? 0 : 1));
	if (!head_only) {
		fwrite(body, 1, blen, f);
		if (code != 200)
			fputc('\n', f);
	}
	if (fclose(f) != 0) {
		conn_free(c);
		return;
	}
	ev_io_stop(c->srv->loop, &c->io);
	ev_io_set(&c->io, c->fd, EV_WRITE);
	ev_io_start(c->srv->loop, &c->io);
}

/* The request's head is in (up to its blank line): the first line says
 * what is asked. */
int vz_metrics_route(const char *req, bool *head)
{
	char method[16], target[256], version[16];
	int end = 0;

	*head = false;
	if (sscanf(req, "%15[A-Z] %255[^ \r\n] %15[^ \r\n]%n", method, target, version, &end) != 3 ||
	    (strcmp(version, "HTTP/1.0") && strcmp(version, "HTTP/1.1")) ||
	    (strncmp(req + end, "\r\n", 2) && req[end] != '\n'))
		return 400;
	*head = !strcmp(method, "HEAD");
	if (strcmp(method, "GET") && !*head)
		return 405;
	if (strcmp(target, "/metrics") && strncmp(target, "/metrics?", 9))
		return 404;
	return 200;
}

static void handle(struct vz_metrics_conn *c)
{
	bool head;

	c->req[c->len] = '\0';
	switch (vz_metrics_route(c->req, &head)) {
	case 400: answer(c, 400, "Bad Request", NULL, 0, false); return;
	case 405: answer(c, 405, "Method Not Allowed", NULL, 0, false); return;
	case 404: answer(c, 404, "Not Found", NULL, 0, head); return;
	default: break;
	}
	{
		char *body = NULL;
		size_t blen = 0;
		FILE *f = open_memstream(&body, &blen);

		if (!f) {
			answer(c, 500, "Internal Server Error", NULL, 0, head);
			return;
		}
		c->srv->collect(c->srv->arg, f);
		if (fclose(f) != 0) {
			free(body);
			answer(c, 500, "Internal Server Error", NULL, 0, head);
			return;
		}
		answer(c, 200, "OK", body, blen, head);
		free(body);
	}
}

static bool head_complete(const char *buf, size_t len)
{
	return memmem(buf, len, "\r\n\r\n", 4) || memmem(buf, len, "\n\n", 2);
}

static void conn_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct vz_metrics_conn *c = container_of(io, struct vz_metrics_conn, io);
	ssize_t n;

	(void)loop;
	if (revents & EV_WRITE) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n > 0)
			c->out_off += (size_t)n;
		if (n <= 0 || c->out_off == c->out_len)
			conn_free(c);
		return;
	}
	n = recv(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* Gone, or ended before a whole head: a head cut short is bad. */
		if (n == 0 && c->len)
			answer(c, 400, "Bad Request", NULL, 0, false);
		else
			conn_free(c);
		return;
	}
	c->len += (size_t)n;
	if (memchr(c->req, '\0', c->len))
		answer(c, 400, "Bad Request", NULL, 0, false);
	else if (head_complete(c->req, c->len))
		handle(c);
	else if (c->len == sizeof(c->req) - 1)
		answer(c, 431, "Request Header Fields Too Large", NULL, 0, false);
}

static void deadline_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct vz_metrics_conn *c = container_of(t, struct vz_metrics_conn, deadline);

	(void)loop;
	(void)revents;
	pr_debug("Dropped a client that took over %.0f s", VZ_METRICS_TIMEOUT_S);
	conn_free(c);
}

static void accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct vz_metrics_srv *s = container_of(io, struct vz_metrics_srv, accept_w);
	struct vz_metrics_conn *c;
	int fd;

	(void)revents;
	fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (s->nconns >= VZ_METRICS_CONNS || !(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	ev_io_init(&c->io, conn_cb, fd, EV_READ);
	ev_io_start(loop, &c->io);
	ev_timer_init(&c->deadline, deadline_cb, VZ_METRICS_TIMEOUT_S, 0);
	ev_timer_start(loop, &c->deadline);
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
}

int vz_metrics_start(struct vz_metrics_srv *srv, struct ev_loop *loop, const char *addr,
		     void (*collect)(void *arg, FILE *f), void *arg, struct vz_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char host[128], portstr[8];
	unsigned port;
	int fd, one = 1, e;

	*srv = (struct vz_metrics_srv){ .loop = loop, .fd = -EBADF, .collect = collect, .arg = arg };
	if (!*addr)
		return 0;
	if (vz_metrics_addr_parse(addr, host, sizeof(host), &port) < 0)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL,
					 "Metrics address '%s': want ADDRESS:PORT, as 127.0.0.1:9720", addr);
	snprintf(portstr, sizeof(portstr), "%u", port);
	e = getaddrinfo(host, portstr, &hints, &ai);
	if (e != 0)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Metrics address '%s': %s", addr,
					 gai_strerror(e));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return vz_error(err, errno, "Create the metrics socket");
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
		e = errno;
		close(fd);
		freeaddrinfo(ai);
		return vz_error(err, e, "Listen for metrics on %s", addr);
	}
	freeaddrinfo(ai);
	srv->fd = fd;
	ev_io_init(&srv->accept_w, accept_cb, fd, EV_READ);
	ev_io_start(loop, &srv->accept_w);
	return 0;
}

void vz_metrics_stop(struct vz_metrics_srv *srv)
{
	while (srv->conns)
		conn_free(srv->conns);
	if (srv->fd >= 0) {
		ev_io_stop(srv->loop, &srv->accept_w);
		close(srv->fd);
		srv->fd = -EBADF;
	}
}

void vz_metrics_forget(struct vz_metrics_srv *srv)
{
	for (struct vz_metrics_conn *c = srv->conns; c; c = c->next)
		close(c->fd);
	if (srv->fd >= 0)
		close(srv->fd);
	srv->fd = -EBADF;
}
