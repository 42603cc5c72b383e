/* ckpt/imgstream.c and ckpt/dumpfile.c: image directories to a stream and
 * back, and the dump file's header and checks. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dumpfile.h"
#include "imgstream.h"
#include "util.h"

static char tmp[64];

static void mk_tmp(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/vz-unit-ckpt.XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
}

static void rm_tmp(void)
{
	vz_rm_rf(tmp);
}

static int open_dir(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	mkdir(path, 0700);
	return open(path, O_RDONLY | O_DIRECTORY);
}

static void put(int dir, const char *name, size_t len, unsigned seed)
{
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC, 0640);
	char *buf = malloc(len + 1);

	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(i * seed + seed);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
}

static bool same_file(int a, int b, const char *name)
{
	char pa[256], pb[256];
	char *x = NULL, *y = NULL;
	size_t lx = 0, ly = 0;
	bool eq;

	snprintf(pa, sizeof(pa), "/proc/self/fd/%d/%s", a, name);
	snprintf(pb, sizeof(pb), "/proc/self/fd/%d/%s", b, name);
	if (vz_read_file(pa, &x, &lx, 1 << 26) < 0 || vz_read_file(pb, &y, &ly, 1 << 26) < 0)
		return false;
	eq = lx == ly && !memcmp(x, y, lx);
	free(x);
	free(y);
	return eq;
}

struct membuf {
	uint8_t *p;
	size_t len, cap;
};

static int mem_sink(void *arg, const void *buf, size_t len, struct vz_err *err)
{
	struct membuf *m = arg;

	(void)err;
	if (m->len + len > m->cap) {
		m->cap = (m->len + len) * 2;
		m->p = realloc(m->p, m->cap);
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

TestSuite(imgstream, .init = mk_tmp, .fini = rm_tmp);

Test(imgstream, round_trip_keeps_every_file_byte_for_byte)
{
	int src = open_dir("src"), dst = open_dir("dst");
	struct vz_img_stats st, ust;
	struct membuf m = { 0 };
	struct vz_err err = { 0 };
	struct vz_img_unpacker *u;
	struct stat sb;

	put(src, "core-1.img", 5000, 3);
	put(src, "pages-1.img", 3 << 20, 7);
	put(src, "empty.img", 0, 1);
	cr_assert_eq(vz_img_pack(src, 3, mem_sink, &m, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(st.nfiles, 3);
	cr_assert_eq(st.raw_bytes, 5000 + (3 << 20));
	cr_assert_eq(st.wire_bytes, m.len);
	u = vz_img_unpacker_new(dst, st.raw_bytes, &err);
	/* Feed in odd-sized pieces: records straddle every boundary. */
	for (size_t off = 0; off < m.len; off += 777)
		cr_assert_eq(vz_img_unpacker_feed(u, m.p + off, m.len - off < 777 ? m.len - off : 777, &err), 0, "%s",
			     err.msg);
	cr_assert_eq(vz_img_unpacker_finish(u, &ust, &err), 0, "%s", err.msg);
	vz_img_unpacker_free(u);
	cr_assert_eq(ust.nfiles, 3);
	cr_assert(same_file(src, dst, "core-1.img"));
	cr_assert(same_file(src, dst, "pages-1.img"));
	cr_assert(same_file(src, dst, "empty.img"));
	cr_assert_eq(fstatat(dst, "core-1.img", &sb, 0), 0);
	cr_assert_eq(sb.st_mode & 0777, 0640);
	free(m.p);
}

Test(imgstream, a_stream_cut_short_is_refused)
{
	int src = open_dir("src"), dst = open_dir("dst");
	struct vz_img_stats st;
	struct membuf m = { 0 };
	struct vz_err err = { 0 };
	struct vz_img_unpacker *u;

	put(src, "a.img", 100000, 5);
	cr_assert_eq(vz_img_pack(src, 3, mem_sink, &m, &st, &err), 0);
	u = vz_img_unpacker_new(dst, 1 << 20, &err);
	cr_assert_eq(vz_img_unpacker_feed(u, m.p, m.len - 10, &err), 0, "%s", err.msg);
	cr_assert_lt(vz_img_unpacker_finish(u, NULL, &err), 0);
	cr_assert(strstr(err.msg, "ends early"), "%s", err.msg);
	vz_img_unpacker_free(u);
	free(m.p);
}

