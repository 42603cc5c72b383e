/* Control frames between the CLIs and the agent. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "control.h"
#include "frame.h"
#include "paths.h"
#include "util.h"

int vz_unix_connect(const char *path, const char *who, int *fd, struct vz_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int s = -EBADF;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vz_error_msg(err, ENAMETOOLONG, "Socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return vz_error(err, errno, "Create socket");
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return vz_error_exit(err, errno == EACCES ? VZ_EXIT_PERM : VZ_EXIT_SYSTEM, errno,
				     "Cannot reach %s at %s (is it running?)", who, path);
	*fd = steal_fd(&s);
	return 0;
}

int vz_ctl_connect(int *fd, struct vz_err *err)
{
	char path[4096];

	return vz_unix_connect(vz_path_agent_sock(path, sizeof(path)), "vzagent", fd, err);
}

int vz_unix_listen(const char *path, const char *who, int *fd, struct vz_err *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[4096];
	int s, probe;

	if (strlen(path) >= sizeof(sa.sun_path))
		return vz_error_msg(err, ENAMETOOLONG, "Socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	snprintf(dir, sizeof(dir), "%s", path);
	if (strrchr(dir, '/'))
		*strrchr(dir, '/') = '\0';
	if (*dir && vz_mkdir_p(dir, 0755) < 0)
		return vz_error(err, errno, "Create %s", dir);
	/* Refuse to steal the socket of a live server; remove a stale one. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(probe);
		return vz_error_msg(err, EADDRINUSE, "Another %s is already serving %s", who, path);
	}
	if (probe >= 0)
		close(probe);
	unlink(path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return vz_error(err, errno, "Create socket");
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0600) != 0 || listen(s, 64) != 0) {
		int e = errno;

		close(s);
		return vz_error(err, e, "Listen on %s", path);
	}
	*fd = s;
	return 0;
}

static int send_packed(int fd, const ProtobufCMessage *m, const int *fds, size_t nfds, struct vz_err *err)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	_cleanup_free_ uint8_t *buf = NULL;

	if (len > VZ_CONTROL_MAX_FRAME)
		return vz_error_msg(err, EMSGSIZE, "Control message of %zu bytes is too large", len);
	buf = malloc(len ? len : 1);
	if (!buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	protobuf_c_message_pack(m, buf);
	return vz_frame_send(fd, buf, len, fds, nfds, err);
}

int vz_ctl_send_request(int fd, const vz_request *req, const int *fds, size_t nfds, struct vz_err *err)
{
	return send_packed(fd, &req->base, fds, nfds, err);
}

int vz_ctl_send_reply(int fd, const vz_reply *reply, const int *fds, size_t nfds, struct vz_err *err)
{
	return send_packed(fd, &reply->base, fds, nfds, err);
}

static void close_fds(int *fds, size_t *nfds)
{
	for (size_t i = 0; fds && nfds && i < *nfds; i++)
		close(fds[i]);
	if (nfds)
		*nfds = 0;
}

int vz_ctl_recv_request(int fd, vz_request **req, int *fds, size_t *nfds, struct vz_err *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	vz_request *r;
	size_t len;
	int ret;

	ret = vz_frame_recv(fd, &buf, &len, VZ_CONTROL_MAX_FRAME, fds, nfds, err);
	if (ret < 0)
		return ret;
	r = vz__control__request__unpack(NULL, len, buf);
	if (!r) {
		close_fds(fds, nfds);
		return vz_error_msg(err, EBADMSG, "Malformed control request");
	}
	if (r->magic != VZ_CONTROL_MAGIC || r->version != VZ_CONTROL_VERSION) {
		vz__control__request__free_unpacked(r, NULL);
		close_fds(fds, nfds);
		return vz_error_msg(err, EPROTO, "Control request has a wrong magic or version");
	}
	*req = r;
	return 0;
}

int vz_ctl_recv_reply(int fd, vz_reply **reply, int *fds, size_t *nfds, struct vz_err *err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	vz_reply *r;
	size_t len;
	int ret;

	ret = vz_frame_recv(fd, &buf, &len, VZ_CONTROL_MAX_FRAME, fds, nfds, err);
	if (ret < 0)
		return ret;
	r = vz__control__reply__unpack(NULL, len, buf);
	if (!r) {
		close_fds(fds, nfds);
		return vz_error_msg(err, EBADMSG, "Malformed reply from vzagent");
	}
	*reply = r;
	return 0;
}

void vz_ctl_progress(int fd, const char *fmt, ...)
{
	vz_reply r = VZ__CONTROL__REPLY__INIT;
	char line[1024], *lines[1] = { line };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r.done = 0;
	r.n_lines = 1;
	r.lines = lines;
	send_packed(fd, &r.base, NULL, 0, NULL);
}

int vz_ctl_finish(int fd, int ret, const struct vz_err *err)
{
	vz_reply r = VZ__CONTROL__REPLY__INIT;

	r.done = 1;
	r.has_code = 1;
	r.code = 0;
	if (ret < 0) {
		r.code = err && err->exit_code ? err->exit_code : 3;
		r.error = (char *)(err && err->msg[0] ? err->msg : strerror(-ret));
	}
	return send_packed(fd, &r.base, NULL, 0, NULL);
}

static void progress_to_conn(void *arg, const char *line)
{
	vz_ctl_progress((int)(intptr_t)arg, "%s", line);
}

struct vz_progress vz_ctl_progress_sink(int fd)
{
	return (struct vz_progress){ .line = progress_to_conn, .arg = (void *)(intptr_t)fd };
}
