/* Resource limits of a VE on cgroup v1 and v2, and its beancounters.
 * OpenVZ's options are checked and stored under OpenVZ's keys (pages for
 * *PAGES, bytes for the rest, "barrier:limit"); res_apply() turns a whole
 * config into cgroup writes, so applying an old config undoes a change. */
#define LOG_PREFIX "res: "
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "resources.h"
#include "util.h"

#define PAGE	  ((uint64_t)4096)
#define UNLIMITED UINT64_MAX
/* v1 reports "no limit" as PAGE_COUNTER_MAX pages, a number near 2^63. */
#define V1_UNLIMITED_MIN (1ULL << 60)
#define CFS_PERIOD	 100000UL

enum kind { K_UNITS, K_PERCENT, K_CPUS, K_CPUMASK, K_BYTES_SINGLE, K_PAGES_BL, K_BYTES_BL, K_COUNT_BL };

static const struct res_opt {
	const char *opt, *key;
	enum kind kind;
	uint64_t min, max;
	bool v1_only;
} opts[] = {
	{ "cpuunits", "CPUUNITS", K_UNITS, 8, 500000, false },
	{ "cpulimit", "CPULIMIT", K_PERCENT, 0, 0, false },
	{ "cpus", "CPUS", K_CPUS, 0, 0, false },
	{ "cpumask", "CPUMASK", K_CPUMASK, 0, 0, false },
	{ "ram", "PHYSPAGES", K_BYTES_SINGLE, 1 << 20, UNLIMITED, false },
	{ "swap", "SWAPPAGES", K_BYTES_SINGLE, 0, UNLIMITED, false },
	{ "physpages", "PHYSPAGES", K_PAGES_BL, 256, UNLIMITED, false },
	{ "swappages", "SWAPPAGES", K_PAGES_BL, 0, UNLIMITED, false },
	{ "numproc", "NUMPROC", K_COUNT_BL, 1, 4194304, false },
	{ "kmemsize", "KMEMSIZE", K_BYTES_BL, 1 << 20, UNLIMITED, true },
	{ "tcpsndbuf", "TCPSNDBUF", K_BYTES_BL, 1 << 16, UNLIMITED, true },
	{ "tcprcvbuf", "TCPRCVBUF", K_BYTES_BL, 1 << 16, UNLIMITED, true },
};

static const struct res_opt *find_opt(const char *opt)
{
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		if (!strcmp(opts[i].opt, opt))
			return &opts[i];
	return NULL;
}

bool res_is_option(const char *opt)
{
	return find_opt(opt) != NULL;
}

static int bad(struct vz_err *err, const char *opt, const char *value, const char *why)
{
	return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Invalid value '%s' for --%s: %s", value, opt, why);
}

/* "N" or "B:L" with sizes in unit bytes; writes barrier and limit. */
static int parse_bl(const char *v, uint64_t unit, uint64_t *b, uint64_t *l)
{
	char first[64];
	const char *colon = strchr(v, ':');

	if (!colon)
		return vz_parse_size(v, unit, b) < 0 ? -EINVAL : (*l = *b, 0);
	if ((size_t)(colon - v) >= sizeof(first))
		return -EINVAL;
	snprintf(first, sizeof(first), "%.*s", (int)(colon - v), v);
	if (vz_parse_size(first, unit, b) < 0 || vz_parse_size(colon + 1, unit, l) < 0)
		return -EINVAL;
	return *b <= *l ? 0 : -ERANGE;
}

static void fmt_num(uint64_t v, char *buf, size_t len)
{
	if (v == UNLIMITED)
		snprintf(buf, len, "unlimited");
	else
		snprintf(buf, len, "%" PRIu64, v);
}

static int valid_cpumask(const char *v, unsigned ncpus)
{
	const char *p = v;

	if (!strcmp(v, "all"))
		return 1;
	while (*p) {
		char *end;
		unsigned long a = strtoul(p, &end, 10), b = a;

		if (end == p || a >= ncpus)
			return 0;
		p = end;
		if (*p == '-') {
			b = strtoul(++p, &end, 10);
			if (end == p || b >= ncpus || b < a)
				return 0;
			p = end;
		}
		if (*p == ',')
			p++;
		else if (*p)
			return 0;
	}
	return *v != '\0';
}

