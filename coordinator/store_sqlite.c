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
 * version 0 with nothing in it (new, or empty) is given version 1, then
 * every upgrade after it, as an older file is: one path for both, so that
 * the upgrade is what every new store goes through. A file of
 * SCHEMA_VERSION is used; a newer one, or one that is not SQLite, is
 * refused before anything is written to it. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "cleanup.h"
#include "store-int.h"

#define SCHEMA_VERSION 2
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
    "PRAGMA user_version = 1;";

/* Version 2: a host's maintenance apart from its liveness (a drained host
 * that goes silent is still drained; v1 kept one state for both, and a
 * maintenance state there means the host's liveness is unknown until it
 * speaks), the target a move failed on (its retry goes elsewhere), and the
 * coordinator's epoch. */
static const char upgrade_v2[] =
    "ALTER TABLE hosts ADD COLUMN maint TEXT NOT NULL DEFAULT 'none';"
    "UPDATE hosts SET maint = state, state = 'offline' WHERE state IN ('draining', 'drained', 'partial');"
    "ALTER TABLE moves ADD COLUMN failed_dst TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE epoch (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL) STRICT;"
    "INSERT INTO epoch (id, epoch) VALUES (1, 0);"
    "PRAGMA user_version = 2;";

/* upgrades[v]: from version v to v + 1 (version 0: the schema). */
static const char *const upgrades[SCHEMA_VERSION] = { schema_v1, upgrade_v2 };

#define HOST_COLS   "name, address, migration_port, state, last_seen_ms, cores, mem_total, mem_free, disk_free, maint"
#define DRAIN_COLS  "host, state, started_ms, offline"
#define MEMBER_COLS "host, veid, origin, target, status, reason"
#define MOVE_COLS   "id, veid, src, dst, mode, state, attempts, created_ms, updated_ms, error, drain_host, failed_dst"
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
	ST_EPOCH_NEXT,
	ST_COUNT,
};

static const char *const stmt_sql[ST_COUNT] = {
	/* IMMEDIATE: the write lock is taken (waiting up to the busy timeout)
	 * at begin, never half-way through, where WAL could only fail. */
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_HOST_PUT] = "INSERT INTO hosts (" HOST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
			" ON CONFLICT (name) DO UPDATE SET address = excluded.address,"
			" migration_port = excluded.migration_port, state = excluded.state,"
			" last_seen_ms = excluded.last_seen_ms, cores = excluded.cores, mem_total = excluded.mem_total,"
			" mem_free = excluded.mem_free, disk_free = excluded.disk_free, maint = excluded.maint",
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
	[ST_MOVE_ADD] = "INSERT INTO moves (" MOVE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[ST_MOVE_UPDATE] =
	    "UPDATE moves SET veid = ?2, src = ?3, dst = ?4, mode = ?5, state = ?6, attempts = ?7,"
	    " created_ms = ?8, updated_ms = ?9, error = ?10, drain_host = ?11, failed_dst = ?12 WHERE id = ?1",
	[ST_MOVE_GET] = "SELECT " MOVE_COLS " FROM moves WHERE id = ?1",
	[ST_MOVE_LIST_ALL] = "SELECT " MOVE_COLS " FROM moves ORDER BY id",
	[ST_MOVE_LIST_STATE] = "SELECT " MOVE_COLS " FROM moves WHERE state = ?1 ORDER BY id",
	[ST_EVENT_ADD] = "INSERT INTO events (" EVENT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_EVENT_LIST] = "SELECT " EVENT_COLS " FROM events WHERE id > ?1 ORDER BY id",
	[ST_EPOCH_NEXT] = "UPDATE epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
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

/* Records as tables of columns, in the order of their statements' columns
 * and parameters, so that one binder and one reader serve every kind. */
enum col_type {
	COL_TEXT, /* char[size] */
	COL_UINT, /* an unsigned integer (bool included) of size bytes */
	COL_INT,  /* int64_t */
	COL_WORD, /* an enum, stored as its word of kind */
	COL_ID,	  /* uint64_t id: given by SQLite, 1 to INT64_MAX */
};

struct col {
	const char *what;
	enum col_type type;
	size_t off, size;
	enum pool_word_kind kind;
};

