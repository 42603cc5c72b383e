/* vzcoord serve's queue of moves: at each tick the queued moves that the
 * limits allow start, each in a worker process that gives its order to
 * the source's agent (coord_order_migrate) and writes the agent's progress
 * and the outcome into a pipe the loop reads; a move whose outcome is not
 * known (its worker lost the agent, or the coordinator restarted while it
 * ran) is asked of its source (coord_order_query) until it is, or decided
 * from the inventory once both hosts have spoken. A move is marked
 * RUNNING in the store before its order is given, so that no restart ever
 * gives it twice; the admins waiting for it are told every line. */
#define LOG_PREFIX "queue: "
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "coord.h"
#include "log.h"
#include "order.h"
#include "plan.h"
#include "util.h"

#define NS_PER_MS      1000000ull
#define QUERY_EVERY_NS (2000 * NS_PER_MS)
#define MAX_QUEUE      4096

struct coord_worker {
	struct coord *c;
	pid_t pid;
	uint64_t move_id;
	bool query; /* a question about the move, not the move */
	uint64_t started_ns;
	int fd;
	ev_io io;
	ev_child child;
	bool eof, exited;
	char buf[2048];
	size_t len;
	char result[POOL_TEXT_MAX + 64]; /* the worker's last line, "R ..." or "E ..." */
	struct coord_worker *next;
};

int64_t coord_now_ms(const struct coord *c)
{
	return (int64_t)(vz_now_ns() / NS_PER_MS) + c->pool.wall_offset_ms;
}

void coord_event(struct coord *c, const char *kind, unsigned veid, const char *host, const char *fmt, ...)
{
	struct pool_event ev = { .time_ms = coord_now_ms(c), .veid = veid };
	struct vz_err err = { 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ev.text, sizeof(ev.text), fmt, ap);
	va_end(ap);
	snprintf(ev.kind, sizeof(ev.kind), "%s", kind);
	snprintf(ev.host, sizeof(ev.host), "%s", host ? host : "");
	pr_info("%s", ev.text);
	if (c->store && pool_store_event_add(c->store, &ev, &err) < 0)
		pr_warn("Store: event not recorded: %s", err.msg);
}

int coord_move_save(struct coord *c, struct pool_move *m)
{
	struct vz_err err = { 0 };
	int ret;

	m->updated_ms = coord_now_ms(c);
	ret = pool_store_move_update(c->store, m, &err);
	if (ret < 0)
		pr_err("Store: move %" PRIu64 " not recorded: %s", m->id, err.msg);
	return ret;
}

/* The moves: gathered from the store into an array. */
static int gather(void *arg, const struct pool_move *m, struct vz_err *err)
{
	struct coord_moves *l = arg;

	if (l->n >= MAX_QUEUE)
		return 1;
	if (vz_grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v), 32) < 0)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	l->v[l->n++] = *m;
	return 0;
}

int coord_moves_load(struct coord *c, int state, struct coord_moves *l, struct vz_err *err)
{
	*l = (struct coord_moves){ 0 };
	return pool_store_move_list(c->store, state, gather, l, err);
}

/* The queued and running moves, in id order. */
static int active_moves(struct coord *c, struct coord_moves *l, struct vz_err *err)
{
	struct coord_moves run;
	int ret = coord_moves_load(c, POOL_MOVE_QUEUED, l, err);

	if (ret < 0 || (ret = coord_moves_load(c, POOL_MOVE_RUNNING, &run, err)) < 0)
		return ret;
	for (size_t i = 0; i < run.n; i++) {
		size_t k = l->n;

		if (vz_grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v), 32) < 0) {
			free(run.v);
			return vz_error_msg(err, ENOMEM, "Out of memory");
		}
		while (k > 0 && l->v[k - 1].id > run.v[i].id) {
			l->v[k] = l->v[k - 1];
			k--;
		}
		l->v[k] = run.v[i];
		l->n++;
	}
	free(run.v);
	return 0;
}

const struct pool_ve *coord_find_ve(const struct pool_node *h, unsigned veid)
{
	for (size_t i = 0; h && i < h->n_ves; i++)
		if (h->ves[i].veid == veid)
			return &h->ves[i];
	return NULL;
}

