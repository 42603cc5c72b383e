/* The pool in memory: hosts, their inventories, their states and the
 * alerts (members.h). */
#define LOG_PREFIX "pool: "
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "members.h"
#include "util.h"

#define NS_PER_MS 1000000ull

static int64_t wall_ms(const struct pool *p, int64_t mono_ns)
{
	return mono_ns / (int64_t)NS_PER_MS + p->wall_offset_ms;
}

/* How long ago host h was last heard of. */
static uint64_t silence(const struct pool_node *h, uint64_t now)
{
	return (int64_t)now > h->last_seen_ns ? (uint64_t)((int64_t)now - h->last_seen_ns) : 0;
}

/* Host h's record into the store, if there is one. */
static void save_host(struct pool *p, struct pool_node *h, uint64_t now)
{
	struct pool_host r = {
		.migration_port = (uint16_t)h->mig_port, .state = h->state, .maint = h->maint, .cores = h->cores
	};
	struct vz_err err = { 0 };

	if (!p->store)
		return;
	snprintf(r.name, sizeof(r.name), "%s", h->name);
	snprintf(r.address, sizeof(r.address), "%s", h->address);
	r.last_seen_ms = wall_ms(p, h->last_seen_ns);
	r.mem_total = h->mem_total;
	r.mem_free = h->mem_free;
	r.disk_free = h->disk_free;
	if (pool_store_host_put(p->store, &r, &err) < 0)
		pr_warn("Store: host %s not recorded: %s", h->name, err.msg);
	else
		h->saved_ns = now;
}

/* An event into the store, if there is one (the log has it anyway). */
static void note(struct pool *p, uint64_t now, const char *kind, const char *host, const char *text)
{
	struct pool_event ev = { .time_ms = wall_ms(p, (int64_t)now) };
	struct vz_err err = { 0 };

	if (!p->store)
		return;
	snprintf(ev.kind, sizeof(ev.kind), "%s", kind);
	snprintf(ev.host, sizeof(ev.host), "%s", host ? host : "");
	snprintf(ev.text, sizeof(ev.text), "%s", text);
	if (pool_store_event_add(p->store, &ev, &err) < 0)
		pr_warn("Store: event not recorded: %s", err.msg);
}

/* Host h goes to state s: said in the log and in the store. */
static void change_state(struct pool *p, struct pool_node *h, enum pool_host_state s, uint64_t now, const char *why)
{
	char text[POOL_TEXT_MAX];

	snprintf(text, sizeof(text), "%s -> %s (%s)", pool_host_state_name(h->state), pool_host_state_name(s), why);
	if (s == POOL_HOST_ONLINE)
		pr_info("Host %s: %s", h->name, text);
	else
		pr_warn("Host %s: %s", h->name, text);
	h->state = s;
	save_host(p, h, now);
	note(p, now, pool_host_state_name(s), h->name, text);
}

struct pool_node *pool_find_host(const struct pool *p, const char *name)
{
	for (size_t i = 0; i < p->n_hosts; i++)
		if (!strcmp(p->hosts[i]->name, name))
			return p->hosts[i];
	return NULL;
}

int pool_set_maint(struct pool *p, const char *name, enum pool_host_maint m, uint64_t now, struct vz_err *err)
{
	struct pool_node *h = pool_find_host(p, name);
	char text[POOL_TEXT_MAX];

	if (!h)
		return vz_error_msg(err, ENOENT, "No host %s in the pool", name);
	if (h->maint == m)
		return 0;
	snprintf(text, sizeof(text), "maintenance %s -> %s", pool_host_maint_name(h->maint), pool_host_maint_name(m));
	pr_info("Host %s: %s", h->name, text);
	h->maint = m;
	save_host(p, h, now);
	note(p, now, pool_host_maint_name(m), h->name, text);
	return 0;
}

