/* vzcoord simulate's parts without I/O: the trace's parser and the
 * simulation, which runs the planner each step in simulated time and
 * applies its moves (simulate.h has the trace's format). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "simulate.h"
#include "util.h"

#define LOAD_WINDOW    300 /* s: the agents' CPU is a moving average over minutes */
#define LOAD_SAMPLES   30
#define LINE_MAX_WORDS 32

struct parser {
	const char *name;
	unsigned line;
	struct sim_trace *t;
	struct vz_err *err;
};

static int bad(struct parser *p, const char *fmt, const char *arg)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, arg);
	return vz_error_exit_msg(p->err, VZ_EXIT_BADVAL, EINVAL, "%s:%u: %s", p->name, p->line, msg);
}

/* "2h", "5m", "30s", "1d" or seconds. */
static int parse_duration(const char *s, int64_t *out)
{
	unsigned long v;
	char num[32];
	size_t n = strlen(s);
	int64_t mult = 1;

	if (n == 0 || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: n++; break;
	}
	num[n - 1] = '\0';
	if (vz_parse_ulong(num, 0, 100L * 365 * 86400, &v) < 0)
		return -EINVAL;
	*out = (int64_t)v * mult;
	return 0;
}

/* "0.25" or "25%", in [0, max]. */
static int parse_fraction(const char *s, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s)
		return -EINVAL;
	if (*end == '%') {
		v /= 100;
		end++;
	}
	if (*end || !(v >= 0 && v <= max))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_permille(const char *s, double *out)
{
	unsigned long v;

	if (vz_parse_ulong(s, 0, 1000000, &v) < 0)
		return -EINVAL;
	*out = (double)v;
	return 0;
}

