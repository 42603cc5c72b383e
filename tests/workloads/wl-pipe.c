/* wl-pipe [-n tag]: a fork tree talking through pipes. The parent sends
 * sequence numbers down pipe A, the child echoes them up pipe B, and pipe C
 * holds 16 KiB the child leaves unread until asked: its buffered contents
 * must survive a checkpoint. Verify (parent): the echo is still exact and
 * moving, the child (same pid, same parent) finds pipe C intact. */
#include <getopt.h>
#include <poll.h>
#include <sys/wait.h>

#include "wl.h"

#define HELD 16384

static struct wl w;

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 131 + 7);
}

static int fill_held(int fd)
{
	uint8_t buf[HELD];

	for (size_t i = 0; i < HELD; i++)
		buf[i] = pattern(i);
	return write(fd, buf, HELD) == HELD ? 0 : -1;
}

static bool read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* Child: echo A to B; on a byte from ctl, check C and answer on ans. */
static void child(int a, int b, int c, int ctl, int ans, pid_t parent)
{
	pid_t me = getpid();

	for (;;) {
		struct pollfd p[2] = { { a, POLLIN, 0 }, { ctl, POLLIN, 0 } };
		uint64_t seq;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[0].revents) {
			if (!read_full(a, &seq, sizeof(seq)))
				_exit(0);
			if (write(b, &seq, sizeof(seq)) != sizeof(seq))
				_exit(1);
		}
		if (p[1].revents) {
			uint8_t buf[HELD], x;
			char res = 'Y';

			if (!read_full(ctl, &x, 1))
				_exit(0);
			if (!read_full(c, buf, HELD))
				res = 'C';
			for (size_t i = 0; res == 'Y' && i < HELD; i++)
				if (buf[i] != pattern(i))
					res = 'C';
			if (getppid() != parent)
				res = 'P';
			if (getpid() != me)
				res = 'I';
			if (write(ans, &res, 1) != 1)
				_exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	int a[2], b[2], c[2], ctl[2], ans[2];
	uint64_t seq = 0, echoed = 0;
	pid_t kid;

	wl_start_args(&w, "wl-pipe", argc, argv);
	if (pipe(a) || pipe(b) || pipe(c) || pipe(ctl) || pipe(ans))
		wl_abort(&w, "pipe: %s", strerror(errno));
	if (fill_held(c[1]) != 0)
		wl_abort(&w, "fill pipe C: %s", strerror(errno));
	kid = fork();
	if (kid < 0)
		wl_abort(&w, "fork: %s", strerror(errno));
	if (kid == 0) {
		close(w.ready_fd);
		signal(SIGUSR1, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		child(a[0], b[1], c[0], ctl[0], ans[1], getppid());
	}
	close(a[0]);
	close(b[1]);
	close(c[0]);
	close(ctl[0]);
	close(ans[1]);
	wl_ready(&w);
	while (!wl_stop) {
		uint64_t got;

		seq++;
		if (write(a[1], &seq, sizeof(seq)) != sizeof(seq) || !read_full(b[0], &got, sizeof(got))) {
			wl_fail(&w, "the child is gone");
			wl_sleep_us(100000);
			if (wl_check_req) {
				wl_check_req = 0;
				wl_answer(&w);
			}
			continue;
		}
		if (got != seq)
			wl_fail(&w, "echo %llu for %llu", (unsigned long long)got, (unsigned long long)seq);
		echoed = got;
		wl_sleep_us(1000);
		if (wl_check_req) {
			uint64_t before = echoed;
			char res = 0;

			wl_check_req = 0;
			wl_check_pid(&w);
			if (write(ctl[1], "?", 1) != 1 || !read_full(ans[0], &res, 1))
				wl_fail(&w, "the child does not answer");
			else if (res == 'C')
				wl_fail(&w, "pipe C lost its buffered data");
			else if (res == 'P')
				wl_fail(&w, "the child has another parent");
			else if (res == 'I')
				wl_fail(&w, "the child's pid changed");
			if (fill_held(c[1]) != 0)
				wl_fail(&w, "refill pipe C");
			if (waitpid(kid, NULL, WNOHANG) != 0)
				wl_fail(&w, "child %d is gone", (int)kid);
			seq++;
			if (write(a[1], &seq, sizeof(seq)) != sizeof(seq) || !read_full(b[0], &echoed, 8) ||
			    echoed != seq || echoed <= before)
				wl_fail(&w, "the echo stopped");
			wl_answer(&w);
		}
	}
	kill(kid, SIGTERM);
	return 0;
}
