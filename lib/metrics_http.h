/* The /metrics endpoint of vzagent and vzcoord: plain HTTP on a local
 * address, inside the daemon's libev loop, never blocking it.
 *
 * GET /metrics (or HEAD) is answered with the page collect() writes
 * (Prometheus' text format, lib/expo.h) and the connection is closed, as
 * HTTP/1.0 does; any other path is 404, another method 405, anything that
 * is not an HTTP request 400, a request over VZ_METRICS_REQ_MAX bytes 431.
 * Reading and writing are non-blocking: a client that sends slowly or
 * reads slowly costs a watcher and a buffer, and is dropped after
 * VZ_METRICS_TIMEOUT_S; at most VZ_METRICS_CONNS are served at once (more
 * are closed at once). */
#ifndef VZ_METRICS_HTTP_H
#define VZ_METRICS_HTTP_H

#include <ev.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "err.h"

#define VZ_METRICS_REQ_MAX   4096
#define VZ_METRICS_TIMEOUT_S 5.0
#define VZ_METRICS_CONNS     16

struct vz_metrics_conn;

struct vz_metrics_srv {
	struct ev_loop *loop;
	int fd; /* -EBADF when off */
	ev_io accept_w;
	/* Write the page to f; called in the loop for each GET. */
	void (*collect)(void *arg, FILE *f);
	void *arg;
	unsigned nconns;
	struct vz_metrics_conn *conns;
};

/* Pure: "HOST:PORT" ("127.0.0.1:9720", "[::1]:9720") into its parts;
 * -EINVAL for anything else (a port out of 1..65535 included). */
int vz_metrics_addr_parse(const char *addr, char *host, size_t hlen, unsigned *port);
/* Pure: what a request's head (NUL-terminated) gets: 200 (GET or HEAD
 * of /metrics; *head for HEAD), 404, 405, or 400 for a first line that is
 * not METHOD TARGET HTTP/1.x. */
int vz_metrics_route(const char *req, bool *head);
/* METRICS_LISTEN of settings f (from file path) into out: def when the
 * key is absent, "" (off) when it is empty; a bad value fails with
 * VZ_EXIT_BADVAL and one line naming the key. */
int vz_metrics_conf(const struct vz_conf *f, const char *path, const char *def, char *out, size_t len,
		    struct vz_err *err);
/* Listen on addr (a numeric address and a port, as above) and serve in
 * loop. srv->fd stays -EBADF and nothing listens when addr is "". */
int vz_metrics_start(struct vz_metrics_srv *srv, struct ev_loop *loop, const char *addr,
		     void (*collect)(void *arg, FILE *f), void *arg, struct vz_err *err);
/* Stop listening and drop every connection (safe when off). */
void vz_metrics_stop(struct vz_metrics_srv *srv);
/* In a forked worker: close the sockets without touching the loop. */
void vz_metrics_forget(struct vz_metrics_srv *srv);

#endif
