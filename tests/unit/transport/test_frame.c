/* transport/frame.c: the length prefix, the cap checked before anything is
 * allocated or read, truncated frames, descriptors riding with a frame. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "frame.h"

static void pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

Test(frame, header_is_big_endian_and_capped)
{
	const uint8_t h[4] = { 0x01, 0x02, 0x03, 0x04 }, zero[4] = { 0 };
	uint32_t len = 0;

	cr_assert_eq(vz_frame_parse_header(h, 0x01020304, &len), 0);
	cr_assert_eq(len, 0x01020304u);
	cr_assert_eq(vz_frame_parse_header(h, 0x01020303, &len), -EMSGSIZE);
	cr_assert_eq(vz_frame_parse_header(zero, 0, &len), 0);
	cr_assert_eq(len, 0);
}

Test(frame, send_writes_a_length_prefix_then_the_bytes)
{
	struct vz_err err = { 0 };
	uint8_t got[16];
	int sv[2];

	pair(sv);
	cr_assert_eq(vz_frame_send(sv[0], "hello", 5, NULL, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(read(sv[1], got, sizeof(got)), 9);
	cr_assert_eq(memcmp(got, "\0\0\0\5hello", 9), 0);
	close(sv[0]);
	close(sv[1]);
}

Test(frame, round_trip)
{
	struct vz_err err = { 0 };
	uint8_t *buf = NULL;
	size_t len = 0;
	int sv[2];

	pair(sv);
	cr_assert_eq(vz_frame_send(sv[0], "abc", 3, NULL, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(vz_frame_send(sv[0], "", 0, NULL, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(vz_frame_recv(sv[1], &buf, &len, 16, NULL, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(len, 3);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	free(buf);
	cr_assert_eq(vz_frame_recv(sv[1], &buf, &len, 16, NULL, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(len, 0);
	free(buf);
	close(sv[0]);
	close(sv[1]);
}

/* A peer that sends bytes[n] and goes: what vz_frame_recv makes of it. */
static int recv_after(const void *bytes, size_t n, size_t max, struct vz_err *err)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int sv[2], ret;

	pair(sv);
	cr_assert_eq(write(sv[0], bytes, n), (ssize_t)n);
	close(sv[0]);
	ret = vz_frame_recv(sv[1], &buf, &len, max, NULL, NULL, err);
	close(sv[1]);
	if (ret < 0)
		cr_assert_null(buf);
	free(buf);
	return ret;
}

/* Only the header arrives, then the end: a frame over the cap must be
 * refused from its header (EMSGSIZE), not waited for (ECONNRESET). */
Test(frame, over_the_cap_refused_from_the_header)
{
	const uint8_t hdr[4] = { 0x00, 0x10, 0x00, 0x01 };
	struct vz_err err = { 0 };

	cr_assert_eq(recv_after(hdr, sizeof(hdr), 1 << 20, &err), -EMSGSIZE);
	cr_assert(strstr(err.msg, "1048577"), "%s", err.msg);
}

Test(frame, send_refuses_what_the_header_cannot_say)
{
	struct vz_err err = { 0 };
	int sv[2];

	pair(sv);
	cr_assert_eq(vz_frame_send(sv[0], "", (size_t)UINT32_MAX + 1, NULL, 0, &err), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
}

Test(frame, truncated_frame_refused)
{
	const uint8_t part[4 + 3] = { 0, 0, 0, 100, 'a', 'b', 'c' };
	struct vz_err err = { 0 };

	cr_assert_eq(recv_after(part, sizeof(part), 4096, &err), -ECONNRESET);
	cr_assert_eq(recv_after(part, 2, 4096, &err), -ECONNRESET, "a truncated header");
	cr_assert_eq(recv_after(part, 4, 4096, &err), -ECONNRESET, "a header alone");
}

Test(frame, a_descriptor_rides_with_the_frame)
{
	struct vz_err err = { 0 };
	uint8_t *buf = NULL;
	size_t len = 0, nfds = 0;
	int sv[2], p[2], fds[VZ_FRAME_MAX_FDS];
	char c = 0;

	pair(sv);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_eq(vz_frame_send(sv[0], "x", 1, &p[1], 1, &err), 0, "%s", err.msg);
	close(p[1]);
	cr_assert_eq(vz_frame_recv(sv[1], &buf, &len, 16, fds, &nfds, &err), 0, "%s", err.msg);
	free(buf);
	cr_assert_eq(nfds, 1);
	cr_assert_eq(write(fds[0], "y", 1), 1);
	cr_assert_eq(read(p[0], &c, 1), 1);
	cr_assert_eq(c, 'y');
	close(fds[0]);
	close(p[0]);
	close(sv[0]);
	close(sv[1]);
}
