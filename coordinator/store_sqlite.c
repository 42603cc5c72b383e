/* The store in one SQLite file, with Debian's libsqlite3.
 *
 * WAL, so that the admin's commands read while vzcoord writes and a second
 * vzcoord on the same file sees what the first committed; synchronous=FULL,
 * so that a move committed before a power cut is still there after it and
 * is not made twice; foreign keys on, so that a drain never outlives its
 * host nor a member its drain. Every value goes through a bound parameter
 * of a statement prepared once at open; no SQL is ever built from values.
 *
 * The schema's version is the file's PRAGMA user_version. A file of
 * version 0 with nothing in it (new, or empty) is given the schema; a file
 * of SCHEMA_VERSION is used; a newer one, or one that is not SQLite, is
 * refused before anything is written to it. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "cleanup.h"
#include "store-int.h"

#define SCHEMA_VERSION 1
#define STR_(x)	       #x
#define STR(x)	       STR_(x)
/* How long a call waits for another writer (a second vzcoord, an admin's
 * sqlite3 shell) before it fails with -EBUSY. */
#define BUSY_TIMEOUT_MS 5000

/* Version 1. Enum values are stored as their words (store.c), so that the
 * file reads well in a sqlite3 shell and a reordered enum changes nothing. */
static const char schema_v1[] =
    "CREATE TABLE hosts ("
    " name TEXT PRIMARY KEY NOT NULL, address TEXT NOT NULL, migration_port INTEGER NOT NULL,"
    " state TEXT NOT NULL, last_seen_ms INTEGER NOT NULL, cores INTEGER NOT NULL,"
    " mem_total INTEGER NOT NULL, mem_free INTEGER NOT NULL, disk_free INTEGER NOT NULL) STRICT;"
    "CREATE TABLE drains ("
    " host TEXT PRIMARY KEY NOT NULL REFERENCES hosts (name) ON DELETE CASCADE,"
    " state TEXT NOT NULL, started_ms INTEGER NOT NULL, offline INTEGER NOT NULL) STRICT;"
    "CREATE TABLE drain_members ("
    " host TEXT NOT NULL REFERENCES drains (host) ON DELETE CASCADE, veid INTEGER NOT NULL,"
    " origin TEXT NOT NULL, target TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,"
    " PRIMARY KEY (host, veid)) STRICT;"
    /* AUTOINCREMENT: an id is never given twice, even after its row is gone. */
    "CREATE TABLE moves ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, veid INTEGER NOT NULL, src TEXT NOT NULL,"
    " dst TEXT NOT NULL, mode TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, error TEXT NOT NULL,"
    " drain_host TEXT NOT NULL) STRICT;"
    "CREATE INDEX moves_by_state ON moves (state, id);"
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
    " veid INTEGER NOT NULL, host TEXT NOT NULL, text TEXT NOT NULL) STRICT;"
    "PRAGMA user_version = " STR(SCHEMA_VERSION) ";";