int res_set_option(struct vz_conf *conf, const char *opt, const char *value, unsigned ncpus, enum vz_cg_mode mode,
		   struct vz_err *err)
{
	const struct res_opt *o = find_opt(opt);
	char out[128], lb[32], bb[32];
	unsigned long n;
	uint64_t b, l;

	if (!o)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Unknown option --%s", opt);
	if (o->v1_only && mode == VZ_CG_V2)
		return vz_error_exit_msg(
		    err, VZ_EXIT_UBC, EOPNOTSUPP,
		    "--%s is not supported on cgroup v2: kernel and socket memory are charged to --ram", opt);
	switch (o->kind) {
	case K_UNITS:
		if (vz_parse_ulong(value, o->min, o->max, &n) < 0)
			return bad(err, opt, value, "a number from 8 to 500000");
		snprintf(out, sizeof(out), "%lu", n);
		break;
	case K_PERCENT:
		if (vz_parse_ulong(value, 0, 100UL * ncpus, &n) < 0) {
			snprintf(out, sizeof(out), "percent of one CPU, 0 (unlimited) to %u", 100 * ncpus);
			return bad(err, opt, value, out);
		}
		snprintf(out, sizeof(out), "%lu", n);
		break;
	case K_CPUS:
		if (vz_parse_ulong(value, 0, ncpus, &n) < 0) {
			snprintf(out, sizeof(out), "a number of CPUs, 0 (unlimited) to %u", ncpus);
			return bad(err, opt, value, out);
		}
		snprintf(out, sizeof(out), "%lu", n);
		break;
	case K_CPUMASK:
		if (!valid_cpumask(value, ncpus)) {
			snprintf(out, sizeof(out), "a CPU list such as 0,2-3 within 0-%u, or all", ncpus - 1);
			return bad(err, opt, value, out);
		}
		snprintf(out, sizeof(out), "%s", value);
		break;
	case K_BYTES_SINGLE:
		if (vz_parse_size(value, 1, &l) < 0 || (l != UNLIMITED && l < o->min))
			return bad(err, opt, value, "a size such as 512M or 2G, or unlimited");
		fmt_num(l == UNLIMITED ? l : (l + PAGE - 1) / PAGE, lb, sizeof(lb));
		snprintf(out, sizeof(out), "0:%s", lb);
		break;
	case K_PAGES_BL:
	case K_BYTES_BL:
	case K_COUNT_BL: {
		uint64_t unit = o->kind == K_PAGES_BL ? PAGE : 1;

		if (parse_bl(value, unit, &b, &l) < 0 ||
		    (l != UNLIMITED && (l < o->min * (o->kind == K_PAGES_BL ? PAGE : 1) || l > o->max * unit)))
			return bad(err, opt, value,
				   "[barrier:]limit, each a number with an optional K, M, G suffix, or unlimited");
		if (o->kind == K_PAGES_BL) {
			b = b == UNLIMITED ? b : b / PAGE;
			l = l == UNLIMITED ? l : l / PAGE;
		}
		fmt_num(b, bb, sizeof(bb));
		fmt_num(l, lb, sizeof(lb));
		snprintf(out, sizeof(out), "%s:%s", bb, lb);
		break;
	}
	}
	return vz_conf_set(conf, o->key, out, err);
}

/* Does this kernel enforce memory.kmem.limit_in_bytes (cgroup v1)? Linux
 * deprecated it in 5.4 and stopped enforcing it in 5.16: from then on a
 * write fails with EOPNOTSUPP, and since 6.6 (and the stable trees it was
 * backported to) it is accepted and ignored, the file reading back
 * unlimited. Kernel memory is still charged to the memory limit. */
