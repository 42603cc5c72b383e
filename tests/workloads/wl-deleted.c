/* wl-deleted [-n tag]: files open in a directory that was removed. Two
 * files are made in <base>.d under $WL_DIR: "data" (4 MiB of a pattern)
 * and "linked" (64 KiB), which also has a hard link <base>.keep outside
 * the directory. Both are opened, their names in <base>.d unlinked and
 * the directory removed: "data" has no link left (CRIU copies such a
 * file, a ghost), "linked" has one elsewhere but not under the name it
 * was opened by (CRIU must link-remap it). The workload keeps reading
 * "data" a byte at a time, its offset moving, and rewrites one counter
 * byte at its end. Verify: each descriptor still names a deleted file,
 * with no link ("data") or one ("linked"), its size and contents as
 * written, the offsets where they were left, and reads go on. */
#include <getopt.h>

#include "wl.h"

/* Above CRIU's ghost limit (1 MiB): it must link-remap, not copy. */
#define LEN  (4 << 20)
#define LLEN (64 << 10)

static struct wl w;

static uint8_t pat(size_t i)
{
	return (uint8_t)((i * 2654435761u) >> 11);
}

static bool same(int fd, uint8_t counter)
{
	uint8_t buf[4096];

	for (size_t off = 0; off < LEN; off += sizeof(buf)) {
		if (pread(fd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf))
			return false;
		for (size_t i = 0; i < sizeof(buf); i++) {
			uint8_t want = off + i == LEN - 1 ? counter : pat(off + i);

			if (buf[i] != want)
				return false;
		}
	}
	return true;
}

int main(int argc, char **argv)
{
	char dir[512], path[600], lpath[600], keep[600], fdlink[64], target[700];
	uint8_t buf[4096], counter = pat(LEN - 1);
	off_t want = 4321;
	int fd, lfd;
	off_t lwant = 777;

	wl_start_args(&w, "wl-deleted", argc, argv);
	snprintf(dir, sizeof(dir), "%s/%s.d", w.dir, w.base);
	snprintf(path, sizeof(path), "%s/data", dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		wl_abort(&w, "mkdir %s: %s", dir, strerror(errno));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		wl_abort(&w, "open %s: %s", path, strerror(errno));
	for (size_t off = 0; off < LEN; off += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pat(off + i);
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			wl_abort(&w, "write %s: %s", path, strerror(errno));
	}
	snprintf(lpath, sizeof(lpath), "%s/linked", dir);
	snprintf(keep, sizeof(keep), "%s/%s.keep", w.dir, w.base);
	lfd = open(lpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	for (size_t off = 0; lfd >= 0 && off < LLEN; off += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pat(off + i + 1);
		if (write(lfd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			wl_abort(&w, "write %s: %s", lpath, strerror(errno));
	}
	unlink(keep);
	if (lfd < 0 || link(lpath, keep) != 0 || unlink(lpath) != 0 || lseek(lfd, lwant, SEEK_SET) != lwant)
		wl_abort(&w, "set up %s: %s", lpath, strerror(errno));
	if (unlink(path) != 0 || rmdir(dir) != 0 || lseek(fd, want, SEEK_SET) != want)
		wl_abort(&w, "remove %s: %s", dir, strerror(errno));
	snprintf(fdlink, sizeof(fdlink), "/proc/self/fd/%d", fd);
	wl_ready(&w);
	while (!wl_stop) {
		uint8_t b;

		if (read(fd, &b, 1) != 1 || b != (want == LEN - 1 ? counter : pat((size_t)want)))
			wl_fail(&w, "byte at offset %lld is wrong", (long long)want);
		want++;
		if (want == LEN) {
			want = 0;
			lseek(fd, 0, SEEK_SET);
			counter++;
			if (pwrite(fd, &counter, 1, LEN - 1) != 1)
				wl_fail(&w, "rewrite the counter byte: %s", strerror(errno));
		}
		wl_sleep_us(1000);
		if (wl_check_req) {
			struct stat st;
			ssize_t n = readlink(fdlink, target, sizeof(target) - 1);

			wl_check_req = 0;
			wl_check_pid(&w);
			target[n > 0 ? n : 0] = '\0';
			if (lseek(fd, 0, SEEK_CUR) != want)
				wl_fail(&w, "offset is %lld, not %lld", (long long)lseek(fd, 0, SEEK_CUR),
					(long long)want);
			if (fstat(fd, &st) != 0 || st.st_nlink != 0 || st.st_size != LEN)
				wl_fail(&w, "the deleted file has %lu links and %lld bytes", (unsigned long)st.st_nlink,
					(long long)st.st_size);
			else if (!same(fd, counter))
				wl_fail(&w, "the deleted file's contents changed");
			if (!strstr(target, "(deleted)"))
				wl_fail(&w, "fd %d names '%s', not a deleted file", fd, target);
			if (lseek(lfd, 0, SEEK_CUR) != lwant)
				wl_fail(&w, "the linked file's offset is %lld, not %lld",
					(long long)lseek(lfd, 0, SEEK_CUR), (long long)lwant);
			if (fstat(lfd, &st) != 0 || st.st_nlink != 1 || st.st_size != LLEN)
				wl_fail(&w, "the linked file has %lu links and %lld bytes", (unsigned long)st.st_nlink,
					(long long)st.st_size);
			for (size_t off = 0; off < LLEN; off += sizeof(buf)) {
				if (pread(lfd, buf, sizeof(buf), (off_t)off) != (ssize_t)sizeof(buf)) {
					wl_fail(&w, "read the linked file: %s", strerror(errno));
					break;
				}
				for (size_t i = 0; i < sizeof(buf); i++)
					if (buf[i] != pat(off + i + 1)) {
						wl_fail(&w, "the linked file's contents changed at %zu", off + i);
						break;
					}
			}
			wl_answer(&w);
		}
	}
	return 0;
}
