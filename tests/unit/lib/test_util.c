/* lib/util.c: parsing of numbers, VEIDs and sizes; processes; files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "err.h"
#include "frame.h"
#include "util.h"

Test(util, parse_veid)
{
	unsigned v;

	cr_assert_eq(vz_parse_veid("101", &v), 0);
	cr_assert_eq(v, 101);
	cr_assert_lt(vz_parse_veid("0", &v), 0);
	cr_assert_lt(vz_parse_veid("-1", &v), 0);
	cr_assert_lt(vz_parse_veid("10a", &v), 0);
	cr_assert_lt(vz_parse_veid("", &v), 0);
	cr_assert_lt(vz_parse_veid(" 1", &v), 0);
	cr_assert_lt(vz_parse_veid("2147483648", &v), 0);
}

Test(util, parse_size_suffixes_pages_and_unlimited)
{
	uint64_t b;

	cr_assert_eq(vz_parse_size("256M", 1, &b), 0);
	cr_assert_eq(b, 256ULL << 20);
	cr_assert_eq(vz_parse_size("1G", 1, &b), 0);
	cr_assert_eq(b, 1ULL << 30);
	cr_assert_eq(vz_parse_size("4k", 1, &b), 0);
	cr_assert_eq(b, 4096);
	cr_assert_eq(vz_parse_size("10", 4096, &b), 0);
	cr_assert_eq(b, 40960);
	cr_assert_eq(vz_parse_size("unlimited", 1, &b), 0);
	cr_assert_eq(b, UINT64_MAX);
	cr_assert_lt(vz_parse_size("banana", 1, &b), 0);
	cr_assert_lt(vz_parse_size("-5", 1, &b), 0);
	cr_assert_lt(vz_parse_size("5X", 1, &b), 0);
	cr_assert_lt(vz_parse_size("99999999999999999999", 1, &b), 0);
	cr_assert_lt(vz_parse_size("20000000000000T", 1, &b), 0);
}

Test(util, run_captures_output_and_status)
{
	char *out = NULL;
	char *const ok[] = { "sh", "-c", "echo one; echo two >&2; exit 3", NULL };
	char *const missing[] = { "/nonexistent/prog", NULL };
	struct vz_err err = { 0 };

	cr_assert_eq(vz_run(ok, &out), 3);
	cr_assert_str_eq(out, "one\ntwo\n");
	free(out);
	cr_assert_eq(vz_run(missing, NULL), 127);
	cr_assert_lt(vz_run_checked(ok, &err), 0);
	cr_assert(strstr(err.msg, "status 3") && strstr(err.msg, "two"), "%s", err.msg);
}

Test(util, rm_rf_removes_a_tree_but_not_through_symlinks)
{
	char dir[] = "/tmp/vzrm.XXXXXX", keep[] = "/tmp/vzkeep.XXXXXX", p[256];

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_not_null(mkdtemp(keep));
	snprintf(p, sizeof(p), "%s/a/b/c", dir);
	cr_assert_eq(vz_mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/a/link", dir);
	cr_assert_eq(symlink(keep, p), 0);
	cr_assert_eq(vz_rm_rf(dir), 0);
	cr_assert_not(vz_exists(dir));
	cr_assert(vz_exists(keep));
	rmdir(keep);
}

Test(util, grow_keeps_elements_and_doubles_from_first)
{
	int *a = NULL;
	size_t cap = 0;

	cr_assert_eq(vz_grow((void **)&a, &cap, 0, sizeof(*a), 4), 0);
	cr_assert_eq(cap, 4);
	for (int i = 0; i < 4; i++)
		a[i] = i;
	cr_assert_eq(vz_grow((void **)&a, &cap, 3, sizeof(*a), 4), 0);
	cr_assert_eq(cap, 4, "index 3 fits: no growth");
	cr_assert_eq(vz_grow((void **)&a, &cap, 9, sizeof(*a), 4), 0);
	cr_assert_eq(cap, 16, "index 9 needs two doublings");
	for (int i = 0; i < 4; i++)
		cr_assert_eq(a[i], i);
	free(a);
}

Test(util, write_all_writes_everything)
{
	char path[] = "/tmp/vz-wa-XXXXXX", buf[300000], *back = NULL;
	size_t len = 0;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)('a' + i % 26);
	cr_assert_eq(vz_write_all(fd, buf, sizeof(buf)), 0);
	close(fd);
	cr_assert_eq(vz_read_file(path, &back, &len, 1 << 20), 0);
	cr_assert_eq(len, sizeof(buf));
	cr_assert_eq(memcmp(back, buf, len), 0);
	cr_assert_eq(vz_write_all(-1, buf, 1), -EBADF);
	free(back);
	unlink(path);
}

Test(frame, header_caps_length)
{
	const uint8_t ok[4] = { 0, 0, 1, 0 }, big[4] = { 0xff, 0xff, 0xff, 0xff };
	uint32_t len;

	cr_assert_eq(vz_frame_parse_header(ok, 4096, &len), 0);
	cr_assert_eq(len, 256);
	cr_assert_eq(vz_frame_parse_header(big, 1 << 20, &len), -EMSGSIZE);
}

/* du counts blocks: a written file's, not a sparse file's length; it
 * does not follow a symlink out of the tree. */