/* One column a line, as the tables of a schema are read. */
/* clang-format off */
#define FIELD(rec, f)         offsetof(rec, f), sizeof(((rec *)0)->f)
#define TEXT(rec, f, what)    { what, COL_TEXT, FIELD(rec, f), 0 }
#define UINT(rec, f, what)    { what, COL_UINT, FIELD(rec, f), 0 }
#define INT(rec, f, what)     { what, COL_INT, FIELD(rec, f), 0 }
#define WORD(rec, f, k, what) { what, COL_WORD, FIELD(rec, f), k }
#define ID(rec, f, what)      { what, COL_ID, FIELD(rec, f), 0 }

static const struct col host_cols[] = {
	TEXT(struct pool_host, name, "host name"),
	TEXT(struct pool_host, address, "host address"),
	UINT(struct pool_host, migration_port, "migration port"),
	WORD(struct pool_host, state, POOL_WORD_HOST_STATE, "host state"),
	INT(struct pool_host, last_seen_ms, "last seen time"),
	UINT(struct pool_host, cores, "core count"),
	UINT(struct pool_host, mem_total, "total memory"),
	UINT(struct pool_host, mem_free, "free memory"),
	UINT(struct pool_host, disk_free, "free disk"),
	WORD(struct pool_host, maint, POOL_WORD_HOST_MAINT, "host maintenance"),
};
static const struct col drain_cols[] = {
	TEXT(struct pool_drain, host, "drain's host"),
	WORD(struct pool_drain, state, POOL_WORD_DRAIN_STATE, "drain state"),
	INT(struct pool_drain, started_ms, "drain start"),
	UINT(struct pool_drain, offline, "drain offline flag"),
};
static const struct col member_cols[] = {
	TEXT(struct pool_drain_member, host, "member's drain host"),
	UINT(struct pool_drain_member, veid, "member VEID"),
	TEXT(struct pool_drain_member, origin, "member's origin"),
	TEXT(struct pool_drain_member, target, "member's target"),
	WORD(struct pool_drain_member, status, POOL_WORD_MEMBER_STATUS, "member status"),
	TEXT(struct pool_drain_member, reason, "member's reason"),
};
static const struct col move_cols[] = {
	ID(struct pool_move, id, "move id"),
	UINT(struct pool_move, veid, "move VEID"),
	TEXT(struct pool_move, src, "move's source"),
	TEXT(struct pool_move, dst, "move's destination"),
	WORD(struct pool_move, mode, POOL_WORD_MOVE_MODE, "move mode"),
	WORD(struct pool_move, state, POOL_WORD_MOVE_STATE, "move state"),
	UINT(struct pool_move, attempts, "move attempts"),
	INT(struct pool_move, created_ms, "move creation time"),
	INT(struct pool_move, updated_ms, "move update time"),
	TEXT(struct pool_move, error, "move's error"),
	TEXT(struct pool_move, drain_host, "move's drain host"),
	TEXT(struct pool_move, failed_dst, "move's failed target"),
};
static const struct col event_cols[] = {
	ID(struct pool_event, id, "event id"),
	INT(struct pool_event, time_ms, "event time"),
	TEXT(struct pool_event, kind, "event kind"),
	UINT(struct pool_event, veid, "event VEID"),
	TEXT(struct pool_event, host, "event's host"),
	TEXT(struct pool_event, text, "event's text"),
};
/* clang-format on */
#undef FIELD
#undef TEXT
#undef UINT
#undef INT
#undef WORD
#undef ID

/* A kind of record: its columns, its name in messages and what a row's
 * foreign key needs (NULL: none). */
enum rec_kind { REC_HOST, REC_DRAIN, REC_MEMBER, REC_MOVE, REC_EVENT };

static const struct rec_desc {
	const struct col *cols;
	size_t ncols, size;
	const char *noun, *parent;
} recs[] = {
	[REC_HOST] = { host_cols, ARRAY_SIZE(host_cols), sizeof(struct pool_host), "host", NULL },
	[REC_DRAIN] = { drain_cols, ARRAY_SIZE(drain_cols), sizeof(struct pool_drain), "drain of", "host" },
	[REC_MEMBER] = { member_cols, ARRAY_SIZE(member_cols), sizeof(struct pool_drain_member),
			 "member of the drain of", "drain" },
	[REC_MOVE] = { move_cols, ARRAY_SIZE(move_cols), sizeof(struct pool_move), "move", NULL },
	[REC_EVENT] = { event_cols, ARRAY_SIZE(event_cols), sizeof(struct pool_event), "event", NULL },
};

