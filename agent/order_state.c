/* What this agent keeps of the coordinator's orders (orders.h): the
 * newest epoch seen, the maintenance flag, and each move order's record,
 * running or done, on disk (their pure parsers: order_record.c). */
#define LOG_PREFIX "orders: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "orders.h"
#include "paths.h"
#include "util.h"
#include "ve.h"

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t order_epoch_seen(void)
{
	_cleanup_free_ char *text = NULL;
	char path[PATH_MAX];
	uint64_t e = 0;
	size_t len;

	if (vz_read_file(vz_path(path, sizeof(path), ORDER_EPOCH_FILE), &text, &len, 64) < 0)
		return 0;
	if (order_epoch_parse(text, len, &e) < 0) {
		pr_warn("%s holds no epoch: taken as none", path);
		return 0;
	}
	return e;
}

int order_epoch_take(uint64_t epoch, struct vz_err *err)
{
	char path[PATH_MAX], lock[PATH_MAX + 8], text[32];
	_cleanup_close_ int fd = VZ_FD_INIT;
	uint64_t seen;
	int n, ret;

	if (epoch == 0)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Order without an epoch refused");
	vz_path(path, sizeof(path), ORDER_EPOCH_FILE);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) != 0)
		return vz_error(err, errno, "Lock %s", lock);
	seen = order_epoch_seen();
	if (epoch < seen)
		return vz_error_exit_msg(err, VZ_EXIT_PERM, ESTALE,
					 "Order of epoch %" PRIu64 " refused: this agent has seen epoch %" PRIu64
					 " (a newer coordinator)",
					 epoch, seen);
	if (epoch == seen)
		return 0;
	n = snprintf(text, sizeof(text), "%" PRIu64 "\n", epoch);
	ret = vz_write_file_replace(path, text, (size_t)n, 0644, true);
	if (ret < 0)
		return vz_error(err, -ret, "Write %s", path);
	pr_info("Coordinator epoch %" PRIu64 " (was %" PRIu64 ")", epoch, seen);
	return 0;
}

bool agent_maintenance(void)
{
	char path[PATH_MAX];

	return vz_exists(vz_path(path, sizeof(path), MAINTENANCE_FILE));
}

int agent_maintenance_set(bool on, struct vz_err *err)
{
	static const char text[] = "draining (vzcoord drain)\n";
	char path[PATH_MAX];
	int ret;

	vz_path(path, sizeof(path), MAINTENANCE_FILE);
	if (on) {
		ret = vz_write_file_replace(path, text, sizeof(text) - 1, 0644, true);
		if (ret < 0)
			return vz_error(err, -ret, "Write %s", path);
		return 0;
	}
	if (unlink(path) != 0 && errno != ENOENT)
		return vz_error(err, errno, "Remove %s", path);
	return 0;
}

int agent_maintenance_check_create(const struct vz_agent *a, struct vz_err *err)
{
	if (!agent_maintenance())
		return 0;
	return vz_error_exit_msg(err, VZ_EXIT_PERM, EBUSY,
				 "Host %s is in maintenance (vzcoord drain): it takes no new VE", a->host_name);
}

static char *record_path(char *buf, size_t len, uint64_t id, bool running)
{
	char dir[PATH_MAX];

	vz_mkdir_p(vz_path(dir, sizeof(dir), ORDERS_DIR), 0700);
	return vz_path(buf, len, ORDERS_DIR "/%" PRIu64 ".%s", id, running ? "run" : "done");
}

static int read_record(const char *path, struct order_record *r)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	int ret = vz_read_file(path, &text, &len, 4096);

	if (ret < 0)
		return ret;
	ret = order_record_parse(text, len, r);
	if (ret < 0)
		pr_warn("%s is no order record: ignored", path);
	return ret;
}

int order_record_load(uint64_t id, struct order_record *r, bool *running)
{
	char path[PATH_MAX];

	*running = false;
	if (read_record(record_path(path, sizeof(path), id, false), r) == 0 && r->done)
		return 0;
	if (read_record(record_path(path, sizeof(path), id, true), r) == 0 && !r->done) {
		*running = true;
		return 0;
	}
	return -ENOENT;
}

