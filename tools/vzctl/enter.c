/* vzctl enter VEID [--exec CMD...]: a shell on a pty of the VE's own
 * devpts. The agent hands over the pty master; this process relays the
 * terminal to it (raw mode when stdin is a terminal) until the shell
 * exits, and exits with the shell's status. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"
#include "vzctl.h"

static volatile sig_atomic_t winch;

static void on_winch(int sig)
{
	(void)sig;
	winch = 1;
}

/* Relay until the shell closes its side. conn is watched for the agent's
 * final reply, which the caller reads. */
static int relay(void *ctx, int master, int conn)
{
	bool in_open = true, tty = isatty(0);
	struct termios saved, raw;
	char buf[8192];

	(void)ctx;
	(void)conn;
	if (tty && tcgetattr(0, &saved) == 0) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
	} else {
		tty = false;
	}
	signal(SIGWINCH, on_winch);
	for (;;) {
		struct pollfd p[2] = { { master, POLLIN, 0 }, { in_open ? 0 : -1, POLLIN, 0 } };
		ssize_t n;

		if (winch) {
			struct winsize ws;

			winch = 0;
			if (ioctl(0, TIOCGWINSZ, &ws) == 0)
				ioctl(master, TIOCSWINSZ, &ws);
		}
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(master, buf, sizeof(buf));
			if (n <= 0)
				break; /* EIO: the shell and its children are gone */
			vz_write_all(1, buf, (size_t)n);
		}
		if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				/* Input ended: give the shell an end of file. */
				in_open = false;
				vz_write_all(master, "\x04", 1);
			} else {
				vz_write_all(master, buf, (size_t)n);
			}
		}
	}
	if (tty)
		tcsetattr(0, TCSANOW, &saved);
	close(master);
	return 0;
}

int cmd_enter(int argc, char **argv, struct vz_err *err)
{
	vz_request req;
	vz_reply *r = NULL;
	struct winsize ws;
	int ret = vzctl_request(&req, VZ__CONTROL__OP__OP_ENTER, argc, argv, err);

	if (ret < 0)
		return ret;
	if (argc > 2) {
		if (strcmp(argv[2], "--exec") || argc < 4)
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL,
						 "Usage: vzctl enter VEID [--exec COMMAND]");
		req.n_argv = (size_t)argc - 3;
		req.argv = argv + 3;
	}
	if (isatty(0) && ioctl(0, TIOCGWINSZ, &ws) == 0) {
		req.has_winsize_rows = req.has_winsize_cols = 1;
		req.winsize_rows = ws.ws_row;
		req.winsize_cols = ws.ws_col;
	}
	req.term = getenv("TERM");
	fprintf(stderr, "entered into VE %u\n", req.veid);
	ret = vz_ctl_call(&req, NULL, 0, relay, NULL, &r, err);
	if (ret < 0)
		return ret;
	if (r->code) {
		vz_error_exit_msg(err, r->code, EIO, "%s", r->error ? r->error : "Enter failed");
		vz__control__reply__free_unpacked(r, NULL);
		return -EIO;
	}
	fprintf(stderr, "exited from VE %u\n", req.veid);
	ret = r->has_exit_status ? r->exit_status : 0;
	vz__control__reply__free_unpacked(r, NULL);
	return ret;
}