/* Enums are read and written as int. */
_Static_assert(sizeof(enum pool_host_state) == sizeof(int) && sizeof(enum pool_host_maint) == sizeof(int) &&
		   sizeof(enum pool_move_state) == sizeof(int) && sizeof(enum pool_drain_state) == sizeof(int) &&
		   sizeof(enum pool_member_status) == sizeof(int) && sizeof(enum pool_move_mode) == sizeof(int),
	       "enums are int-sized");

static uint64_t load_uint(const void *p, size_t size)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	switch (size) {
	case 1: memcpy(&u8, p, 1); return u8;
	case 2: memcpy(&u16, p, 2); return u16;
	case 4: memcpy(&u32, p, 4); return u32;
	default: memcpy(&u64, p, 8); return u64;
	}
}

static void store_uint(void *p, size_t size, uint64_t v)
{
	uint8_t u8 = (uint8_t)v;
	uint16_t u16 = (uint16_t)v;
	uint32_t u32 = (uint32_t)v;

	switch (size) {
	case 1: memcpy(p, &u8, 1); break;
	case 2: memcpy(p, &u16, 2); break;
	case 4: memcpy(p, &u32, 4); break;
	default: memcpy(p, &v, 8); break;
	}
}

/* A key: a text (a host's name) or, with text NULL, a number (an id). */
struct key {
	const char *text;
	int64_t num;
};

/* Bind key, then the record's columns from the first parameter after it
 * (first: 1, or 2 after a key bound as ?1). add: the id column is bound
 * to NULL, for SQLite to give. Strings are bound where they stand, valid
 * until the statement is reset. */
static int bind_rec(sqlite3_stmt *st, int first, const struct rec_desc *d, const void *rec, bool add)
{
	int rc = SQLITE_OK;

	for (size_t i = 0; i < d->ncols && rc == SQLITE_OK; i++) {
		const struct col *c = &d->cols[i];
		const char *p = (const char *)rec + c->off;
		int n = first + (int)i, v;
		int64_t v64;

		switch (c->type) {
		case COL_TEXT: rc = sqlite3_bind_text(st, n, p, -1, SQLITE_STATIC); break;
		case COL_WORD:
			memcpy(&v, p, sizeof(v));
			rc = sqlite3_bind_text(st, n, pool_word(c->kind, v), -1, SQLITE_STATIC);
			break;
		case COL_INT:
			memcpy(&v64, p, sizeof(v64));
			rc = sqlite3_bind_int64(st, n, v64);
			break;
		case COL_ID:
			if (add) {
				rc = sqlite3_bind_null(st, n);
				break;
			}
			/* fall through */
		case COL_UINT: rc = sqlite3_bind_int64(st, n, (int64_t)load_uint(p, c->size)); break;
		}
	}
	return rc;
}

static int bind_key(sqlite3_stmt *st, const struct key *k)
{
	if (k->text)
		return sqlite3_bind_text(st, 1, k->text, -1, SQLITE_STATIC);
	return sqlite3_bind_int64(st, 1, k->num);
}

/* A value that does not fit its field is refused (-EBADMSG), never cut. */
static int read_text(sqlite3_stmt *st, int i, char *buf, size_t size, const char *what, struct vz_err *err)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	size_t n = (size_t)sqlite3_column_bytes(st, i);

	if (!t)
		return vz_error_msg(err, EBADMSG, "Stored %s is not text", what);
	if (n >= size || memchr(t, '\0', n))
		return vz_error_msg(err, EBADMSG, "Stored %s of %zu bytes does not fit in %zu", what, n, size - 1);
	memcpy(buf, t, n + 1);
	return 0;
}

static int read_word(sqlite3_stmt *st, int i, const struct col *c, int *v, struct vz_err *err)
{
	char word[32];
	int ret = read_text(st, i, word, sizeof(word), c->what, err);

	if (ret < 0)
		return ret;
	*v = pool_word_parse(c->kind, word);
	if (*v < 0)
		return vz_error_msg(err, EBADMSG, "Stored %s '%s' is not one this vzcoord knows", c->what, word);
	return 0;
}