static int parse_steps(struct parser *p, char *spec, struct sim_load *l)
{
	char *save = NULL;

	for (char *tok = strtok_r(spec, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		int64_t at, *ats;
		double val, *vals;

		if (!eq)
			return bad(p, "A step is TIME=PERMILLE, not '%s'", tok);
		*eq = '\0';
		if (parse_duration(tok, &at) < 0 || parse_permille(eq + 1, &val) < 0)
			return bad(p, "A step is TIME=PERMILLE, not '%s'", tok);
		if (l->n_steps ? at <= l->step_at[l->n_steps - 1] : at != 0)
			return bad(p, "Steps start at 0 and their times grow, not at '%s'", tok);
		ats = realloc(l->step_at, (l->n_steps + 1) * sizeof(*ats));
		if (ats)
			l->step_at = ats;
		vals = ats ? realloc(l->step_val, (l->n_steps + 1) * sizeof(*vals)) : NULL;
		if (!vals)
			return vz_error(p->err, ENOMEM, "Parse %s", p->name);
		l->step_val = vals;
		l->step_at[l->n_steps] = at;
		l->step_val[l->n_steps++] = val;
	}
	if (!l->n_steps)
		return bad(p, "%s", "steps: takes TIME=PERMILLE,...");
	return 0;
}

/* HIGH:LOW:period=D[:phase=D] and MEAN:AMP:period=D[:phase=D]. */
static int parse_periodic(struct parser *p, char *spec, struct sim_load *l)
{
	char *f[4] = { 0 }, *save = NULL;
	size_t n = 0;

	for (char *tok = strtok_r(spec, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
		if (n == ARRAY_SIZE(f))
			return bad(p, "Too many fields in '%s'", tok);
		f[n++] = tok;
	}
	if (n < 3 || parse_permille(f[0], &l->a) < 0 || parse_permille(f[1], &l->b) < 0 ||
	    strncmp(f[2], "period=", 7) || parse_duration(f[2] + 7, &l->period) < 0 || l->period < 2)
		return bad(p, "%s", "A periodic load is A:B:period=D[:phase=D], D at least 2s");
	if (n == 4 && (strncmp(f[3], "phase=", 6) || parse_duration(f[3] + 6, &l->phase) < 0))
		return bad(p, "Not a phase=D: '%s'", f[3]);
	return 0;
}

static int parse_load(struct parser *p, char *spec, struct sim_load *l)
{
	char *colon = strchr(spec, ':');

	if (!colon)
		return bad(p, "A load is FUNCTION:ARGS (const, square, sine, steps), not '%s'", spec);
	*colon++ = '\0';
	if (!strcmp(spec, "const")) {
		l->fn = SIM_CONST;
		if (parse_permille(colon, &l->a) < 0)
			return bad(p, "const: takes a permille of a CPU, not '%s'", colon);
		return 0;
	}
	if (!strcmp(spec, "square") || !strcmp(spec, "sine")) {
		l->fn = spec[1] == 'q' ? SIM_SQUARE : SIM_SINE;
		return parse_periodic(p, colon, l);
	}
	if (!strcmp(spec, "steps")) {
		l->fn = SIM_STEPS;
		return parse_steps(p, colon, l);
	}
	return bad(p, "Unknown load function '%s' (const, square, sine, steps)", spec);
}

double sim_load_at(const struct sim_load *l, int64_t t)
{
	int64_t x;
	double v;

	switch (l->fn) {
	case SIM_CONST: return l->a;
	case SIM_SQUARE:
		x = ((t + l->phase) % l->period + l->period) % l->period;
		return x < l->period / 2 ? l->a : l->b;
	case SIM_SINE:
		v = l->a + l->b * sin(2 * M_PI * (double)(t + l->phase) / (double)l->period);
		return v > 0 ? v : 0;
	case SIM_STEPS:
		v = l->step_val[0];
		for (size_t i = 0; i < l->n_steps && l->step_at[i] <= t; i++)
			v = l->step_val[i];
		return v;
	}
	return 0;
}

/* KEY=VALUE of a word, or NULL when the word is not KEY=. */
static const char *value_of(const char *word, const char *key)
{
	size_t n = strlen(key);

	return !strncmp(word, key, n) && word[n] == '=' ? word + n + 1 : NULL;
}

static int parse_setting(struct parser *p, const char *w)
{
	struct rb_settings *s = &p->t->set;
	unsigned long u;
	uint64_t bytes;
	const char *v;
	int ret = 0;

	if ((v = value_of(w, "hot")))
		ret = parse_fraction(v, 100, &s->hot_threshold);
	else if ((v = value_of(w, "imbalance")))
		ret = parse_fraction(v, 100, &s->imbalance_threshold);
	else if ((v = value_of(w, "gain")))
		ret = parse_fraction(v, 1, &s->min_gain);
	else if ((v = value_of(w, "per-gib")))
		ret = parse_fraction(v, 100, &s->gain_per_gib);
	else if ((v = value_of(w, "mem-limit")))
		ret = parse_fraction(v, 1, &s->mem_limit);
	else if ((v = value_of(w, "cooldown")))
		ret = parse_duration(v, &s->cooldown_s);
	else if ((v = value_of(w, "rounds")) || (v = value_of(w, "budget")) || (v = value_of(w, "inflight"))) {
		ret = vz_parse_ulong(v, w[0] == 'r' ? 1 : 0, 1000, &u);
		*(w[0] == 'r' ? &s->trigger_rounds : w[0] == 'b' ? &s->moves_per_hour : &s->max_in_flight) = u;
	} else if ((v = value_of(w, "bandwidth"))) {
		ret = vz_parse_size(v, 1, &bytes);
		if (ret == 0 && (bytes == 0 || bytes == UINT64_MAX))
			ret = -EINVAL;
		s->bandwidth = bytes;
	} else {
		return bad(p, "Unknown setting '%s'", w);
	}
	return ret < 0 ? bad(p, "Bad value in '%s'", w) : 0;
}

static int parse_state(struct parser *p, const char *v, int *state)
{
	if (!strcmp(v, "online"))
		*state = RB_HOST_ONLINE;
	else if (!strcmp(v, "suspect"))
		*state = RB_HOST_SUSPECT;
	else if (!strcmp(v, "offline"))
		*state = RB_HOST_OFFLINE;
	else
		return bad(p, "A host's state is online, suspect or offline, not '%s'", v);
	return 0;
}

/* at TIME host NAME [state=S] [maintenance|active] */
static int parse_event(struct parser *p, char **w, size_t n)
{
	struct sim_trace *t = p->t;
	struct sim_event e = { .host = SIZE_MAX, .state = -1, .maintenance = -1 };
	const char *v;

	if (n < 4 || parse_duration(w[1], &e.at) < 0 || strcmp(w[2], "host"))
		return bad(p, "%s", "An event is: at TIME host NAME [state=S] [maintenance|active]");
	for (size_t i = 0; i < t->n_hosts; i++)
		if (!strcmp(t->hosts[i].name, w[3]))
			e.host = i;
	if (e.host == SIZE_MAX)
		return bad(p, "No host %s (a host is declared before its events)", w[3]);
	if (t->n_events && e.at < t->events[t->n_events - 1].at)
		return bad(p, "Events come in time order: %s is before the one above", w[1]);
	for (size_t i = 4; i < n; i++) {
		if ((v = value_of(w[i], "state"))) {
			if (parse_state(p, v, &e.state) < 0)
				return -EINVAL;
		} else if (!strcmp(w[i], "maintenance") || !strcmp(w[i], "active")) {
			e.maintenance = w[i][0] == 'm';
		} else {
			return bad(p, "Unknown event attribute '%s'", w[i]);
		}
	}
	if (e.state < 0 && e.maintenance < 0)
		return bad(p, "The event for %s changes nothing", w[3]);
	if (vz_grow((void **)&t->events, &(size_t){ t->n_events }, t->n_events, sizeof(e), 1) < 0)
		return vz_error(p->err, ENOMEM, "Parse %s", p->name);
	t->events[t->n_events++] = e;
	return 0;
}

static int parse_host(struct parser *p, char **w, size_t n)
{
	struct sim_trace *t = p->t;
	struct rb_host h = { .state = RB_HOST_ONLINE };
	unsigned long cores = 0;
	const char *v;
	int state;

	if (n < 2 || strlen(w[1]) >= sizeof(h.name) || strchr(w[1], '='))
		return bad(p, "%s", "A host is: host NAME cores=N mem=SIZE [state=S] [maintenance]");
	snprintf(h.name, sizeof(h.name), "%s", w[1]);
	for (size_t i = 0; i < t->n_hosts; i++)
		if (!strcmp(t->hosts[i].name, h.name))
			return bad(p, "Host %s is named twice", h.name);
	for (size_t i = 2; i < n; i++) {
		if ((v = value_of(w[i], "cores"))) {
			if (vz_parse_ulong(v, 1, 4096, &cores) < 0)
				return bad(p, "Bad core count in '%s'", w[i]);
			h.cores = cores;
		} else if ((v = value_of(w[i], "mem"))) {
			if (vz_parse_size(v, 1, &h.mem_total) < 0 || !h.mem_total || h.mem_total == UINT64_MAX)
				return bad(p, "Bad memory size in '%s'", w[i]);
		} else if ((v = value_of(w[i], "state"))) {
			if (parse_state(p, v, &state) < 0)
				return -EINVAL;
			h.state = state;
		} else if (!strcmp(w[i], "maintenance")) {
			h.maintenance = true;
		} else {
			return bad(p, "Unknown host attribute '%s'", w[i]);
		}
	}
	if (!h.cores || !h.mem_total)
		return bad(p, "Host %s needs cores= and mem=", h.name);
	if (vz_grow((void **)&t->hosts, &(size_t){ t->n_hosts }, t->n_hosts, sizeof(h), 1) < 0)
		return vz_error(p->err, ENOMEM, "Parse %s", p->name);
	t->hosts[t->n_hosts++] = h;
	return 0;
}

static int ve_attr(struct parser *p, const char *w, struct rb_ve *ve, struct sim_load *l, uint64_t *disk)
{
	const char *v;
	char spec[256];

	if ((v = value_of(w, "on"))) {
		for (size_t i = 0; i < p->t->n_hosts; i++)
			if (!strcmp(p->t->hosts[i].name, v)) {
				snprintf(ve->host, sizeof(ve->host), "%s", v);
				return 0;
			}
		return bad(p, "No host %s (a host is declared before its VEs)", v);
	}
	if ((v = value_of(w, "mem")))
		return vz_parse_size(v, 1, &ve->mem_used) < 0 || ve->mem_used == UINT64_MAX
			   ? bad(p, "Bad memory size in '%s'", w)
			   : 0;
	if ((v = value_of(w, "disk")))
		return vz_parse_size(v, 1, disk) < 0 || *disk == UINT64_MAX ? bad(p, "Bad disk size in '%s'", w) : 0;
	if ((v = value_of(w, "anti"))) {
		if (!*v || strlen(v) >= sizeof(ve->anti_affinity))
			return bad(p, "Bad anti-affinity label in '%s'", w);
		snprintf(ve->anti_affinity, sizeof(ve->anti_affinity), "%s", v);
		return 0;
	}
	if ((v = value_of(w, "cpu"))) {
		if (strlen(v) >= sizeof(spec))
			return bad(p, "%s", "A load of more than 255 characters");
		snprintf(spec, sizeof(spec), "%s", v);
		return parse_load(p, spec, l);
	}
	if (!strcmp(w, "pin")) {
		ve->pinned = true;
		return 0;
	}
	return bad(p, "Unknown VE attribute '%s'", w);
}

static int parse_ve(struct parser *p, char **w, size_t n)
{
	struct sim_trace *t = p->t;
	struct rb_ve ve = { .last_moved = RB_NEVER };
	struct sim_load l = { .fn = SIM_CONST };
	uint64_t disk = 0;
	bool has_load = false;
	int ret;

	if (n < 2 || vz_parse_veid(w[1], &ve.veid) < 0)
		return bad(p, "%s", "A VE is: ve VEID on=HOST mem=SIZE [disk=SIZE] cpu=LOAD [pin] [anti=LABEL]");
	for (size_t i = 0; i < t->n_ves; i++)
		if (t->ves[i].veid == ve.veid)
			return bad(p, "VE %s is named twice", w[1]);
	for (size_t i = 2; i < n; i++) {
		has_load |= value_of(w[i], "cpu") != NULL;
		ret = ve_attr(p, w[i], &ve, &l, &disk);
		if (ret < 0) {
			free(l.step_at);
			free(l.step_val);
			return ret;
		}
	}
	if (!ve.host[0] || !has_load) {
		free(l.step_at);
		free(l.step_val);
		return bad(p, "VE %s needs on= and cpu=", w[1]);
	}
	ve.copy_bytes = ve.mem_used + disk;
	if (vz_grow((void **)&t->ves, &(size_t){ t->n_ves }, t->n_ves, sizeof(ve), 1) < 0 ||
	    vz_grow((void **)&t->loads, &(size_t){ t->n_ves }, t->n_ves, sizeof(l), 1) < 0) {
		free(l.step_at);
		free(l.step_val);
		return vz_error(p->err, ENOMEM, "Parse %s", p->name);
	}
	t->loads[t->n_ves] = l;
	t->ves[t->n_ves++] = ve;
	return 0;
}

static int parse_line(struct parser *p, char *line)
{
	char *w[LINE_MAX_WORDS], *save = NULL, *hash = strchr(line, '#');
	size_t n = 0;

	if (hash)
		*hash = '\0';
	for (char *tok = strtok_r(line, " \t\r", &save); tok; tok = strtok_r(NULL, " \t\r", &save)) {
		if (n == ARRAY_SIZE(w))
			return bad(p, "%s", "More than 32 words in a line");
		w[n++] = tok;
	}
	if (n == 0)
		return 0;
	if (!strcmp(w[0], "host"))
		return parse_host(p, w, n);
	if (!strcmp(w[0], "ve"))
		return parse_ve(p, w, n);
	if (!strcmp(w[0], "at"))
		return parse_event(p, w, n);
	if (!strcmp(w[0], "settings")) {
		for (size_t i = 1; i < n; i++) {
			int ret = parse_setting(p, w[i]);

			if (ret < 0)
				return ret;
		}
		return 0;
	}
	return bad(p, "Unknown statement '%s' (settings, host, ve, at)", w[0]);
}

void sim_trace_free(struct sim_trace *t)
{
	for (size_t i = 0; i < t->n_ves; i++) {
		free(t->loads[i].step_at);
		free(t->loads[i].step_val);
	}
	free(t->hosts);
	free(t->ves);
	free(t->loads);
	free(t->events);
	*t = (struct sim_trace){ 0 };
}

int sim_trace_parse(const char *text, const char *name, struct sim_trace *t, struct vz_err *err)
{
	struct parser p = { .name = name, .t = t, .err = err };
	char *copy = strdup(text), *line, *save = NULL;
	int ret = 0;

	*t = (struct sim_trace){ 0 };
	rb_settings_default(&t->set);
	if (!copy)
		return vz_error(err, ENOMEM, "Parse %s", name);
	/* strsep, not strtok: empty lines count for the line numbers. */
	save = copy;
	while (ret == 0 && (line = strsep(&save, "\n"))) {
		p.line++;
		ret = parse_line(&p, line);
	}
	free(copy);
	if (ret == 0 && t->n_hosts == 0) {
		p.line = 0;
		ret = vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: No host in the trace", name);
	}
	if (ret < 0)
		sim_trace_free(t);
	return ret;
}

void sim_result_free(struct sim_result *r)
{
	free(r->moves);
	free(r->samples);
	free(r->loads);
	*r = (struct sim_result){ 0 };
}

/* A move under way: its VE (index) and when it is done. */
struct flight {
	size_t ve;
	int64_t end;
};

struct sim {
	struct sim_trace *t;
	struct sim_result *r;
	struct flight *flights;
	size_t n_flights;
	unsigned *over_rounds;
	double *loads;
	size_t next_event;
};

static const char *const state_words[] = { "online", "suspect", "offline" };

/* The trace's events up to now, each logged as "event ...". */
static int happen(struct sim *s, int64_t now, sim_log_fn log, void *arg)
{
	for (; s->next_event < s->t->n_events && s->t->events[s->next_event].at <= now; s->next_event++) {
		const struct sim_event *e = &s->t->events[s->next_event];
		struct rb_host *h = &s->t->hosts[e->host];
		char line[128];

		if (e->state >= 0)
			h->state = (enum rb_host_state)e->state;
		if (e->maintenance >= 0)
			h->maintenance = e->maintenance;
		snprintf(line, sizeof(line), "event host %s %s%s", h->name, state_words[h->state],
			 h->maintenance ? ", in maintenance" : "");
		if (log && log(arg, now, line))
			return -ECANCELED;
	}
	return 0;
}

/* Each VE's CPU: its load averaged over the window before now. */
static void measure(struct sim *s, int64_t now)
{
	for (size_t i = 0; i < s->t->n_ves; i++) {
		double sum = 0;

		for (int k = 0; k < LOAD_SAMPLES; k++)
			sum += sim_load_at(&s->t->loads[i], now - (int64_t)k * LOAD_WINDOW / LOAD_SAMPLES);
		s->t->ves[i].cpu_permille = (unsigned)lround(sum / LOAD_SAMPLES);
	}
}

/* The moves done by now: their VEs on their targets. */
static void land(struct sim *s, int64_t now)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n_flights; i++) {
		struct rb_ve *ve = &s->t->ves[s->flights[i].ve];

		if (s->flights[i].end > now) {
			s->flights[k++] = s->flights[i];
			continue;
		}
		snprintf(ve->host, sizeof(ve->host), "%s", ve->moving_to);
		ve->moving_to[0] = '\0';
		ve->last_moved = s->flights[i].end;
	}
	s->n_flights = k;
}

