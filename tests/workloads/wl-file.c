/* wl-file [-d dir] [-n tag]: open files. <base>.dat (1 MiB of a pattern)
 * is kept open read-write with its offset moving; a second file is
 * written and unlinked while open (deleted-but-open); a third is open
 * O_APPEND and grows now and then. Verify: the offset is where it should
 * be, contents match, the deleted file has no links and its contents, the
 * append file has the expected size and still appends. */
#include <getopt.h>

#include "wl.h"

#define DAT   (1 << 20)
#define GHOST (256 << 10)

static struct wl w;

static uint8_t pat(size_t i, int which)
{
	return (uint8_t)((i * 2654435761u) >> (8 + which));
}

static int make_file(const char *path, size_t len, int which, int flags)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | flags, 0644);
	uint8_t buf[4096];

	if (fd < 0)
		return -1;
	for (size_t off = 0; off < len; off += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pat(off + i, which);
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			return -1;
	}
	return fd;
}

static bool same(int fd, size_t len, int which)
{
	uint8_t buf[4096];

	for (size_t off = 0; off < len; off += sizeof(buf)) {
		if (pread(fd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf))
			return false;
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i] != pat(off + i, which))
				return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *tag = NULL;
	char dat[512], ghost[512], app[512];
	int fd, gfd, afd, opt;
	off_t want = 12345;
	off_t app_size = 0;
	uint64_t ticks = 0;

	while ((opt = getopt(argc, argv, "d:n:")) != -1) {
		if (opt == 'd')
			dir = optarg;
		else if (opt == 'n')
			tag = optarg;
		else
			return 2;
	}
	wl_start(&w, "wl-file", tag);
	if (!dir)
		dir = w.dir;
	snprintf(dat, sizeof(dat), "%s/%s.dat", dir, w.base);
	snprintf(ghost, sizeof(ghost), "%s/%s.ghost", dir, w.base);
	snprintf(app, sizeof(app), "%s/%s.log", dir, w.base);
	fd = make_file(dat, DAT, 0, 0);
	gfd = make_file(ghost, GHOST, 3, 0);
	afd = open(app, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (fd < 0 || gfd < 0 || afd < 0 || unlink(ghost) != 0 || lseek(fd, want, SEEK_SET) != want)
		wl_abort(&w, "set up files in %s: %s", dir, strerror(errno));
	wl_ready(&w);
	while (!wl_stop) {
		uint8_t b;

		/* Move the offset: one byte read, wrapping at the end. */
		if (read(fd, &b, 1) != 1 || b != pat((size_t)want, 0))
			wl_fail(&w, "byte at offset %lld is wrong", (long long)want);
		want = want + 1 == DAT ? 0 : want + 1;
		if (want == 0)
			lseek(fd, 0, SEEK_SET);
		if (++ticks % 100 == 0) {
			char line[64];
			int n = snprintf(line, sizeof(line), "tick %llu\n", (unsigned long long)ticks);

			if (write(afd, line, (size_t)n) != n)
				wl_fail(&w, "append failed");
			app_size += n;
		}
		wl_sleep_us(1000);
		if (wl_check_req) {
			struct stat st;
			int fl = fcntl(afd, F_GETFL);

			wl_check_req = 0;
			wl_check_pid(&w);
			if (lseek(fd, 0, SEEK_CUR) != want)
				wl_fail(&w, "offset is %lld, not %lld", (long long)lseek(fd, 0, SEEK_CUR),
					(long long)want);
			if (fstat(fd, &st) != 0 || st.st_size != DAT || !same(fd, DAT, 0))
				wl_fail(&w, "%s changed", dat);
			if (fstat(gfd, &st) != 0 || st.st_nlink != 0 || st.st_size != GHOST || !same(gfd, GHOST, 3))
				wl_fail(&w, "the deleted file changed (links %lu, size %lld)",
					(unsigned long)st.st_nlink, (long long)st.st_size);
			if (fstat(afd, &st) != 0 || st.st_size != app_size)
				wl_fail(&w, "%s has %lld bytes, not %lld", app, (long long)st.st_size,
					(long long)app_size);
			if (fl < 0 || !(fl & O_APPEND))
				wl_fail(&w, "%s lost O_APPEND", app);
			wl_answer(&w);
		}
	}
	return 0;
}