static int add_host(struct pool *p, const char *name, struct pool_node **out, struct vz_err *err)
{
	struct pool_node *h;
	size_t i;

	if (vz_grow((void **)&p->hosts, &p->cap_hosts, p->n_hosts, sizeof(*p->hosts), 16) < 0)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	h = calloc(1, sizeof(*h));
	if (!h)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	snprintf(h->name, sizeof(h->name), "%s", name);
	for (i = 0; i < p->n_hosts && strcmp(p->hosts[i]->name, name) < 0; i++)
		;
	memmove(&p->hosts[i + 1], &p->hosts[i], (p->n_hosts - i) * sizeof(*p->hosts));
	p->hosts[i] = h;
	p->n_hosts++;
	*out = h;
	return 0;
}

int pool_register(struct pool *p, const Vz__Pool__Register *r, uint64_t now, struct vz_err *err)
{
	struct pool_node *h = pool_find_host(p, r->host);
	bool known = h != NULL;
	int ret;

	if (!*r->host || strlen(r->host) >= sizeof(h->name))
		return vz_error_msg(err, EINVAL, "Bad host name in a registration");
	if (!h && (ret = add_host(p, r->host, &h, err)) < 0)
		return ret;
	snprintf(h->address, sizeof(h->address), "%s", r->address ? r->address : "");
	h->mig_port = r->has_mig_port ? r->mig_port : 0;
	h->cores = r->has_cores ? r->cores : 0;
	h->mem_total = r->has_mem_total ? r->mem_total : 0;
	h->interval_ms = r->has_interval_ms && r->interval_ms >= 100 ? r->interval_ms : 2000;
	h->last_seen_ns = (int64_t)now;
	if (h->state != POOL_HOST_ONLINE || !known) {
		char why[128];

		snprintf(why, sizeof(why), "%sregistered from %s, %u cores, %llu MiB", known ? "" : "new, ", h->address,
			 h->cores, (unsigned long long)(h->mem_total >> 20));
		change_state(p, h, POOL_HOST_ONLINE, now, why);
	} else {
		save_host(p, h, now);
	}
	return 0;
}

static int cmp_ve(const void *a, const void *b)
{
	const struct pool_ve *x = a, *y = b;

	return x->veid < y->veid ? -1 : x->veid > y->veid;
}

static void free_alerts(char **alerts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(alerts[i]);
	free(alerts);
}

static int cmp_held(const void *a, const void *b)
{
	const struct pool_held *x = a, *y = b;

	if (x->veid != y->veid)
		return x->veid < y->veid ? -1 : 1;
	return x->host < y->host ? -1 : x->host > y->host;
}

int pool_held_list(const struct pool *p, struct pool_held **out, size_t *n_out, struct vz_err *err)
{
	struct pool_held *all;
	size_t n = 0;

	for (size_t i = 0; i < p->n_hosts; i++)
		n += p->hosts[i]->n_ves;
	all = calloc(n ? n : 1, sizeof(*all));
	if (!all)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	n = 0;
	for (size_t i = 0; i < p->n_hosts; i++)
		for (size_t k = 0; k < p->hosts[i]->n_ves; k++)
			all[n++] = (struct pool_held){ p->hosts[i]->ves[k].veid, i, &p->hosts[i]->ves[k] };
	qsort(all, n, sizeof(*all), cmp_held);
	*out = all;
	*n_out = n;
	return 0;
}

/* One alert's text: "VE N is reported by h1, h2 and h3". */
static char *alert_text(const struct pool *p, const struct pool_held *h, size_t n)
{
	char text[512];
	size_t len = (size_t)snprintf(text, sizeof(text), "VE %u is reported by", h[0].veid);

	for (size_t k = 0; k < n && len < sizeof(text); k++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s %s",
					k == 0	     ? ""
					: k + 1 == n ? " and"
						     : ",",
					p->hosts[h[k].host]->name);
	return strdup(text);
}

/* Each VEID held by more than one host. Hosts are in name order, so the
 * text of one alert is the same at every computation. */