static bool kmem_limit_enforced(void)
{
	struct utsname u;
	unsigned major = 0, minor = 0;

	if (uname(&u) != 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
		return true;
	return major < 5 || (major == 5 && minor < 16);
}

#define KMEM_IGNORED_REASON                                                                                            \
	"this kernel ignores memory.kmem.limit_in_bytes (cgroup v1 kernel memory limits are not enforced since Linux " \
	"5.16): kernel memory is charged to physpages"

/* The limit part of a stored "barrier:limit" value, or UNLIMITED. */
static uint64_t conf_limit(const struct vz_conf *conf, const char *key)
{
	const char *v = vz_conf_get(conf, key), *colon;
	uint64_t l;

	if (!v || !*v)
		return UNLIMITED;
	colon = strchr(v, ':');
	if (vz_parse_size(colon ? colon + 1 : v, 1, &l) < 0)
		return UNLIMITED;
	return l;
}

static unsigned long conf_ulong(const struct vz_conf *conf, const char *key, unsigned long def)
{
	const char *v = vz_conf_get(conf, key);
	unsigned long n;

	return v && vz_parse_ulong(v, 0, ULONG_MAX, &n) == 0 ? n : def;
}

static int cg_write(const struct vz_cg *cg, unsigned veid, const char *ctrl, const char *file, const char *value,
		    bool optional, struct vz_err *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	int ret;

	ret = vz_cg_path(cg, veid, ctrl, dir, sizeof(dir), err);
	if (ret < 0)
		return optional ? 0 : ret;
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (optional && access(path, F_OK) != 0)
		return 0;
	ret = vz_write_str(path, value);
	if (ret < 0)
		return vz_error_exit(err, VZ_EXIT_UBC, -ret, "Set %s to %s", file, value);
	pr_debug("VE %u: %s = %s", veid, file, value);
	return 0;
}

static void bytes_or(uint64_t pages_or_bytes, uint64_t unit, const char *unlimited, char *buf, size_t len)
{
	if (pages_or_bytes == UNLIMITED)
		snprintf(buf, len, "%s", unlimited);
	else
		snprintf(buf, len, "%" PRIu64, pages_or_bytes * unit);
}

static int apply_cpu(const struct vz_cg *cg, unsigned veid, const struct vz_conf *conf, struct vz_err *err)
{
	unsigned long units = conf_ulong(conf, "CPUUNITS", 1000), limit = conf_ulong(conf, "CPULIMIT", 0),
		      cpus = conf_ulong(conf, "CPUS", 0), pct = limit;
	const char *mask = vz_conf_get(conf, "CPUMASK");
	char buf[64];
	int ret;

	/* --cpus N caps the VE at N CPUs' worth of time, with --cpulimit. */
	if (cpus && (pct == 0 || pct > cpus * 100))
		pct = cpus * 100;
	if (cg->mode == VZ_CG_V2) {
		unsigned long w = units * 100 / 1000;

		snprintf(buf, sizeof(buf), "%lu", w < 1 ? 1 : w > 10000 ? 10000 : w);
		ret = cg_write(cg, veid, "cpu", "cpu.weight", buf, false, err);
		if (ret == 0) {
			if (pct)
				snprintf(buf, sizeof(buf), "%lu %lu", pct * CFS_PERIOD / 100, CFS_PERIOD);
			else
				snprintf(buf, sizeof(buf), "max %lu", CFS_PERIOD);
			ret = cg_write(cg, veid, "cpu", "cpu.max", buf, false, err);
		}
	} else {
		unsigned long shares = units * 1024 / 1000;

		snprintf(buf, sizeof(buf), "%lu", shares < 2 ? 2 : shares);
		ret = cg_write(cg, veid, "cpu", "cpu.shares", buf, false, err);
		if (ret == 0)
			ret = cg_write(cg, veid, "cpu", "cpu.cfs_period_us", "100000", false, err);
		if (ret == 0) {
			if (pct)
				snprintf(buf, sizeof(buf), "%lu", pct * CFS_PERIOD / 100);
			else
				snprintf(buf, sizeof(buf), "-1");
			ret = cg_write(cg, veid, "cpu", "cpu.cfs_quota_us", buf, false, err);
		}
	}
	if (ret == 0 && mask && *mask) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		if (!strcmp(mask, "all"))
			snprintf(buf, sizeof(buf), "0-%ld", n - 1);
		else
			snprintf(buf, sizeof(buf), "%s", mask);
		ret = cg_write(cg, veid, "cpuset", "cpuset.cpus", buf, false, err);
	}
	return ret;
}

