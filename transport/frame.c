/* Length-prefixed frames over stream sockets, with optional SCM_RIGHTS. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cleanup.h"
#include "frame.h"

int vz_frame_parse_header(const uint8_t hdr[VZ_FRAME_HDR], size_t max, uint32_t *len)
{
	uint32_t v = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];

	if (v > max)
		return -EMSGSIZE;
	*len = v;
	return 0;
}

int vz_frame_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds, struct vz_err *err)
{
	uint8_t hdr[VZ_FRAME_HDR] = { len >> 24, len >> 16, len >> 8, len };
	union {
		char buf[CMSG_SPACE(sizeof(int) * VZ_FRAME_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)buf, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
	size_t sent = 0, total = sizeof(hdr) + len;

	if (len > UINT32_MAX || nfds > VZ_FRAME_MAX_FDS)
		return vz_error_msg(err, EMSGSIZE, "Frame of %zu bytes is too large", len);
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (sent < total) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vz_error(err, errno, "Send frame");
		}
		sent += (size_t)n;
		/* Descriptors went with the first byte; advance the iovecs. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		while (n > 0 && msg.msg_iovlen > 0) {
			if ((size_t)n >= msg.msg_iov[0].iov_len) {
				n -= (ssize_t)msg.msg_iov[0].iov_len;
				msg.msg_iov++;
				msg.msg_iovlen--;
			} else {
				msg.msg_iov[0].iov_base = (char *)msg.msg_iov[0].iov_base + n;
				msg.msg_iov[0].iov_len -= (size_t)n;
				n = 0;
			}
		}
	}
	return 0;
}

/* Read exactly len bytes; collect descriptors from the first read. */
static int read_full(int fd, void *buf, size_t len, int *fds, size_t *nfds, struct vz_err *err)
{
	size_t got = 0;

	while (got < len) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 16)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (nfds) {
			msg.msg_control = ctl.buf;
			msg.msg_controllen = sizeof(ctl.buf);
		}
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vz_error(err, errno, "Receive frame");
		}
		if (nfds) {
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
				size_t cnt;
				int *in;

				if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
					continue;
				cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				in = (int *)CMSG_DATA(c);
				for (size_t i = 0; i < cnt; i++) {
					if (fds && *nfds < VZ_FRAME_MAX_FDS)
						fds[(*nfds)++] = in[i];
					else
						close(in[i]);
				}
			}
		}
		if (n == 0)
			return vz_error_msg(err, ECONNRESET, "Connection closed by peer");
		got += (size_t)n;
	}
	return 0;
}

int vz_frame_recv(int fd, uint8_t **buf, size_t *len, size_t max, int *fds, size_t *nfds, struct vz_err *err)
{
	uint8_t hdr[VZ_FRAME_HDR];
	_cleanup_free_ uint8_t *b = NULL;
	size_t dummy = 0;
	uint32_t n;
	int ret;

	if (nfds)
		*nfds = 0;
	ret = read_full(fd, hdr, sizeof(hdr), fds, nfds ? nfds : &dummy, err);
	if (ret < 0)
		return ret;
	if (vz_frame_parse_header(hdr, max, &n) < 0)
		return vz_error_msg(
		    err, EMSGSIZE, "Frame length %u exceeds the limit of %zu bytes",
		    (unsigned)((uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3]), max);
	b = malloc(n ? n : 1);
	if (!b)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	ret = read_full(fd, b, n, fds, nfds ? nfds : &dummy, err);
	if (ret < 0)
		return ret;
	*buf = steal_ptr(b);
	*len = n;
	return 0;
}