static int read_uint(sqlite3_stmt *st, int i, const struct col *c, void *p, struct vz_err *err)
{
	int64_t v = sqlite3_column_int64(st, i);
	uint64_t max = c->size >= 8 ? UINT64_MAX : (1ull << (8 * c->size)) - 1;

	if (c->size == 1)
		max = 1; /* a bool */
	if (c->type == COL_ID && v <= 0)
		return vz_error_msg(err, EBADMSG, "Stored %s %" PRId64 " is not an id", c->what, v);
	/* 64 bits round trip through SQLite's signed integers. */
	if (c->size < 8 && (v < 0 || (uint64_t)v > max))
		return vz_error_msg(err, EBADMSG, "Stored %s %" PRId64 " is out of range", c->what, v);
	store_uint(p, c->size, (uint64_t)v);
	return 0;
}

/* The current row of st into rec, column after column. */
static int read_rec(sqlite3_stmt *st, const struct rec_desc *d, void *rec, struct vz_err *err)
{
	int ret = 0;

	memset(rec, 0, d->size);
	for (size_t i = 0; i < d->ncols && ret >= 0; i++) {
		const struct col *c = &d->cols[i];
		char *p = (char *)rec + c->off;
		int64_t v64;
		int v;

		switch (c->type) {
		case COL_TEXT: ret = read_text(st, (int)i, p, c->size, c->what, err); break;
		case COL_WORD:
			if ((ret = read_word(st, (int)i, c, &v, err)) >= 0)
				memcpy(p, &v, sizeof(v));
			break;
		case COL_INT:
			v64 = sqlite3_column_int64(st, (int)i);
			memcpy(p, &v64, sizeof(v64));
			break;
		case COL_ID:
		case COL_UINT: ret = read_uint(st, (int)i, c, p, err); break;
		}
	}
	return ret;
}

/* "host node-a", "move 12", "member of the drain of node-a": for messages. */
static const char *rec_name(char *buf, size_t size, const struct rec_desc *d, const struct key *k)
{
	if (k->text)
		snprintf(buf, size, "%s %s", d->noun, k->text);
	else
		snprintf(buf, size, "%s %" PRId64, d->noun, k->num);
	return buf;
}

/* The key of a record: its first column, text or id. */
static struct key rec_key(const struct rec_desc *d, const void *rec)
{
	const struct col *c = &d->cols[0];
	const char *p = (const char *)rec + c->off;

	if (c->type == COL_TEXT)
		return (struct key){ .text = p };
	return (struct key){ .num = (int64_t)load_uint(p, c->size) };
}

/* Step a statement that returns no row: 0, or -ENOENT (with one) when it
 * changed no row or its row's parent is not in the store. */
static int sq_step_done(struct sq_store *q, sqlite3_stmt *st, int rc, bool one, const char *name, const char *parent,
			struct vz_err *err)
{
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && parent && sqlite3_extended_errcode(q->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
		return vz_error_msg(err, ENOENT, "Put %s: its %s is not in the store", name, parent);
	if (rc != SQLITE_DONE)
		return sq_fail(q, err, "Write %s", name);
	if (one && sqlite3_changes(q->db) == 0)
		return vz_error_msg(err, ENOENT, "No %s in the store", name);
	return 0;
}

/* Insert or replace rec (put), insert it with the next id, stored in
 * *new_id (add), or update the row of its key (update). */
enum write_how { W_PUT, W_ADD, W_UPDATE };

static int sq_write(struct pool_store *s, enum stmt_id id, enum rec_kind kind, const void *rec, enum write_how how,
		    uint64_t *new_id, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, id, err);
	const struct rec_desc *d = &recs[kind];
	struct key k = rec_key(d, rec);
	char name[POOL_NAME_MAX + 64];
	int ret;

	if (!st)
		return -EBUSY;
	if (how == W_ADD)
		snprintf(name, sizeof(name), "new %s", d->noun);
	else
		rec_name(name, sizeof(name), d, &k);
	ret = sq_step_done(q, st, bind_rec(st, 1, d, rec, how == W_ADD), how == W_UPDATE, name, d->parent, err);
	if (ret >= 0 && new_id)
		*new_id = (uint64_t)sqlite3_last_insert_rowid(q->db);
	return ret;
}

static int sq_del(struct pool_store *s, enum stmt_id id, enum rec_kind kind, const char *key, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, id, err);
	struct key k = { .text = key };
	char name[POOL_NAME_MAX + 64];

	if (!st)
		return -EBUSY;
	return sq_step_done(q, st, bind_key(st, &k), true, rec_name(name, sizeof(name), &recs[kind], &k), NULL, err);
}

