/* The coordinator's store: hosts and their states, drains with each VE's
 * origin, the queue of moves and the events, behind a table of functions
 * (as redis's connection types) so that a replicated back-end can be added
 * without touching the callers. store_sqlite.c is the one back-end today.
 *
 * Records are plain structs with fixed-size, NUL-terminated strings; the
 * store copies them in and out and keeps no pointer to them.
 *
 * Every call returns 0 or a negative errno with err filled, and takes err
 * last. Common values:
 *   -ENOENT        no such row (get, del, update)
 *   -EINVAL        a record the store refuses (an empty name, a string that
 *                  is not NUL-terminated within its field, an unknown enum)
 *   -EBUSY         the store is locked by another writer past its busy
 *                  timeout, or begin while a transaction is open
 *   -EBADMSG       a row in the store that this code cannot read back (a
 *                  word it does not know, a number out of its field's
 *                  range, a text longer than its field); (open) a file that
 *                  is not SQLite, or an SQLite file that is not a store
 *   -EPROTONOSUPPORT  (open) a store written by a newer vzcoord
 *
 * Transactions: one at a time per store. Between begin and commit every
 * call is part of the transaction; outside one, each call commits on its
 * own. After a failed call inside a transaction the caller rolls back. */
#ifndef VZ_COORD_STORE_H
#define VZ_COORD_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define POOL_NAME_MAX 64  /* a host name: 63 bytes and the NUL */
#define POOL_ADDR_MAX 256 /* an address: an IP or a DNS name */
#define POOL_KIND_MAX 16  /* an event's kind, one short word */
#define POOL_TEXT_MAX 512 /* a reason, an error, an event's text */

/* Liveness: what the host's heartbeats make it. */
enum pool_host_state {
	POOL_HOST_ONLINE,
	POOL_HOST_SUSPECT,
	POOL_HOST_OFFLINE,
};

/* Maintenance, apart from liveness: what the admin asked of the host (a
 * drain) and where that stands. An offline host keeps its maintenance. */
enum pool_host_maint {
	POOL_MAINT_NONE,
	POOL_MAINT_DRAINING, /* a drain runs: no new VE, no incoming move */
	POOL_MAINT_DRAINED,  /* its agent reports no VE left */
	POOL_MAINT_PARTIAL,  /* the drain ended with VEs not moved */
};

struct pool_host {
	char name[POOL_NAME_MAX];
	char address[POOL_ADDR_MAX];
	uint16_t migration_port;
	enum pool_host_state state;
	enum pool_host_maint maint;
	int64_t last_seen_ms; /* ms since the epoch */
	uint32_t cores;
	uint64_t mem_total, mem_free, disk_free; /* bytes */
};

enum pool_drain_state {
	POOL_DRAIN_RUNNING,
	POOL_DRAIN_DONE,
	POOL_DRAIN_PARTIAL,
};

/* One drain per host: a new drain of the host replaces the old one. */
struct pool_drain {
	char host[POOL_NAME_MAX];
	enum pool_drain_state state;
	int64_t started_ms;
	bool offline; /* --offline: VEs are moved stopped */
};

enum pool_member_status {
	POOL_MEMBER_PLANNED,
	POOL_MEMBER_MOVING,
	POOL_MEMBER_MOVED,
	POOL_MEMBER_FAILED,
	POOL_MEMBER_NOT_MOVED,
};

/* A VE of a drain, keyed by (host, veid): host is the drain's, origin the
 * host undrain returns the VE to. */
struct pool_drain_member {
	char host[POOL_NAME_MAX];
	unsigned veid;
	char origin[POOL_NAME_MAX];
	char target[POOL_NAME_MAX];
	enum pool_member_status status;
	char reason[POOL_TEXT_MAX];
};

enum pool_move_mode {
	POOL_MOVE_OFFLINE,
	POOL_MOVE_STOPCOPY,
	POOL_MOVE_PRECOPY,
	POOL_MOVE_POSTCOPY,
};

enum pool_move_state {
	POOL_MOVE_QUEUED,
	POOL_MOVE_RUNNING,
	POOL_MOVE_DONE,
	POOL_MOVE_FAILED,
};

/* move_list's filter for every state. */
#define POOL_MOVE_ALL (-1)

/* A move of the queue. id is the store's: move_add assigns it, and an id
 * is never given twice, even after rows are gone. */