/* How many hosts report veid; *where the first. */
unsigned coord_where(const struct coord *c, unsigned veid, struct pool_node **where)
{
	unsigned n = 0;

	*where = NULL;
	for (size_t i = 0; i < c->pool.n_hosts; i++)
		if (coord_find_ve(c->pool.hosts[i], veid)) {
			if (!n)
				*where = c->pool.hosts[i];
			n++;
		}
	return n;
}

bool coord_host_online(const struct coord *c, const char *name)
{
	struct pool_node *h = pool_find_host(&c->pool, name);

	return h && pool_host_state_at(&c->pool, h, vz_now_ns()) == POOL_HOST_ONLINE;
}

/* The memory of VE veid as its host last said. */
static uint64_t ve_mem(const struct coord *c, unsigned veid)
{
	struct pool_node *h;
	const struct pool_ve *v;

	coord_where(c, veid, &h);
	v = coord_find_ve(h, veid);
	return v ? v->mem_used : 0;
}

size_t coord_plan_hosts(struct coord *c, struct plan_host *hosts, size_t max)
{
	struct coord_moves l = { 0 };
	struct vz_err err = { 0 };
	uint64_t now = vz_now_ns();
	size_t n = 0;

	for (size_t i = 0; i < c->pool.n_hosts && n < max; i++) {
		const struct pool_node *h = c->pool.hosts[i];
		struct plan_host *p = &hosts[n++];

		memset(p, 0, sizeof(*p));
		snprintf(p->name, sizeof(p->name), "%s", h->name);
		p->eligible = pool_host_state_at(&c->pool, h, now) == POOL_HOST_ONLINE && h->maint == POOL_MAINT_NONE &&
			      !h->agent_draining && !h->maint_ordering;
		p->mem_total = h->mem_total;
		p->mem_used = h->mem_total > h->mem_free ? h->mem_total - h->mem_free : 0;
	}
	if (active_moves(c, &l, &err) < 0)
		pr_warn("Plan without the queue: %s", err.msg);
	for (size_t k = 0; k < l.n; k++)
		for (size_t i = 0; i < n; i++)
			if (!strcmp(hosts[i].name, l.v[k].dst))
				hosts[i].mem_used += ve_mem(c, l.v[k].veid);
	free(l.v);
	return n;
}

/* Admins waiting ------------------------------------------------------ */

static bool waits_for(const struct coord_waiter *w, uint64_t id, const char *drain)
{
	if (drain && *drain && !strcmp(w->drain, drain))
		return true;
	for (size_t i = 0; i < w->n_moves; i++)
		if (w->moves[i] == id)
			return true;
	return false;
}