static unsigned moves_since(const struct sim_result *r, int64_t since)
{
	unsigned n = 0;

	for (size_t i = r->n_moves; i > 0 && r->moves[i - 1].t > since; i--)
		n++;
	return n;
}

static int start_moves(struct sim *s, const struct rb_plan *plan, int64_t now)
{
	struct sim_result *r = s->r;

	for (size_t i = 0; i < plan->n_moves; i++) {
		const struct rb_move *m = &plan->moves[i];
		struct sim_move *mv = realloc(r->moves, (r->n_moves + 1) * sizeof(*mv));
		struct flight *f = realloc(s->flights, (s->n_flights + 1) * sizeof(*f));
		size_t v = 0;

		if (mv)
			r->moves = mv;
		if (f)
			s->flights = f;
		if (!mv || !f)
			return -ENOMEM;
		while (s->t->ves[v].veid != m->veid)
			v++;
		r->moves[r->n_moves++] = (struct sim_move){ .t = now, .move = *m };
		s->flights[s->n_flights++] = (struct flight){ .ve = v, .end = now + m->seconds };
		snprintf(s->t->ves[v].moving_to, sizeof(s->t->ves[v].moving_to), "%s", m->to);
	}
	return 0;
}

static struct rb_snapshot snapshot(struct sim *s, int64_t now)
{
	for (size_t i = 0; i < s->t->n_hosts; i++)
		s->t->hosts[i].over_rounds = s->over_rounds[i];
	return (struct rb_snapshot){
		.now = now,
		.set = s->t->set,
		.hosts = s->t->hosts,
		.n_hosts = s->t->n_hosts,
		.ves = s->t->ves,
		.n_ves = s->t->n_ves,
		.moves_last_hour = moves_since(s->r, now - 3600),
		.in_flight = (unsigned)s->n_flights,
	};
}

