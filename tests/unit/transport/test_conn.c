/* transport/conn.c over plain sockets: messages with a length prefix, the
 * cap checked before unpack, truncation, streaming zstd, the peer's
 * address (127.0.0.1 only). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "err.h"
#include "migrate.pb-c.h"

static void plain_pair(struct vz_conn *a, struct vz_conn *b)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	vz_conn_plain(a, sv[0]);
	vz_conn_plain(b, sv[1]);
}

Test(conn, message_round_trip_counts_bytes)
{
	Vz__Migrate__Msg m = VZ__MIGRATE__MSG__INIT, *got = NULL;
	struct vz_conn a, b;
	struct vz_err err = { 0 };
	size_t packed;

	plain_pair(&a, &b);
	m.type = VZ__MIGRATE__TYPE__T_ASK_DECISION;
	m.migration_id = "0123abcd";
	m.has_veid = true;
	m.veid = 101;
	packed = protobuf_c_message_get_packed_size(&m.base);
	cr_assert_eq(vz_msg_send(&a, &m.base, &err), 0, "%s", err.msg);
	cr_assert_eq(a.bytes_out, packed + 4);
	cr_assert_eq(vz_msg_recv(&b, &vz__migrate__msg__descriptor, VZ_MSG_MAX, (ProtobufCMessage **)&got, &err), 0,
		     "%s", err.msg);
	cr_assert_eq(b.bytes_in, packed + 4);
	cr_assert_eq(got->type, VZ__MIGRATE__TYPE__T_ASK_DECISION);
	cr_assert_str_eq(got->migration_id, "0123abcd");
	cr_assert(got->has_veid);
	cr_assert_eq(got->veid, 101);
	protobuf_c_message_free_unpacked(&got->base, NULL);
	vz_conn_close(&a);
	vz_conn_close(&b);
}

/* The header alone, then the end: refused by its length, not waited for. */
Test(conn, message_over_the_cap_refused_before_unpack)
{
	const uint8_t hdr[4] = { 0, 0, 0x01, 0x01 };
	ProtobufCMessage *got = NULL;
	struct vz_conn a, b;
	struct vz_err err = { 0 };

	plain_pair(&a, &b);
	cr_assert_eq(write(a.fd, hdr, 4), 4);
	shutdown(a.fd, SHUT_WR);
	cr_assert_eq(vz_msg_recv(&b, &vz__migrate__msg__descriptor, 256, &got, &err), -EMSGSIZE);
	cr_assert_null(got);
	vz_conn_close(&a);
	vz_conn_close(&b);
}

Test(conn, truncated_message_refused)
{
	const uint8_t part[6] = { 0, 0, 0, 50, 0x08, 0x01 };
	ProtobufCMessage *got = NULL;
	struct vz_conn a, b;
	struct vz_err err = { 0 };

	plain_pair(&a, &b);
	cr_assert_eq(write(a.fd, part, sizeof(part)), (ssize_t)sizeof(part));
	vz_conn_close(&a);
	cr_assert_eq(vz_msg_recv(&b, &vz__migrate__msg__descriptor, 256, &got, &err), -ECONNRESET);
	cr_assert_null(got);
	cr_assert(strstr(err.msg, "closed"), "%s", err.msg);
	vz_conn_close(&b);
}

Test(conn, bytes_that_do_not_parse_refused)
{
	const uint8_t junk[4 + 3] = { 0, 0, 0, 3, 0xff, 0xff, 0xff };
	ProtobufCMessage *got = NULL;
	struct vz_conn a, b;
	struct vz_err err = { 0 };

	plain_pair(&a, &b);
	cr_assert_eq(write(a.fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	cr_assert_eq(vz_msg_recv(&b, &vz__migrate__msg__descriptor, 256, &got, &err), -EBADMSG);
	cr_assert_null(got);
	vz_conn_close(&a);
	vz_conn_close(&b);
}

Test(conn, close_leaves_no_descriptor)
{
	struct vz_conn a, b;

	plain_pair(&a, &b);
	vz_conn_close(&a);
	cr_assert_lt(a.fd, 0);
	vz_conn_close(&a); /* twice is safe */
	vz_conn_close(&b);
}

struct collect {
	uint8_t buf[1 << 18];
	size_t len;
};

static int collect(void *arg, const void *buf, size_t len, struct vz_err *err)
{
	struct collect *c = arg;

	if (c->len + len > sizeof(c->buf))
		return vz_error_msg(err, ENOSPC, "Too much");
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	return 0;
}

Test(zstd, chunks_round_trip_and_expansion_is_capped)
{
	static struct collect out;
	static uint8_t in[100000];
	struct vz_err err = { 0 };
	struct vz_zenc *z = vz_zenc_new(1, &err);
	struct vz_zdec *d = vz_zdec_new(&err);
	const void *c;
	size_t clen;

	cr_assert_not_null(z, "%s", err.msg);
	cr_assert_not_null(d, "%s", err.msg);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i % 7);
	cr_assert_eq(vz_zenc_chunk(z, in, sizeof(in), &c, &clen, &err), 0, "%s", err.msg);
	cr_assert_lt(clen, sizeof(in));
	cr_assert_eq(vz_zdec_chunk(d, c, clen, sizeof(in), collect, &out, &err), 0, "%s", err.msg);
	cr_assert_eq(out.len, sizeof(in));
	cr_assert_eq(memcmp(out.buf, in, sizeof(in)), 0);
	/* The same again in a fresh stream, with too small a cap. */
	vz_zenc_free(z);
	z = vz_zenc_new(1, &err);
	vz_zdec_reset(d);
	cr_assert_eq(vz_zenc_chunk(z, in, sizeof(in), &c, &clen, &err), 0, "%s", err.msg);
	out.len = 0;
	cr_assert_eq(vz_zdec_chunk(d, c, clen, 1000, collect, &out, &err), -EMSGSIZE);
	vz_zenc_free(z);
	vz_zdec_free(d);
}

Test(zstd, corrupt_chunk_refused)
{
	static struct collect out;
	/* Not zstd's magic number. */
	const uint8_t junk[16] = { 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	struct vz_err err = { 0 };
	struct vz_zdec *d = vz_zdec_new(&err);

	cr_assert_not_null(d, "%s", err.msg);
	cr_assert_eq(vz_zdec_chunk(d, junk, sizeof(junk), 1 << 20, collect, &out, &err), -EBADMSG);
	vz_zdec_free(d);
}

Test(conn, peer_host_of_a_loopback_tcp_socket)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c, s;
	char host[64];

	cr_assert_geq(l, 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(l, 1), 0);
	cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(s, 0);
	vz_sock_peer_host(s, host, sizeof(host));
	cr_assert_str_eq(host, "127.0.0.1");
	vz_sock_peer_host(c, host, sizeof(host));
	cr_assert_str_eq(host, "127.0.0.1");
	/* No socket, no address. */
	vz_sock_peer_host(-EBADF, host, sizeof(host));
	cr_assert_str_eq(host, "");
	vz_sock_peer_host(l, host, sizeof(host));
	cr_assert_str_eq(host, "");
	close(s);
	close(c);
	close(l);
}
