/* The host's sysctls the agent changes: a floor raised for good, and a
 * value held while anyone needs it, counted by shared flocks (sysctl.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cleanup.h"
#include "sysctl.h"
#include "util.h"

/* The first line of path, without its newline, into buf. */
static int read_value(const char *path, char *buf, size_t len, struct vz_err *err)
{
	_cleanup_free_ char *text = NULL;
	int ret = vz_read_file(path, &text, NULL, 4096);

	if (ret < 0)
		return vz_error(err, -ret, "Read %s", path);
	text[strcspn(text, "\n")] = '\0';
	if (strlen(text) >= len)
		return vz_error_msg(err, EOVERFLOW, "%s holds more than %zu bytes", path, len - 1);
	snprintf(buf, len, "%s", text);
	return 0;
}

/* O_TRUNC: a plain file standing in for the sysctl keeps no tail. */
static int write_value(const char *path, const char *value, struct vz_err *err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	int ret = fd < 0 ? -errno : vz_write_all(fd, value, strlen(value));

	return ret < 0 ? vz_error(err, -ret, "Set %s to %s", path, value) : 0;
}

int vz_sysctl_ensure_min(const char *path, unsigned long want, unsigned long *was, bool *raised, struct vz_err *err)
{
	char cur[32], val[32];
	unsigned long v;
	int ret;

	if (raised)
		*raised = false;
	ret = read_value(path, cur, sizeof(cur), err);
	if (ret < 0)
		return ret;
	v = strtoul(cur, NULL, 10);
	if (was)
		*was = v;
	if (v >= want)
		return 0;
	snprintf(val, sizeof(val), "%lu", want);
	ret = write_value(path, val, err);
	if (ret == 0 && raised)
		*raised = true;
	return ret;
}

/* LOCKDIR/sysctl-NAME.what for path's last component NAME. */
static char *state_file(char *buf, size_t len, const char *lockdir, const char *path, const char *what)
{
	const char *name = strrchr(path, '/');

	snprintf(buf, len, "%s/sysctl-%s.%s", lockdir, name ? name + 1 : path, what);
	return buf;
}

/* The .lck file locked exclusively (blocking: each holder keeps it for a
 * few file operations only); the fd in *fd. */