static int compute_alerts(const struct pool *p, char ***out, size_t *n_out, struct vz_err *err)
{
	_cleanup_free_ struct pool_held *all = NULL;
	char **alerts = NULL;
	size_t n = 0, na = 0, acap = 0;
	int ret = pool_held_list(p, &all, &n, err);

	if (ret < 0)
		return ret;
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && all[j].veid == all[i].veid; j++)
			;
		if (j - i < 2)
			continue;
		if (vz_grow((void **)&alerts, &acap, na, sizeof(*alerts), 8) < 0 ||
		    !(alerts[na] = alert_text(p, &all[i], j - i))) {
			free_alerts(alerts, na);
			return vz_error_msg(err, ENOMEM, "Out of memory");
		}
		na++;
	}
	*out = alerts;
	*n_out = na;
	return 0;
}

static bool has_alert(char **alerts, size_t n, const char *text)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(alerts[i], text))
			return true;
	return false;
}

static int update_alerts(struct pool *p, uint64_t now, struct vz_err *err)
{
	char **alerts = NULL;
	size_t n = 0;
	int ret = compute_alerts(p, &alerts, &n, err);

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++)
		if (!has_alert(p->alerts, p->n_alerts, alerts[i])) {
			pr_warn("Alert: %s: it is neither started nor moved until one host has it", alerts[i]);
			note(p, now, "alert", NULL, alerts[i]);
		}
	for (size_t i = 0; i < p->n_alerts; i++)
		if (!has_alert(alerts, n, p->alerts[i])) {
			pr_info("Alert over: %s no longer", p->alerts[i]);
			note(p, now, "alert-over", NULL, p->alerts[i]);
		}
	free_alerts(p->alerts, p->n_alerts);
	p->alerts = alerts;
	p->n_alerts = n;
	return 0;
}

static void free_ves(struct pool_ve *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].ip);
		free(v[i].hostname);
	}
	free(v);
}

/* What the agent says of one VE, its strings copied; -EINVAL for a bad
 * VEID or state. */
static int ve_of(const Vz__Pool__VeUsage *u, struct pool_ve *v, struct vz_err *err)
{
	if (u->veid == 0 || u->veid > INT32_MAX || u->state < VZ__POOL__VE_STATE__VE_STOPPED ||
	    u->state > VZ__POOL__VE_STATE__VE_RUNNING)
		return vz_error_msg(err, EINVAL, "Bad VE in an inventory: VEID %u, state %d", u->veid, (int)u->state);
	*v = (struct pool_ve){ .veid = u->veid,
			       .state = u->state,
			       .mem_used = u->has_mem_used ? u->mem_used : 0,
			       .cpu_permille = u->has_cpu_permille ? u->cpu_permille : 0,
			       .cpu_known = u->has_cpu_permille,
			       .disk_used = u->has_disk_used ? u->disk_used : 0,
			       .nproc = u->has_nproc ? u->nproc : 0,
			       .pinned = u->has_pinned && u->pinned };
	/* A label too long for the planner is cut: it still tells VEs apart
	 * as far as vzctl lets one be set (63 bytes). */
	snprintf(v->anti_affinity, sizeof(v->anti_affinity), "%s", u->anti_affinity ? u->anti_affinity : "");
	v->ip = strndup(u->ip ? u->ip : "", POOL_VE_TEXT_MAX);
	v->hostname = strndup(u->hostname ? u->hostname : "", POOL_VE_TEXT_MAX);
	if (!v->ip || !v->hostname)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	return 0;
}

/* The heartbeat's inventory as pool_ves in VEID order; one VEID twice in
 * it counts once (the agent lists its configs, each VEID once). */
static int inventory(const Vz__Pool__Heartbeat *hb, struct pool_ve **out, size_t *n_out, struct vz_err *err)
{
	struct pool_ve *v;
	size_t n = 0, m = 0;

	if (hb->n_ves > POOL_MAX_VES)
		return vz_error_msg(err, EINVAL, "An inventory of %zu VEs: at most %u", hb->n_ves, POOL_MAX_VES);
	v = calloc(hb->n_ves ? hb->n_ves : 1, sizeof(*v));
	if (!v)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (size_t i = 0; i < hb->n_ves; i++) {
		int ret = ve_of(hb->ves[i], &v[n++], err);

		if (ret < 0) {
			free_ves(v, n);
			return ret;
		}
	}
	qsort(v, n, sizeof(*v), cmp_ve);
	for (size_t i = 0; i < n; i++) {
		if (m == 0 || v[m - 1].veid != v[i].veid) {
			v[m++] = v[i];
			continue;
		}
		free(v[i].ip);
		free(v[i].hostname);
	}
	*out = v;
	*n_out = m;
	return 0;
}

