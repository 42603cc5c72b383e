/* vzcoord's /metrics page (lib/metrics_http.h serves it, in the loop):
 * each host's state, maintenance, VEs, memory, CPU and load as the
 * planner sees it; the queue's moves by state; the pool's imbalance (the
 * planner's, coordinator/rebalance.h). Read from the pool and the store
 * at each scrape. */
#define LOG_PREFIX "metrics: "
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "coord.h"
#include "expo.h"
#include "log.h"
#include "rebalance_live.h"
#include "util.h"

static const char *const host_states[] = { "online", "suspect", "offline" };
static const char *const maints[] = { "none", "draining", "drained", "partial" };

static void emit_hosts(FILE *f, const Vz__Pool__AdminReply *r)
{
	vz_expo_family(f, "vz_pool_host_state", "gauge", "1 for the state each host is in (vzcoord status STATE)");
	for (size_t i = 0; i < r->n_hosts; i++)
		for (size_t s = 0; s < ARRAY_SIZE(host_states); s++)
			vz_expo_u64(f, "vz_pool_host_state",
				    (const char *const[]){ "host", r->hosts[i]->name, "state", host_states[s], NULL },
				    !strcmp(r->hosts[i]->state, host_states[s]));
	vz_expo_family(f, "vz_pool_host_maintenance", "gauge",
		       "1 for the maintenance each host is in (vzcoord status DRAIN)");
	for (size_t i = 0; i < r->n_hosts; i++)
		for (size_t s = 0; s < ARRAY_SIZE(maints); s++) {
			const char *m = r->hosts[i]->maint ? r->hosts[i]->maint : "none";

			vz_expo_u64(f, "vz_pool_host_maintenance",
				    (const char *const[]){ "host", r->hosts[i]->name, "maint", maints[s], NULL },
				    !strcmp(m, maints[s]));
		}
	vz_expo_family(f, "vz_pool_host_ves", "gauge", "VEs each host reported in its last heartbeat");
	for (size_t i = 0; i < r->n_hosts; i++)
		vz_expo_u64(f, "vz_pool_host_ves", (const char *const[]){ "host", r->hosts[i]->name, NULL },
			    r->hosts[i]->ves);
	vz_expo_family(f, "vz_pool_host_memory_used_bytes", "gauge", "Host memory in use (total - MemAvailable)");
	for (size_t i = 0; i < r->n_hosts; i++)
		vz_expo_u64(f, "vz_pool_host_memory_used_bytes",
			    (const char *const[]){ "host", r->hosts[i]->name, NULL }, r->hosts[i]->mem_used);
	vz_expo_family(f, "vz_pool_host_ve_cpus", "gauge", "CPUs the host's VEs use, summed");
	for (size_t i = 0; i < r->n_hosts; i++)
		vz_expo_double(f, "vz_pool_host_ve_cpus", (const char *const[]){ "host", r->hosts[i]->name, NULL },
			       r->hosts[i]->cpu_permille / 1000.0);
}

static void emit_moves(FILE *f, const struct coord_moves *l)
{
	static const char *const states[] = { "queued", "running", "done", "failed" };
	uint64_t n[ARRAY_SIZE(states)] = { 0 };

	for (size_t i = 0; i < l->n; i++)
		if ((size_t)l->v[i].state < ARRAY_SIZE(states))
			n[l->v[i].state]++;
	vz_expo_family(f, "vz_pool_queue_depth", "gauge", "Moves waiting in the queue (queued, not yet started)");
	vz_expo_u64(f, "vz_pool_queue_depth", NULL, n[POOL_MOVE_QUEUED]);
	vz_expo_family(f, "vz_pool_moves", "gauge", "Moves the store holds, by state");
	for (size_t s = 0; s < ARRAY_SIZE(states); s++)
		vz_expo_u64(f, "vz_pool_moves", (const char *const[]){ "state", states[s], NULL }, n[s]);
}

/* The planner's loads and imbalance, as an automatic round would see them. */
static void emit_imbalance(FILE *f, struct coord *c, const struct coord_moves *l)
{
	struct coord_rb_snap snap;
	_cleanup_free_ double *loads = NULL;
	struct vz_err err = { 0 };
	double imbalance = 0;

	if (coord_rb_snapshot(&c->pool, vz_now_ns(), coord_now_ms(c), l->v, l->n, &c->conf.rebalance, false, &snap,
			      &err) < 0) {
		pr_warn("No imbalance for the metrics: %s", err.msg);
		return;
	}
	loads = calloc(snap.s.n_hosts ? snap.s.n_hosts : 1, sizeof(*loads));
	if (loads && rb_loads(&snap.s, loads, &imbalance, &err) == 0) {
		vz_expo_family(f, "vz_pool_imbalance", "gauge",
			       "The planner's imbalance: coefficient of variation of the eligible hosts' loads");
		vz_expo_double(f, "vz_pool_imbalance", NULL, imbalance);
		vz_expo_family(f, "vz_pool_host_load", "gauge",
			       "Each host's load for the planner, max(cpu, mem) as a fraction (0: not eligible)");
		for (size_t i = 0; i < snap.s.n_hosts; i++)
			vz_expo_double(f, "vz_pool_host_load",
				       (const char *const[]){ "host", snap.hosts[i].name, NULL }, loads[i]);
	} else if (err.msg[0]) {
		pr_warn("No imbalance for the metrics: %s", err.msg);
	}
	coord_rb_free(&snap);
}

static void collect(void *arg, FILE *f)
{
	struct coord *c = arg;
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct coord_moves l = { 0 };
	struct vz_err err = { 0 };
	uint64_t now = vz_now_ns();

	pool_tick(&c->pool, now);
	if (pool_report(&c->pool, now, &r, &err) == 0)
		emit_hosts(f, &r);
	else
		pr_warn("No hosts for the metrics: %s", err.msg);
	pool_report_free(&r);
	vz_err_clear(&err);
	if (coord_moves_load(c, POOL_MOVE_ALL, &l, &err) < 0) {
		pr_warn("No moves for the metrics: %s", err.msg);
		l = (struct coord_moves){ 0 };
	}
	emit_moves(f, &l);
	emit_imbalance(f, c, &l);
	free(l.v);
}

int coord_metrics_start(struct coord *c, struct vz_err *err)
{
	int ret;

	c->metrics.fd = VZ_FD_INIT;
	if (!c->conf.metrics_listen[0]) {
		pr_info("No metrics: METRICS_LISTEN is empty");
		return 0;
	}
	ret = vz_metrics_start(&c->metrics, c->loop, c->conf.metrics_listen, collect, c, err);
	if (ret == 0)
		pr_info("Serving metrics on http://%s/metrics", c->conf.metrics_listen);
	return ret;
}