static int apply_mem(const struct vz_cg *cg, unsigned veid, const struct vz_conf *conf, struct vz_err *err)
{
	uint64_t ram = conf_limit(conf, "PHYSPAGES"), swap = conf_limit(conf, "SWAPPAGES");
	char buf[64];
	int ret;

	if (cg->mode == VZ_CG_V2) {
		bytes_or(ram, PAGE, "max", buf, sizeof(buf));
		ret = cg_write(cg, veid, "memory", "memory.max", buf, false, err);
		if (ret == 0) {
			bytes_or(swap, PAGE, "max", buf, sizeof(buf));
			ret = cg_write(cg, veid, "memory", "memory.swap.max", buf, true, err);
		}
		return ret;
	}
	/* v1: memsw (ram + swap) must stay >= the memory limit at every
	 * step, so lift it first and set it last. */
	ret = cg_write(cg, veid, "memory", "memory.memsw.limit_in_bytes", "-1", true, err);
	if (ret == 0) {
		bytes_or(ram, PAGE, "-1", buf, sizeof(buf));
		ret = cg_write(cg, veid, "memory", "memory.limit_in_bytes", buf, false, err);
	}
	if (ret == 0 && ram != UNLIMITED && swap != UNLIMITED) {
		snprintf(buf, sizeof(buf), "%" PRIu64, (ram + swap) * PAGE);
		ret = cg_write(cg, veid, "memory", "memory.memsw.limit_in_bytes", buf, true, err);
	}
	if (ret == 0 && kmem_limit_enforced()) {
		bytes_or(conf_limit(conf, "KMEMSIZE"), 1, "-1", buf, sizeof(buf));
		ret = cg_write(cg, veid, "memory", "memory.kmem.limit_in_bytes", buf, true, err);
	} else if (ret == 0 && conf_limit(conf, "KMEMSIZE") != UNLIMITED) {
		pr_info("VE %u: KMEMSIZE not applied: %s", veid, KMEM_IGNORED_REASON);
	}
	if (ret == 0) {
		uint64_t snd = conf_limit(conf, "TCPSNDBUF"), rcv = conf_limit(conf, "TCPRCVBUF");

		/* One kernel counter holds both directions. */
		bytes_or(snd == UNLIMITED || rcv == UNLIMITED ? UNLIMITED : snd + rcv, 1, "-1", buf, sizeof(buf));
		ret = cg_write(cg, veid, "memory", "memory.kmem.tcp.limit_in_bytes", buf, true, err);
	}
	return ret;
}

int res_apply(const struct vz_cg *cg, unsigned veid, const struct vz_conf *conf, struct vz_err *err)
{
	uint64_t numproc = conf_limit(conf, "NUMPROC");
	char buf[64];
	int ret;

	ret = apply_cpu(cg, veid, conf, err);
	if (ret == 0)
		ret = apply_mem(cg, veid, conf, err);
	if (ret == 0) {
		bytes_or(numproc, 1, "max", buf, sizeof(buf));
		ret = cg_write(cg, veid, "pids", "pids.max", buf, false, err);
	}
	return ret;
}

int res_apply_cpu(const struct vz_cg *cg, unsigned veid, const struct vz_conf *conf, struct vz_err *err)
{
	return apply_cpu(cg, veid, conf, err);
}

int res_cpu_cap(const struct vz_cg *cg, unsigned veid, double cpus, struct vz_err *err)
{
	/* Below a tenth of a CPU the period is a second: the kernel's least
	 * quota is 1 ms. */
	unsigned long period = cpus >= 0.1 ? CFS_PERIOD : 10 * CFS_PERIOD;
	unsigned long quota = (unsigned long)(cpus * (double)period);
	char buf[64];
	int ret;

	if (quota < 1000)
		quota = 1000;
	if (cg->mode == VZ_CG_V2) {
		snprintf(buf, sizeof(buf), "%lu %lu", quota, period);
		return cg_write(cg, veid, "cpu", "cpu.max", buf, false, err);
	}
	snprintf(buf, sizeof(buf), "%lu", period);
	ret = cg_write(cg, veid, "cpu", "cpu.cfs_period_us", buf, false, err);
	snprintf(buf, sizeof(buf), "%lu", quota);
	if (ret == 0)
		ret = cg_write(cg, veid, "cpu", "cpu.cfs_quota_us", buf, false, err);
	return ret;
}