#define HOST_COLS   "name, address, migration_port, state, last_seen_ms, cores, mem_total, mem_free, disk_free"
#define DRAIN_COLS  "host, state, started_ms, offline"
#define MEMBER_COLS "host, veid, origin, target, status, reason"
#define MOVE_COLS   "id, veid, src, dst, mode, state, attempts, created_ms, updated_ms, error, drain_host"
#define EVENT_COLS  "id, time_ms, kind, veid, host, text"

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_HOST_PUT,
	ST_HOST_GET,
	ST_HOST_DEL,
	ST_HOST_LIST,
	ST_DRAIN_PUT,
	ST_DRAIN_GET,
	ST_DRAIN_DEL,
	ST_MEMBER_PUT,
	ST_MEMBER_LIST,
	ST_MOVE_ADD,
	ST_MOVE_UPDATE,
	ST_MOVE_GET,
	ST_MOVE_LIST_ALL,
	ST_MOVE_LIST_STATE,
	ST_EVENT_ADD,
	ST_EVENT_LIST,
	ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
	/* IMMEDIATE: the write lock is taken (waiting up to the busy timeout)
	 * at begin, never half-way through, where WAL could only fail. */
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_HOST_PUT] = "INSERT INTO hosts (" HOST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
			" ON CONFLICT (name) DO UPDATE SET address = excluded.address,"
			" migration_port = excluded.migration_port, state = excluded.state,"
			" last_seen_ms = excluded.last_seen_ms, cores = excluded.cores, mem_total = excluded.mem_total,"
			" mem_free = excluded.mem_free, disk_free = excluded.disk_free",
	[ST_HOST_GET] = "SELECT " HOST_COLS " FROM hosts WHERE name = ?1",
	[ST_HOST_DEL] = "DELETE FROM hosts WHERE name = ?1",
	[ST_HOST_LIST] = "SELECT " HOST_COLS " FROM hosts ORDER BY name",
	[ST_DRAIN_PUT] = "INSERT INTO drains (" DRAIN_COLS ") VALUES (?1, ?2, ?3, ?4)"
			 " ON CONFLICT (host) DO UPDATE SET state = excluded.state,"
			 " started_ms = excluded.started_ms, offline = excluded.offline",
	[ST_DRAIN_GET] = "SELECT " DRAIN_COLS " FROM drains WHERE host = ?1",
	[ST_DRAIN_DEL] = "DELETE FROM drains WHERE host = ?1",
	[ST_MEMBER_PUT] = "INSERT INTO drain_members (" MEMBER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
			  " ON CONFLICT (host, veid) DO UPDATE SET origin = excluded.origin,"
			  " target = excluded.target, status = excluded.status, reason = excluded.reason",
	[ST_MEMBER_LIST] = "SELECT " MEMBER_COLS " FROM drain_members WHERE host = ?1 ORDER BY veid",
	/* ?1, the id, is bound to NULL: SQLite gives the next one. */
	[ST_MOVE_ADD] = "INSERT INTO moves (" MOVE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_MOVE_UPDATE] = "UPDATE moves SET veid = ?2, src = ?3, dst = ?4, mode = ?5, state = ?6, attempts = ?7,"
			   " created_ms = ?8, updated_ms = ?9, error = ?10, drain_host = ?11 WHERE id = ?1",
	[ST_MOVE_GET] = "SELECT " MOVE_COLS " FROM moves WHERE id = ?1",
	[ST_MOVE_LIST_ALL] = "SELECT " MOVE_COLS " FROM moves ORDER BY id",
	[ST_MOVE_LIST_STATE] = "SELECT " MOVE_COLS " FROM moves WHERE state = ?1 ORDER BY id",
	[ST_EVENT_ADD] = "INSERT INTO events (" EVENT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_EVENT_LIST] = "SELECT " EVENT_COLS " FROM events WHERE id > ?1 ORDER BY id",
};

struct sq_store {
	struct pool_store base;
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st[ST_COUNT];
};

static struct sq_store *to_sq(struct pool_store *s)
{
	return container_of(s, struct sq_store, base);
}

/* A statement taken by a call is reset, and its bindings cleared, when the
 * call's scope ends. */
static void sq_resetp(sqlite3_stmt **st)
{
	if (*st) {
		sqlite3_reset(*st);
		sqlite3_clear_bindings(*st);
	}
	*st = NULL;
}
#define _cleanup_reset_ __attribute__((cleanup(sq_resetp)))

static int sq_errno(int ext)
{
	if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
		return ENOENT;
	switch (ext & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return EBUSY;
	case SQLITE_NOMEM: return ENOMEM;
	case SQLITE_READONLY: return EROFS;
	case SQLITE_FULL: return ENOSPC;
	case SQLITE_PERM:
	case SQLITE_AUTH: return EACCES;
	case SQLITE_CONSTRAINT: return EEXIST;
	case SQLITE_TOOBIG: return E2BIG;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT: return EBADMSG;
	default: return EIO;
	}
}

/* Record "fmt...: <SQLite's message>" and return the negative errno that
 * matches SQLite's last error; for an I/O failure, with the system's errno
 * and its text as well. */
static int __attribute__((format(printf, 3, 4))) sq_fail(struct sq_store *q, struct vz_err *err, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (!q->db)
		return vz_error_msg(err, ENOMEM, "%s: no memory for SQLite", what);
	int ext = sqlite3_extended_errcode(q->db), sys = sqlite3_system_errno(q->db);

	if (((ext & 0xff) == SQLITE_IOERR || (ext & 0xff) == SQLITE_CANTOPEN) && sys > 0)
		return vz_error(err, sys, "%s: %s", what, sqlite3_errmsg(q->db));
	return vz_error_msg(err, sq_errno(ext), "%s: %s", what, sqlite3_errmsg(q->db));
}

