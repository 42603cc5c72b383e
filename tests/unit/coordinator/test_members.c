/* coordinator/members.c with its store: each change of a host's state is
 * recorded, with an event; a coordinator started again knows the hosts
 * the store holds, in the state their silence gives them. Times are
 * passed in (monotonic ns), the store's clock follows wall_offset_ms. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "members.h"
#include "store.h"
#include "util.h"

#define S 1000000000ull

static char dir[64], path[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vzmembers.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pool.db", dir);
	vz_log_init("test", VZ_LOG_ERR, 0);
}

static void teardown(void)
{
	vz_rm_rf(dir);
}

TestSuite(members, .init = setup, .fini = teardown);

static struct pool_store *open_store(void)
{
	struct pool_store *st = NULL;
	struct vz_err err = { 0 };

	cr_assert_eq(pool_store_open(&pool_store_sqlite, path, &st, &err), 0, "%s", err.msg);
	return st;
}

static void pool_with(struct pool *p, struct pool_store *st)
{
	memset(p, 0, sizeof(*p));
	p->suspect_after = 3;
	p->offline_after_ns = 20 * S;
	p->store = st;
	p->wall_offset_ms = 1700000000000ll; /* a wall clock of Nov 2023 at monotonic 0 */
}

static void join(struct pool *p, const char *name, uint64_t now)
{
	Vz__Pool__Register r = VZ__POOL__REGISTER__INIT;
	struct vz_err err = { 0 };

	r.host = (char *)name;
	r.address = "198.18.0.1";
	r.has_interval_ms = true;
	r.interval_ms = 2000;
	cr_assert_eq(pool_register(p, &r, now, &err), 0, "%s", err.msg);
}

static enum pool_host_state stored(struct pool_store *st, const char *name, int64_t *seen)
{
	struct pool_host h;
	struct vz_err err = { 0 };

	cr_assert_eq(pool_store_host_get(st, name, &h, &err), 0, "%s", err.msg);
	if (seen)
		*seen = h.last_seen_ms;
	return h.state;
}

struct evs {
	char text[2048];
};

static int add_ev(void *arg, const struct pool_event *ev, struct vz_err *err)
{
	struct evs *e = arg;
	size_t n = strlen(e->text);

	(void)err;
	snprintf(e->text + n, sizeof(e->text) - n, "%s %s;", ev->kind, ev->host);
	return 0;
}

static void events(struct pool_store *st, struct evs *e)
{
	struct vz_err err = { 0 };

	e->text[0] = '\0';
	cr_assert_eq(pool_store_event_list(st, 0, add_ev, e, &err), 0, "%s", err.msg);
}

Test(members, each_change_of_state_is_in_the_store_with_an_event)
{
	struct pool_store *st = open_store();
	Vz__Pool__Heartbeat hb = VZ__POOL__HEARTBEAT__INIT;
	struct vz_err err = { 0 };
	struct pool p;
	struct evs e;
	int64_t seen;

	pool_with(&p, st);
	join(&p, "h1", 1 * S);
	cr_assert_eq(stored(st, "h1", &seen), POOL_HOST_ONLINE);
	cr_assert_eq(seen, 1700000001000ll);
	pool_tick(&p, 5 * S);
	cr_assert_eq(stored(st, "h1", NULL), POOL_HOST_ONLINE, "4 s of silence is within three heartbeats");
	pool_tick(&p, 9 * S);
	cr_assert_eq(stored(st, "h1", NULL), POOL_HOST_SUSPECT);
	pool_tick(&p, 22 * S);
	cr_assert_eq(stored(st, "h1", NULL), POOL_HOST_OFFLINE);
	hb.seq = 1;
	cr_assert_eq(pool_heartbeat(&p, "h1", &hb, 23 * S, &err), 0, "%s", err.msg);
	cr_assert_eq(stored(st, "h1", &seen), POOL_HOST_ONLINE);
	cr_assert_eq(seen, 1700000023000ll);
	events(st, &e);
	cr_assert_str_eq(e.text, "online h1;suspect h1;offline h1;online h1;");
	pool_free(&p);
	pool_store_close(st);
}

