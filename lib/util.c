/* Files, directories, child processes and number parsing. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"

int vz_read_file(const char *path, char **buf, size_t *len, size_t max)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *b = NULL;
	size_t cap = 4096, n = 0;

	if (fd < 0)
		return -errno;
	b = malloc(cap + 1);
	if (!b)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb;

			if (cap >= max)
				return -EFBIG;
			cap = cap * 2 > max ? max : cap * 2;
			nb = realloc(b, cap + 1);
			if (!nb)
				return -ENOMEM;
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	if (len)
		*len = n;
	*buf = steal_ptr(b);
	return 0;
}

int vz_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vz_grow(void **p, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t ncap = *cap ? *cap : first;
	void *np;

	if (n < *cap)
		return 0;
	while (ncap <= n)
		ncap *= 2;
	np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

int vz_write_file(const char *path, const char *buf, size_t len, int append)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);

	if (fd < 0)
		return -errno;
	return vz_write_all(fd, buf, len);
}

/* The directory path is in, fsync'ed. */
static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	_cleanup_close_ int fd = VZ_FD_INIT;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		return -errno;
	return 0;
}

/* A temporary file beside path, holding buf (fsync'ed when durable); its
 * name in tmp. The caller renames or links it, then unlinks it. */
static int write_beside(const char *path, char *tmp, size_t tlen, const void *buf, size_t len, mode_t mode,
			bool durable)
{
	_cleanup_close_ int fd = VZ_FD_INIT;
	int ret;

	if (snprintf(tmp, tlen, "%s.XXXXXX", path) >= (int)tlen)
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = fchmod(fd, mode) != 0 ? -errno : vz_write_all(fd, buf, len);
	if (ret == 0 && durable && fsync(fd) != 0)
		ret = -errno;
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int vz_write_file_replace(const char *path, const void *buf, size_t len, mode_t mode, bool durable)
{
	char tmp[PATH_MAX];
	int ret = write_beside(path, tmp, sizeof(tmp), buf, len, mode, durable);

	if (ret < 0)
		return ret;
	if (rename(tmp, path) != 0) {
		ret = -errno;
		unlink(tmp);
		return ret;
	}
	return durable ? sync_parent(path) : 0;
}

int vz_write_file_excl(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int ret = write_beside(path, tmp, sizeof(tmp), buf, len, mode, true);

	if (ret < 0)
		return ret;
	/* link(), unlike rename(), never replaces what is there. */
	if (link(tmp, path) != 0)
		ret = -errno;
	unlink(tmp);
	if (ret == 0 && (ret = sync_parent(path)) < 0)
		unlink(path); /* not known to be on disk: not made */
	return ret;
}

int vz_write_str(const char *path, const char *s)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		return -errno;
	return 0;
}

int vz_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, mode) != 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

static int rm_rf_at(int parent, const char *name, dev_t dev)
{
	struct stat st;
	int ret = 0;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISDIR(st.st_mode)) {
		_cleanup_closedir_ DIR *d = NULL;
		struct dirent *de;
		int fd;

		if (st.st_dev != dev)
			return -EXDEV; /* a mount point: never cross it */
		fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			return -errno;
		}
		while ((de = readdir(d))) {
			int r;

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			r = rm_rf_at(dirfd(d), de->d_name, dev);
			if (r < 0 && ret == 0)
				ret = r;
		}
		if (unlinkat(parent, name, AT_REMOVEDIR) != 0 && ret == 0)
			ret = -errno;
		return ret;
	}
	if (unlinkat(parent, name, 0) != 0)
		return errno == ENOENT ? 0 : -errno;
	return 0;
}

int vz_du(const char *path, uint64_t *bytes)
{
	char *paths[] = { (char *)path, NULL };
	FTS *fts = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
	FTSENT *e;
	uint64_t sum = 0;

	if (!fts)
		return -errno;
	while ((e = fts_read(fts))) {
		if (e->fts_info == FTS_DP || e->fts_info == FTS_NS || e->fts_info == FTS_NSOK || e->fts_info == FTS_ERR)
			continue;
		sum += (uint64_t)e->fts_statp->st_blocks * 512;
	}
	fts_close(fts);
	*bytes = sum;
	return 0;
}

int vz_rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	return rm_rf_at(AT_FDCWD, path, st.st_dev);
}

int vz_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int vz_run(char *const argv[], char **out)
{
	int pipefd[2], status;
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 65536;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) != 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(pipefd[0]);
		close(pipefd[1]);
		return -e;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		execvp(argv[0], argv);
		dprintf(2, "Cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	buf = malloc(cap + 1);
	for (;;) {
		char tmp[4096];
		ssize_t r = read(pipefd[0], tmp, sizeof(tmp));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (buf && n < cap) {
			size_t take = (size_t)r < cap - n ? (size_t)r : cap - n;

			memcpy(buf + n, tmp, take);
			n += take;
		}
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (buf)
		buf[n] = '\0';
	if (out)
		*out = steal_ptr(buf);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

int vz_run_checked(char *const argv[], struct vz_err *err)
{
	_cleanup_free_ char *out = NULL;
	char last[512];
	int ret = vz_run(argv, &out);

	if (ret < 0)
		return vz_error(err, -ret, "Run %s", argv[0]);
	if (ret != 0)
		return vz_error_msg(err, EIO, "%s failed (status %d): %s", argv[0], ret,
				    vz_last_line(out ? out : "", last, sizeof(last)));
	return 0;
}

int vz_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long v;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int vz_parse_veid(const char *s, unsigned *veid)
{
	unsigned long v;
	int ret = vz_parse_ulong(s, 1, INT_MAX, &v);

	if (ret < 0)
		return ret;
	*veid = (unsigned)v;
	return 0;
}

int vz_parse_size(const char *s, uint64_t unit, uint64_t *bytes)
{
	uint64_t v, mult = unit;
	char *end;

	if (!s || !*s)
		return -EINVAL;
	if (!strcmp(s, "unlimited")) {
		*bytes = UINT64_MAX;
		return 0;
	}
	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': mult = 1ULL << 10; break;
		case 'M': mult = 1ULL << 20; break;
		case 'G': mult = 1ULL << 30; break;
		case 'T': mult = 1ULL << 40; break;
		case 'P': mult = unit; break; /* pages, as vzctl's "P" suffix */
		default: return -EINVAL;
		}
		end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (mult && v > UINT64_MAX / mult)
		return -ERANGE;
	*bytes = v * mult;
	return 0;
}

const char *vz_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char suffix[] = "KMGT";
	int i = -1;

	if (bytes == UINT64_MAX) {
		snprintf(buf, len, "unlimited");
		return buf;
	}
	while (bytes >= 1024 && bytes % 1024 == 0 && i < 3) {
		bytes /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%" PRIu64, bytes);
	else
		snprintf(buf, len, "%" PRIu64 "%c", bytes, suffix[i]);
	return buf;
}

uint64_t vz_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

const char *vz_last_line(const char *text, char *buf, size_t len)
{
	const char *end = text + strlen(text), *start;

	while (end > text && isspace((unsigned char)end[-1]))
		end--;
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	snprintf(buf, len, "%.*s", (int)(end - start), start);
	return buf;
}

void vz_json_str(const char *s)
{
	vz_json_fstr(stdout, s, strlen(s));
}

void vz_json_fstr(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch == '\n')
			fputs("\\n", f);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}