/* The statement id, unless a listing of the same statement is running (a
 * list's callback may call the store, but not the same list again). */
static sqlite3_stmt *sq_take(struct sq_store *q, enum stmt_id id, struct vz_err *err)
{
	if (sqlite3_stmt_busy(q->st[id])) {
		vz_error_msg(err, EBUSY, "A store call made from the callback of the same listing");
		return NULL;
	}
	return q->st[id];
}

/* Binding, parameter after parameter; the first failure is kept. Strings
 * are the caller's and live until the statement is reset. */
struct binder {
	sqlite3_stmt *st;
	int i, rc;
};

static void b_text(struct binder *b, const char *s)
{
	b->i++;
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_text(b->st, b->i, s, -1, SQLITE_STATIC);
}

static void b_int(struct binder *b, int64_t v)
{
	b->i++;
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_int64(b->st, b->i, v);
}

static void b_null(struct binder *b)
{
	b->i++;
	if (b->rc == SQLITE_OK)
		b->rc = sqlite3_bind_null(b->st, b->i);
}

static void b_word(struct binder *b, enum pool_word_kind k, int v)
{
	b_text(b, pool_word(k, v));
}

/* Reading a row, column after column; the first failure is kept. A value
 * that does not fit its field is refused (-EBADMSG), never cut. */
struct reader {
	sqlite3_stmt *st;
	int i, ret;
	struct vz_err *err;
};

static void r_text(struct reader *r, char *buf, size_t size, const char *what)
{
	int i = r->i++;

	if (r->ret < 0)
		return;
	const unsigned char *t = sqlite3_column_text(r->st, i);
	size_t n = (size_t)sqlite3_column_bytes(r->st, i);

	if (!t)
		r->ret = vz_error_msg(r->err, EBADMSG, "Stored %s is not text", what);
	else if (n >= size || memchr(t, '\0', n))
		r->ret = vz_error_msg(r->err, EBADMSG, "Stored %s of %zu bytes does not fit in %zu", what, n, size - 1);
	else
		memcpy(buf, t, n + 1);
}

static int64_t r_int(struct reader *r)
{
	return sqlite3_column_int64(r->st, r->i++);
}

/* An integer from 0 to max. */
static uint64_t r_uint(struct reader *r, uint64_t max, const char *what)
{
	int64_t v = r_int(r);

	if (r->ret >= 0 && (v < 0 || (uint64_t)v > max))
		r->ret = vz_error_msg(r->err, EBADMSG, "Stored %s %" PRId64 " is out of range", what, v);
	return (uint64_t)v;
}

static int r_word(struct reader *r, enum pool_word_kind k, const char *what)
{
	char word[32] = "";
	int v;

	r_text(r, word, sizeof(word), what);
	if (r->ret < 0)
		return 0;
	v = pool_word_parse(k, word);
	if (v < 0) {
		r->ret = vz_error_msg(r->err, EBADMSG, "Stored %s '%s' is not one this vzcoord knows", what, word);
		return 0;
	}
	return v;
}

static int read_host(sqlite3_stmt *st, struct pool_host *h, struct vz_err *err)
{
	struct reader r = { .st = st, .err = err };

	memset(h, 0, sizeof(*h));
	r_text(&r, h->name, sizeof(h->name), "host name");
	r_text(&r, h->address, sizeof(h->address), "host address");
	h->migration_port = r_uint(&r, UINT16_MAX, "migration port");
	h->state = r_word(&r, POOL_WORD_HOST_STATE, "host state");
	h->last_seen_ms = r_int(&r);
	h->cores = r_uint(&r, UINT32_MAX, "core count");
	h->mem_total = r_int(&r);
	h->mem_free = r_int(&r);
	h->disk_free = r_int(&r);
	return r.ret;
}

