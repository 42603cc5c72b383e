/* The store's front: the pool_store_* calls, which check each record once
 * for every back-end and hand it to the back-end's table of functions, and
 * the words of each state. */
#include <errno.h>
#include <string.h>

#include "cleanup.h"
#include "store-int.h"

static const char *const host_states[] = {
	[POOL_HOST_ONLINE] = "online",
	[POOL_HOST_SUSPECT] = "suspect",
	[POOL_HOST_OFFLINE] = "offline",
};
static const char *const host_maints[] = {
	[POOL_MAINT_NONE] = "none",
	[POOL_MAINT_DRAINING] = "draining",
	[POOL_MAINT_DRAINED] = "drained",
	[POOL_MAINT_PARTIAL] = "partial",
};
static const char *const drain_states[] = {
	[POOL_DRAIN_RUNNING] = "running",
	[POOL_DRAIN_DONE] = "done",
	[POOL_DRAIN_PARTIAL] = "partial",
};
static const char *const member_statuses[] = {
	[POOL_MEMBER_PLANNED] = "planned", [POOL_MEMBER_MOVING] = "moving",	  [POOL_MEMBER_MOVED] = "moved",
	[POOL_MEMBER_FAILED] = "failed",   [POOL_MEMBER_NOT_MOVED] = "not_moved",
};
static const char *const move_modes[] = {
	[POOL_MOVE_OFFLINE] = "offline",
	[POOL_MOVE_STOPCOPY] = "stopcopy",
	[POOL_MOVE_PRECOPY] = "precopy",
	[POOL_MOVE_POSTCOPY] = "postcopy",
};
static const char *const move_states[] = {
	[POOL_MOVE_QUEUED] = "queued",
	[POOL_MOVE_RUNNING] = "running",
	[POOL_MOVE_DONE] = "done",
	[POOL_MOVE_FAILED] = "failed",
};

static const struct {
	const char *const *names;
	size_t n;
} words[] = {
	[POOL_WORD_HOST_STATE] = { host_states, ARRAY_SIZE(host_states) },
	[POOL_WORD_HOST_MAINT] = { host_maints, ARRAY_SIZE(host_maints) },
	[POOL_WORD_DRAIN_STATE] = { drain_states, ARRAY_SIZE(drain_states) },
	[POOL_WORD_MEMBER_STATUS] = { member_statuses, ARRAY_SIZE(member_statuses) },
	[POOL_WORD_MOVE_MODE] = { move_modes, ARRAY_SIZE(move_modes) },
	[POOL_WORD_MOVE_STATE] = { move_states, ARRAY_SIZE(move_states) },
};

const char *pool_word(enum pool_word_kind k, int v)
{
	if (v < 0 || (size_t)v >= words[k].n)
		return NULL;
	return words[k].names[v];
}

int pool_word_parse(enum pool_word_kind k, const char *word)
{
	for (size_t i = 0; i < words[k].n; i++)
		if (strcmp(words[k].names[i], word) == 0)
			return (int)i;
	return -EINVAL;
}

const char *pool_host_state_name(enum pool_host_state v)
{
	return pool_word(POOL_WORD_HOST_STATE, v);
}

const char *pool_host_maint_name(enum pool_host_maint v)
{
	return pool_word(POOL_WORD_HOST_MAINT, v);
}

const char *pool_drain_state_name(enum pool_drain_state v)
{
	return pool_word(POOL_WORD_DRAIN_STATE, v);
}

const char *pool_member_status_name(enum pool_member_status v)
{
	return pool_word(POOL_WORD_MEMBER_STATUS, v);
}

const char *pool_move_mode_name(enum pool_move_mode v)
{
	return pool_word(POOL_WORD_MOVE_MODE, v);
}

const char *pool_move_state_name(enum pool_move_state v)
{
	return pool_word(POOL_WORD_MOVE_STATE, v);
}

/* One parser per enum type, so that callers keep their enum's type. */
#define DEFINE_PARSE(fn, type, kind)                                                                                   \
	int fn(const char *word, type *v)                                                                              \
	{                                                                                                              \
		int n = pool_word_parse(kind, word);                                                                   \
		if (n < 0)                                                                                             \
			return n;                                                                                      \
		*v = (type)n;                                                                                          \
		return 0;                                                                                              \
	}