Test(imgstream, more_than_the_cap_is_refused)
{
	int src = open_dir("src"), dst = open_dir("dst");
	struct vz_img_stats st;
	struct membuf m = { 0 };
	struct vz_err err = { 0 };
	struct vz_img_unpacker *u;

	put(src, "big.img", 1 << 20, 9);
	cr_assert_eq(vz_img_pack(src, 3, mem_sink, &m, &st, &err), 0);
	u = vz_img_unpacker_new(dst, 1000, &err);
	cr_assert_lt(vz_img_unpacker_feed(u, m.p, m.len, &err), 0);
	cr_assert(strstr(err.msg, "larger than"), "%s", err.msg);
	vz_img_unpacker_free(u);
	free(m.p);
}

/* Raw (uncompressed) records straight into the parser. */
static int parse_raw(const uint8_t *buf, size_t len, struct vz_err *err)
{
	static const struct vz_img_ops none = { 0 };
	struct vz_img_parser *p = vz_img_parser_new(1 << 20, &none, NULL);
	int ret = vz_img_parser_feed(p, buf, len, err);

	if (ret == 0 && !vz_img_parser_done(p))
		ret = -1;
	vz_img_parser_free(p);
	return ret;
}

Test(imgstream, names_that_could_leave_the_directory_are_refused)
{
	const char *bad[] = { "..", ".", "a/b", "../etc", "x y" };
	struct vz_err err = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t rec[64] = { 'V', 'Z', 'I', 'M', 'G', 0, 0, 1, 1, 0 };
		size_t nl = strlen(bad[i]), n = 11;

		rec[10] = (uint8_t)nl;
		memcpy(rec + n, bad[i], nl);
		n += nl;
		memset(rec + n, 0, 12); /* mode 0, size 0 */
		n += 12;
		rec[n++] = 2;
		memset(rec + n, 0, 12);
		n += 12;
		cr_assert_lt(parse_raw(rec, n, &err), 0, "%s accepted", bad[i]);
		cr_assert(strstr(err.msg, "not allowed"), "%s: %s", bad[i], err.msg);
	}
}

Test(imgstream, an_end_record_that_lies_is_refused)
{
	/* One empty file "a", then an end record claiming two files. */
	uint8_t rec[] = { 'V', 'Z', 'I', 'M', 'G', 0, 0, 1, 1, 0, 1, 'a', 0, 0, 1, 0x80, 0, 0, 0,
			  0,   0,   0,	 0,   0,   2, 0, 0, 0, 2, 0, 0,	  0, 0, 0, 0,	 0, 0 };
	struct vz_err err = { 0 };

	cr_assert_lt(parse_raw(rec, sizeof(rec), &err), 0);
	cr_assert(strstr(err.msg, "does not match"), "%s", err.msg);
	rec[28] = 1; /* now right: one file */
	cr_assert_eq(parse_raw(rec, sizeof(rec), &err), 0, "%s", err.msg);
}

TestSuite(dumpfile, .init = mk_tmp, .fini = rm_tmp);

Test(dumpfile, header_round_trips_and_rejects_garbage)
{
	struct vz_dump_hdr h = { .veid = 101,
				 .created = 12345,
				 .payload_bytes = 99,
				 .image_bytes = 1000,
				 .nfiles = 4,
				 .criu_version = "4.2.1",
				 .kernel = "6.18.0",
				 .machine = "x86_64" };
	struct vz_dump_hdr back;
	struct vz_err err = { 0 };
	uint8_t buf[VZ_DUMP_HDR_SIZE];

	memset(h.sha256, 0xab, sizeof(h.sha256));
	vz_dump_hdr_format(&h, buf);
	cr_assert_eq(vz_dump_hdr_parse(buf, sizeof(buf), &back, &err), 0, "%s", err.msg);
	cr_assert_eq(back.veid, 101);
	cr_assert_eq(back.payload_bytes, 99);
	cr_assert_str_eq(back.criu_version, "4.2.1");
	cr_assert_str_eq(back.kernel, "6.18.0");
	cr_assert_eq(memcmp(back.sha256, h.sha256, 32), 0);
	buf[0] = 'X';
	cr_assert_lt(vz_dump_hdr_parse(buf, sizeof(buf), &back, &err), 0);
	buf[0] = 'V';
	buf[9] = 2; /* version 2 */
	cr_assert_lt(vz_dump_hdr_parse(buf, sizeof(buf), &back, &err), 0);
	cr_assert(strstr(err.msg, "version 2"), "%s", err.msg);
	buf[9] = 1;
	buf[200] = 1; /* reserved */
	cr_assert_lt(vz_dump_hdr_parse(buf, sizeof(buf), &back, &err), 0);
	buf[200] = 0;
	memset(buf + 48, 'A', 16); /* unterminated string */
	cr_assert_lt(vz_dump_hdr_parse(buf, sizeof(buf), &back, &err), 0);
	cr_assert_lt(vz_dump_hdr_parse(buf, 100, &back, &err), 0);
}