static int read_drain(sqlite3_stmt *st, struct pool_drain *d, struct vz_err *err)
{
	struct reader r = { .st = st, .err = err };

	memset(d, 0, sizeof(*d));
	r_text(&r, d->host, sizeof(d->host), "drain host");
	d->state = r_word(&r, POOL_WORD_DRAIN_STATE, "drain state");
	d->started_ms = r_int(&r);
	d->offline = r_uint(&r, 1, "drain offline flag");
	return r.ret;
}

static int read_member(sqlite3_stmt *st, struct pool_drain_member *m, struct vz_err *err)
{
	struct reader r = { .st = st, .err = err };

	memset(m, 0, sizeof(*m));
	r_text(&r, m->host, sizeof(m->host), "member's drain host");
	m->veid = r_uint(&r, UINT32_MAX, "member VEID");
	r_text(&r, m->origin, sizeof(m->origin), "member's origin");
	r_text(&r, m->target, sizeof(m->target), "member's target");
	m->status = r_word(&r, POOL_WORD_MEMBER_STATUS, "member status");
	r_text(&r, m->reason, sizeof(m->reason), "member's reason");
	return r.ret;
}

static int read_move(sqlite3_stmt *st, struct pool_move *m, struct vz_err *err)
{
	struct reader r = { .st = st, .err = err };

	memset(m, 0, sizeof(*m));
	m->id = r_uint(&r, INT64_MAX, "move id");
	m->veid = r_uint(&r, UINT32_MAX, "move VEID");
	r_text(&r, m->src, sizeof(m->src), "move's source");
	r_text(&r, m->dst, sizeof(m->dst), "move's destination");
	m->mode = r_word(&r, POOL_WORD_MOVE_MODE, "move mode");
	m->state = r_word(&r, POOL_WORD_MOVE_STATE, "move state");
	m->attempts = r_uint(&r, UINT32_MAX, "move attempts");
	m->created_ms = r_int(&r);
	m->updated_ms = r_int(&r);
	r_text(&r, m->error, sizeof(m->error), "move's error");
	r_text(&r, m->drain_host, sizeof(m->drain_host), "move's drain host");
	return r.ret;
}

static int read_event(sqlite3_stmt *st, struct pool_event *ev, struct vz_err *err)
{
	struct reader r = { .st = st, .err = err };

	memset(ev, 0, sizeof(*ev));
	ev->id = r_uint(&r, INT64_MAX, "event id");
	ev->time_ms = r_int(&r);
	r_text(&r, ev->kind, sizeof(ev->kind), "event kind");
	ev->veid = r_uint(&r, UINT32_MAX, "event VEID");
	r_text(&r, ev->host, sizeof(ev->host), "event's host");
	r_text(&r, ev->text, sizeof(ev->text), "event's text");
	return r.ret;
}

/* Step a statement that returns no row. */
static int sq_done(struct sq_store *q, struct binder *b, const char *what, struct vz_err *err)
{
	if (b->rc != SQLITE_OK || sqlite3_step(b->st) != SQLITE_DONE)
		return sq_fail(q, err, "%s", what);
	return 0;
}

/* Step a statement that changes one row: -ENOENT when it changed none. */
static int sq_done_one(struct sq_store *q, struct binder *b, const char *what, struct vz_err *err)
{
	int ret = sq_done(q, b, what, err);

	if (ret < 0)
		return ret;
	if (sqlite3_changes(q->db) == 0)
		return vz_error_msg(err, ENOENT, "%s: not in the store", what);
	return 0;
}

/* Step to a statement's one row: 1 at a row, 0 when there is none. */
static int sq_row(struct sq_store *q, struct binder *b, const char *what, struct vz_err *err)
{
	int rc = b->rc == SQLITE_OK ? sqlite3_step(b->st) : b->rc;

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return sq_fail(q, err, "%s", what);
}

/* A listing: each row read into its record and handed to the caller's
 * callback, as pool_*_fn say. */
enum rec_kind { REC_HOST, REC_MEMBER, REC_MOVE, REC_EVENT };

struct lister {
	enum rec_kind kind;
	union {
		pool_host_fn host;
		pool_member_fn member;
		pool_move_fn move;
		pool_event_fn event;
	} fn;
	void *arg;
};