/* A VE its host has no rate for yet (it just arrived, or started) keeps
 * the CPU the pool last knew for it there (pool_ve_moved brings it along):
 * a VE that moved is not idle for the first heartbeats of its new host. */
static void keep_cpu(struct pool_ve *ves, size_t n, const struct pool_ve *old, size_t n_old)
{
	for (size_t i = 0, j = 0; i < n; i++) {
		while (j < n_old && old[j].veid < ves[i].veid)
			j++;
		if (!ves[i].cpu_known && j < n_old && old[j].veid == ves[i].veid && old[j].cpu_known) {
			ves[i].cpu_permille = old[j].cpu_permille;
			ves[i].cpu_known = true;
		}
	}
}

int pool_heartbeat(struct pool *p, const char *name, const Vz__Pool__Heartbeat *hb, uint64_t now, struct vz_err *err)
{
	struct pool_node *h = pool_find_host(p, name);
	struct pool_ve *ves = NULL;
	size_t n = 0;
	int ret;

	if (!h)
		return vz_error_msg(err, ENOENT, "Host %s sent a heartbeat before registering", name);
	ret = inventory(hb, &ves, &n, err);
	if (ret < 0)
		return vz_error_wrap(err, "Host %s", name);
	keep_cpu(ves, n, h->ves, h->n_ves);
	free_ves(h->ves, h->n_ves);
	h->ves = ves;
	h->n_ves = n;
	h->seq = hb->seq;
	h->mem_free = hb->has_mem_free ? hb->mem_free : 0;
	h->disk_free = hb->has_disk_free ? hb->disk_free : 0;
	h->load_milli = hb->has_load_milli ? hb->load_milli : 0;
	h->agent_draining = hb->has_draining && hb->draining;
	h->hb_ns = now;
	h->last_seen_ns = (int64_t)now;
	if (h->state != POOL_HOST_ONLINE) {
		char why[64];

		snprintf(why, sizeof(why), "heartbeat %llu, %zu VEs", (unsigned long long)hb->seq, n);
		change_state(p, h, POOL_HOST_ONLINE, now, why);
	} else if (now - h->saved_ns >= POOL_SEEN_SAVE_MS * NS_PER_MS) {
		save_host(p, h, now);
	}
	return update_alerts(p, now, err);
}

int pool_ve_moved(struct pool *p, unsigned veid, const char *src, const char *dst, struct vz_err *err)
{
	struct pool_node *from = pool_find_host(p, src), *to = pool_find_host(p, dst);
	struct pool_ve v, *grown;
	size_t i, j;

	if (!from || !to)
		return vz_error_msg(err, ENOENT, "VE %u moved from %s to %s: no such host", veid, src, dst);
	for (i = 0; i < from->n_ves && from->ves[i].veid != veid; i++)
		;
	if (i == from->n_ves)
		return 0; /* a heartbeat of src already said it is gone */
	v = from->ves[i];
	memmove(&from->ves[i], &from->ves[i + 1], (from->n_ves - i - 1) * sizeof(v));
	from->n_ves--;
	for (j = 0; j < to->n_ves && to->ves[j].veid < veid; j++)
		;
	if (j < to->n_ves && to->ves[j].veid == veid) {
		free(v.ip);
		free(v.hostname);
		return 0; /* a heartbeat of dst already has it */
	}
	grown = realloc(to->ves, (to->n_ves + 1) * sizeof(v));
	if (!grown) {
		free(v.ip);
		free(v.hostname);
		return vz_error(err, ENOMEM, "VE %u moved to %s", veid, dst);
	}
	to->ves = grown;
	memmove(&to->ves[j + 1], &to->ves[j], (to->n_ves - j) * sizeof(v));
	to->ves[j] = v;
	to->n_ves++;
	return 0;
}