struct pool_move {
	uint64_t id;
	unsigned veid;
	char src[POOL_NAME_MAX];
	char dst[POOL_NAME_MAX];
	enum pool_move_mode mode;
	enum pool_move_state state;
	uint32_t attempts;
	int64_t created_ms, updated_ms;
	char error[POOL_TEXT_MAX];
	char drain_host[POOL_NAME_MAX]; /* "" if no drain asked for it */
	char failed_dst[POOL_NAME_MAX]; /* the target of the attempt that failed, "" if none */
};

/* What was decided or seen, with its numbers. ids only grow. */
struct pool_event {
	uint64_t id;
	int64_t time_ms;
	char kind[POOL_KIND_MAX];
	unsigned veid; /* 0 if none */
	char host[POOL_NAME_MAX];
	char text[POOL_TEXT_MAX];
};

/* List callbacks, one call per row. Return 0 to go on; a positive value
 * stops the listing, which then returns 0; a negative errno (err filled)
 * stops it and is returned as is. The row is only valid during the call.
 * A callback may make other calls, but not the same listing again (-EBUSY);
 * rows it changes in the table being listed may or may not be seen. */
typedef int (*pool_host_fn)(void *arg, const struct pool_host *h, struct vz_err *err);
typedef int (*pool_member_fn)(void *arg, const struct pool_drain_member *m, struct vz_err *err);
typedef int (*pool_move_fn)(void *arg, const struct pool_move *m, struct vz_err *err);
typedef int (*pool_event_fn)(void *arg, const struct pool_event *ev, struct vz_err *err);

/* A back-end. Each store begins with a pointer to its ops (store-int.h);
 * callers use the pool_store_* wrappers below. */
struct pool_store;

struct pool_store_ops {
	const char *name;
	/* where: the back-end's address (SQLite: a file's path). */
	int (*open)(const char *where, struct pool_store **out, struct vz_err *err);
	void (*close)(struct pool_store *s);

	int (*begin)(struct pool_store *s, struct vz_err *err);
	int (*commit)(struct pool_store *s, struct vz_err *err);
	int (*rollback)(struct pool_store *s, struct vz_err *err);

	int (*host_put)(struct pool_store *s, const struct pool_host *h, struct vz_err *err);
	int (*host_get)(struct pool_store *s, const char *name, struct pool_host *h, struct vz_err *err);
	int (*host_del)(struct pool_store *s, const char *name, struct vz_err *err);
	int (*host_list)(struct pool_store *s, pool_host_fn fn, void *arg, struct vz_err *err);

	int (*drain_put)(struct pool_store *s, const struct pool_drain *d, struct vz_err *err);
	int (*drain_get)(struct pool_store *s, const char *host, struct pool_drain *d, struct vz_err *err);
	int (*drain_del)(struct pool_store *s, const char *host, struct vz_err *err);
	int (*member_put)(struct pool_store *s, const struct pool_drain_member *m, struct vz_err *err);
	int (*member_list)(struct pool_store *s, const char *host, pool_member_fn fn, void *arg, struct vz_err *err);

	int (*move_add)(struct pool_store *s, struct pool_move *m, struct vz_err *err);
	int (*move_update)(struct pool_store *s, const struct pool_move *m, struct vz_err *err);
	int (*move_get)(struct pool_store *s, uint64_t id, struct pool_move *m, struct vz_err *err);
	int (*move_list)(struct pool_store *s, int state, pool_move_fn fn, void *arg, struct vz_err *err);

	int (*event_add)(struct pool_store *s, struct pool_event *ev, struct vz_err *err);
	int (*event_list)(struct pool_store *s, uint64_t since_id, pool_event_fn fn, void *arg, struct vz_err *err);

	int (*epoch_next)(struct pool_store *s, uint64_t *epoch, struct vz_err *err);
};

/* The SQLite back-end (store_sqlite.c). */
extern const struct pool_store_ops pool_store_sqlite;

/* Open the store at where with back-end ops; *out is the caller's, freed
 * with pool_store_close. SQLite: a missing or empty file is created with
 * the schema; a file of a newer schema or not SQLite is refused and left
 * as it was. */
int pool_store_open(const struct pool_store_ops *ops, const char *where, struct pool_store **out, struct vz_err *err);
/* Close s (NULL is fine); an open transaction is rolled back. */
void pool_store_close(struct pool_store *s);