static int list_row(const struct lister *l, sqlite3_stmt *st, struct vz_err *err)
{
	union {
		struct pool_host host;
		struct pool_drain_member member;
		struct pool_move move;
		struct pool_event event;
	} rec;
	int ret;

	switch (l->kind) {
	case REC_HOST: return (ret = read_host(st, &rec.host, err)) < 0 ? ret : l->fn.host(l->arg, &rec.host, err);
	case REC_MEMBER:
		return (ret = read_member(st, &rec.member, err)) < 0 ? ret : l->fn.member(l->arg, &rec.member, err);
	case REC_MOVE: return (ret = read_move(st, &rec.move, err)) < 0 ? ret : l->fn.move(l->arg, &rec.move, err);
	case REC_EVENT: return (ret = read_event(st, &rec.event, err)) < 0 ? ret : l->fn.event(l->arg, &rec.event, err);
	}
	return vz_error_msg(err, EINVAL, "Unknown kind of listing %d", l->kind);
}

static int sq_list(struct sq_store *q, struct binder *b, const struct lister *l, const char *what, struct vz_err *err)
{
	int ret;

	while ((ret = sq_row(q, b, what, err)) == 1) {
		ret = list_row(l, b->st, err);
		if (ret < 0)
			return ret;
		if (ret > 0)
			return 0;
	}
	return ret;
}

/* Open, prepare, finalize ---------------------------------------------- */

static void sq_close(struct pool_store *s)
{
	struct sq_store *q;

	if (!s)
		return;
	q = to_sq(s);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(q->st[i]);
	/* An open transaction is rolled back; the last connection to a WAL
	 * file checkpoints it and removes the -wal and -shm files. */
	sqlite3_close_v2(q->db);
	free(q->path);
	free(q);
}

static void sq_closep(struct sq_store **q)
{
	if (*q)
		sq_close(&(*q)->base);
	*q = NULL;
}

/* The first column of the one row of a constant statement, as text. */
static int sq_query(struct sq_store *q, const char *sql, char *buf, size_t size, struct vz_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		int ret = sq_fail(q, err, "Store %s: %s", q->path, sql);

		sqlite3_finalize(st);
		return ret;
	}
	snprintf(buf, size, "%s", sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
	sqlite3_finalize(st);
	return 0;
}

static int sq_query_int(struct sq_store *q, const char *sql, long long *v, struct vz_err *err)
{
	char buf[32];
	int ret = sq_query(q, sql, buf, sizeof(buf), err);

	if (ret < 0)
		return ret;
	*v = strtoll(buf, NULL, 10);
	return 0;
}

/* The file's schema version, read without writing to it; a file that is
 * not SQLite is said to be so. */
static int sq_version(struct sq_store *q, long long *version, struct vz_err *err)
{
	int ret = sq_query_int(q, "PRAGMA user_version", version, err);

	if (ret < 0 && (sqlite3_extended_errcode(q->db) & 0xff) == SQLITE_NOTADB)
		return vz_error_msg(err, EBADMSG, "Store %s is not an SQLite database (%s)", q->path,
				    sqlite3_errmsg(q->db));
	if (ret < 0)
		return ret;
	if (*version > SCHEMA_VERSION)
		return vz_error_msg(err, EPROTONOSUPPORT,
				    "Store %s was written by a newer vzcoord (schema %lld; this one knows %d)", q->path,
				    *version, SCHEMA_VERSION);
	if (*version < 0)
		return vz_error_msg(err, EBADMSG, "Store %s has schema %lld, which no vzcoord writes", q->path,
				    *version);
	return 0;
}

/* Settings of the connection, checked: a SQLite that cannot give one is
 * refused rather than run without it. */