enum pool_host_state pool_host_state_at(const struct pool *p, const struct pool_node *h, uint64_t now)
{
	uint64_t age = silence(h, now);
	uint64_t interval = (uint64_t)h->interval_ms * NS_PER_MS;

	if (age >= p->offline_after_ns)
		return POOL_HOST_OFFLINE;
	/* Half an interval of slack: a heartbeat a little late is not missed. */
	if (age > p->suspect_after * interval + interval / 2)
		return POOL_HOST_SUSPECT;
	return POOL_HOST_ONLINE;
}

void pool_tick(struct pool *p, uint64_t now)
{
	for (size_t i = 0; i < p->n_hosts; i++) {
		struct pool_node *h = p->hosts[i];
		enum pool_host_state s = pool_host_state_at(p, h, now);

		char why[96];

		if (s == h->state)
			continue;
		snprintf(why, sizeof(why), "no heartbeat for %.1f s; its %zu VEs are unknown now",
			 (double)silence(h, now) / 1e9, h->n_ves);
		change_state(p, h, s, now, why);
	}
}

static int report_hosts(const struct pool *p, uint64_t now, Vz__Pool__AdminReply *r, struct vz_err *err)
{
	Vz__Pool__HostStatus *hs = calloc(p->n_hosts ? p->n_hosts : 1, sizeof(*hs));

	r->hosts = calloc(p->n_hosts ? p->n_hosts : 1, sizeof(*r->hosts));
	if (!hs || !r->hosts) {
		free(hs);
		return vz_error_msg(err, ENOMEM, "Out of memory");
	}
	r->hosts[0] = hs;
	for (size_t i = 0; i < p->n_hosts; i++) {
		const struct pool_node *h = p->hosts[i];
		Vz__Pool__HostStatus *s = &hs[i];
		uint32_t cpu = 0;

		vz__pool__host_status__init(s);
		s->name = (char *)h->name;
		s->state = (char *)pool_host_state_name(pool_host_state_at(p, h, now));
		s->maint = (char *)pool_host_maint_name(h->maint);
		s->address = (char *)h->address;
		s->has_ves = s->has_mem_used = s->has_mem_total = s->has_cpu_permille = 1;
		s->has_cores = s->has_load_milli = s->has_disk_free = s->has_seen_ms_ago = 1;
		s->ves = (uint32_t)h->n_ves;
		s->mem_total = h->mem_total;
		s->mem_used = h->mem_total > h->mem_free ? h->mem_total - h->mem_free : 0;
		for (size_t k = 0; k < h->n_ves; k++)
			cpu += h->ves[k].cpu_permille;
		s->cpu_permille = cpu;
		s->cores = h->cores;
		s->load_milli = h->load_milli;
		s->disk_free = h->disk_free;
		s->seen_ms_ago = silence(h, now) / NS_PER_MS;
		r->hosts[i] = s;
	}
	r->n_hosts = p->n_hosts;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	const Vz__Pool__VeEntry *x = *(Vz__Pool__VeEntry *const *)a, *y = *(Vz__Pool__VeEntry *const *)b;

	if (x->veid != y->veid)
		return x->veid < y->veid ? -1 : 1;
	return strcmp(x->host, y->host);
}