static inline void pool_store_closep(struct pool_store **s)
{
	pool_store_close(*s);
	*s = NULL;
}
#define _cleanup_pool_store_ __attribute__((cleanup(pool_store_closep)))

/* begin: -EBUSY if a transaction is open. commit: -EINVAL if none is.
 * rollback: 0 if none is open (SQLite may already have rolled back after
 * a failure), so that error paths can always call it. */
int pool_store_begin(struct pool_store *s, struct vz_err *err);
int pool_store_commit(struct pool_store *s, struct vz_err *err);
int pool_store_rollback(struct pool_store *s, struct vz_err *err);

/* Hosts, keyed by name. put inserts or replaces every field; list goes
 * by name (bytewise). del also removes the host's drain and its members. */
int pool_store_host_put(struct pool_store *s, const struct pool_host *h, struct vz_err *err);
int pool_store_host_get(struct pool_store *s, const char *name, struct pool_host *h, struct vz_err *err);
int pool_store_host_del(struct pool_store *s, const char *name, struct vz_err *err);
int pool_store_host_list(struct pool_store *s, pool_host_fn fn, void *arg, struct vz_err *err);

/* Drains, keyed by host, which must be a stored host (-ENOENT otherwise).
 * put replaces the drain's fields and keeps its members; del removes the
 * members too. Members are keyed by (host, veid) and need their drain;
 * member_list goes by veid. */
int pool_store_drain_put(struct pool_store *s, const struct pool_drain *d, struct vz_err *err);
int pool_store_drain_get(struct pool_store *s, const char *host, struct pool_drain *d, struct vz_err *err);
int pool_store_drain_del(struct pool_store *s, const char *host, struct vz_err *err);
int pool_store_member_put(struct pool_store *s, const struct pool_drain_member *m, struct vz_err *err);
int pool_store_member_list(struct pool_store *s, const char *host, pool_member_fn fn, void *arg, struct vz_err *err);

/* The queue. move_add ignores m->id and sets it to the new row's.
 * move_update writes every field but id of the row m->id. move_list goes
 * by id, over the moves in state (an enum pool_move_state) or, with
 * POOL_MOVE_ALL, every move. */
int pool_store_move_add(struct pool_store *s, struct pool_move *m, struct vz_err *err);
int pool_store_move_update(struct pool_store *s, const struct pool_move *m, struct vz_err *err);
int pool_store_move_get(struct pool_store *s, uint64_t id, struct pool_move *m, struct vz_err *err);
int pool_store_move_list(struct pool_store *s, int state, pool_move_fn fn, void *arg, struct vz_err *err);

/* Events. event_add ignores ev->id and sets it; event_list goes by id over
 * the events whose id is above since_id (0: all). */
int pool_store_event_add(struct pool_store *s, struct pool_event *ev, struct vz_err *err);
int pool_store_event_list(struct pool_store *s, uint64_t since_id, pool_event_fn fn, void *arg, struct vz_err *err);

/* The coordinator's epoch: a new one (>= 1, above every one given before
 * by this store) into *epoch, committed before it returns. vzcoord serve
 * takes one at each start and puts it in every order, so that an agent
 * can refuse the orders of a coordinator that has been replaced. -EBUSY
 * inside a transaction. */
int pool_store_epoch_next(struct pool_store *s, uint64_t *epoch, struct vz_err *err);

/* The words the store and the admin's view use for each state ("online",
 * "draining", "not_moved", "precopy", ...), and back: NULL for a value out of range,
 * -EINVAL for an unknown word. */
const char *pool_host_state_name(enum pool_host_state v);
const char *pool_host_maint_name(enum pool_host_maint v);
const char *pool_drain_state_name(enum pool_drain_state v);
const char *pool_member_status_name(enum pool_member_status v);
const char *pool_move_mode_name(enum pool_move_mode v);
const char *pool_move_state_name(enum pool_move_state v);
int pool_host_state_parse(const char *word, enum pool_host_state *v);
int pool_host_maint_parse(const char *word, enum pool_host_maint *v);
int pool_drain_state_parse(const char *word, enum pool_drain_state *v);
int pool_member_status_parse(const char *word, enum pool_member_status *v);
int pool_move_mode_parse(const char *word, enum pool_move_mode *v);
int pool_move_state_parse(const char *word, enum pool_move_state *v);

#endif
