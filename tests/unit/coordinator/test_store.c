/* coordinator/store.c and store_sqlite.c: every record kind round trips,
 * upserts replace, lists keep their order, transactions, and what open
 * refuses. Each test works in a temp dir of its own under /tmp. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "store.h"

static char dir[64], path[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/vzstore.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pool.db", dir);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(p);
}

static void teardown(void)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct pool_store *open_store(void)
{
	struct pool_store *s = NULL;
	struct vz_err err = { 0 };

	cr_assert_eq(pool_store_open(&pool_store_sqlite, path, &s, &err), 0, "%s", err.msg);
	return s;
}

static struct pool_host host(const char *name, enum pool_host_state state, uint64_t mem_free)
{
	struct pool_host h = { .migration_port = 7460,
			       .state = state,
			       .last_seen_ms = 1764660000123LL,
			       .cores = 16,
			       .mem_total = 64ULL << 30,
			       .mem_free = mem_free,
			       .disk_free = UINT64_MAX - 5 };

	snprintf(h.name, sizeof(h.name), "%s", name);
	snprintf(h.address, sizeof(h.address), "198.18.0.%zu", strlen(name));
	return h;
}

static struct pool_move move(unsigned veid, const char *src, const char *dst, enum pool_move_state state)
{
	struct pool_move m = { .id = 999,
			       .veid = veid,
			       .mode = POOL_MOVE_PRECOPY,
			       .state = state,
			       .attempts = 1,
			       .created_ms = 1000,
			       .updated_ms = 2000 };

	snprintf(m.src, sizeof(m.src), "%s", src);
	snprintf(m.dst, sizeof(m.dst), "%s", dst);
	return m;
}

/* Listing callbacks gather what they see. */
struct seen {
	int n;
	char names[16][POOL_NAME_MAX];
	uint64_t ids[16];
	struct pool_drain_member members[16];
};

/* The next free slot of a struct seen. */
static int slot(void *arg)
{
	struct seen *s = arg;

	cr_assert_lt(s->n, 16);
	return s->n++;
}

static int see_host(void *arg, const struct pool_host *h, struct vz_err *err)
{
	(void)err;
	snprintf(((struct seen *)arg)->names[slot(arg)], POOL_NAME_MAX, "%s", h->name);
	return 0;
}

static int see_move(void *arg, const struct pool_move *m, struct vz_err *err)
{
	(void)err;
	((struct seen *)arg)->ids[slot(arg)] = m->id;
	return 0;
}

static int see_event(void *arg, const struct pool_event *ev, struct vz_err *err)
{
	struct seen *s = arg;
	int i = slot(arg);

	(void)err;
	s->ids[i] = ev->id;
	snprintf(s->names[i], POOL_NAME_MAX, "%s", ev->text);
	return 0;
}

static int see_member(void *arg, const struct pool_drain_member *m, struct vz_err *err)
{
	(void)err;
	((struct seen *)arg)->members[slot(arg)] = *m;
	return 0;
}

Test(store, host_round_trip_upsert_and_delete)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_host h = host("node-a", POOL_HOST_ONLINE, 1000), got;

	cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(s, "node-a", &got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&h, &got, sizeof(h)), 0);
	h.state = POOL_HOST_SUSPECT;
	h.maint = POOL_MAINT_DRAINING;
	h.mem_free = 77;
	snprintf(h.address, sizeof(h.address), "node-a.example");
	cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(s, "node-a", &got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&h, &got, sizeof(h)), 0, "the second put replaces every field");
	struct seen all = { 0 };
	cr_assert_eq(pool_store_host_list(s, see_host, &all, &err), 0, "%s", err.msg);
	cr_assert_eq(all.n, 1, "an upsert adds no second row");
	cr_assert_eq(pool_store_host_del(s, "node-a", &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(s, "node-a", &got, &err), -ENOENT);
	cr_assert(strstr(err.msg, "node-a"), "%s", err.msg);
	cr_assert_eq(pool_store_host_del(s, "node-a", &err), -ENOENT);
}

