/* CRIU lazy-pages daemon fed by our own page server (the contract is in migrate_int.h). */
#define LOG_PREFIX "migrate: "
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "migrate_int.h"
#include "util.h"

struct mig_lazy {
	struct vz_pstore *ps;
	int lsk; /* listening socket */
	pid_t daemon;
	int status; /* daemon's exit status once reaped */
	bool reaped, thread;
	pthread_t th;
	int serve_ret;
	struct vz_err serve_err;
	struct vz_pstore_stats st;
	void (*on_fail)(void *arg);
	void *fail_arg;
};

static void *serve_main(void *arg)
{
	struct mig_lazy *l = arg;
	struct pollfd p = { .fd = l->lsk, .events = POLLIN };
	int fd;

	/* The daemon connects once the restore has handed it the VE. */
	if (poll(&p, 1, 120000) != 1) {
		l->serve_ret = vz_error_msg(&l->serve_err, ETIMEDOUT, "CRIU's lazy-pages daemon never connected");
		return NULL;
	}
	fd = accept4(l->lsk, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		l->serve_ret = vz_error(&l->serve_err, errno, "Accept");
		return NULL;
	}
	l->serve_ret = vz_pstore_serve(l->ps, fd, &l->st, &l->serve_err);
	/* Before the daemon learns of it: it would end, and whatever page
	 * it had not copied would read as zeros in the VE. */
	if (l->serve_ret < 0 && l->on_fail)
		l->on_fail(l->fail_arg);
	close(fd);
	return NULL;
}

int mig_lazy_start(struct mig_lazy **out, const char *criu, struct vz_pstore *ps, const char *imgdir,
		   const char *workdir, const char *logname, void (*on_fail)(void *arg), void *fail_arg,
		   struct vz_err *err)
{
	struct mig_lazy *l = calloc(1, sizeof(*l));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int st[2] = { VZ_FD_INIT, VZ_FD_INIT }, ret = 0;
	char port[16], stfd[16];

	if (!l)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	l->ps = ps;
	l->daemon = VZ_FD_INIT;
	l->on_fail = on_fail;
	l->fail_arg = fail_arg;
	l->lsk = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->lsk < 0 || bind(l->lsk, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l->lsk, 1) != 0 ||
	    getsockname(l->lsk, (struct sockaddr *)&sa, &sl) != 0) {
		ret = vz_error(err, errno, "Page server socket");
		goto fail;
	}
	if (pthread_create(&l->th, NULL, serve_main, l) != 0) {
		ret = vz_error_msg(err, EAGAIN, "Page server thread");
		goto fail;
	}
	l->thread = true;
	if (pipe(st) != 0) {
		ret = vz_error(err, errno, "Pipe");
		goto fail;
	}
	snprintf(port, sizeof(port), "%u", ntohs(sa.sin_port));
	snprintf(stfd, sizeof(stfd), "%d", st[1]);
	l->daemon = fork();
	if (l->daemon < 0) {
		ret = vz_error(err, errno, "Fork");
		goto fail;
	}
	if (l->daemon == 0) {
		int devnull = open("/dev/null", O_RDWR);

		close(st[0]);
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execl(criu, "criu", "lazy-pages", "-D", imgdir, "-W", workdir, "-o", logname, "-v2", "--page-server",
		      "--address", "127.0.0.1", "--port", port, "--status-fd", stfd, (char *)NULL);
		_exit(127);
	}
	close(st[1]);
	st[1] = VZ_FD_INIT;
	{
		struct pollfd p = { .fd = st[0], .events = POLLIN };
		char c;

		if (poll(&p, 1, 30000) != 1 || read(st[0], &c, 1) != 1) {
			ret = vz_error_msg(err, EIO, "CRIU's lazy-pages daemon did not start (see %s/%s)", workdir,
					   logname);
			goto fail;
		}
	}
	close(st[0]);
	pr_info("Lazy-pages daemon %d fetching from our page server on 127.0.0.1:%s", (int)l->daemon, port);
	*out = l;
	return 0;
fail:
	if (st[0] >= 0)
		close(st[0]);
	if (st[1] >= 0)
		close(st[1]);
	mig_lazy_free(l);
	return ret;
}

int mig_lazy_wait(struct mig_lazy *l, int timeout_ms, struct vz_err *err)
{
	uint64_t end = vz_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	while (!l->reaped) {
		pid_t r = waitpid(l->daemon, &l->status, WNOHANG);

		if (r == l->daemon) {
			l->reaped = true;
			break;
		}
		if (r < 0)
			return vz_error(err, errno, "Wait for the lazy-pages daemon");
		if (vz_now_ns() > end)
			return vz_error_msg(err, ETIMEDOUT, "The lazy-pages daemon is still copying pages after %d ms",
					    timeout_ms);
		usleep(2000);
	}
	if (l->thread) {
		pthread_join(l->th, NULL);
		l->thread = false;
	}
	if (!WIFEXITED(l->status) || WEXITSTATUS(l->status) != 0)
		return vz_error_msg(err, EIO, "CRIU's lazy-pages daemon failed (status %#x)%s%s", l->status,
				    l->serve_ret ? ": " : "", l->serve_ret ? l->serve_err.msg : "");
	if (l->serve_ret < 0)
		return vz_error_msg(err, -l->serve_ret, "%s", l->serve_err.msg);
	pr_info("Lazy pages: %llu pages in %llu requests from our page server", (unsigned long long)l->st.pages,
		(unsigned long long)l->st.requests);
	return 0;
}

void mig_lazy_free(struct mig_lazy *l)
{
	if (!l)
		return;
	if (l->daemon > 0 && !l->reaped) {
		kill(l->daemon, SIGKILL);
		waitpid(l->daemon, NULL, 0);
	}
	if (l->lsk >= 0)
		shutdown(l->lsk, SHUT_RDWR);
	if (l->thread) {
		/* The server blocks in poll or on its client: cut both. */
		pthread_cancel(l->th);
		pthread_join(l->th, NULL);
	}
	if (l->lsk >= 0)
		close(l->lsk);
	free(l);
}
