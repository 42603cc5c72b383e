/* The CLIs' side of a control call. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "control.h"

/* A "[progress] ..." line redraws one status line on a terminal and is
 * an ordinary line elsewhere; other lines end a status line first. */
static void print_line(const char *line)
{
	static bool drawn;
	const char *p = !strncmp(line, "[progress] ", 11) ? line + 11 : NULL;

	if (p && isatty(STDOUT_FILENO)) {
		printf("\r%s\033[K", p);
		drawn = true;
		return;
	}
	if (drawn)
		putchar('\n');
	drawn = false;
	printf("%s\n", p ? p : line);
}

int vz_ctl_call(const vz_request *req, const int *fds, size_t nfds, int (*on_fd)(void *ctx, int fd, int conn),
		void *ctx, vz_reply **final, struct vz_err *err)
{
	_cleanup_close_ int conn = -EBADF;
	int ret;

	ret = vz_ctl_connect(&conn, err);
	if (ret < 0)
		return ret;
	ret = vz_ctl_send_request(conn, req, fds, nfds, err);
	/* An agent that refuses us closes at once; its reason may already
	 * wait in the socket. */
	bool refused = ret == -EPIPE || ret == -ECONNRESET;

	if (ret < 0 && !refused)
		return ret;
	for (;;) {
		vz_reply *r = NULL;
		int rfds[4];
		size_t nrfds = 0;

		struct vz_err rerr = { 0 };

		ret = vz_ctl_recv_reply(conn, &r, rfds, &nrfds, &rerr);
		if (ret < 0) {
			if (refused)
				return vz_error_wrap(err, "vzagent");
			*err = rerr;
			return vz_error_wrap(err, "vzagent");
		}
		if (r->done) {
			for (size_t i = 0; i < nrfds; i++)
				close(rfds[i]);
			*final = r;
			return 0;
		}
		for (size_t i = 0; i < r->n_lines; i++)
			print_line(r->lines[i]);
		fflush(stdout);
		for (size_t i = 0; i < nrfds; i++) {
			if (on_fd && i == 0) {
				ret = on_fd(ctx, rfds[i], conn);
				if (ret < 0) {
					vz__control__reply__free_unpacked(r, NULL);
					return ret;
				}
			} else {
				close(rfds[i]);
			}
		}
		vz__control__reply__free_unpacked(r, NULL);
	}
}