Test(util, du_counts_blocks_of_the_tree)
{
	char dir[] = "/tmp/vz-du-XXXXXX", path[64], big[64];
	static char buf[256 << 10];
	uint64_t bytes = 0, empty = 0;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(vz_du(dir, &empty), 0);
	snprintf(path, sizeof(path), "%s/data", dir);
	memset(buf, 'x', sizeof(buf));
	cr_assert_eq(vz_write_file(path, buf, sizeof(buf), 0), 0);
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	fsync(fd);
	close(fd);
	snprintf(big, sizeof(big), "%s/sparse", dir);
	fd = open(big, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 64 << 20), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/link", dir);
	cr_assert_eq(symlink("/usr", path), 0);
	cr_assert_eq(vz_du(dir, &bytes), 0);
	cr_assert_geq(bytes, empty + sizeof(buf));
	cr_assert_lt(bytes, empty + sizeof(buf) + (1 << 20), "a sparse file or /usr was counted: %llu",
		     (unsigned long long)bytes);
	cr_assert_eq(vz_rm_rf(dir), 0);
}

/* Entries of dir other than the one named keep: none may be left over. */
static int others_in(const char *dir, const char *keep)
{
	char cmd[256], *out = NULL;
	char *argv[] = { "sh", "-c", cmd, NULL };
	int n;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -vx '%s' | wc -l", dir, keep);
	cr_assert_eq(vz_run(argv, &out), 0);
	n = atoi(out);
	free(out);
	return n;
}

Test(util, write_file_replace_swaps_the_whole_file_and_leaves_no_temporary)
{
	char dir[] = "/tmp/vz-wr-XXXXXX", path[64], *text = NULL;
	struct stat st;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/rec", dir);
	cr_assert_eq(vz_write_file_replace(path, "a long first line\n", 18, 0600, false), 0);
	cr_assert_eq(vz_write_file_replace(path, "two\n", 4, 0640, true), 0);
	cr_assert_eq(vz_read_file(path, &text, NULL, 64), 0);
	cr_assert_str_eq(text, "two\n");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0640);
	cr_assert_eq(others_in(dir, "rec"), 0);
	free(text);
	cr_assert_eq(vz_rm_rf(dir), 0);
}

Test(util, write_file_excl_never_replaces_and_leaves_no_temporary)
{
	char dir[] = "/tmp/vz-wx-XXXXXX", path[64], *text = NULL;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/decision", dir);
	cr_assert_eq(vz_write_file_excl(path, "go\n", 3, 0600), 0);
	cr_assert_eq(vz_write_file_excl(path, "abort\n", 6, 0600), -EEXIST);
	cr_assert_eq(vz_read_file(path, &text, NULL, 64), 0);
	cr_assert_str_eq(text, "go\n");
	cr_assert_eq(others_in(dir, "decision"), 0);
	free(text);
	snprintf(path, sizeof(path), "%s/no/such/dir", dir);
	cr_assert_eq(vz_write_file_excl(path, "go\n", 3, 0600), -ENOENT);
	cr_assert_eq(vz_rm_rf(dir), 0);
}

/* A reader that acts the moment the file is there (as the page stream
 * does on a migration's decision) reads it whole, every time: an
 * O_CREAT | O_EXCL file is there, empty, before its line is written. */
Test(util, write_file_excl_is_never_seen_half_written)
{
	char dir[] = "/tmp/vz-wh-XXXXXX", path[64];
	int rounds = 300, pfd[2];
	pid_t reader;
	char verdict = 0;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(pipe(pfd), 0);
	reader = fork();
	cr_assert_geq(reader, 0);
	if (reader == 0) {
		char bad = 0;

		for (int i = 0; i < rounds; i++) {
			char p[64], buf[8] = { 0 };
			int fd;

			snprintf(p, sizeof(p), "%s/d%d", dir, i);
			while ((fd = open(p, O_RDONLY)) < 0)
				;
			if (read(fd, buf, sizeof(buf)) != 3)
				bad = 1;
			close(fd);
		}
		_exit(write(pfd[1], bad ? "b" : "g", 1) == 1 ? 0 : 1);
	}
	for (int i = 0; i < rounds; i++) {
		snprintf(path, sizeof(path), "%s/d%d", dir, i);
		cr_assert_eq(vz_write_file_excl(path, "go\n", 3, 0600), 0);
	}
	cr_assert_eq(read(pfd[0], &verdict, 1), 1);
	waitpid(reader, NULL, 0);
	cr_assert_eq(verdict, 'g', "the reader found a decision file before its contents");
	cr_assert_eq(vz_rm_rf(dir), 0);
}