/* Beancounters. */

static int read_u64(const char *dir, const char *file, uint64_t *v)
{
	char path[PATH_MAX + 64];
	_cleanup_free_ char *text = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (vz_read_file(path, &text, NULL, 4096) < 0)
		return -ENOENT;
	if (!strncmp(text, "max", 3)) {
		*v = UNLIMITED;
		return 0;
	}
	if (!isdigit((unsigned char)text[0]) && text[0] != '-')
		return -EINVAL;
	*v = text[0] == '-' ? UNLIMITED : strtoull(text, NULL, 10);
	if (*v >= V1_UNLIMITED_MIN)
		*v = UNLIMITED;
	return 0;
}

/* "key value" lines (pids.events, memory.events, memory.stat). */
static int read_keyed(const char *dir, const char *file, const char *key, uint64_t *v)
{
	char path[PATH_MAX + 64], line[256];
	_cleanup_fclose_ FILE *f = NULL;
	size_t klen = strlen(key);

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ' ') {
			*v = strtoull(line + klen + 1, NULL, 10);
			return 0;
		}
	return -ENOENT;
}

struct ubc_list {
	Vz__Control__Beancounter **rows;
	size_t n;
};

static Vz__Control__Beancounter *add_row(struct ubc_list *l, const char *name)
{
	Vz__Control__Beancounter *b = calloc(1, sizeof(*b)), **nr;

	nr = realloc(l->rows, (l->n + 1) * sizeof(*nr));
	if (!b || !nr) {
		free(b);
		if (nr)
			l->rows = nr;
		return NULL;
	}
	l->rows = nr;
	vz__control__beancounter__init(b);
	b->name = strdup(name);
	l->rows[l->n++] = b;
	return b;
}

static void set_field(protobuf_c_boolean *has, uint64_t *field, uint64_t v)
{
	*has = 1;
	*field = v;
}

#define SET(b, f, v) set_field(&(b)->has_##f, &(b)->f, (v))

static void unsupported(struct ubc_list *l, const char *name, const char *reason)
{
	Vz__Control__Beancounter *b = add_row(l, name);

	if (!b)
		return;
	b->has_unsupported = 1;
	b->unsupported = 1;
	b->reason = strdup(reason);
}

static uint64_t to_pages(uint64_t bytes)
{
	return bytes == UNLIMITED ? UNLIMITED : bytes / PAGE;
}

/* Barrier and limit as configured (what OpenVZ shows), else the kernel's. */
static void bl_from_conf(Vz__Control__Beancounter *b, const struct vz_conf *conf, const char *key,
			 uint64_t kernel_limit)
{
	const char *v = vz_conf_get(conf, key);
	uint64_t bar, lim;

	if (v && parse_bl(v, 1, &bar, &lim) == 0) {
		SET(b, barrier, bar);
		SET(b, limit, lim);
	} else {
		SET(b, barrier, kernel_limit);
		SET(b, limit, kernel_limit);
	}
}

/* The kmem limit holds when the kernel says it enforces one and, when the
 * VE has a KMEMSIZE limit, reads back what was written (rounded down to
 * pages): a kernel that accepts and ignores it reads back unlimited. */
static bool kmem_enforced(const char *mem, const struct vz_conf *conf)
{
	uint64_t want = conf_limit(conf, "KMEMSIZE"), v;

	if (!kmem_limit_enforced())
		return false;
	if (want == UNLIMITED || read_u64(mem, "memory.kmem.limit_in_bytes", &v) < 0)
		return true;
	return v == want / PAGE * PAGE;
}