static int sq_configure(struct sq_store *q, struct vz_err *err)
{
	char mode[16];
	long long fk;
	int ret;

	if (sqlite3_exec(q->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL", NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(q, err, "Store %s: set foreign keys and synchronous writes", q->path);
	if ((ret = sq_query_int(q, "PRAGMA foreign_keys", &fk, err)) < 0)
		return ret;
	if (fk != 1)
		return vz_error_msg(err, ENOTSUP, "Store %s: this SQLite does not enforce foreign keys", q->path);
	if ((ret = sq_query(q, "PRAGMA journal_mode = WAL", mode, sizeof(mode), err)) < 0)
		return ret;
	if (strcmp(mode, "wal") != 0)
		return vz_error_msg(err, ENOTSUP, "Store %s: journal mode is %s, not wal", q->path, mode);
	return 0;
}

/* A file of version 0 is given the schema if it holds nothing, inside one
 * transaction that looks again: another vzcoord may have just done it. */
static int sq_check_empty(struct sq_store *q, struct vz_err *err)
{
	long long objects;
	int ret = sq_query_int(q, "SELECT count(*) FROM sqlite_schema", &objects, err);

	if (ret < 0)
		return ret;
	if (objects > 0)
		return vz_error_msg(err, EBADMSG, "Store %s is an SQLite database but not a vzcoord store (schema 0)",
				    q->path);
	return 0;
}

static int sq_create(struct sq_store *q, struct vz_err *err)
{
	long long version;
	int ret;

	/* Before the journal mode is set: someone else's database is left as it was. */
	if ((ret = sq_check_empty(q, err)) < 0 || (ret = sq_configure(q, err)) < 0)
		return ret;
	if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(q, err, "Store %s: begin creating the schema", q->path);
	if ((ret = sq_version(q, &version, err)) < 0 || (version == 0 && (ret = sq_check_empty(q, err)) < 0))
		goto on_error;
	if (version == 0 && sqlite3_exec(q->db, schema_v1, NULL, NULL, NULL) != SQLITE_OK) {
		ret = sq_fail(q, err, "Store %s: create schema %d", q->path, SCHEMA_VERSION);
		goto on_error;
	}
	if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		ret = sq_fail(q, err, "Store %s: commit schema %d", q->path, SCHEMA_VERSION);
		goto on_error;
	}
	return 0;
on_error:
	sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

static int sq_open(const char *where, struct pool_store **out, struct vz_err *err)
{
	struct sq_store *q __attribute__((cleanup(sq_closep))) = calloc(1, sizeof(*q));
	long long version;
	int ret;

	if (!q || !(q->path = strdup(where)))
		return vz_error(err, ENOMEM, "Open store %s", where);
	q->base.ops = &pool_store_sqlite;
	if (sqlite3_open_v2(where, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		return sq_fail(q, err, "Open store %s", where);
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
	/* Nothing that writes (journal mode, schema) before the version is known. */
	if ((ret = sq_version(q, &version, err)) < 0)
		return ret;
	ret = version == 0 ? sq_create(q, err) : sq_configure(q, err);
	if (ret < 0)
		return ret;
	for (int i = 0; i < ST_COUNT; i++)
		if (sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL) != SQLITE_OK)
			return sq_fail(q, err, "Store %s: prepare \"%s\"", where, stmt_sql[i]);
	*out = &steal_ptr(q)->base;
	return 0;
}

/* Transactions ----------------------------------------------------------- */

static int sq_step_plain(struct sq_store *q, enum stmt_id id, const char *what, struct vz_err *err)
{
	_cleanup_reset_ sqlite3_stmt *st = q->st[id];
	struct binder b = { .st = st };

	return sq_done(q, &b, what, err);
}

static int sq_begin(struct pool_store *s, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);

	if (!sqlite3_get_autocommit(q->db))
		return vz_error_msg(err, EBUSY, "Begin a transaction on store %s: one is open", q->path);
	return sq_step_plain(q, ST_BEGIN, "Begin a transaction", err);
}

static int sq_commit(struct pool_store *s, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);

	if (sqlite3_get_autocommit(q->db))
		return vz_error_msg(err, EINVAL, "Commit on store %s: no transaction is open", q->path);
	return sq_step_plain(q, ST_COMMIT, "Commit", err);
}

static int sq_rollback(struct pool_store *s, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);

	if (sqlite3_get_autocommit(q->db))
		return 0;
	return sq_step_plain(q, ST_ROLLBACK, "Roll back", err);
}

/* Hosts ------------------------------------------------------------------- */

static int sq_host_put(struct pool_store *s, const struct pool_host *h, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_HOST_PUT, err);
	struct binder b = { .st = st };
	char what[128];

	if (!st)
		return -EBUSY;
	b_text(&b, h->name);
	b_text(&b, h->address);
	b_int(&b, h->migration_port);
	b_word(&b, POOL_WORD_HOST_STATE, h->state);
	b_int(&b, h->last_seen_ms);
	b_int(&b, h->cores);
	b_int(&b, (int64_t)h->mem_total);
	b_int(&b, (int64_t)h->mem_free);
	b_int(&b, (int64_t)h->disk_free);
	snprintf(what, sizeof(what), "Put host %s", h->name);
	return sq_done(q, &b, what, err);
}