Test(store, host_list_goes_by_name_and_stops_when_asked)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	const char *order[] = { "node-c", "node-a", "b", "node-b", "a" };
	const char *sorted[] = { "a", "b", "node-a", "node-b", "node-c" };
	struct seen all = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		struct pool_host h = host(order[i], POOL_HOST_ONLINE, i);

		cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	}
	cr_assert_eq(pool_store_host_list(s, see_host, &all, &err), 0, "%s", err.msg);
	cr_assert_eq(all.n, 5);
	for (int i = 0; i < 5; i++)
		cr_expect_str_eq(all.names[i], sorted[i]);
}

static int stop_after_two(void *arg, const struct pool_host *h, struct vz_err *err)
{
	struct seen *s = arg;

	see_host(arg, h, err);
	return s->n == 2 ? 1 : 0;
}

static int fail_at_once(void *arg, const struct pool_host *h, struct vz_err *err)
{
	(void)arg, (void)h;
	return vz_error_msg(err, EDOM, "Callback refused");
}

Test(store, a_callback_stops_a_listing)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct seen two = { 0 };

	for (int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "h%d", i);
		struct pool_host h = host(name, POOL_HOST_ONLINE, 1);
		cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	}
	cr_assert_eq(pool_store_host_list(s, stop_after_two, &two, &err), 0, "%s", err.msg);
	cr_assert_eq(two.n, 2);
	cr_assert_eq(pool_store_host_list(s, fail_at_once, NULL, &err), -EDOM);
	cr_assert_str_eq(err.msg, "Callback refused");
	/* The listing's statement was reset: the next one starts again. */
	struct seen all = { 0 };
	cr_assert_eq(pool_store_host_list(s, see_host, &all, &err), 0, "%s", err.msg);
	cr_assert_eq(all.n, 4);
}

static int list_again(void *arg, const struct pool_host *h, struct vz_err *err)
{
	struct pool_store *s = arg;
	struct pool_host got;
	int ret;

	cr_assert_eq(pool_store_host_get(s, h->name, &got, err), 0, "other calls are fine: %s", err->msg);
	ret = pool_store_host_list(s, see_host, &(struct seen){ 0 }, err);
	cr_assert_eq(ret, -EBUSY, "the same listing is refused, not reset under the caller");
	return ret;
}

Test(store, a_callback_cannot_start_its_own_listing_again)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_host h = host("a", POOL_HOST_ONLINE, 1);

	cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_list(s, list_again, s, &err), -EBUSY);
}

