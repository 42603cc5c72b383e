/* vzagent's /metrics page (metrics.h): the VEs, read at each scrape, and
 * the migrations' histograms, folded from the workers' records. */
#define LOG_PREFIX "metrics: "
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "expo.h"
#include "log.h"
#include "metrics.h"
#include "paths.h"
#include "resources.h"
#include "util.h"
#include "ve.h"

#define STATS_DIR     VZ_RUN_DIR "/metrics"
#define STATS_VERSION "v1"

static const double seconds_bounds[] = { 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300 };
static const double downtime_bounds[] = { 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30 };
static const double bytes_bounds[] = { 1 << 20,
				       4 << 20,
				       16 << 20,
				       64 << 20,
				       256 << 20,
				       1024.0 * (1 << 20),
				       4096.0 * (1 << 20),
				       16384.0 * (1 << 20),
				       65536.0 * (1 << 20) };
static const double rounds_bounds[] = { 0, 1, 2, 3, 5, 8, 10, 16, 32, 64 };

/* The histograms, per side: [0] source, [1] destination. */
struct agent_metrics {
	uint64_t moves[2][2]; /* [side][ok] */
	struct vz_hist total[2], wire[2], raw[2];
	struct vz_hist phase[MIG_PH_N], rounds, downtime;
};

static const char *const phase_names[MIG_PH_N] = { "pass1", "memory", "dump", "pass2", "copy", "undump" };

const char *mig_stat_phase_name(enum mig_stat_phase p)
{
	return p < MIG_PH_N ? phase_names[p] : "?";
}