static int sq_get(struct pool_store *s, enum stmt_id id, enum rec_kind kind, struct key k, void *rec,
		  struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, id, err);
	char name[POOL_NAME_MAX + 64];
	int rc;

	if (!st)
		return -EBUSY;
	rec_name(name, sizeof(name), &recs[kind], &k);
	rc = bind_key(st, &k);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return vz_error_msg(err, ENOENT, "No %s in the store", name);
	if (rc != SQLITE_ROW)
		return sq_fail(q, err, "Read %s", name);
	return read_rec(st, &recs[kind], rec, err);
}

/* A listing: each row read into its record and handed to the caller's
 * callback, as pool_*_fn say. */
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

static int list_call(const struct lister *l, const void *rec, struct vz_err *err)
{
	switch (l->kind) {
	case REC_HOST: return l->fn.host(l->arg, rec, err);
	case REC_MEMBER: return l->fn.member(l->arg, rec, err);
	case REC_MOVE: return l->fn.move(l->arg, rec, err);
	case REC_EVENT: return l->fn.event(l->arg, rec, err);
	case REC_DRAIN: break;
	}
	return vz_error_msg(err, EINVAL, "No listing of kind %d", l->kind);
}

/* key: bound as ?1, or NULL for a statement without one. what: for messages. */
static int sq_list(struct pool_store *s, enum stmt_id id, const struct key *key, const struct lister *l,
		   const char *what, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = sq_take(q, id, err);
	union {
		struct pool_host host;
		struct pool_drain_member member;
		struct pool_move move;
		struct pool_event event;
	} rec;
	int rc, ret;

	if (!st)
		return -EBUSY;
	rc = key ? bind_key(st, key) : SQLITE_OK;
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((ret = read_rec(st, &recs[l->kind], &rec, err)) < 0 || (ret = list_call(l, &rec, err)) < 0)
			return ret;
		if (ret > 0)
			return 0;
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE)
		return sq_fail(q, err, "%s", what);
	return 0;
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

/* A file of version 0 that holds nothing, or of an older version, is
 * brought to SCHEMA_VERSION in one transaction that reads the version
 * again: another vzcoord may have just done it. */