static void kmem_row(struct ubc_list *l, const char *mem, const struct vz_conf *conf)
{
	Vz__Control__Beancounter *b = add_row(l, "kmemsize");
	uint64_t v;

	if (!b)
		return;
	if (read_u64(mem, "memory.kmem.usage_in_bytes", &v) == 0)
		SET(b, held, v);
	if (read_u64(mem, "memory.kmem.max_usage_in_bytes", &v) == 0)
		SET(b, maxheld, v);
	if (read_u64(mem, "memory.kmem.limit_in_bytes", &v) == 0)
		bl_from_conf(b, conf, "KMEMSIZE", v);
	if (read_u64(mem, "memory.kmem.failcnt", &v) == 0)
		SET(b, failcnt, v);
}

int res_ubc(const struct vz_cg *cg, unsigned veid, const struct vz_conf *conf, Vz__Control__Beancounter ***rows,
	    size_t *n, struct vz_err *err)
{
	char mem[PATH_MAX], pids[PATH_MAX];
	struct ubc_list l = { 0 };
	Vz__Control__Beancounter *b;
	bool v2 = cg->mode == VZ_CG_V2;
	uint64_t v, w;
	int ret;

	ret = vz_cg_path(cg, veid, "memory", mem, sizeof(mem), err);
	if (ret == 0)
		ret = vz_cg_path(cg, veid, "pids", pids, sizeof(pids), err);
	if (ret < 0)
		return ret;

	if (v2)
		unsupported(&l, "kmemsize", "cgroup v2 has no kernel memory limit: it is charged to physpages");
	else if (!kmem_enforced(mem, conf))
		unsupported(&l, "kmemsize", KMEM_IGNORED_REASON);
	else
		kmem_row(&l, mem, conf);
	unsupported(&l, "lockedpages", "no per-cgroup counter of mlocked pages");
	unsupported(&l, "privvmpages", "no per-cgroup counter of private virtual memory");
	if ((b = add_row(&l, "shmpages")) && read_keyed(mem, "memory.stat", v2 ? "shmem" : "total_shmem", &v) == 0)
		SET(b, held, v / PAGE);
	if ((b = add_row(&l, "numproc"))) {
		if (read_u64(pids, "pids.current", &v) == 0)
			SET(b, held, v);
		if (read_u64(pids, "pids.peak", &v) == 0)
			SET(b, maxheld, v);
		if (read_u64(pids, "pids.max", &v) == 0)
			bl_from_conf(b, conf, "NUMPROC", v);
		if (read_keyed(pids, "pids.events", "max", &v) == 0)
			SET(b, failcnt, v);
	}
	if ((b = add_row(&l, "physpages"))) {
		if (read_u64(mem, v2 ? "memory.current" : "memory.usage_in_bytes", &v) == 0)
			SET(b, held, v / PAGE);
		if (read_u64(mem, v2 ? "memory.peak" : "memory.max_usage_in_bytes", &v) == 0)
			SET(b, maxheld, v / PAGE);
		if (read_u64(mem, v2 ? "memory.max" : "memory.limit_in_bytes", &v) == 0) {
			SET(b, barrier, 0);
			SET(b, limit, to_pages(v));
		}
		if (v2) {
			if (read_keyed(mem, "memory.events", "max", &v) == 0)
				SET(b, failcnt, v);
		} else if (read_u64(mem, "memory.failcnt", &v) == 0) {
			/* Recent kernels may leave v1's failcnt at 0 (they track it
			 * only for some counters); every OOM kill in the VE's group
			 * is at least one hit of its limit, so count those too. */
			if (read_keyed(mem, "memory.oom_control", "oom_kill", &w) == 0 && w > v)
				v = w;
			SET(b, failcnt, v);
		}
	}
	if ((b = add_row(&l, "swappages"))) {
		if (v2) {
			if (read_u64(mem, "memory.swap.current", &v) == 0)
				SET(b, held, v / PAGE);
			if (read_u64(mem, "memory.swap.peak", &v) == 0)
				SET(b, maxheld, v / PAGE);
			if (read_u64(mem, "memory.swap.max", &v) == 0) {
				SET(b, barrier, 0);
				SET(b, limit, to_pages(v));
			}
			if (read_keyed(mem, "memory.swap.events", "fail", &v) == 0)
				SET(b, failcnt, v);
		} else {
			if (read_u64(mem, "memory.memsw.usage_in_bytes", &v) == 0 &&
			    read_u64(mem, "memory.usage_in_bytes", &w) == 0)
				SET(b, held, (v > w ? v - w : 0) / PAGE);
			SET(b, barrier, 0);
			SET(b, limit, conf_limit(conf, "SWAPPAGES"));
			if (read_u64(mem, "memory.memsw.failcnt", &v) == 0)
				SET(b, failcnt, v);
		}
	}
	if ((b = add_row(&l, "oomguarpages"))) {
		/* Its failcnt is the number of processes the OOM killer took. */
		if (read_u64(mem, v2 ? "memory.current" : "memory.usage_in_bytes", &v) == 0)
			SET(b, held, v / PAGE);
		SET(b, barrier, UNLIMITED);
		SET(b, limit, UNLIMITED);
		if (read_keyed(mem, v2 ? "memory.events" : "memory.oom_control", "oom_kill", &v) == 0)
			SET(b, failcnt, v);
	}
	if (v2) {
		if ((b = add_row(&l, "tcpsndbuf")) && read_keyed(mem, "memory.stat", "sock", &v) == 0)
			SET(b, held, v);
		unsupported(&l, "tcprcvbuf", "counted with tcpsndbuf: the kernel keeps one socket memory counter");
	} else {
		if ((b = add_row(&l, "tcpsndbuf"))) {
			if (read_u64(mem, "memory.kmem.tcp.usage_in_bytes", &v) == 0)
				SET(b, held, v);
			if (read_u64(mem, "memory.kmem.tcp.max_usage_in_bytes", &v) == 0)
				SET(b, maxheld, v);
			if (read_u64(mem, "memory.kmem.tcp.limit_in_bytes", &v) == 0)
				bl_from_conf(b, conf, "TCPSNDBUF", v);
			if (read_u64(mem, "memory.kmem.tcp.failcnt", &v) == 0)
				SET(b, failcnt, v);
		}
		unsupported(&l, "tcprcvbuf", "counted with tcpsndbuf: the kernel keeps one socket memory counter");
	}
	static const char *const none[] = { "numtcpsock",  "numothersock", "vmguarpages", "othersockbuf",
					    "dgramrcvbuf", "numfile",	   "numflock",	  "numpty",
					    "numsiginfo",  "dcachesize",   "numiptent" };
	for (size_t i = 0; i < ARRAY_SIZE(none); i++)
		unsupported(&l, none[i], "no cgroup counter for it in this kernel");
	*rows = l.rows;
	*n = l.n;
	return 0;
}

