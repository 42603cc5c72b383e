/* agent/migrate/files.c, the receiver: a FILE with link= makes a hard link
 * beneath the private area, replacing what is at its name, and refuses
 * targets that would leave it; a file sent afresh gets its own inode. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate/migrate_int.h"
#include "util.h"

static char root[64];
static struct mig_recv *r;

static void setup(void)
{
	struct vz_err err = { 0 };

	snprintf(root, sizeof(root), "/tmp/vz-unit-links.XXXXXX");
	cr_assert(mkdtemp(root));
	r = mig_recv_new(root, &err);
	cr_assert(r, "%s", err.msg);
}

static void teardown(void)
{
	mig_recv_free(r);
	vz_rm_rf(root);
}

static int file(const char *path, const char *link, bool delta)
{
	struct vz_err err = { 0 };
	mig_msg m = VZ__MIGRATE__MSG__INIT, end = VZ__MIGRATE__MSG__INIT;
	Vz__Migrate__FileMeta f = VZ__MIGRATE__FILE_META__INIT;
	int ret;

	f.path = (char *)path;
	f.type = VZ__MIGRATE__FILE_TYPE__F_REG;
	f.has_mode = f.has_size = true;
	f.mode = 0644;
	f.link = (char *)link;
	f.has_delta = f.delta = delta;
	m.type = VZ__MIGRATE__TYPE__T_FILE;
	m.file = &f;
	ret = mig_recv_msg(r, &m, &err);
	if (ret < 0 || link)
		return ret;
	end.type = VZ__MIGRATE__TYPE__T_FILE_END;
	return mig_recv_msg(r, &end, &err);
}

static struct stat at(const char *rel)
{
	char p[256];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	cr_assert_eq(lstat(p, &sb), 0, "no %s", rel);
	return sb;
}

static void put(const char *rel, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	f = fopen(p, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
}

TestSuite(mig_links, .init = setup, .fini = teardown);

Test(mig_links, a_later_name_shares_the_inode)
{
	struct stat a, b;

	cr_assert_eq(file("a", NULL, false), 0);
	put("b", "in the way");
	cr_assert_eq(file("b", "a", false), 0);
	a = at("a");
	b = at("b");
	cr_assert_eq(a.st_ino, b.st_ino);
	cr_assert_eq(a.st_nlink, 2);
	/* Again: linked already, nothing changes. */
	cr_assert_eq(file("b", "a", false), 0);
	cr_assert_eq(at("a").st_nlink, 2);
}

Test(mig_links, a_file_sent_afresh_leaves_the_link)
{
	cr_assert_eq(file("a", NULL, false), 0);
	cr_assert_eq(file("b", "a", false), 0);
	put("a", "kept");
	cr_assert_eq(file("b", NULL, false), 0);
	cr_assert_neq(at("a").st_ino, at("b").st_ino);
	cr_assert_eq(at("a").st_size, 4);
	cr_assert_eq(at("b").st_size, 0);
}

Test(mig_links, refuses_targets_outside_the_private_area)
{
	char p[256];

	cr_assert_eq(file("a", NULL, false), 0);
	cr_assert_lt(file("b", "../etc/passwd", false), 0);
	cr_assert_lt(file("b", "/etc/passwd", false), 0);
	cr_assert_lt(file("../b", "a", false), 0);
	/* Through a symlink to a directory outside. */
	snprintf(p, sizeof(p), "%s/out", root);
	cr_assert_eq(symlink("/etc", p), 0);
	cr_assert_lt(file("b", "out/passwd", false), 0);
	/* A symlink as the target itself. */
	cr_assert_lt(file("b", "out", false), 0);
	cr_assert_eq(access(strcat(strcpy(p, root), "/b"), F_OK), -1);
}