static int record(struct sim *s, int64_t now, const struct rb_plan *plan)
{
	struct sim_result *r = s->r;
	size_t nh = s->t->n_hosts;
	struct sim_sample *sm = realloc(r->samples, (r->n_samples + 1) * sizeof(*sm));
	double *loads = sm ? realloc(r->loads, (r->n_samples + 1) * (nh ? nh : 1) * sizeof(*loads)) : NULL;

	if (sm)
		r->samples = sm;
	if (!loads)
		return -ENOMEM;
	r->loads = loads;
	memcpy(r->loads + r->n_samples * nh, s->loads, nh * sizeof(*loads));
	r->samples[r->n_samples++] =
	    (struct sim_sample){ .t = now, .imbalance = plan->imbalance, .moves = (unsigned)plan->n_moves };
	if (r->n_samples == 1 || plan->imbalance > r->max)
		r->max = plan->imbalance;
	if (r->n_samples == 1)
		r->start = plan->imbalance;
	memcpy(s->over_rounds, plan->over_rounds, nh * sizeof(*s->over_rounds));
	return 0;
}

static int round_at(struct sim *s, int64_t now, sim_log_fn log, void *arg, struct vz_err *err)
{
	struct rb_plan plan;
	struct rb_snapshot snap;
	double imb;
	int ret;

	land(s, now);
	measure(s, now);
	if (happen(s, now, log, arg) < 0)
		return vz_error_msg(err, ECANCELED, "Simulation stopped");
	snap = snapshot(s, now);
	ret = rb_loads(&snap, s->loads, &imb, err);
	if (ret == 0)
		ret = rb_plan_round(&snap, &plan, err);
	if (ret < 0)
		return ret;
	for (size_t i = 0; log && i < plan.n_log && ret == 0; i++)
		ret = log(arg, now, plan.log[i]) ? -ECANCELED : 0;
	if (ret == 0)
		ret = record(s, now, &plan);
	if (ret == 0)
		ret = start_moves(s, &plan, now);
	rb_plan_free(&plan);
	if (ret == -ENOMEM)
		return vz_error(err, ENOMEM, "Simulate");
	return ret < 0 ? vz_error_msg(err, -ret, "Simulation stopped") : 0;
}

