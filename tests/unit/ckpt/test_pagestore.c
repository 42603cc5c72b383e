/* ckpt/pagestore.c: pages kept by (pid, address), replaced when sent
 * again, and served in CRIU's page-server protocol; a page never sent is
 * an error, never zeros. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pagestore.h"

#define PG 4096

static struct vz_pstore *mk(void)
{
	struct vz_err err = { 0 };
	struct vz_pstore *s = vz_pstore_new("/tmp", &err);

	cr_assert_not_null(s, "%s", err.msg);
	return s;
}

Test(pagestore, put_replace_get)
{
	struct vz_pstore *s = mk();
	struct vz_err err = { 0 };
	static uint8_t pages[3 * PG], out[PG];

	memset(pages, 1, PG);
	memset(pages + PG, 2, PG);
	memset(pages + 2 * PG, 3, PG);
	cr_assert_eq(vz_pstore_put(s, 7, 0x10000, pages, 3, &err), 0, "%s", err.msg);
	cr_assert_eq(vz_pstore_pages(s), 3);
	memset(pages, 9, PG);
	cr_assert_eq(vz_pstore_put(s, 7, 0x11000, pages, 1, &err), 0);
	cr_assert_eq(vz_pstore_pages(s), 3, "a page sent again replaces the old copy");
	cr_assert_eq(vz_pstore_get(s, 7, 0x11000, out), 0);
	cr_assert_eq(out[0], 9);
	cr_assert_eq(vz_pstore_get(s, 7, 0x12000, out), 0);
	cr_assert_eq(out[100], 3);
	cr_assert_eq(vz_pstore_get(s, 8, 0x10000, out), -ENOENT, "another pid's page is not this one");
	cr_assert_lt(vz_pstore_put(s, 7, 0x10001, pages, 1, &err), 0, "unaligned address refused");
	vz_pstore_free(s);
}

Test(pagestore, many_pages_grow_the_index)
{
	struct vz_pstore *s = mk();
	struct vz_err err = { 0 };
	static uint8_t page[PG], out[PG];

	for (uint64_t i = 0; i < 100000; i++) {
		memcpy(page, &i, sizeof(i));
		cr_assert_eq(vz_pstore_put(s, 1 + (int)(i % 3), 0x400000 + i * PG, page, 1, &err), 0);
	}
	cr_assert_eq(vz_pstore_pages(s), 100000);
	for (uint64_t i = 0; i < 100000; i += 777) {
		uint64_t v;

		cr_assert_eq(vz_pstore_get(s, 1 + (int)(i % 3), 0x400000 + i * PG, out), 0);
		memcpy(&v, out, sizeof(v));
		cr_assert_eq(v, i);
	}
	vz_pstore_free(s);
}

struct srv {
	struct vz_pstore *s;
	int fd, ret;
	struct vz_err err;
};

static void *serve(void *arg)
{
	struct srv *v = arg;

	v->ret = vz_pstore_serve(v->s, v->fd, NULL, &v->err);
	close(v->fd);
	return NULL;
}

Test(pagestore, serves_criu_requests)
{
	struct vz_pstore *s = mk();
	struct vz_err err = { 0 };
	static uint8_t pages[4 * PG], back[4 * PG];
	struct vz_ps_iov q = { .cmd = VZ_PS_IOV_GET, .nr_pages = 4, .vaddr = 0x20000, .dst_id = 5 }, r;
	struct srv v = { .s = s };
	int sp[2];
	pthread_t th;
	int32_t status = -1;

	for (int i = 0; i < 3; i++)
		memset(pages + i * PG, 0x30 + i, PG);
	cr_assert_eq(vz_pstore_put(s, 5, 0x20000, pages, 3, &err), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	v.fd = sp[1];
	pthread_create(&th, NULL, serve, &v);
	/* Four asked, three held: three come back, as CRIU allows. */
	cr_assert_eq(write(sp[0], &q, sizeof(q)), (ssize_t)sizeof(q));
	cr_assert_eq(recv(sp[0], &r, sizeof(r), MSG_WAITALL), (ssize_t)sizeof(r));
	cr_assert_eq(r.cmd & 0xffff, VZ_PS_IOV_ADD_F);
	cr_assert_eq(r.nr_pages, 3);
	cr_assert_eq(r.vaddr, 0x20000);
	cr_assert_eq(r.dst_id, 5);
	cr_assert_eq(recv(sp[0], back, 3 * PG, MSG_WAITALL), 3 * PG);
	cr_assert_eq(memcmp(back, pages, 3 * PG), 0);
	q.cmd = VZ_PS_IOV_CLOSE;
	cr_assert_eq(write(sp[0], &q, sizeof(q)), (ssize_t)sizeof(q));
	cr_assert_eq(recv(sp[0], &status, sizeof(status), MSG_WAITALL), (ssize_t)sizeof(status));
	cr_assert_eq(status, 0);
	pthread_join(th, NULL);
	cr_assert_eq(v.ret, 0, "%s", v.err.msg);
	close(sp[0]);

	/* A page never sent: the server fails rather than invent it. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	v.fd = sp[1];
	pthread_create(&th, NULL, serve, &v);
	q.cmd = VZ_PS_IOV_GET;
	q.vaddr = 0x30000;
	cr_assert_eq(write(sp[0], &q, sizeof(q)), (ssize_t)sizeof(q));
	pthread_join(th, NULL);
	cr_assert_lt(v.ret, 0);
	cr_assert(strstr(v.err.msg, "never sent"), "%s", v.err.msg);
	cr_assert_eq(recv(sp[0], &r, sizeof(r), MSG_WAITALL), 0, "connection closed, nothing sent");
	close(sp[0]);
	vz_pstore_free(s);
}