static int report_ves(const struct pool *p, uint64_t now, Vz__Pool__AdminReply *r, struct vz_err *err)
{
	Vz__Pool__VeEntry *es;
	size_t n = 0;

	for (size_t i = 0; i < p->n_hosts; i++)
		n += p->hosts[i]->n_ves;
	es = calloc(n ? n : 1, sizeof(*es));
	r->ves = calloc(n ? n : 1, sizeof(*r->ves));
	if (!es || !r->ves) {
		free(es);
		return vz_error_msg(err, ENOMEM, "Out of memory");
	}
	r->ves[0] = es;
	n = 0;
	for (size_t i = 0; i < p->n_hosts; i++) {
		const struct pool_node *h = p->hosts[i];
		bool known = pool_host_state_at(p, h, now) == POOL_HOST_ONLINE;

		for (size_t k = 0; k < h->n_ves; k++) {
			Vz__Pool__VeEntry *e = &es[n];

			vz__pool__ve_entry__init(e);
			e->veid = h->ves[k].veid;
			e->state = known ? h->ves[k].state : VZ__POOL__VE_STATE__VE_UNKNOWN;
			e->host = (char *)h->name;
			e->has_mem_used = e->has_cpu_permille = e->has_disk_used = e->has_duplicate = 1;
			e->mem_used = h->ves[k].mem_used;
			e->cpu_permille = h->ves[k].cpu_permille;
			e->disk_used = h->ves[k].disk_used;
			e->has_nproc = 1;
			e->nproc = h->ves[k].nproc;
			e->ip = h->ves[k].ip;
			e->hostname = h->ves[k].hostname;
			r->ves[n++] = e;
		}
	}
	qsort(r->ves, n, sizeof(*r->ves), cmp_entry);
	for (size_t i = 0; i < n; i++)
		r->ves[i]->duplicate = (i > 0 && r->ves[i - 1]->veid == r->ves[i]->veid) ||
				       (i + 1 < n && r->ves[i + 1]->veid == r->ves[i]->veid);
	r->n_ves = n;
	return 0;
}

int pool_report(const struct pool *p, uint64_t now, Vz__Pool__AdminReply *r, struct vz_err *err)
{
	int ret = report_hosts(p, now, r, err);

	if (ret == 0)
		ret = report_ves(p, now, r, err);
	if (ret < 0) {
		pool_report_free(r);
		return ret;
	}
	r->alerts = p->alerts;
	r->n_alerts = p->n_alerts;
	return 0;
}

/* Entries were allocated as one array each, the hosts' at hosts[0] and
 * the VEs' at the lowest address (they are sorted), or ves[0] when none. */
void pool_report_free(Vz__Pool__AdminReply *r)
{
	Vz__Pool__VeEntry *first = r->ves ? r->ves[0] : NULL;

	if (r->hosts)
		free(r->hosts[0]);
	free(r->hosts);
	for (size_t i = 0; i < r->n_ves; i++)
		if (r->ves[i] < first)
			first = r->ves[i];
	free(first);
	free(r->ves);
	r->hosts = NULL;
	r->ves = NULL;
	r->n_hosts = r->n_ves = 0;
	r->alerts = NULL;
	r->n_alerts = 0;
}

struct load {
	struct pool *p;
	uint64_t now;
};

static int load_host(void *arg, const struct pool_host *r, struct vz_err *err)
{
	struct load *l = arg;
	struct pool_node *h;
	int64_t age_ms = wall_ms(l->p, (int64_t)l->now) - r->last_seen_ms;
	int ret;

	if (pool_find_host(l->p, r->name))
		return 0;
	ret = add_host(l->p, r->name, &h, err);
	if (ret < 0)
		return ret;
	snprintf(h->address, sizeof(h->address), "%s", r->address);
	h->mig_port = r->migration_port;
	h->cores = r->cores;
	h->mem_total = r->mem_total;
	h->mem_free = r->mem_free;
	h->disk_free = r->disk_free;
	h->interval_ms = 2000;
	h->last_seen_ns = (int64_t)l->now - (age_ms > 0 ? age_ms * (int64_t)NS_PER_MS : 0);
	h->saved_ns = l->now;
	/* As it was recorded: a tick says what its silence makes it now. */
	h->state = r->state;
	h->maint = r->maint;
	return 0;
}

int pool_load(struct pool *p, uint64_t now, struct vz_err *err)
{
	struct load l = { p, now };

	return p->store ? pool_store_host_list(p->store, load_host, &l, err) : 0;
}

void pool_free(struct pool *p)
{
	for (size_t i = 0; i < p->n_hosts; i++) {
		free_ves(p->hosts[i]->ves, p->hosts[i]->n_ves);
		free(p->hosts[i]);
	}
	free(p->hosts);
	free_alerts(p->alerts, p->n_alerts);
	memset(p, 0, sizeof(*p));
}