int res_cpu_usage(const struct vz_cg *cg, unsigned veid, uint64_t *ns, struct vz_err *err)
{
	char dir[PATH_MAX];
	uint64_t v = 0;
	int ret = vz_cg_path(cg, veid, cg->mode == VZ_CG_V2 ? "cpu" : "cpuacct", dir, sizeof(dir), err);

	if (ret < 0)
		return ret;
	if (cg->mode == VZ_CG_V2) {
		ret = read_keyed(dir, "cpu.stat", "usage_usec", &v);
		v *= 1000;
	} else {
		ret = read_u64(dir, "cpuacct.usage", &v);
	}
	if (ret < 0)
		return vz_error_msg(err, -ret, "VE %u: no CPU usage in %s", veid, dir);
	*ns = v;
	return 0;
}

int res_mem_usage(const struct vz_cg *cg, unsigned veid, uint64_t *bytes, struct vz_err *err)
{
	char dir[PATH_MAX];
	int ret = vz_cg_path(cg, veid, "memory", dir, sizeof(dir), err);

	if (ret < 0)
		return ret;
	ret = read_u64(dir, cg->mode == VZ_CG_V2 ? "memory.current" : "memory.usage_in_bytes", bytes);
	if (ret < 0)
		return vz_error_msg(err, -ret, "VE %u: no memory usage in %s", veid, dir);
	return 0;
}

void res_ubc_free(Vz__Control__Beancounter **rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i]->name);
		free(rows[i]->reason);
		free(rows[i]);
	}
	free(rows);
}
