/* agent/migrate/files.c, sender and receiver together over a socket pair:
 * hard links survive a pass, and later passes link new names of inodes sent
 * before, delete names that went and give a replaced name its own inode. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate/migrate_int.h"
#include "util.h"

static char src[64], dst[64];
static struct mig_fstate *st;
static struct mig_recv *r;

static void setup(void)
{
	struct vz_err err = { 0 };

	snprintf(src, sizeof(src), "/tmp/vz-unit-src.XXXXXX");
	snprintf(dst, sizeof(dst), "/tmp/vz-unit-dst.XXXXXX");
	cr_assert(mkdtemp(src));
	cr_assert(mkdtemp(dst));
	r = mig_recv_new(dst, &err);
	cr_assert(r, "%s", err.msg);
}

static void teardown(void)
{
	mig_recv_free(r);
	mig_fstate_free(st);
	vz_rm_rf(src);
	vz_rm_rf(dst);
}

static void *receive(void *arg)
{
	struct vz_conn *c = arg;
	struct vz_err err = { 0 };
	intptr_t ret = 0;

	for (;;) {
		mig_msg *m = NULL;

		ret = vz_msg_recv(c, &vz__migrate__msg__descriptor, VZ_MSG_MAX, (ProtobufCMessage **)&m, &err);
		if (ret < 0)
			break;
		if (m->type == VZ__MIGRATE__TYPE__T_PASS_END) {
			protobuf_c_message_free_unpacked(&m->base, NULL);
			mig_recv_pass_end(r);
			break;
		}
		ret = mig_recv_msg(r, m, &err);
		protobuf_c_message_free_unpacked(&m->base, NULL);
		if (ret < 0) {
			fprintf(stderr, "receiver: %s\n", err.msg);
			break;
		}
	}
	return (void *)ret;
}

static void pass(void)
{
	struct vz_conn a, b;
	struct vz_err err = { 0 };
	struct mig_pass_stats ps;
	pthread_t t;
	void *res;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	vz_conn_plain(&a, sv[0]);
	vz_conn_plain(&b, sv[1]);
	cr_assert_eq(pthread_create(&t, NULL, receive, &b), 0);
	cr_assert_eq(mig_files_send(&a, src, &st, &ps, NULL, NULL, &err), 0, "%s", err.msg);
	pthread_join(t, &res);
	cr_assert_eq((intptr_t)res, 0);
	vz_conn_close(&a);
	vz_conn_close(&b);
}

static void put(const char *rel, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", src, rel);
	f = fopen(p, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
}

static void ln(const char *from, const char *to)
{
	char a[256], b[256];

	snprintf(a, sizeof(a), "%s/%s", src, from);
	snprintf(b, sizeof(b), "%s/%s", src, to);
	cr_assert_eq(link(a, b), 0, "link %s %s", from, to);
}

static struct stat at(const char *rel)
{
	char p[256];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", dst, rel);
	cr_assert_eq(lstat(p, &sb), 0, "no %s on the destination", rel);
	return sb;
}

static bool has(const char *rel, const char *text)
{
	char p[256], buf[64] = "";
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dst, rel);
	f = fopen(p, "r");
	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return !strcmp(buf, text);
}

TestSuite(mig_passes, .init = setup, .fini = teardown);

Test(mig_passes, hard_links_across_passes)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/d", src);
	cr_assert_eq(mkdir(p, 0755), 0);
	put("a", "hello");
	ln("a", "d/b");
	put("c", "single");
	pass();
	cr_assert_eq(at("a").st_ino, at("d/b").st_ino);
	cr_assert_eq(at("a").st_nlink, 2);
	cr_assert(has("d/b", "hello"));
	cr_assert_eq(at("c").st_nlink, 1);

	/* A new name of an inode the last pass sent with one link, a new name
	 * of a linked one, one name gone, one changed through a link. */
	ln("c", "e");
	ln("a", "f");
	snprintf(p, sizeof(p), "%s/d/b", src);
	cr_assert_eq(unlink(p), 0);
	put("f", "HELLO");
	pass();
	cr_assert_eq(at("c").st_ino, at("e").st_ino);
	cr_assert_eq(at("c").st_nlink, 2);
	cr_assert(has("e", "single"));
	cr_assert_eq(at("a").st_ino, at("f").st_ino);
	cr_assert_eq(at("a").st_nlink, 2);
	cr_assert(has("a", "HELLO"));
	snprintf(p, sizeof(p), "%s/d/b", dst);
	cr_assert_eq(access(p, F_OK), -1);

	/* a replaced by another file: f keeps the old inode and its data. */
	put("new", "world");
	{
		char o[256];

		snprintf(o, sizeof(o), "%s/new", src);
		snprintf(p, sizeof(p), "%s/a", src);
		cr_assert_eq(rename(o, p), 0);
	}
	pass();
	cr_assert_neq(at("a").st_ino, at("f").st_ino);
	cr_assert(has("a", "world"));
	cr_assert(has("f", "HELLO"));
	cr_assert_eq(at("f").st_nlink, 1);

	/* Nothing changed: nothing but the pass's end goes. */
	pass();
	cr_assert(has("a", "world"));
	cr_assert(has("e", "single"));
}