int order_record_start(uint64_t id, unsigned veid, struct vz_err *err)
{
	struct order_record r = { .veid = veid, .pid = getpid(), .at_ms = wall_ms() };
	char path[PATH_MAX], text[256];
	int n, ret;

	r.pid_start = ve_proc_start_time(r.pid);
	n = order_record_format(&r, text, sizeof(text));
	if (n < 0)
		return vz_error_msg(err, EINVAL, "Order record of move %" PRIu64, id);
	ret = vz_write_file_excl(record_path(path, sizeof(path), id, true), text, (size_t)n, 0600);
	if (ret == -EEXIST)
		return ret;
	if (ret < 0)
		return vz_error(err, -ret, "Write %s", path);
	return 0;
}

/* Call fn(arg, id, path) for each record, running or done, until it
 * returns false. */
static void scan_records(bool running, bool (*fn)(void *arg, uint64_t id, const char *path), void *arg)
{
	char dir[PATH_MAX], path[PATH_MAX];
	_cleanup_closedir_ DIR *dd = opendir(vz_path(dir, sizeof(dir), ORDERS_DIR));
	const char *suffix = running ? ".run" : ".done";
	struct dirent *de;

	while (dd && (de = readdir(dd))) {
		unsigned long long id;
		int end = 0;

		if (sscanf(de->d_name, "%llu%n", &id, &end) != 1 || strcmp(de->d_name + end, suffix))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!fn(arg, id, path))
			return;
	}
}

/* The outcomes kept: each one's id and end. */
struct kept {
	uint64_t id, at_ms;
};

struct kept_list {
	struct kept *k;
	size_t n, cap;
	uint64_t now;
};

/* An outcome older than ORDER_KEEP_MS goes; the others are listed. */
static bool keep_or_forget(void *arg, uint64_t id, const char *path)
{
	struct kept_list *l = arg;
	struct order_record r;

	if (read_record(path, &r) < 0 || r.at_ms + ORDER_KEEP_MS < l->now)
		unlink(path);
	else if (vz_grow((void **)&l->k, &l->cap, l->n, sizeof(*l->k), 64) == 0)
		l->k[l->n++] = (struct kept){ id, r.at_ms };
	return true;
}

static int kept_cmp(const void *x, const void *y)
{
	const struct kept *a = x, *b = y;

	return a->at_ms < b->at_ms ? 1 : a->at_ms > b->at_ms ? -1 : 0;
}

/* Forget outcomes older than ORDER_KEEP_MS, and all but the newest
 * ORDER_KEEP_MAX. */
static void prune_outcomes(void)
{
	struct kept_list l = { .now = wall_ms() };
	char path[PATH_MAX];

	scan_records(false, keep_or_forget, &l);
	if (l.n > ORDER_KEEP_MAX) {
		qsort(l.k, l.n, sizeof(*l.k), kept_cmp);
		for (size_t i = ORDER_KEEP_MAX; i < l.n; i++)
			unlink(record_path(path, sizeof(path), l.k[i].id, false));
	}
	free(l.k);
}

int order_record_finish(uint64_t id, const struct order_record *r, struct vz_err *err)
{
	struct order_record d = *r;
	char path[PATH_MAX], text[ORDER_ERROR_MAX + 128];
	int n, ret;

	d.done = true;
	d.at_ms = wall_ms();
	n = order_record_format(&d, text, sizeof(text));
	if (n < 0)
		return vz_error_msg(err, EINVAL, "Order record of move %" PRIu64, id);
	ret = vz_write_file_replace(record_path(path, sizeof(path), id, false), text, (size_t)n, 0600, true);
	if (ret < 0)
		return vz_error(err, -ret, "Write %s", path);
	unlink(record_path(path, sizeof(path), id, true));
	prune_outcomes();
	return 0;
}

bool order_proc_gone(pid_t pid)
{
	char path[64], buf[512], *rp;
	_cleanup_close_ int fd = VZ_FD_INIT;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (n = read(fd, buf, sizeof(buf) - 1)) <= 0)
		return true; /* gone */
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return !rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X';
}

bool order_worker_alive(const struct order_record *r)
{
	/* A killed agent's worker may stay a zombie a while, reparented. */
	return r->pid > 0 && r->pid_start != 0 && ve_proc_start_time(r->pid) == r->pid_start &&
	       !order_proc_gone(r->pid);
}

struct move_of {
	unsigned veid;
	uint64_t id;
};

static bool is_move_of(void *arg, uint64_t id, const char *path)
{
	struct move_of *m = arg;
	struct order_record r;

	if (read_record(path, &r) == 0 && r.veid == m->veid && order_worker_alive(&r))
		m->id = id;
	return !m->id;
}

uint64_t order_move_of(unsigned veid)
{
	struct move_of m = { veid, 0 };

	scan_records(true, is_move_of, &m);
	return m.id;
}