static int sq_upgrade(struct sq_store *q, long long version, struct vz_err *err)
{
	int ret;

	/* Before the journal mode is set: someone else's database is left as it was. */
	if ((version == 0 && (ret = sq_check_empty(q, err)) < 0) || (ret = sq_configure(q, err)) < 0)
		return ret;
	if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return sq_fail(q, err, "Store %s: begin the schema's upgrade", q->path);
	if ((ret = sq_version(q, &version, err)) < 0 || (version == 0 && (ret = sq_check_empty(q, err)) < 0))
		goto on_error;
	for (; version < SCHEMA_VERSION; version++)
		if (sqlite3_exec(q->db, upgrades[version], NULL, NULL, NULL) != SQLITE_OK) {
			ret = sq_fail(q, err, "Store %s: schema %lld to %lld", q->path, version, version + 1);
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
	ret = version < SCHEMA_VERSION ? sq_upgrade(q, version, err) : sq_configure(q, err);
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

	if (sqlite3_step(st) != SQLITE_DONE)
		return sq_fail(q, err, "%s", what);
	return 0;
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

/* The table's calls --------------------------------------------------------- */

static int sq_host_put(struct pool_store *s, const struct pool_host *h, struct vz_err *err)
{
	return sq_write(s, ST_HOST_PUT, REC_HOST, h, W_PUT, NULL, err);
}

static int sq_host_get(struct pool_store *s, const char *name, struct pool_host *h, struct vz_err *err)
{
	return sq_get(s, ST_HOST_GET, REC_HOST, (struct key){ .text = name }, h, err);
}

static int sq_host_del(struct pool_store *s, const char *name, struct vz_err *err)
{
	return sq_del(s, ST_HOST_DEL, REC_HOST, name, err);
}

static int sq_host_list(struct pool_store *s, pool_host_fn fn, void *arg, struct vz_err *err)
{
	struct lister l = { .kind = REC_HOST, .fn.host = fn, .arg = arg };

	return sq_list(s, ST_HOST_LIST, NULL, &l, "List hosts", err);
}

static int sq_drain_put(struct pool_store *s, const struct pool_drain *d, struct vz_err *err)
{
	return sq_write(s, ST_DRAIN_PUT, REC_DRAIN, d, W_PUT, NULL, err);
}

static int sq_drain_get(struct pool_store *s, const char *host, struct pool_drain *d, struct vz_err *err)
{
	return sq_get(s, ST_DRAIN_GET, REC_DRAIN, (struct key){ .text = host }, d, err);
}

static int sq_drain_del(struct pool_store *s, const char *host, struct vz_err *err)
{
	return sq_del(s, ST_DRAIN_DEL, REC_DRAIN, host, err);
}

static int sq_member_put(struct pool_store *s, const struct pool_drain_member *m, struct vz_err *err)
{
	return sq_write(s, ST_MEMBER_PUT, REC_MEMBER, m, W_PUT, NULL, err);
}

static int sq_member_list(struct pool_store *s, const char *host, pool_member_fn fn, void *arg, struct vz_err *err)
{
	struct lister l = { .kind = REC_MEMBER, .fn.member = fn, .arg = arg };

	return sq_list(s, ST_MEMBER_LIST, &(struct key){ .text = host }, &l, "List the VEs of a drain", err);
}

static int sq_move_add(struct pool_store *s, struct pool_move *m, struct vz_err *err)
{
	return sq_write(s, ST_MOVE_ADD, REC_MOVE, m, W_ADD, &m->id, err);
}

static int sq_move_update(struct pool_store *s, const struct pool_move *m, struct vz_err *err)
{
	if (m->id == 0 || m->id > INT64_MAX)
		return vz_error_msg(err, ENOENT, "No move %" PRIu64 " in the store", m->id);
	return sq_write(s, ST_MOVE_UPDATE, REC_MOVE, m, W_UPDATE, NULL, err);
}

static int sq_move_get(struct pool_store *s, uint64_t id, struct pool_move *m, struct vz_err *err)
{
	/* An id SQLite cannot hold is one it never gave: -1 finds no row. */
	return sq_get(s, ST_MOVE_GET, REC_MOVE, (struct key){ .num = id > INT64_MAX ? -1 : (int64_t)id }, m, err);
}

static int sq_move_list(struct pool_store *s, int state, pool_move_fn fn, void *arg, struct vz_err *err)
{
	struct lister l = { .kind = REC_MOVE, .fn.move = fn, .arg = arg };

	if (state == POOL_MOVE_ALL)
		return sq_list(s, ST_MOVE_LIST_ALL, NULL, &l, "List moves", err);
	return sq_list(s, ST_MOVE_LIST_STATE, &(struct key){ .text = pool_word(POOL_WORD_MOVE_STATE, state) }, &l,
		       "List moves", err);
}

static int sq_event_add(struct pool_store *s, struct pool_event *ev, struct vz_err *err)
{
	return sq_write(s, ST_EVENT_ADD, REC_EVENT, ev, W_ADD, &ev->id, err);
}

static int sq_event_list(struct pool_store *s, uint64_t since_id, pool_event_fn fn, void *arg, struct vz_err *err)
{
	struct lister l = { .kind = REC_EVENT, .fn.event = fn, .arg = arg };

	return sq_list(s, ST_EVENT_LIST, &(struct key){ .num = since_id > INT64_MAX ? INT64_MAX : (int64_t)since_id },
		       &l, "List events", err);
}

static int sq_epoch_next(struct pool_store *s, uint64_t *epoch, struct vz_err *err)
{
	struct sq_store *q = to_sq(s);
	_cleanup_reset_ sqlite3_stmt *st = q->st[ST_EPOCH_NEXT];
	int64_t v;

	/* Committed on its own: an epoch given inside a transaction rolled
	 * back could be given again. */
	if (!sqlite3_get_autocommit(q->db))
		return vz_error_msg(err, EBUSY, "A new epoch inside a transaction of store %s", q->path);
	if (sqlite3_step(st) != SQLITE_ROW)
		return sq_fail(q, err, "Store %s: a new epoch", q->path);
	v = sqlite3_column_int64(st, 0);
	if (v <= 0)
		return vz_error_msg(err, EBADMSG, "Store %s: stored epoch %" PRId64 " is not one", q->path, v);
	if (sqlite3_step(st) != SQLITE_DONE)
		return sq_fail(q, err, "Store %s: a new epoch", q->path);
	*epoch = (uint64_t)v;
	return 0;
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
	.epoch_next = sq_epoch_next,
};