Test(dumpfile, version_compare)
{
	cr_assert_gt(vz_version_cmp("4.2.1", "4.2"), 0);
	cr_assert_eq(vz_version_cmp("4.2", "4.2.0"), 0);
	cr_assert_lt(vz_version_cmp("4.1.1", "4.2"), 0);
	cr_assert_gt(vz_version_cmp("10.0", "9.9.9"), 0);
}

Test(dumpfile, verify_finds_every_kind_of_damage)
{
	int src = open_dir("img"), dst = open_dir("out");
	struct vz_criu_version ours = { 4, 2, 1, "4.2.1" }, old = { 4, 1, 0, "4.1" };
	struct vz_dump_hdr h = { .veid = 101, .criu_version = "4.2.1" }, got;
	struct vz_img_stats st;
	struct vz_err err = { 0 };
	char path[128], cmd[512];
	int fd;

	put(src, "pages-1.img", 200000, 11);
	put(src, "core-1.img", 3000, 13);
	snprintf(path, sizeof(path), "%s/Dump.101", tmp);
	cr_assert_eq(vz_dumpfile_write(path, src, &h, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(vz_dumpfile_verify(path, 101, &ours, &got, &err), 0, "%s", err.msg);
	cr_assert_eq(got.nfiles, 2);
	cr_assert_eq(vz_dumpfile_unpack(path, dst, &st, &err), 0, "%s", err.msg);
	cr_assert(same_file(src, dst, "pages-1.img"));

	/* Another VE's, or a newer CRIU's. */
	cr_assert_lt(vz_dumpfile_verify(path, 102, &ours, &got, &err), 0);
	cr_assert(strstr(err.msg, "holds VE 101, not VE 102"), "%s", err.msg);
	cr_assert_lt(vz_dumpfile_verify(path, 101, &old, &got, &err), 0);
	cr_assert(strstr(err.msg, "newer than this host's 4.1"), "%s", err.msg);

	/* One byte flipped in the payload, then in the header's kernel. */
	fd = open(path, O_RDWR);
	cr_assert_eq(pwrite(fd, "\x01", 1, VZ_DUMP_HDR_SIZE + 40), 1);
	cr_assert_lt(vz_dumpfile_verify(path, 101, &ours, &got, &err), 0);
	cr_assert(strstr(err.msg, "checksum does not match"), "%s", err.msg);
	cr_assert_eq(vz_dumpfile_write(path, src, &h, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(pwrite(fd, "Z", 1, 64), 1); /* the old inode: rewrite below */
	close(fd);
	fd = open(path, O_RDWR);
	cr_assert_eq(pwrite(fd, "Z", 1, 64), 1);
	cr_assert_lt(vz_dumpfile_verify(path, 101, &ours, &got, &err), 0);
	cr_assert(strstr(err.msg, "checksum does not match"), "%s", err.msg);

	/* Cut short, and with something appended. */
	cr_assert_eq(vz_dumpfile_write(path, src, &h, &st, &err), 0, "%s", err.msg);
	snprintf(cmd, sizeof(cmd), "truncate -s -1 %s", path);
	cr_assert_eq(system(cmd), 0);
	cr_assert_lt(vz_dumpfile_verify(path, 101, &ours, &got, &err), 0);
	cr_assert(strstr(err.msg, "truncated"), "%s", err.msg);
	snprintf(cmd, sizeof(cmd), "truncate -s +2 %s", path);
	cr_assert_eq(system(cmd), 0);
	cr_assert_lt(vz_dumpfile_verify(path, 101, &ours, &got, &err), 0);
	cr_assert(strstr(err.msg, "data after its end"), "%s", err.msg);
	close(fd);
}

Test(dumpfile, a_failed_write_leaves_no_file)
{
	int src = open_dir("img");
	struct vz_dump_hdr h = { .veid = 7, .criu_version = "4.2" };
	struct vz_img_stats st;
	struct vz_err err = { 0 };
	char path[128];

	put(src, "a.img", 10, 1);
	snprintf(path, sizeof(path), "%s/no-such-dir/Dump.7", tmp);
	cr_assert_lt(vz_dumpfile_write(path, src, &h, &st, &err), 0);
	cr_assert(strstr(err.msg, "Create"), "%s", err.msg);
	snprintf(path, sizeof(path), "%s/Dump.7", tmp);
	cr_assert_eq(vz_exists(path), 0);
}
