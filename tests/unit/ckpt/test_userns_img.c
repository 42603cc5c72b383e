/* ckpt/userns_img.c: the user namespace record of CRIU's images, found,
 * read and moved to another range of host ids, byte-compatible with what
 * CRIU writes (magics, length, userns_entry). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "criu_userns.pb-c.h"
#include "userns_img.h"
#include "util.h"

static char dir[64];
static int dfd = -1;

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vz-unit-userns.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dfd, 0);
}

static void teardown(void)
{
	close(dfd);
	vz_rm_rf(dir);
}

/* userns-11.img as CRIU writes it, with one extent per map. */
static void write_image(uint32_t uid_lower, uint32_t gid_lower, uint32_t count)
{
	UidGidExtent u = UID_GID_EXTENT__INIT, g = UID_GID_EXTENT__INIT, *pu = &u, *pg = &g;
	UsernsEntry e = USERNS_ENTRY__INIT;
	uint8_t buf[256];
	uint32_t head[3] = { 0x54564319u, 0x55474906u, 0 };
	char path[128];
	FILE *f;

	u.first = g.first = 0;
	u.lower_first = uid_lower;
	g.lower_first = gid_lower;
	u.count = g.count = count;
	e.n_uid_map = e.n_gid_map = 1;
	e.uid_map = &pu;
	e.gid_map = &pg;
	head[2] = (uint32_t)userns_entry__pack(&e, buf);
	snprintf(path, sizeof(path), "%s/userns-11.img", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fwrite(head, sizeof(head), 1, f);
	fwrite(buf, head[2], 1, f);
	fclose(f);
}

static UsernsEntry *read_image(void)
{
	char path[128];
	uint8_t buf[256];
	uint32_t head[3];
	FILE *f;

	snprintf(path, sizeof(path), "%s/userns-11.img", dir);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fread(head, sizeof(head), 1, f), 1);
	cr_assert_eq(head[0], 0x54564319u);
	cr_assert_eq(head[1], 0x55474906u);
	cr_assert_eq(fread(buf, 1, head[2], f), head[2]);
	fclose(f);
	return userns_entry__unpack(NULL, head[2], buf);
}

TestSuite(userns_img, .init = setup, .fini = teardown);

Test(userns_img, none_without_the_image)
{
	struct vz_err err = { 0 };
	uint32_t id = 7;

	cr_assert_eq(vz_userns_img_root(dfd, &id, &err), 0);
	cr_assert_eq(id, 7);
	cr_assert_lt(vz_userns_img_remap(dfd, 1000000, 1065536, 65536, &err), 0);
	cr_assert(strstr(err.msg, "no user namespace"), "%s", err.msg);
}

Test(userns_img, root_is_the_host_id_of_uid_0)
{
	struct vz_err err = { 0 };
	uint32_t id = 0;

	write_image(1000000, 1000000, 65536);
	cr_assert_eq(vz_userns_img_root(dfd, &id, &err), 1, "%s", err.msg);
	cr_assert_eq(id, 1000000);
}

Test(userns_img, remap_moves_both_maps)
{
	struct vz_err err = { 0 };
	UsernsEntry *e;
	uint32_t id = 0;

	write_image(1000000, 1000000, 65536);
	cr_assert_eq(vz_userns_img_remap(dfd, 1000000, 1131072, 65536, &err), 0, "%s", err.msg);
	e = read_image();
	cr_assert_not_null(e);
	cr_assert_eq(e->uid_map[0]->lower_first, 1131072);
	cr_assert_eq(e->gid_map[0]->lower_first, 1131072);
	cr_assert_eq(e->uid_map[0]->count, 65536);
	cr_assert_eq(e->uid_map[0]->first, 0);
	userns_entry__free_unpacked(e, NULL);
	cr_assert_eq(vz_userns_img_root(dfd, &id, &err), 1);
	cr_assert_eq(id, 1131072);
}

Test(userns_img, an_extent_outside_the_range_is_refused)
{
	struct vz_err err = { 0 };
	UsernsEntry *e;

	/* The host's own ids (a VE sharing the host's namespace would map
	 * 0..4294967294): nothing to move, and nothing is changed. */
	write_image(0, 0, 4294967295u);
	cr_assert_lt(vz_userns_img_remap(dfd, 1000000, 1065536, 65536, &err), 0);
	cr_assert(strstr(err.msg, "outside the VE's range"), "%s", err.msg);
	e = read_image();
	cr_assert_eq(e->uid_map[0]->lower_first, 0);
	userns_entry__free_unpacked(e, NULL);
}

Test(userns_img, a_truncated_image_is_an_error)
{
	struct vz_err err = { 0 };
	char path[128];
	uint32_t id;

	write_image(1000000, 1000000, 65536);
	snprintf(path, sizeof(path), "%s/userns-11.img", dir);
	cr_assert_eq(truncate(path, 14), 0);
	cr_assert_lt(vz_userns_img_root(dfd, &id, &err), 0);
	cr_assert(strstr(err.msg, "cut short"), "%s", err.msg);
}

Test(userns_img, own_lets_the_group_of_the_id_read)
{
	struct vz_err err = { 0 };
	struct stat st;
	char path[128];

	write_image(1000000, 1000000, 65536);
	cr_assert_eq(vz_userns_img_own(dfd, 1000000, &err), 0, "%s", err.msg);
	snprintf(path, sizeof(path), "%s/userns-11.img", dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_uid, 0);
	cr_assert_eq(st.st_gid, 1000000);
	cr_assert(st.st_mode & S_IRGRP);
	cr_assert_eq(fstat(dfd, &st), 0);
	cr_assert_eq(st.st_uid, 0);
	cr_assert_eq(st.st_gid, 1000000);
	cr_assert_eq(st.st_mode & (S_IRGRP | S_IXGRP), S_IRGRP | S_IXGRP);
}