Test(members, a_heartbeat_is_recorded_at_most_every_ten_seconds)
{
	struct pool_store *st = open_store();
	Vz__Pool__Heartbeat hb = VZ__POOL__HEARTBEAT__INIT;
	struct vz_err err = { 0 };
	struct pool p;
	int64_t seen;

	pool_with(&p, st);
	join(&p, "h1", 1 * S);
	cr_assert_eq(pool_heartbeat(&p, "h1", &hb, 3 * S, &err), 0);
	stored(st, "h1", &seen);
	cr_assert_eq(seen, 1700000001000ll, "a heartbeat 2 s after the record is not written");
	cr_assert_eq(pool_heartbeat(&p, "h1", &hb, 11 * S, &err), 0);
	stored(st, "h1", &seen);
	cr_assert_eq(seen, 1700000011000ll);
	pool_free(&p);
	pool_store_close(st);
}

Test(members, a_new_coordinator_knows_the_stored_hosts_as_their_silence_makes_them)
{
	struct pool_store *st = open_store();
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct vz_err err = { 0 };
	struct pool p, q;

	pool_with(&p, st);
	join(&p, "old", 1 * S);
	join(&p, "recent", 95 * S);
	pool_free(&p);
	/* Started again 100 s later (monotonic time begins anew: 2 s). */
	pool_with(&q, st);
	q.wall_offset_ms = 1700000000000ll + 98000;
	cr_assert_eq(pool_load(&q, 2 * S, &err), 0, "%s", err.msg);
	cr_assert_eq(q.n_hosts, 2);
	pool_tick(&q, 2 * S);
	cr_assert_eq(pool_report(&q, 2 * S, &r, &err), 0, "%s", err.msg);
	cr_assert_eq(r.n_hosts, 2);
	cr_assert_str_eq(r.hosts[0]->name, "old");
	cr_assert_str_eq(r.hosts[0]->state, "offline", "last heard of 99 s ago");
	cr_assert_str_eq(r.hosts[1]->name, "recent");
	cr_assert_str_eq(r.hosts[1]->state, "online", "last heard of 5 s ago");
	cr_assert_eq(r.hosts[1]->ves, 0, "no inventory until its next heartbeat");
	pool_report_free(&r);
	cr_assert_eq(stored(st, "old", NULL), POOL_HOST_OFFLINE);
	pool_free(&q);
	pool_store_close(st);
}

Test(members, an_alert_and_its_end_are_events)
{
	struct pool_store *st = open_store();
	Vz__Pool__Heartbeat hb = VZ__POOL__HEARTBEAT__INIT, none = VZ__POOL__HEARTBEAT__INIT;
	Vz__Pool__VeUsage ve = VZ__POOL__VE_USAGE__INIT, *ves[] = { &ve };
	struct vz_err err = { 0 };
	struct pool p;
	struct evs e;

	pool_with(&p, st);
	join(&p, "h1", 1 * S);
	join(&p, "h2", 1 * S);
	ve.veid = 101;
	ve.state = VZ__POOL__VE_STATE__VE_RUNNING;
	hb.n_ves = 1;
	hb.ves = ves;
	cr_assert_eq(pool_heartbeat(&p, "h1", &hb, 2 * S, &err), 0);
	cr_assert_eq(pool_heartbeat(&p, "h2", &hb, 2 * S, &err), 0);
	cr_assert_eq(pool_heartbeat(&p, "h2", &none, 3 * S, &err), 0);
	events(st, &e);
	cr_assert_str_eq(e.text, "online h1;online h2;alert ;alert-over ;");
	pool_free(&p);
	pool_store_close(st);
}

Test(members, without_a_store_the_pool_works_in_memory)
{
	struct pool p;

	pool_with(&p, NULL);
	join(&p, "h1", 1 * S);
	pool_tick(&p, 30 * S);
	cr_assert_eq(p.hosts[0]->state, POOL_HOST_OFFLINE);
	pool_free(&p);
}