static int sq_host_get(struct pool_store *s, const char *name, struct pool_host *h, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_HOST_GET, err);
	struct binder b = { .st = st };
	int ret;

	if (!st)
		return -EBUSY;
	b_text(&b, name);
	ret = sq_row(q, &b, "Get host", err);
	if (ret == 0)
		return vz_error_msg(err, ENOENT, "No host %s in the store", name);
	return ret < 0 ? ret : read_host(st, h, err);
}

static int sq_host_del(struct pool_store *s, const char *name, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_HOST_DEL, err);
	struct binder b = { .st = st };
	char what[128];

	if (!st)
		return -EBUSY;
	b_text(&b, name);
	snprintf(what, sizeof(what), "Delete host %s", name);
	return sq_done_one(q, &b, what, err);
}

static int sq_host_list(struct pool_store *s, pool_host_fn fn, void *arg, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_HOST_LIST, err);
	struct binder b = { .st = st };
	struct lister l = { .kind = REC_HOST, .fn.host = fn, .arg = arg };

	return st ? sq_list(q, &b, &l, "List hosts", err) : -EBUSY;
}

/* Drains ------------------------------------------------------------------ */

static int sq_drain_put(struct pool_store *s, const struct pool_drain *d, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_DRAIN_PUT, err);
	struct binder b = { .st = st };
	int ret;

	if (!st)
		return -EBUSY;
	b_text(&b, d->host);
	b_word(&b, POOL_WORD_DRAIN_STATE, d->state);
	b_int(&b, d->started_ms);
	b_int(&b, d->offline);
	ret = sq_done(q, &b, "Put drain", err);
	if (ret == -ENOENT)
		return vz_error_msg(err, ENOENT, "Put drain of %s: no host %s in the store", d->host, d->host);
	return ret;
}

static int sq_drain_get(struct pool_store *s, const char *host, struct pool_drain *d, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_DRAIN_GET, err);
	struct binder b = { .st = st };
	int ret;

	if (!st)
		return -EBUSY;
	b_text(&b, host);
	ret = sq_row(q, &b, "Get drain", err);
	if (ret == 0)
		return vz_error_msg(err, ENOENT, "No drain of %s in the store", host);
	return ret < 0 ? ret : read_drain(st, d, err);
}

static int sq_drain_del(struct pool_store *s, const char *host, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_DRAIN_DEL, err);
	struct binder b = { .st = st };
	char what[128];

	if (!st)
		return -EBUSY;
	b_text(&b, host);
	snprintf(what, sizeof(what), "Delete the drain of %s", host);
	return sq_done_one(q, &b, what, err);
}

static int sq_member_put(struct pool_store *s, const struct pool_drain_member *m, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_MEMBER_PUT, err);
	struct binder b = { .st = st };
	int ret;

	if (!st)
		return -EBUSY;
	b_text(&b, m->host);
	b_int(&b, m->veid);
	b_text(&b, m->origin);
	b_text(&b, m->target);
	b_word(&b, POOL_WORD_MEMBER_STATUS, m->status);
	b_text(&b, m->reason);
	ret = sq_done(q, &b, "Put drain member", err);
	if (ret == -ENOENT)
		return vz_error_msg(err, ENOENT, "Put VE %u in the drain of %s: no drain of %s in the store", m->veid,
				    m->host, m->host);
	return ret;
}

static int sq_member_list(struct pool_store *s, const char *host, pool_member_fn fn, void *arg, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_MEMBER_LIST, err);
	struct binder b = { .st = st };
	struct lister l = { .kind = REC_MEMBER, .fn.member = fn, .arg = arg };

	if (!st)
		return -EBUSY;
	b_text(&b, host);
	return sq_list(q, &b, &l, "List drain members", err);
}

/* Moves and events ---------------------------------------------------------- */