int sim_run(struct sim_trace *t, int64_t duration, int64_t step, sim_log_fn log, void *arg, struct sim_result *r,
	    struct vz_err *err)
{
	struct sim s = { .t = t, .r = r };
	struct rb_snapshot snap;
	int ret = 0;

	*r = (struct sim_result){ 0 };
	if (step <= 0 || duration < 0)
		return vz_error_msg(err, EINVAL, "A simulation needs a step over 0 and a duration");
	s.over_rounds = calloc(t->n_hosts ? t->n_hosts : 1, sizeof(*s.over_rounds));
	s.loads = calloc(t->n_hosts ? t->n_hosts : 1, sizeof(*s.loads));
	if (!s.over_rounds || !s.loads)
		ret = vz_error(err, ENOMEM, "Simulate");
	for (int64_t now = 0; ret == 0 && now <= duration; now += step)
		ret = round_at(&s, now, log, arg, err);
	if (ret == 0) {
		/* The end: every move done, at the last round's loads. */
		land(&s, INT64_MAX);
		snap = snapshot(&s, duration);
		ret = rb_loads(&snap, s.loads, &r->end, err);
	}
	free(s.flights);
	free(s.over_rounds);
	free(s.loads);
	if (ret < 0)
		sim_result_free(r);
	return ret;
}