DEFINE_PARSE(pool_host_state_parse, enum pool_host_state, POOL_WORD_HOST_STATE)
DEFINE_PARSE(pool_host_maint_parse, enum pool_host_maint, POOL_WORD_HOST_MAINT)
DEFINE_PARSE(pool_drain_state_parse, enum pool_drain_state, POOL_WORD_DRAIN_STATE)
DEFINE_PARSE(pool_member_status_parse, enum pool_member_status, POOL_WORD_MEMBER_STATUS)
DEFINE_PARSE(pool_move_mode_parse, enum pool_move_mode, POOL_WORD_MOVE_MODE)
DEFINE_PARSE(pool_move_state_parse, enum pool_move_state, POOL_WORD_MOVE_STATE)

/* A field of size bytes must hold its NUL; a key must not be empty. */
static int check_str(const char *s, size_t size, bool key, const char *what, struct vz_err *err)
{
	if (!s)
		return vz_error_msg(err, EINVAL, "No %s given", what);
	if (!memchr(s, '\0', size))
		return vz_error_msg(err, EINVAL, "The %s is longer than %zu bytes", what, size - 1);
	if (key && !*s)
		return vz_error_msg(err, EINVAL, "The %s is empty", what);
	return 0;
}

static int check_word(enum pool_word_kind k, int v, const char *what, struct vz_err *err)
{
	if (!pool_word(k, v))
		return vz_error_msg(err, EINVAL, "Unknown %s %d", what, v);
	return 0;
}

static int check_host(const struct pool_host *h, struct vz_err *err)
{
	int ret;

	if ((ret = check_str(h->name, sizeof(h->name), true, "host name", err)) < 0 ||
	    (ret = check_str(h->address, sizeof(h->address), false, "host address", err)) < 0 ||
	    (ret = check_word(POOL_WORD_HOST_STATE, h->state, "host state", err)) < 0 ||
	    (ret = check_word(POOL_WORD_HOST_MAINT, h->maint, "host maintenance", err)) < 0)
		return ret;
	return 0;
}

static int check_drain(const struct pool_drain *d, struct vz_err *err)
{
	int ret;

	if ((ret = check_str(d->host, sizeof(d->host), true, "drain's host", err)) < 0 ||
	    (ret = check_word(POOL_WORD_DRAIN_STATE, d->state, "drain state", err)) < 0)
		return ret;
	return 0;
}

static int check_member(const struct pool_drain_member *m, struct vz_err *err)
{
	int ret;

	if (m->veid == 0)
		return vz_error_msg(err, EINVAL, "A drain member needs a VEID");
	if ((ret = check_str(m->host, sizeof(m->host), true, "member's drain host", err)) < 0 ||
	    (ret = check_str(m->origin, sizeof(m->origin), false, "member's origin", err)) < 0 ||
	    (ret = check_str(m->target, sizeof(m->target), false, "member's target", err)) < 0 ||
	    (ret = check_str(m->reason, sizeof(m->reason), false, "member's reason", err)) < 0 ||
	    (ret = check_word(POOL_WORD_MEMBER_STATUS, m->status, "member status", err)) < 0)
		return ret;
	return 0;
}

/* dst may be "": a move queued before its target is chosen. */
static int check_move(const struct pool_move *m, struct vz_err *err)
{
	int ret;

	if (m->veid == 0)
		return vz_error_msg(err, EINVAL, "A move needs a VEID");
	if ((ret = check_str(m->src, sizeof(m->src), true, "move's source", err)) < 0 ||
	    (ret = check_str(m->dst, sizeof(m->dst), false, "move's destination", err)) < 0 ||
	    (ret = check_str(m->error, sizeof(m->error), false, "move's error", err)) < 0 ||
	    (ret = check_str(m->drain_host, sizeof(m->drain_host), false, "move's drain host", err)) < 0 ||
	    (ret = check_str(m->failed_dst, sizeof(m->failed_dst), false, "move's failed target", err)) < 0 ||
	    (ret = check_word(POOL_WORD_MOVE_MODE, m->mode, "move mode", err)) < 0 ||
	    (ret = check_word(POOL_WORD_MOVE_STATE, m->state, "move state", err)) < 0)
		return ret;
	return 0;
}

static int check_event(const struct pool_event *ev, struct vz_err *err)
{
	int ret;

	if ((ret = check_str(ev->kind, sizeof(ev->kind), true, "event's kind", err)) < 0 ||
	    (ret = check_str(ev->host, sizeof(ev->host), false, "event's host", err)) < 0 ||
	    (ret = check_str(ev->text, sizeof(ev->text), false, "event's text", err)) < 0)
		return ret;
	return 0;
}