/* Every column of a move, ?1 (the id) first. */
static void bind_move(struct binder *b, const struct pool_move *m, bool with_id)
{
	if (with_id)
		b_int(b, (int64_t)m->id);
	else
		b_null(b);
	b_int(b, m->veid);
	b_text(b, m->src);
	b_text(b, m->dst);
	b_word(b, POOL_WORD_MOVE_MODE, m->mode);
	b_word(b, POOL_WORD_MOVE_STATE, m->state);
	b_int(b, m->attempts);
	b_int(b, m->created_ms);
	b_int(b, m->updated_ms);
	b_text(b, m->error);
	b_text(b, m->drain_host);
}

static int sq_move_add(struct pool_store *s, struct pool_move *m, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_MOVE_ADD, err);
	struct binder b = { .st = st };
	int ret;

	if (!st)
		return -EBUSY;
	bind_move(&b, m, false);
	ret = sq_done(q, &b, "Add a move", err);
	if (ret < 0)
		return ret;
	m->id = (uint64_t)sqlite3_last_insert_rowid(q->db);
	return 0;
}

static int sq_move_update(struct pool_store *s, const struct pool_move *m, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_MOVE_UPDATE, err);
	struct binder b = { .st = st };
	char what[64];

	if (!st)
		return -EBUSY;
	if (m->id > INT64_MAX)
		return vz_error_msg(err, ENOENT, "Update move %" PRIu64 ": not in the store", m->id);
	bind_move(&b, m, true);
	snprintf(what, sizeof(what), "Update move %" PRIu64, m->id);
	return sq_done_one(q, &b, what, err);
}

static int sq_move_get(struct pool_store *s, uint64_t id, struct pool_move *m, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_MOVE_GET, err);
	struct binder b = { .st = st };
	int ret;

	if (!st)
		return -EBUSY;
	b_int(&b, id > INT64_MAX ? -1 : (int64_t)id);
	ret = sq_row(q, &b, "Get move", err);
	if (ret == 0)
		return vz_error_msg(err, ENOENT, "No move %" PRIu64 " in the store", id);
	return ret < 0 ? ret : read_move(st, m, err);
}

static int sq_move_list(struct pool_store *s, int state, pool_move_fn fn, void *arg, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st =
	    sq_take(q, state == POOL_MOVE_ALL ? ST_MOVE_LIST_ALL : ST_MOVE_LIST_STATE, err);
	struct binder b = { .st = st };
	struct lister l = { .kind = REC_MOVE, .fn.move = fn, .arg = arg };

	if (!st)
		return -EBUSY;
	if (state != POOL_MOVE_ALL)
		b_word(&b, POOL_WORD_MOVE_STATE, state);
	return sq_list(q, &b, &l, "List moves", err);
}

static int sq_event_add(struct pool_store *s, struct pool_event *ev, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_EVENT_ADD, err);
	struct binder b = { .st = st };
	int ret;

	if (!st)
		return -EBUSY;
	b_null(&b);
	b_int(&b, ev->time_ms);
	b_text(&b, ev->kind);
	b_int(&b, ev->veid);
	b_text(&b, ev->host);
	b_text(&b, ev->text);
	ret = sq_done(q, &b, "Add an event", err);
	if (ret < 0)
		return ret;
	ev->id = (uint64_t)sqlite3_last_insert_rowid(q->db);
	return 0;
}

static int sq_event_list(struct pool_store *s, uint64_t since_id, pool_event_fn fn, void *arg, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, ST_EVENT_LIST, err);
	struct binder b = { .st = st };
	struct lister l = { .kind = REC_EVENT, .fn.event = fn, .arg = arg };

	if (!st)
		return -EBUSY;
	b_int(&b, since_id > INT64_MAX ? INT64_MAX : (int64_t)since_id);
	return sq_list(q, &b, &l, "List events", err);
}

const struct pool_store_ops pool_store_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.host_put = sq_host_put,
	.host_get = sq_host_get,
	.host_del = sq_host_del,
	.host_list = sq_host_list,
	.drain_put = sq_drain_put,
	.drain_get = sq_drain_get,
	.drain_del = sq_drain_del,
	.member_put = sq_member_put,
	.member_list = sq_member_list,
	.move_add = sq_move_add,
	.move_update = sq_move_update,
	.move_get = sq_move_get,
	.move_list = sq_move_list,
	.event_add = sq_event_add,
	.event_list = sq_event_list,
};