Test(store, drain_and_members_round_trip)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_host h = host("node-a", POOL_HOST_ONLINE, 1);
	struct pool_drain d = { .host = "node-a", .state = POOL_DRAIN_RUNNING, .started_ms = 1234, .offline = true };
	struct pool_drain got;
	struct pool_drain_member m3 = { .host = "node-a",
					.veid = 103,
					.origin = "node-a",
					.target = "node-b",
					.status = POOL_MEMBER_NOT_MOVED,
					.reason = "No host has 4 GiB free" };
	struct pool_drain_member m1 = {
		.host = "node-a", .veid = 101, .origin = "node-c", .target = "node-b", .status = POOL_MEMBER_PLANNED
	};

	cr_assert_eq(pool_store_drain_put(s, &d, &err), -ENOENT, "a drain needs its host");
	cr_assert(strstr(err.msg, "its host is not in the store"), "%s", err.msg);
	cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_member_put(s, &m1, &err), -ENOENT, "a member needs its drain");
	cr_assert_eq(pool_store_drain_put(s, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_drain_get(s, "node-a", &got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&d, &got, sizeof(d)), 0);
	cr_assert_eq(pool_store_member_put(s, &m3, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_member_put(s, &m1, &err), 0, "%s", err.msg);
	m1.status = POOL_MEMBER_MOVED;
	cr_assert_eq(pool_store_member_put(s, &m1, &err), 0, "%s", err.msg);
	d.state = POOL_DRAIN_PARTIAL;
	d.offline = false;
	cr_assert_eq(pool_store_drain_put(s, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_drain_get(s, "node-a", &got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&d, &got, sizeof(d)), 0, "the second put replaces the drain");

	struct seen all = { 0 };
	cr_assert_eq(pool_store_member_list(s, "node-a", see_member, &all, &err), 0, "%s", err.msg);
	cr_assert_eq(all.n, 2, "replacing the drain keeps its members; an upsert adds no row");
	cr_assert_eq(memcmp(&all.members[0], &m1, sizeof(m1)), 0, "by veid, and the member replaced");
	cr_assert_eq(memcmp(&all.members[1], &m3, sizeof(m3)), 0);

	cr_assert_eq(pool_store_drain_del(s, "node-a", &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_drain_get(s, "node-a", &got, &err), -ENOENT);
	all.n = 0;
	cr_assert_eq(pool_store_member_list(s, "node-a", see_member, &all, &err), 0, "%s", err.msg);
	cr_assert_eq(all.n, 0, "the members went with their drain");
}

Test(store, deleting_a_host_takes_its_drain)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_host h = host("node-a", POOL_HOST_OFFLINE, 1);
	struct pool_drain d = { .host = "node-a", .state = POOL_DRAIN_DONE }, got;
	struct pool_drain_member m = { .host = "node-a", .veid = 7, .origin = "node-a", .status = POOL_MEMBER_MOVED };
	struct seen all = { 0 };

	cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_drain_put(s, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_member_put(s, &m, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_del(s, "node-a", &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_drain_get(s, "node-a", &got, &err), -ENOENT);
	cr_assert_eq(pool_store_member_list(s, "node-a", see_member, &all, &err), 0, "%s", err.msg);
	cr_assert_eq(all.n, 0);
}

Test(store, moves_get_ids_and_list_by_state_in_id_order)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_move m[4] = { move(101, "a", "b", POOL_MOVE_QUEUED), move(102, "a", "", POOL_MOVE_RUNNING),
				  move(103, "b", "c", POOL_MOVE_QUEUED), move(104, "c", "a", POOL_MOVE_DONE) };
	struct pool_move got;

	snprintf(m[2].drain_host, sizeof(m[2].drain_host), "b");
	m[2].mode = POOL_MOVE_POSTCOPY;
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(pool_store_move_add(s, &m[i], &err), 0, "%s", err.msg);
		cr_assert_neq(m[i].id, 999, "the store gives the id");
		if (i)
			cr_assert_gt(m[i].id, m[i - 1].id);
	}
	cr_assert_eq(pool_store_move_get(s, m[2].id, &got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&got, &m[2], sizeof(got)), 0);

	m[0].state = POOL_MOVE_FAILED;
	m[0].attempts = 2;
	m[0].updated_ms = 3000;
	snprintf(m[0].error, sizeof(m[0].error), "Destination refused VE 101");
	snprintf(m[0].dst, sizeof(m[0].dst), "c");
	cr_assert_eq(pool_store_move_update(s, &m[0], &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_move_get(s, m[0].id, &got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&got, &m[0], sizeof(got)), 0);

	struct seen queued = { 0 }, all = { 0 };
	cr_assert_eq(pool_store_move_list(s, POOL_MOVE_QUEUED, see_move, &queued, &err), 0, "%s", err.msg);
	cr_assert_eq(queued.n, 1);
	cr_assert_eq(queued.ids[0], m[2].id);
	cr_assert_eq(pool_store_move_list(s, POOL_MOVE_ALL, see_move, &all, &err), 0, "%s", err.msg);
	cr_assert_eq(all.n, 4);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(all.ids[i], m[i].id);

	struct pool_move ghost = move(9, "a", "b", POOL_MOVE_QUEUED);
	ghost.id = m[3].id + 100;
	cr_assert_eq(pool_store_move_update(s, &ghost, &err), -ENOENT);
	cr_assert_eq(pool_store_move_get(s, ghost.id, &got, &err), -ENOENT);
	cr_assert_eq(pool_store_move_list(s, 42, see_move, &all, &err), -EINVAL);
}

Test(store, events_list_since_an_id)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_event ev[3] = {
		{ .time_ms = 10, .kind = "drain", .host = "node-a", .text = "Drain of node-a: 6 VEs" },
		{ .time_ms = 11, .kind = "move", .veid = 101, .host = "node-b", .text = "VE 101 to node-b, 256 MiB" },
		{ .time_ms = 12, .kind = "alert", .veid = 102, .text = "VE 102 on two hosts" },
	};
	struct seen all = { 0 }, later = { 0 };

	for (int i = 0; i < 3; i++)
		cr_assert_eq(pool_store_event_add(s, &ev[i], &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_event_list(s, 0, see_event, &all, &err), 0, "%s", err.msg);
	cr_assert_eq(all.n, 3);
	for (int i = 0; i < 3; i++) {
		cr_expect_eq(all.ids[i], ev[i].id);
		cr_expect_str_eq(all.names[i], ev[i].text);
	}
	cr_assert_eq(pool_store_event_list(s, ev[0].id, see_event, &later, &err), 0, "%s", err.msg);
	cr_assert_eq(later.n, 2);
	cr_assert_eq(later.ids[0], ev[1].id);
}

static int event_eq(void *arg, const struct pool_event *ev, struct vz_err *err)
{
	(void)err;
	cr_assert_eq(memcmp(arg, ev, sizeof(*ev)), 0, "event %llu round trips", (unsigned long long)ev->id);
	return 1;
}

Test(store, an_event_round_trips_whole)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_event ev = { .time_ms = -5, .kind = "decision", .veid = UINT32_MAX, .host = "node-z" };

	memset(ev.text, 'x', sizeof(ev.text) - 1);
	cr_assert_eq(pool_store_event_add(s, &ev, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_event_list(s, 0, event_eq, &ev, &err), 0, "%s", err.msg);
}

Test(store, refuses_bad_records)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_host h = host("", POOL_HOST_ONLINE, 1);
	struct pool_move m = move(0, "a", "b", POOL_MOVE_QUEUED);
	struct pool_event ev = { .kind = "" };

	cr_assert_eq(pool_store_host_put(s, &h, &err), -EINVAL);
	cr_assert(strstr(err.msg, "empty"), "%s", err.msg);
	h = host("a", 17, 1);
	cr_assert_eq(pool_store_host_put(s, &h, &err), -EINVAL);
	h = host("a", POOL_HOST_ONLINE, 1);
	memset(h.address, 'x', sizeof(h.address));
	cr_assert_eq(pool_store_host_put(s, &h, &err), -EINVAL);
	cr_assert(strstr(err.msg, "longer"), "%s", err.msg);
	cr_assert_eq(pool_store_move_add(s, &m, &err), -EINVAL, "a move needs a VEID");
	cr_assert_eq(pool_store_event_add(s, &ev, &err), -EINVAL, "an event needs a kind");
}

Test(store, rollback_discards_and_commit_keeps)
{
	_cleanup_pool_store_ struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_host a = host("a", POOL_HOST_ONLINE, 1), b = host("b", POOL_HOST_ONLINE, 1), got;
	struct pool_move m = move(5, "a", "b", POOL_MOVE_QUEUED);
	struct seen moves = { 0 };

	cr_assert_eq(pool_store_rollback(s, &err), 0, "no transaction: nothing to do");
	cr_assert_eq(pool_store_commit(s, &err), -EINVAL);
	cr_assert_eq(pool_store_begin(s, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_begin(s, &err), -EBUSY, "one transaction at a time");
	cr_assert_eq(pool_store_host_put(s, &a, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_move_add(s, &m, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(s, "a", &got, &err), 0, "the transaction sees its own rows");
	cr_assert_eq(pool_store_rollback(s, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(s, "a", &got, &err), -ENOENT, "rolled back");
	cr_assert_eq(pool_store_move_list(s, POOL_MOVE_ALL, see_move, &moves, &err), 0, "%s", err.msg);
	cr_assert_eq(moves.n, 0);

	cr_assert_eq(pool_store_begin(s, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_put(s, &b, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_commit(s, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(s, "b", &got, &err), 0, "%s", err.msg);
}

Test(store, data_survives_close_and_reopen)
{
	struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	struct pool_host h = host("node-a", POOL_HOST_SUSPECT, 42), got_h;
	struct pool_drain d = { .host = "node-a", .state = POOL_DRAIN_PARTIAL, .started_ms = 99 }, got_d;
	struct pool_move m = move(101, "node-a", "node-b", POOL_MOVE_RUNNING), got_m;
	struct pool_event ev = { .time_ms = 1, .kind = "drain", .host = "node-a", .text = "Started" };
	struct seen evs = { 0 };

	cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_drain_put(s, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_move_add(s, &m, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_event_add(s, &ev, &err), 0, "%s", err.msg);
	pool_store_close(s);

	s = open_store();
	cr_assert_eq(pool_store_host_get(s, "node-a", &got_h, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&got_h, &h, sizeof(h)), 0);
	cr_assert_eq(pool_store_drain_get(s, "node-a", &got_d, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&got_d, &d, sizeof(d)), 0);
	cr_assert_eq(pool_store_move_get(s, m.id, &got_m, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&got_m, &m, sizeof(m)), 0);
	cr_assert_eq(pool_store_event_list(s, 0, see_event, &evs, &err), 0, "%s", err.msg);
	cr_assert_eq(evs.n, 1);
	cr_assert_str_eq(evs.names[0], "Started");
	/* Ids go on from where they were. */
	struct pool_move m2 = move(102, "node-a", "node-b", POOL_MOVE_QUEUED);
	cr_assert_eq(pool_store_move_add(s, &m2, &err), 0, "%s", err.msg);
	cr_assert_gt(m2.id, m.id);
	pool_store_close(s);
}

/* The file as SQLite sees it, through a connection of the test's own. */
static void sql(const char *file, const char *text)
{
	sqlite3 *db = NULL;

	cr_assert_eq(sqlite3_open(file, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, text, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

static long long sql_int(const char *file, const char *query)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v;

	cr_assert_eq(sqlite3_open(file, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, query, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

Test(store, a_new_file_has_schema_2_in_wal_mode)
{
	pool_store_close(open_store());
	cr_assert_eq(sql_int(path, "PRAGMA user_version"), 2);
	cr_assert_eq(sql_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'moves'"), 1);
	/* WAL is kept in the file's header. */
	cr_assert_eq(sql_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
}

static char *slurp(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	char *buf = NULL;

	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	*len = (size_t)ftell(f);
	rewind(f);
	buf = malloc(*len + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

static void assert_refused_untouched(int expect, const char *msg)
{
	struct pool_store *s = NULL;
	struct vz_err err = { 0 };
	size_t n0, n1;
	char *before = slurp(path, &n0), *after;

	cr_assert_eq(pool_store_open(&pool_store_sqlite, path, &s, &err), expect, "%s", err.msg);
	cr_assert_null(s);
	cr_assert(strstr(err.msg, msg), "message: %s", err.msg);
	cr_assert(strstr(err.msg, path), "names the file: %s", err.msg);
	after = slurp(path, &n1);
	cr_assert_eq(n0, n1, "the file was left as it was");
	cr_assert_eq(memcmp(before, after, n0), 0, "the file was left as it was");
	free(before);
	free(after);
}

Test(store, epochs_start_at_1_grow_and_survive_a_reopen)
{
	struct pool_store *s = open_store();
	struct vz_err err = { 0 };
	uint64_t e1 = 0, e2 = 0, e3 = 0;

	cr_assert_eq(pool_store_epoch_next(s, &e1, &err), 0, "%s", err.msg);
	cr_assert_eq(e1, 1);
	cr_assert_eq(pool_store_epoch_next(s, &e2, &err), 0, "%s", err.msg);
	cr_assert_eq(e2, 2);
	pool_store_close(s);
	s = open_store();
	cr_assert_eq(pool_store_epoch_next(s, &e3, &err), 0, "%s", err.msg);
	cr_assert_eq(e3, 3, "a restart takes an epoch above every one given");
	cr_assert_eq(pool_store_begin(s, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_epoch_next(s, &e3, &err), -EBUSY, "never inside a transaction that may roll back");
	cr_assert_eq(pool_store_rollback(s, &err), 0, "%s", err.msg);
	pool_store_close(s);
}

/* A store of version 1 as the vzcoord before this one wrote it. */
static const char v1_file[] =
    "CREATE TABLE hosts (name TEXT PRIMARY KEY NOT NULL, address TEXT NOT NULL, migration_port INTEGER NOT NULL,"
    " state TEXT NOT NULL, last_seen_ms INTEGER NOT NULL, cores INTEGER NOT NULL, mem_total INTEGER NOT NULL,"
    " mem_free INTEGER NOT NULL, disk_free INTEGER NOT NULL) STRICT;"
    "CREATE TABLE drains (host TEXT PRIMARY KEY NOT NULL REFERENCES hosts (name) ON DELETE CASCADE,"
    " state TEXT NOT NULL, started_ms INTEGER NOT NULL, offline INTEGER NOT NULL) STRICT;"
    "CREATE TABLE drain_members (host TEXT NOT NULL REFERENCES drains (host) ON DELETE CASCADE,"
    " veid INTEGER NOT NULL, origin TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL,"
    " reason TEXT NOT NULL, PRIMARY KEY (host, veid)) STRICT;"
    "CREATE TABLE moves (id INTEGER PRIMARY KEY AUTOINCREMENT, veid INTEGER NOT NULL, src TEXT NOT NULL,"
    " dst TEXT NOT NULL, mode TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, error TEXT NOT NULL,"
    " drain_host TEXT NOT NULL) STRICT;"
    "CREATE INDEX moves_by_state ON moves (state, id);"
    "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
    " veid INTEGER NOT NULL, host TEXT NOT NULL, text TEXT NOT NULL) STRICT;"
    "INSERT INTO hosts VALUES ('a', '198.18.0.1', 7460, 'online', 5, 4, 1024, 512, 9);"
    "INSERT INTO hosts VALUES ('b', '198.18.0.2', 7460, 'draining', 6, 4, 1024, 512, 9);"
    "INSERT INTO moves VALUES (7, 101, 'b', 'a', 'precopy', 'running', 1, 10, 20, '', 'b');"
    "PRAGMA journal_mode = WAL; PRAGMA user_version = 1;";

Test(store, a_schema_1_file_is_upgraded_keeping_its_rows)
{
	struct pool_store *s;
	struct vz_err err = { 0 };
	struct pool_host a, b;
	struct pool_move m;
	uint64_t e = 0;

	sql(path, v1_file);
	s = open_store();
	cr_assert_eq(sql_int(path, "PRAGMA user_version"), 2);
	cr_assert_eq(pool_store_host_get(s, "a", &a, &err), 0, "%s", err.msg);
	cr_assert_eq(a.state, POOL_HOST_ONLINE);
	cr_assert_eq(a.maint, POOL_MAINT_NONE);
	cr_assert_eq(pool_store_host_get(s, "b", &b, &err), 0, "%s", err.msg);
	cr_assert_eq(b.maint, POOL_MAINT_DRAINING, "the drain is kept apart");
	cr_assert_eq(b.state, POOL_HOST_OFFLINE, "its liveness unknown until it speaks");
	cr_assert_eq(pool_store_move_get(s, 7, &m, &err), 0, "%s", err.msg);
	cr_assert_eq(m.state, POOL_MOVE_RUNNING);
	cr_assert_str_eq(m.failed_dst, "");
	cr_assert_eq(pool_store_epoch_next(s, &e, &err), 0, "%s", err.msg);
	cr_assert_eq(e, 1);
	pool_store_close(s);
	s = open_store();
	cr_assert_eq(pool_store_host_get(s, "b", &b, &err), 0, "%s", err.msg);
	cr_assert_eq(b.maint, POOL_MAINT_DRAINING, "upgraded once");
	pool_store_close(s);
}

Test(store, a_newer_schema_is_refused_and_left_untouched)
{
	sql(path, "CREATE TABLE future (x INTEGER); INSERT INTO future VALUES (7); PRAGMA user_version = 3");
	assert_refused_untouched(-EPROTONOSUPPORT, "was written by a newer vzcoord (schema 3; this one knows 2)");
	cr_assert_eq(sql_int(path, "PRAGMA user_version"), 3);
	cr_assert_eq(sql_int(path, "SELECT x FROM future"), 7);
}

Test(store, a_file_that_is_not_sqlite_is_refused)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	for (int i = 0; i < 200; i++)
		fputs("HOSTNAME=node-a\nNOT SQLITE AT ALL\n", f);
	fclose(f);
	assert_refused_untouched(-EBADMSG, "is not an SQLite database");
}

Test(store, someone_elses_sqlite_file_is_refused)
{
	sql(path, "CREATE TABLE mine (x INTEGER)");
	assert_refused_untouched(-EBADMSG, "not a vzcoord store");
}

Test(store, a_row_this_vzcoord_cannot_read_is_refused)
{
	struct pool_host h = host("a", POOL_HOST_ONLINE, 1), got;
	struct vz_err err = { 0 };
	struct pool_store *s = open_store();

	cr_assert_eq(pool_store_host_put(s, &h, &err), 0, "%s", err.msg);
	pool_store_close(s);
	sql(path, "UPDATE hosts SET state = 'levitating'");
	s = open_store();
	cr_assert_eq(pool_store_host_get(s, "a", &got, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "'levitating'"), "%s", err.msg);
	pool_store_close(s);
	/* A number out of its field's range, a text longer than its field. */
	sql(path, "UPDATE hosts SET state = 'online', migration_port = 70000");
	s = open_store();
	cr_assert_eq(pool_store_host_get(s, "a", &got, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "migration port 70000 is out of range"), "%s", err.msg);
	pool_store_close(s);
	sql(path, "UPDATE hosts SET migration_port = 1, address = replace(hex(zeroblob(200)), '0', 'x')");
	s = open_store();
	cr_assert_eq(pool_store_host_get(s, "a", &got, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "host address of 400 bytes does not fit in 255"), "%s", err.msg);
	pool_store_close(s);
}

Test(store, two_stores_on_one_file_see_each_others_commits)
{
	_cleanup_pool_store_ struct pool_store *a = open_store();
	_cleanup_pool_store_ struct pool_store *b = open_store();
	struct vz_err err = { 0 };
	struct pool_host h1 = host("one", POOL_HOST_ONLINE, 1), h2 = host("two", POOL_HOST_SUSPECT, 2), got;
	struct pool_move m = move(101, "one", "two", POOL_MOVE_QUEUED), got_m;

	cr_assert_eq(pool_store_host_put(a, &h1, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(b, "one", &got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&got, &h1, sizeof(h1)), 0);

	/* A transaction of a's is not seen by b until it commits, and b reads
	 * meanwhile (WAL: readers do not wait for the writer). */
	cr_assert_eq(pool_store_begin(a, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_put(a, &h2, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_move_add(a, &m, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(b, "two", &got, &err), -ENOENT, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(b, "one", &got, &err), 0, "b reads during a's transaction: %s", err.msg);
	cr_assert_eq(pool_store_commit(a, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_host_get(b, "two", &got, &err), 0, "%s", err.msg);
	cr_assert_eq(memcmp(&got, &h2, sizeof(h2)), 0);
	cr_assert_eq(pool_store_move_get(b, m.id, &got_m, &err), 0, "%s", err.msg);

	/* And the other way. */
	got_m.state = POOL_MOVE_RUNNING;
	cr_assert_eq(pool_store_move_update(b, &got_m, &err), 0, "%s", err.msg);
	cr_assert_eq(pool_store_move_get(a, m.id, &m, &err), 0, "%s", err.msg);
	cr_assert_eq(m.state, POOL_MOVE_RUNNING);
}