int mig_stats_format(const struct mig_stats *st, char *buf, size_t len)
{
	int n =
	    snprintf(buf, len, STATS_VERSION " %s %d %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f %llu %llu %u\n",
		     st->source ? "source" : "destination", st->ok ? 1 : 0, st->phase_ms[0], st->phase_ms[1],
		     st->phase_ms[2], st->phase_ms[3], st->phase_ms[4], st->phase_ms[5], st->total_ms, st->downtime_ms,
		     (unsigned long long)st->raw_bytes, (unsigned long long)st->wire_bytes, st->rounds);

	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int mig_stats_parse(const char *text, struct mig_stats *st)
{
	char side[16];
	int ok, end = 0;
	unsigned long long raw, wire;

	*st = (struct mig_stats){ 0 };
	if (sscanf(text, STATS_VERSION " %15s %d %lf %lf %lf %lf %lf %lf %lf %lf %llu %llu %u%n", side, &ok,
		   &st->phase_ms[0], &st->phase_ms[1], &st->phase_ms[2], &st->phase_ms[3], &st->phase_ms[4],
		   &st->phase_ms[5], &st->total_ms, &st->downtime_ms, &raw, &wire, &st->rounds, &end) != 13 ||
	    (text[end] && strcmp(text + end, "\n")) || (ok != 0 && ok != 1) ||
	    (strcmp(side, "source") && strcmp(side, "destination")))
		return -EINVAL;
	st->source = !strcmp(side, "source");
	st->ok = ok;
	st->raw_bytes = raw;
	st->wire_bytes = wire;
	return 0;
}

void agent_mig_stats_record(const struct mig_stats *st)
{
	char dir[PATH_MAX], path[PATH_MAX + 64], text[512];
	struct timespec ts;
	int n = mig_stats_format(st, text, sizeof(text)), ret;

	clock_gettime(CLOCK_REALTIME, &ts);
	vz_path(dir, sizeof(dir), STATS_DIR);
	vz_mkdir_p(dir, 0755);
	snprintf(path, sizeof(path), "%s/%lld.%09ld.%d.rec", dir, (long long)ts.tv_sec, ts.tv_nsec, (int)getpid());
	ret = n < 0 ? n : vz_write_file_replace(path, text, (size_t)n, 0644, false);
	if (ret < 0)
		pr_warn("Cannot record a migration's figures in %s: %s", path, strerror(-ret));
}

static struct agent_metrics *metrics_new(void)
{
	struct agent_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	for (int s = 0; s < 2; s++) {
		m->total[s] = vz_hist_make(seconds_bounds, ARRAY_SIZE(seconds_bounds));
		m->wire[s] = vz_hist_make(bytes_bounds, ARRAY_SIZE(bytes_bounds));
		m->raw[s] = vz_hist_make(bytes_bounds, ARRAY_SIZE(bytes_bounds));
	}
	for (int p = 0; p < MIG_PH_N; p++)
		m->phase[p] = vz_hist_make(seconds_bounds, ARRAY_SIZE(seconds_bounds));
	m->rounds = vz_hist_make(rounds_bounds, ARRAY_SIZE(rounds_bounds));
	m->downtime = vz_hist_make(downtime_bounds, ARRAY_SIZE(downtime_bounds));
	return m;
}

/* One move into the histograms: a failed one is only counted. */
static void fold(struct agent_metrics *m, const struct mig_stats *st)
{
	int s = st->source ? 0 : 1;

	m->moves[s][st->ok]++;
	if (!st->ok)
		return;
	vz_hist_observe(&m->total[s], st->total_ms / 1000);
	vz_hist_observe(&m->wire[s], (double)st->wire_bytes);
	if (st->raw_bytes)
		vz_hist_observe(&m->raw[s], (double)st->raw_bytes);
	if (!st->source)
		return;
	for (int p = 0; p < MIG_PH_N; p++)
		if (st->phase_ms[p] >= 0)
			vz_hist_observe(&m->phase[p], st->phase_ms[p] / 1000);
	vz_hist_observe(&m->rounds, st->rounds);
	if (st->downtime_ms >= 0)
		vz_hist_observe(&m->downtime, st->downtime_ms / 1000);
}

/* The workers' records since the last scrape, folded and removed. */
static void fold_records(struct agent_metrics *m)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	_cleanup_closedir_ DIR *d = opendir(vz_path(dir, sizeof(dir), STATS_DIR));
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *text = NULL;
		size_t n = strlen(de->d_name);
		struct mig_stats st;

		if (n < 5 || strcmp(de->d_name + n - 4, ".rec"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (vz_read_file(path, &text, NULL, 4096) == 0 && mig_stats_parse(text, &st) == 0)
			fold(m, &st);
		else
			pr_warn("Dropped %s: not a migration's record", path);
		unlink(path);
	}
}

static void emit_migrations(FILE *f, struct agent_metrics *m)
{
	static const char *const sides[2] = { "source", "destination" };

	vz_expo_family(f, "vz_migrations_total", "counter",
		       "Migrations this host took part in since the agent started, by side and result");
	for (int s = 0; s < 2; s++)
		for (int ok = 1; ok >= 0; ok--)
			vz_expo_u64(f, "vz_migrations_total",
				    (const char *const[]){ "side", sides[s], "result", ok ? "ok" : "failed", NULL },
				    m->moves[s][ok]);
	vz_expo_family(f, "vz_migration_duration_seconds", "histogram",
		       "Time of a successful migration from start to end, by side");
	for (int s = 0; s < 2; s++)
		vz_expo_hist(f, "vz_migration_duration_seconds", (const char *const[]){ "side", sides[s], NULL },
			     &m->total[s]);
	vz_expo_family(f, "vz_migration_phase_seconds", "histogram",
		       "Time of each phase of a successful migration, at its source (vzmigrate's summary)");
	for (int p = 0; p < MIG_PH_N; p++)
		vz_expo_hist(f, "vz_migration_phase_seconds", (const char *const[]){ "phase", phase_names[p], NULL },
			     &m->phase[p]);
	vz_expo_family(f, "vz_migration_downtime_seconds", "histogram",
		       "Time the VE was suspended during a successful online migration, at its source");
	vz_expo_hist(f, "vz_migration_downtime_seconds", NULL, &m->downtime);
	vz_expo_family(f, "vz_migration_rounds", "histogram",
		       "Pre-copy rounds while the VE ran, of a successful migration, at its source");
	vz_expo_hist(f, "vz_migration_rounds", NULL, &m->rounds);
	vz_expo_family(f, "vz_migration_wire_bytes", "histogram",
		       "Bytes a successful migration sent (source) or received (destination) on the wire");
	for (int s = 0; s < 2; s++)
		vz_expo_hist(f, "vz_migration_wire_bytes", (const char *const[]){ "side", sides[s], NULL },
			     &m->wire[s]);
	vz_expo_family(f, "vz_migration_raw_bytes", "histogram",
		       "Bytes a successful migration sent before compression, at its source");
	vz_expo_hist(f, "vz_migration_raw_bytes", NULL, &m->raw[0]);
}

/* What a scrape reads of one VE. */
struct ve_sample {
	char ctid[16];
	bool running;
	bool has_cpu, has_mem;
	uint64_t cpu_ns, mem;
	Vz__Control__Beancounter **ubc;
	size_t n_ubc;
};

static void ve_sample_read(struct vz_agent *a, unsigned veid, struct ve_sample *v)
{
	_cleanup_ve_ struct ve ve;
	pid_t init = 0;

	snprintf(v->ctid, sizeof(v->ctid), "%u", veid);
	if (ve_open(veid, false, &ve, NULL) < 0)
		return;
	v->running = ve_state(&ve, &init) == VE_STATE_RUNNING;
	if (!v->running)
		return;
	v->has_cpu = res_cpu_usage(&a->cg, veid, &v->cpu_ns, NULL) == 0;
	v->has_mem = res_mem_usage(&a->cg, veid, &v->mem, NULL) == 0;
	if (res_ubc(&a->cg, veid, &ve.conf, &v->ubc, &v->n_ubc, NULL) < 0) {
		v->ubc = NULL;
		v->n_ubc = 0;
	}
}

/* One beancounter column of every running VE. */
static void emit_ubc(FILE *f, const struct ve_sample *vs, size_t n, const char *name, const char *type,
		     const char *help, size_t col)
{
	vz_expo_family(f, name, type, help);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < vs[i].n_ubc; k++) {
			const Vz__Control__Beancounter *b = vs[i].ubc[k];
			uint64_t v[] = { b->held, b->maxheld, b->barrier, b->limit, b->failcnt };
			bool has[] = { b->has_held, b->has_maxheld, b->has_barrier, b->has_limit, b->has_failcnt };

			/* What vzctl ubc shows as n/a or "-" is left out. */
			if (b->unsupported || !has[col])
				continue;
			vz_expo_u64(f, name, (const char *const[]){ "ctid", vs[i].ctid, "resource", b->name, NULL },
				    v[col]);
		}
}