void coord_waiter_free(struct coord *c, struct coord_waiter *w)
{
	for (struct coord_waiter **pp = &c->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	vz_conn_close(&w->conn);
	free(w->moves);
	free(w);
}

/* One reply to w; an admin gone (its vzcoord interrupted) is let go, and
 * what it waited for goes on. */
static bool send_reply(struct coord *c, struct coord_waiter *w, Vz__Pool__AdminReply *r)
{
	struct vz_err err = { 0 };

	if (vz_msg_send(&w->conn, &r->base, &err) == 0)
		return true;
	pr_info("An admin stopped waiting: %s", err.msg);
	coord_waiter_free(c, w);
	return false;
}

static void tell_outcome(struct coord *c, uint64_t id, const char *drain, bool progress, const char *line,
			 Vz__Pool__MoveOutcome *outcome)
{
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct coord_waiter *w, *next;

	r.line = (char *)line;
	r.has_progress = r.progress = progress;
	r.outcome = outcome;
	for (w = c->waiters; w; w = next) {
		next = w->next;
		if (waits_for(w, id, drain))
			send_reply(c, w, &r);
	}
}

static void tell(struct coord *c, uint64_t id, const char *drain, bool progress, const char *line)
{
	tell_outcome(c, id, drain, progress, line, NULL);
}

/* How move m ended, to its waiters: the line, and its figures. */
static void tell_end(struct coord *c, const struct pool_move *m, bool moved, uint64_t elapsed_ms, uint64_t downtime_ms,
		     const char *error, const char *line)
{
	Vz__Pool__MoveOutcome o = VZ__POOL__MOVE_OUTCOME__INIT;

	o.veid = m->veid;
	o.src = (char *)m->src;
	o.dst = (char *)m->dst;
	o.moved = moved;
	o.has_elapsed_ms = o.has_downtime_ms = moved;
	o.elapsed_ms = elapsed_ms;
	o.downtime_ms = downtime_ms;
	o.error = moved ? NULL : (char *)error;
	tell_outcome(c, m->id, m->drain_host, false, line, &o);
}

void coord_tell(struct coord *c, uint64_t id, const char *drain, const char *fmt, ...)
{
	char line[POOL_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	tell(c, id, drain, false, line);
}

void coord_waiter_done(struct coord *c, struct coord_waiter *w, const char *error)
{
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;

	r.has_done = r.done = 1;
	r.has_exit_code = 1;
	r.exit_code = error && *error ? 1 : 0;
	r.error = error && *error ? (char *)error : NULL;
	if (send_reply(c, w, &r))
		coord_waiter_free(c, w);
}

/* The waiters for move id: done once none of their moves is queued or
 * running, failed if one failed. */
static void moves_settled(struct coord *c)
{
	struct coord_waiter *w, *next;

	for (w = c->waiters; w; w = next) {
		char error[POOL_TEXT_MAX] = "";
		bool open = false;

		next = w->next;
		if (w->drain[0] || !w->n_moves)
			continue;
		for (size_t i = 0; i < w->n_moves; i++) {
			struct pool_move m;
			struct vz_err err = { 0 };

			if (pool_store_move_get(c->store, w->moves[i], &m, &err) < 0)
				continue;
			if (m.state == POOL_MOVE_QUEUED || m.state == POOL_MOVE_RUNNING)
				open = true;
			else if (m.state == POOL_MOVE_FAILED && !error[0])
				snprintf(error, sizeof(error), "VE %u was not moved: %s", m.veid, m.error);
		}
		if (!open)
			coord_waiter_done(c, w, error);
	}
}

/* Workers --------------------------------------------------------------- */

static void worker_write(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void worker_write(int fd, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	for (int i = 0; i < n; i++)
		if (line[i] == '\n')
			line[i] = ' ';
	line[n++] = '\n';
	if (write(fd, line, (size_t)n) < 0)
		return;
}

static void progress_line(void *arg, const char *line)
{
	worker_write(*(int *)arg, "L %s", line);
}

/* The worker process: one order, its lines and its outcome into fd. */
static void __attribute__((noreturn)) worker_main(struct coord *c, const struct pool_move *m, bool query, int fd)
{
	struct pool_node *src = pool_find_host(&c->pool, m->src), *dst = pool_find_host(&c->pool, m->dst);
	struct coord_agent_addr at = { .host = m->src, .tls = c->tls_client, .epoch = c->epoch };
	struct vz_progress prog = { progress_line, &fd };
	struct coord_order_result res = { 0 };
	struct vz_err err = { 0 };
	int ret;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	if (!src || (!query && !dst)) {
		worker_write(fd, "E %s", "a host of the move is not in the pool");
		_exit(1);
	}
	at.address = src->address;
	at.port = src->mig_port;
	if (query)
		ret = coord_order_query(&at, m->id, &res, &err);
	else
		ret = coord_order_migrate(&at, m->veid, m->id, dst->address, dst->mig_port, (Vz__Pool__MoveMode)m->mode,
					  &prog, &res, &err);
	if (ret < 0)
		worker_write(fd, "E %s", err.msg);
	else
		worker_write(fd, "R %d %d %" PRIu64 " %" PRIu64 " %s", (int)res.state, res.exit_code, res.elapsed_ms,
			     res.downtime_ms, res.error);
	_exit(0);
}

static void worker_free(struct coord_worker *w)
{
	struct coord *c = w->c;

	for (struct coord_worker **pp = &c->workers; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	ev_io_stop(c->loop, &w->io);
	ev_child_stop(c->loop, &w->child);
	vz_closep(&w->fd);
	free(w);
}

static void worker_end(struct coord_worker *w);

static void worker_line(struct coord_worker *w, char *line)
{
	char text[POOL_TEXT_MAX];
	struct pool_move m;
	struct vz_err err = { 0 };

	if (line[0] != 'L' || line[1] != ' ') {
		snprintf(w->result, sizeof(w->result), "%s", line);
		return;
	}
	if (pool_store_move_get(w->c->store, w->move_id, &m, &err) < 0)
		return;
	pr_info("Move %" PRIu64 " of VE %u: %s", m.id, m.veid, line + 2);
	snprintf(text, sizeof(text), "VE %u: %s", m.veid, line + 2);
	tell(w->c, m.id, m.drain_host, true, text);
}

static void worker_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct coord_worker *w = container_of(io, struct coord_worker, io);
	ssize_t n = read(w->fd, w->buf + w->len, sizeof(w->buf) - 1 - w->len);
	char *nl;

	(void)loop;
	(void)revents;
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		w->eof = true;
		ev_io_stop(w->c->loop, &w->io);
		if (w->exited)
			worker_end(w);
		return;
	}
	w->len += (size_t)n;
	w->buf[w->len] = '\0';
	while ((nl = strchr(w->buf, '\n'))) {
		*nl = '\0';
		worker_line(w, w->buf);
		w->len -= (size_t)(nl + 1 - w->buf);
		memmove(w->buf, nl + 1, w->len + 1);
	}
	if (w->len == sizeof(w->buf) - 1) /* a line too long: cut */
		w->len = 0;
}

static void worker_child_cb(struct ev_loop *loop, ev_child *ch, int revents)
{
	struct coord_worker *w = container_of(ch, struct coord_worker, child);

	(void)loop;
	(void)revents;
	w->exited = true;
	ev_child_stop(w->c->loop, &w->child);
	if (w->eof)
		worker_end(w);
}

static struct coord_worker *find_worker(struct coord *c, uint64_t id)
{
	for (struct coord_worker *w = c->workers; w; w = w->next)
		if (w->move_id == id)
			return w;
	return NULL;
}

static int worker_start(struct coord *c, const struct pool_move *m, bool query, struct vz_err *err)
{
	struct coord_worker *w = calloc(1, sizeof(*w));
	int fds[2];
	pid_t pid;

	if (!w)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	if (pipe2(fds, O_CLOEXEC) < 0) {
		free(w);
		return vz_error(err, errno, "Pipe for move %" PRIu64, m->id);
	}
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		free(w);
		return vz_error(err, errno, "Fork the worker of move %" PRIu64, m->id);
	}
	if (pid == 0) {
		close(fds[0]);
		coord_forget_fds(c);
		worker_main(c, m, query, fds[1]);
	}
	close(fds[1]);
	*w = (struct coord_worker){ .c = c, .pid = pid, .move_id = m->id, .query = query, .fd = fds[0] };
	w->started_ns = vz_now_ns();
	ev_io_init(&w->io, worker_io_cb, w->fd, EV_READ);
	ev_io_start(c->loop, &w->io);
	ev_child_init(&w->child, worker_child_cb, pid, 0);
	ev_child_start(c->loop, &w->child);
	w->next = c->workers;
	c->workers = w;
	return 0;
}

/* Outcomes ------------------------------------------------------------- */

static void member_update(struct coord *c, const struct pool_move *m, enum pool_member_status st, const char *reason)
{
	struct pool_drain_member mb = { .veid = m->veid, .status = st };
	struct vz_err err = { 0 };

	if (!m->drain_host[0])
		return;
	snprintf(mb.host, sizeof(mb.host), "%s", m->drain_host);
	snprintf(mb.origin, sizeof(mb.origin), "%s", m->drain_host);
	snprintf(mb.target, sizeof(mb.target), "%s", m->dst);
	snprintf(mb.reason, sizeof(mb.reason), "%s", reason ? reason : "");
	if (pool_store_member_put(c->store, &mb, &err) < 0)
		pr_warn("Store: VE %u of the drain of %s not recorded: %s", m->veid, m->drain_host, err.msg);
}

static void move_done(struct coord *c, struct pool_move *m, uint64_t elapsed_ms, uint64_t downtime_ms)
{
	struct vz_err err = { 0 };

	m->state = POOL_MOVE_DONE;
	m->error[0] = '\0';
	coord_move_save(c, m);
	if (pool_ve_moved(&c->pool, m->veid, m->src, m->dst, &err) < 0)
		pr_warn("%s", err.msg);
	member_update(c, m, POOL_MEMBER_MOVED, NULL);
	coord_event(c, "moved", m->veid, m->src, "move %u %s->%s done: %.1f s, pause %" PRIu64 " ms", m->veid, m->src,
		    m->dst, elapsed_ms / 1000.0, downtime_ms);
	{
		char line[POOL_TEXT_MAX];

		snprintf(line, sizeof(line), "VE %u: moved %s -> %s in %.1f s, pause %" PRIu64 " ms", m->veid, m->src,
			 m->dst, elapsed_ms / 1000.0, downtime_ms);
		tell_end(c, m, true, elapsed_ms, downtime_ms, NULL, line);
	}
}

/* The waiters for move old wait for move new instead. */
static void waiters_follow(struct coord *c, uint64_t old, uint64_t new)
{
	for (struct coord_waiter *w = c->waiters; w; w = w->next)
		for (size_t i = 0; i < w->n_moves; i++)
			if (w->moves[i] == old)
				w->moves[i] = new;
}

static void move_failed(struct coord *c, struct pool_move *m, const char *error)
{
	struct plan_host hosts[256];
	size_t n = coord_plan_hosts(c, hosts, ARRAY_SIZE(hosts));
	struct pool_move old = *m;
	struct vz_err err = { 0 };

	if (plan_retry(m, hosts, n, ve_mem(c, m->veid), error)) {
		/* The agents keep one outcome per move id: the retry is a
		 * move of its own, and this one ends failed. */
		old.state = POOL_MOVE_FAILED;
		snprintf(old.error, sizeof(old.error), "%s", error);
		coord_move_save(c, &old);
		m->created_ms = coord_now_ms(c);
		if (pool_store_move_add(c->store, m, &err) < 0) {
			pr_err("Store: the retry of VE %u not queued: %s", m->veid, err.msg);
			*m = old;
		} else {
			waiters_follow(c, old.id, m->id);
			member_update(c, m, POOL_MEMBER_PLANNED, error);
			coord_event(c, "retry", m->veid, m->src, "move %u %s->%s failed (%s): retried toward %s",
				    m->veid, m->src, old.dst, error, m->dst);
			coord_tell(c, m->id, m->drain_host, "VE %u: the move to %s failed (%s); trying %s", m->veid,
				   old.dst, error, m->dst);
			return;
		}
	}
	m->state = POOL_MOVE_FAILED;
	snprintf(m->error, sizeof(m->error), "%s", error);
	coord_move_save(c, m);
	member_update(c, m, POOL_MEMBER_NOT_MOVED, error);
	coord_event(c, "not-moved", m->veid, m->src, "move %u %s->%s failed after %u attempts (%s): it stays on %s",
		    m->veid, m->src, m->dst, m->attempts, error, m->src);
	{
		char line[POOL_TEXT_MAX];

		snprintf(line, sizeof(line), "VE %u: not moved, it stays on %s: %s", m->veid, m->src, error);
		tell_end(c, m, false, 0, 0, error, line);
	}
}

bool coord_inventory_since(const struct coord *c, const char *name, uint64_t t)
{
	struct pool_node *h = pool_find_host(&c->pool, name);

	return h && h->hb_ns > t;
}

/* The source knows nothing of the move: the inventory says where the VE
 * is, once both hosts have spoken since the question was asked. */
static void move_unknown(struct coord *c, struct pool_move *m, uint64_t asked_ns)
{
	struct pool_node *src = pool_find_host(&c->pool, m->src), *dst = pool_find_host(&c->pool, m->dst);
	bool on_src = coord_find_ve(src, m->veid) != NULL, on_dst = coord_find_ve(dst, m->veid) != NULL;

	if (!coord_inventory_since(c, m->src, asked_ns) || !coord_inventory_since(c, m->dst, asked_ns))
		return;
	switch (plan_unknown_move(on_src, on_dst)) {
	case PLAN_UNKNOWN_DONE:
		coord_event(c, "recovered", m->veid, m->src, "move %u %s->%s: its source has no record; VE on %s: done",
			    m->veid, m->src, m->dst, m->dst);
		move_done(c, m, 0, 0);
		break;
	case PLAN_UNKNOWN_REQUEUE:
		/* Never ordered, or refused before it began: not an attempt. */
		m->state = POOL_MOVE_QUEUED;
		m->attempts = m->attempts ? m->attempts - 1 : 0;
		coord_move_save(c, m);
		coord_event(c, "recovered", m->veid, m->src,
			    "move %u %s->%s: its source has no record; VE still on %s: queued again", m->veid, m->src,
			    m->dst, m->src);
		break;
	case PLAN_UNKNOWN_WAIT: break;
	}
}

/* "R state exit elapsed downtime error" or "E error". */
static void worker_end(struct coord_worker *w)
{
	struct coord *c = w->c;
	struct pool_move m;
	struct vz_err err = { 0 };
	int state = -1, code = -1, off = 0;
	unsigned long long elapsed = 0, downtime = 0;
	bool query = w->query;
	uint64_t asked = w->started_ns;
	char result[sizeof(w->result)];

	snprintf(result, sizeof(result), "%s", w->result);
	if (pool_store_move_get(c->store, w->move_id, &m, &err) < 0) {
		pr_err("Move %" PRIu64 " ended but is not in the store: %s", w->move_id, err.msg);
		worker_free(w);
		return;
	}
	worker_free(w);
	if (result[0] == 'R' && sscanf(result, "R %d %d %llu %llu %n", &state, &code, &elapsed, &downtime, &off) >= 4) {
		if (state == VZ__POOL__ORDER_STATE__ORDER_DONE && code == 0)
			move_done(c, &m, elapsed, downtime);
		else if (state == VZ__POOL__ORDER_STATE__ORDER_DONE)
			move_failed(c, &m, off ? result + off : "the agent says it failed");
		else if (state == VZ__POOL__ORDER_STATE__ORDER_UNKNOWN && query)
			move_unknown(c, &m, asked);
		/* RUNNING: asked again at a later tick. */
	} else {
		/* The agent could not be reached or the answer was cut: the
		 * move may run; its source is asked. */
		pr_warn("Move %" PRIu64 " of VE %u: %s; its outcome will be asked of %s", m.id, m.veid,
			result[0] == 'E' ? result + 2 : "the worker said nothing", m.src);
	}
	moves_settled(c);
}

/* The step ----------------------------------------------------------------- */

static bool ready(void *arg, const struct pool_move *m)
{
	struct coord *c = arg;
	struct pool_node *where, *dst = pool_find_host(&c->pool, m->dst);

	return coord_host_online(c, m->src) && coord_host_online(c, m->dst) && dst && dst->maint == POOL_MAINT_NONE &&
	       !dst->maint_ordering && coord_inventory_since(c, m->src, 0) && coord_inventory_since(c, m->dst, 0) &&
	       coord_where(c, m->veid, &where) == 1 && !strcmp(where->name, m->src);
}

static void start_move(struct coord *c, struct pool_move *m)
{
	struct vz_err err = { 0 };
	uint64_t bytes, est;
	const struct pool_ve *v = coord_find_ve(pool_find_host(&c->pool, m->src), m->veid);
	struct plan_ve pv = { .veid = m->veid };

	if (v) {
		pv.mem_used = v->mem_used;
		pv.disk_kib = v->disk_used;
	}
	plan_cost(&pv, m->mode != POOL_MOVE_OFFLINE, c->conf.bandwidth_mbit, &bytes, &est);
	m->state = POOL_MOVE_RUNNING;
	m->attempts++;
	/* Before the order: a restart from here on asks, never orders again. */
	if (coord_move_save(c, m) < 0)
		return;
	member_update(c, m, POOL_MEMBER_MOVING, NULL);
	coord_event(c, "move", m->veid, m->src, "move %u %s->%s: %" PRIu64 " MiB %s, est %.1f s (attempt %u)", m->veid,
		    m->src, m->dst, bytes >> 20, pool_move_mode_name(m->mode), est / 1000.0, m->attempts);
	coord_tell(c, m->id, m->drain_host, "VE %u: moving %s -> %s (%s, %" PRIu64 " MiB, about %.1f s)", m->veid,
		   m->src, m->dst, pool_move_mode_name(m->mode), bytes >> 20, est / 1000.0);
	if (worker_start(c, m, false, &err) < 0) {
		pr_err("Move %" PRIu64 ": %s", m->id, err.msg);
		/* Not ordered: back in the queue. */
		m->state = POOL_MOVE_QUEUED;
		m->attempts--;
		coord_move_save(c, m);
	}
}

/* A queued move whose VE is no longer where it was to leave from (moved by
 * hand, destroyed) is dropped; one toward a host in maintenance is sent
 * elsewhere. */
static bool still_wanted(struct coord *c, struct pool_move *m)
{
	struct pool_node *where, *src = pool_find_host(&c->pool, m->src);
	unsigned n = coord_where(c, m->veid, &where);

	if (!src || !coord_host_online(c, m->src) || !coord_inventory_since(c, m->src, 0) || n > 1)
		return true; /* not known now: it waits */
	if (n == 1 && !strcmp(where->name, m->src))
		return true;
	snprintf(m->error, sizeof(m->error), "VE %u is no longer on %s", m->veid, m->src);
	m->state = POOL_MOVE_FAILED;
	coord_move_save(c, m);
	member_update(c, m, POOL_MEMBER_NOT_MOVED, m->error);
	coord_event(c, "dropped", m->veid, m->src, "move %u %s->%s dropped: %s", m->veid, m->src, m->dst, m->error);
	coord_tell(c, m->id, m->drain_host, "VE %u: %s: its move is dropped", m->veid, m->error);
	return false;
}

bool coord_inventory_whole(const struct coord *c)
{
	for (size_t i = 0; i < c->pool.n_hosts; i++)
		if (coord_host_online(c, c->pool.hosts[i]->name) &&
		    !coord_inventory_since(c, c->pool.hosts[i]->name, 0))
			return false;
	return true;
}

const char *coord_move_retarget(struct coord *c, struct pool_move *m)
{
	struct plan_host hosts[256];
	size_t n = coord_plan_hosts(c, hosts, ARRAY_SIZE(hosts));
	int t = plan_pick(hosts, n, m->src, m->dst, ve_mem(c, m->veid));
	char old[sizeof(m->dst)];

	snprintf(old, sizeof(old), "%s", m->dst);
	if (t < 0) {
		m->state = POOL_MOVE_FAILED;
		snprintf(m->error, sizeof(m->error), "its target %s is in maintenance and no host has room", old);
	} else {
		snprintf(m->dst, sizeof(m->dst), "%s", hosts[t].name);
	}
	coord_move_save(c, m);
	member_update(c, m, t < 0 ? POOL_MEMBER_NOT_MOVED : POOL_MEMBER_PLANNED, t < 0 ? m->error : NULL);
	coord_event(c, "retarget", m->veid, m->src, "move %u %s->%s: %s is in maintenance, %s", m->veid, m->src, old,
		    old, t < 0 ? "dropped" : m->dst);
	coord_tell(c, m->id, m->drain_host, "VE %u: its queued move toward %s goes to %s", m->veid, old,
		   t < 0 ? "no host" : m->dst);
	return t < 0 ? NULL : m->dst;
}

/* A host in maintenance takes no incoming move (ready() starts none), even
 * one queued before: a drain whose coordinator died before it re-targeted
 * them. Not the agent's own word, which an undrain's returns outrun. */
static bool in_maintenance(struct coord *c, const char *name)
{
	const struct pool_node *h = pool_find_host(&c->pool, name);

	return h && h->maint != POOL_MAINT_NONE;
}

void coord_queue_step(struct coord *c)
{
	struct plan_limits lim = { c->conf.max_out_per_host, c->conf.max_in_per_host, c->conf.max_moves };
	struct coord_moves l = { 0 };
	struct vz_err err = { 0 };
	uint64_t now = vz_now_ns();
	bool query_now = now >= c->next_query_ns;
	_cleanup_free_ bool *start = NULL;

	if (active_moves(c, &l, &err) < 0) {
		pr_warn("Queue: %s", err.msg);
		return;
	}
	start = calloc(l.n ? l.n : 1, sizeof(*start));
	for (size_t i = 0; start && i < l.n; i++) {
		struct pool_move *m = &l.v[i];

		if (m->state == POOL_MOVE_QUEUED && !still_wanted(c, m))
			m->state = POOL_MOVE_FAILED;
		/* Once every host is heard: a coordinator just started knows no
		 * target yet. */
		if (m->state == POOL_MOVE_QUEUED && in_maintenance(c, m->dst) && coord_inventory_whole(c))
			coord_move_retarget(c, m);
		/* A running move with no worker: its outcome is asked. */
		if (m->state == POOL_MOVE_RUNNING && !find_worker(c, m->id) && query_now &&
		    coord_host_online(c, m->src) && worker_start(c, m, true, &err) < 0)
			pr_warn("Ask move %" PRIu64 ": %s", m->id, err.msg);
	}
	if (query_now)
		c->next_query_ns = now + QUERY_EVERY_NS;
	if (start && plan_schedule(l.v, l.n, &lim, ready, c, start) > 0)
		for (size_t i = 0; i < l.n; i++)
			if (start[i])
				start_move(c, &l.v[i]);
	free(l.v);
	moves_settled(c);
	coord_drains_step(c);
}

void coord_queue_stop(struct coord *c)
{
	/* Workers go on without the coordinator: each order runs to its end
	 * at the agent, and the next coordinator asks for the outcome. */
	while (c->workers)
		worker_free(c->workers);
	while (c->waiters)
		coord_waiter_free(c, c->waiters);
}