static int lock_state(const char *lockdir, const char *path, int *fd, struct vz_err *err)
{
	char f[PATH_MAX];

	if (vz_mkdir_p(lockdir, 0755) < 0)
		return vz_error(err, errno, "Create %s", lockdir);
	*fd = open(state_file(f, sizeof(f), lockdir, path, "lck"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0)
		return vz_error(err, errno, "Open %s", f);
	while (flock(*fd, LOCK_EX) != 0)
		if (errno != EINTR)
			return vz_error(err, errno, "Lock %s", f);
	return 0;
}

/* The .hold file; *alone says whether nobody holds a shared lock on it,
 * and then fd keeps the exclusive lock that proved it. */
static int open_holders(const char *lockdir, const char *path, int *fd, bool *alone, struct vz_err *err)
{
	char f[PATH_MAX];

	*fd = open(state_file(f, sizeof(f), lockdir, path, "hold"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0)
		return vz_error(err, errno, "Open %s", f);
	*alone = flock(*fd, LOCK_EX | LOCK_NB) == 0;
	if (!*alone && errno != EWOULDBLOCK)
		return vz_error(err, errno, "Lock %s", f);
	return 0;
}

/* The value a dead holder recorded, when there is one: 1, or 0 with orig
 * untouched. */
static int recorded(const char *lockdir, const char *path, char *orig, size_t len, struct vz_err *err)
{
	char f[PATH_MAX];

	int ret;

	state_file(f, sizeof(f), lockdir, path, "orig");
	if (!vz_exists(f))
		return 0;
	ret = read_value(f, orig, len, err);
	return ret < 0 ? ret : 1;
}

static int record(const char *lockdir, const char *path, const char *orig, struct vz_err *err)
{
	char f[PATH_MAX];
	int ret;

	state_file(f, sizeof(f), lockdir, path, "orig");
	ret = vz_write_file_replace(f, orig, strlen(orig), 0644, false);
	return ret < 0 ? vz_error(err, -ret, "Write %s", f) : 0;
}

/* Put the recorded value back; the record goes after it. */
static int put_back(const char *lockdir, const char *path, const char *orig, struct vz_err *err)
{
	char f[PATH_MAX];
	int ret = write_value(path, orig, err);

	if (ret == 0 && unlink(state_file(f, sizeof(f), lockdir, path, "orig")) != 0 && errno != ENOENT)
		ret = vz_error(err, errno, "Remove %s", f);
	return ret;
}

int vz_sysctl_hold(const char *path, const char *value, const char *lockdir, struct vz_sysctl_hold *h,
		   struct vz_err *err)
{
	_cleanup_close_ int lck = VZ_FD_INIT, hold = VZ_FD_INIT;
	char cur[32];
	bool alone = false;
	int ret;

	memset(h, 0, sizeof(*h));
	h->fd = -1;
	snprintf(h->path, sizeof(h->path), "%s", path);
	snprintf(h->lockdir, sizeof(h->lockdir), "%s", lockdir);
	snprintf(h->value, sizeof(h->value), "%s", value);
	ret = lock_state(lockdir, path, &lck, err);
	if (ret == 0)
		ret = open_holders(lockdir, path, &hold, &alone, err);
	if (ret == 0 && alone) {
		/* The first holder, or the first since the last one died:
		 * the value found is recorded before the new one is set. */
		ret = recorded(lockdir, path, h->orig, sizeof(h->orig), err);
		h->recovered = ret > 0;
		if (ret == 0) {
			ret = read_value(path, h->orig, sizeof(h->orig), err);
			if (ret == 0)
				ret = record(lockdir, path, h->orig, err);
		}
		if (ret > 0)
			ret = 0;
		if (ret == 0)
			ret = write_value(path, value, err);
		if (ret < 0 && h->orig[0]) {
			struct vz_err e2 = { 0 };

			put_back(lockdir, path, h->orig, &e2);
		}
		h->first = ret == 0;
	} else if (ret == 0) {
		/* Held already: set unless someone changed it meanwhile. */
		ret = recorded(lockdir, path, h->orig, sizeof(h->orig), err);
		if (ret >= 0)
			ret = read_value(path, cur, sizeof(cur), err);
		if (ret == 0 && strcmp(cur, value))
			ret = write_value(path, value, err);
	}
	/* The shared lock that counts this hold (from the exclusive one when
	 * alone: nobody else can take it while .lck is ours). */
	if (ret == 0 && flock(hold, LOCK_SH | LOCK_NB) != 0)
		ret = vz_error(err, errno, "Count a holder of %s", path);
	if (ret < 0)
		return ret;
	h->fd = steal_fd(&hold);
	h->since_ns = vz_now_ns();
	return 0;
}

int vz_sysctl_release(struct vz_sysctl_hold *h, bool *restored, struct vz_err *err)
{
	_cleanup_close_ int lck = VZ_FD_INIT, hold = VZ_FD_INIT;
	char orig[32];
	bool alone = false;
	int ret;

	if (restored)
		*restored = false;
	if (h->fd < 0)
		return 0;
	ret = lock_state(h->lockdir, h->path, &lck, err);
	/* LOCK_UN ends the lock for every copy of the descriptor (a child's). */
	flock(h->fd, LOCK_UN);
	close(h->fd);
	h->fd = -1;
	if (ret == 0)
		ret = open_holders(h->lockdir, h->path, &hold, &alone, err);
	if (ret < 0 || !alone)
		return ret;
	ret = recorded(h->lockdir, h->path, orig, sizeof(orig), err);
	if (ret == 0)
		return vz_error_msg(err, ENOENT, "No value of %s recorded to put back", h->path);
	if (ret > 0)
		ret = put_back(h->lockdir, h->path, orig, err);
	if (ret == 0 && restored)
		*restored = true;
	return ret;
}

int vz_sysctl_recover(const char *path, const char *lockdir, bool *restored, char *orig, size_t len, struct vz_err *err)
{
	_cleanup_close_ int lck = VZ_FD_INIT, hold = VZ_FD_INIT;
	char f[PATH_MAX];
	bool alone = false;
	int ret;

	*restored = false;
	/* Nothing was ever recorded here: make no directory for it. */
	if (!vz_exists(state_file(f, sizeof(f), lockdir, path, "orig")))
		return 0;
	ret = lock_state(lockdir, path, &lck, err);
	if (ret == 0)
		ret = open_holders(lockdir, path, &hold, &alone, err);
	if (ret < 0 || !alone)
		return ret;
	ret = recorded(lockdir, path, orig, len, err);
	if (ret <= 0)
		return ret;
	ret = put_back(lockdir, path, orig, err);
	if (ret == 0)
		*restored = true;
	return ret;
}