int pool_store_open(const struct pool_store_ops *ops, const char *where, struct pool_store **out, struct vz_err *err)
{
	if (!ops || !where || !*where)
		return vz_error_msg(err, EINVAL, "Open store: no back-end or no address given");
	return ops->open(where, out, err);
}

void pool_store_close(struct pool_store *s)
{
	if (s)
		s->ops->close(s);
}

int pool_store_begin(struct pool_store *s, struct vz_err *err)
{
	return s->ops->begin(s, err);
}

int pool_store_commit(struct pool_store *s, struct vz_err *err)
{
	return s->ops->commit(s, err);
}

int pool_store_rollback(struct pool_store *s, struct vz_err *err)
{
	return s->ops->rollback(s, err);
}

int pool_store_host_put(struct pool_store *s, const struct pool_host *h, struct vz_err *err)
{
	int ret = check_host(h, err);

	return ret < 0 ? ret : s->ops->host_put(s, h, err);
}

int pool_store_host_get(struct pool_store *s, const char *name, struct pool_host *h, struct vz_err *err)
{
	int ret = check_str(name, POOL_NAME_MAX, true, "host name", err);

	return ret < 0 ? ret : s->ops->host_get(s, name, h, err);
}

int pool_store_host_del(struct pool_store *s, const char *name, struct vz_err *err)
{
	int ret = check_str(name, POOL_NAME_MAX, true, "host name", err);

	return ret < 0 ? ret : s->ops->host_del(s, name, err);
}

int pool_store_host_list(struct pool_store *s, pool_host_fn fn, void *arg, struct vz_err *err)
{
	return s->ops->host_list(s, fn, arg, err);
}

int pool_store_drain_put(struct pool_store *s, const struct pool_drain *d, struct vz_err *err)
{
	int ret = check_drain(d, err);

	return ret < 0 ? ret : s->ops->drain_put(s, d, err);
}

int pool_store_drain_get(struct pool_store *s, const char *host, struct pool_drain *d, struct vz_err *err)
{
	int ret = check_str(host, POOL_NAME_MAX, true, "drain's host", err);

	return ret < 0 ? ret : s->ops->drain_get(s, host, d, err);
}

int pool_store_drain_del(struct pool_store *s, const char *host, struct vz_err *err)
{
	int ret = check_str(host, POOL_NAME_MAX, true, "drain's host", err);

	return ret < 0 ? ret : s->ops->drain_del(s, host, err);
}

int pool_store_member_put(struct pool_store *s, const struct pool_drain_member *m, struct vz_err *err)
{
	int ret = check_member(m, err);

	return ret < 0 ? ret : s->ops->member_put(s, m, err);
}

int pool_store_member_list(struct pool_store *s, const char *host, pool_member_fn fn, void *arg, struct vz_err *err)
{
	int ret = check_str(host, POOL_NAME_MAX, true, "drain's host", err);

	return ret < 0 ? ret : s->ops->member_list(s, host, fn, arg, err);
}

int pool_store_move_add(struct pool_store *s, struct pool_move *m, struct vz_err *err)
{
	int ret = check_move(m, err);

	return ret < 0 ? ret : s->ops->move_add(s, m, err);
}

int pool_store_move_update(struct pool_store *s, const struct pool_move *m, struct vz_err *err)
{
	int ret = check_move(m, err);

	return ret < 0 ? ret : s->ops->move_update(s, m, err);
}

int pool_store_move_get(struct pool_store *s, uint64_t id, struct pool_move *m, struct vz_err *err)
{
	return s->ops->move_get(s, id, m, err);
}

int pool_store_move_list(struct pool_store *s, int state, pool_move_fn fn, void *arg, struct vz_err *err)
{
	if (state != POOL_MOVE_ALL && !pool_word(POOL_WORD_MOVE_STATE, state))
		return vz_error_msg(err, EINVAL, "Unknown move state %d", state);
	return s->ops->move_list(s, state, fn, arg, err);
}

int pool_store_event_add(struct pool_store *s, struct pool_event *ev, struct vz_err *err)
{
	int ret = check_event(ev, err);

	return ret < 0 ? ret : s->ops->event_add(s, ev, err);
}

int pool_store_event_list(struct pool_store *s, uint64_t since_id, pool_event_fn fn, void *arg, struct vz_err *err)
{
	return s->ops->event_list(s, since_id, fn, arg, err);
}

int pool_store_epoch_next(struct pool_store *s, uint64_t *epoch, struct vz_err *err)
{
	return s->ops->epoch_next(s, epoch, err);
}