static void emit_ves(FILE *f, struct vz_agent *a)
{
	_cleanup_free_ unsigned *veids = NULL;
	_cleanup_free_ struct ve_sample *vs = NULL;
	size_t n = 0;

	if (ve_list(&veids, &n, NULL) < 0)
		n = 0;
	vs = calloc(n ? n : 1, sizeof(*vs));
	if (!vs)
		return;
	for (size_t i = 0; i < n; i++)
		ve_sample_read(a, veids[i], &vs[i]);
	vz_expo_family(f, "vz_ve_running", "gauge", "1 when the VE runs on this host, 0 when it is stopped");
	for (size_t i = 0; i < n; i++)
		vz_expo_u64(f, "vz_ve_running", (const char *const[]){ "ctid", vs[i].ctid, NULL }, vs[i].running);
	vz_expo_family(f, "vz_ve_cpu_seconds_total", "counter", "CPU time the running VE's processes used");
	for (size_t i = 0; i < n; i++)
		if (vs[i].has_cpu)
			vz_expo_double(f, "vz_ve_cpu_seconds_total", (const char *const[]){ "ctid", vs[i].ctid, NULL },
				       (double)vs[i].cpu_ns / 1e9);
	vz_expo_family(f, "vz_ve_memory_bytes", "gauge", "Memory the running VE's cgroup holds");
	for (size_t i = 0; i < n; i++)
		if (vs[i].has_mem)
			vz_expo_u64(f, "vz_ve_memory_bytes", (const char *const[]){ "ctid", vs[i].ctid, NULL },
				    vs[i].mem);
	emit_ubc(f, vs, n, "vz_ve_ubc_held", "gauge", "Beancounter held, in its vzctl units (vzlist -o RES)", 0);
	emit_ubc(f, vs, n, "vz_ve_ubc_maxheld", "gauge", "Beancounter maxheld, in its vzctl units", 1);
	emit_ubc(f, vs, n, "vz_ve_ubc_barrier", "gauge", "Beancounter barrier (+Inf: unlimited)", 2);
	emit_ubc(f, vs, n, "vz_ve_ubc_limit", "gauge", "Beancounter limit (+Inf: unlimited)", 3);
	emit_ubc(f, vs, n, "vz_ve_ubc_failcnt_total", "counter", "Beancounter failcnt: allocations refused", 4);
	for (size_t i = 0; i < n; i++)
		res_ubc_free(vs[i].ubc, vs[i].n_ubc);
}

static void collect(void *arg, FILE *f)
{
	struct vz_agent *a = arg;

	emit_ves(f, a);
	fold_records(a->metrics);
	emit_migrations(f, a->metrics);
}

int agent_metrics_start(struct vz_agent *a, struct vz_err *err)
{
	int ret;

	a->metrics_srv.fd = VZ_FD_INIT;
	if (!a->metrics_listen[0]) {
		pr_info("No metrics: METRICS_LISTEN is empty");
		return 0;
	}
	a->metrics = metrics_new();
	if (!a->metrics)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	ret = vz_metrics_start(&a->metrics_srv, a->loop, a->metrics_listen, collect, a, err);
	if (ret < 0)
		return ret;
	pr_info("Serving metrics on http://%s/metrics", a->metrics_listen);
	return 0;
}

void agent_metrics_stop(struct vz_agent *a)
{
	vz_metrics_stop(&a->metrics_srv);
	free(a->metrics);
	a->metrics = NULL;
}
