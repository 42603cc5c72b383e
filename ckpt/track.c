/* Dirty-page tracking for pre-copy (see track.h): the processes the
 * tracker knows, their mappings, the reading of pages and the rounds.
 * What differs between back-ends is a table of functions (struct
 * track_ops, track-int.h): uffd-wp and none in track-uffd.c, soft-dirty
 * in track-softdirty.c. */
#define LOG_PREFIX "track: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "ckpt.h"
#include "cleanup.h"
#include "inject.h"
#include "log.h"
#include "proc.h"
#include "track-int.h"
#include "uffd.h"
#include "util.h"

static const struct track_ops *backend(enum vz_track_kind k)
{
	switch (k) {
	case VZ_TRACK_UFFD_WP: return &vz_track_uffd_ops;
	case VZ_TRACK_SOFT_DIRTY: return &vz_track_sd_ops;
	default: return &vz_track_none_ops;
	}
}

const char *vz_track_name(enum vz_track_kind k)
{
	return backend(k)->name;
}

enum vz_track_kind vz_track_detect(char *why, size_t len)
{
	struct vz_err e1 = { 0 }, e2 = { 0 };
	bool sd, wp;

	wp = vz_uffd_wp_probe(&e1) == 0;
	sd = vz_soft_dirty_probe(&e2) == 0;
	snprintf(why, len, "uffd-wp: %s; soft-dirty: %s", wp ? "yes" : e1.msg, sd ? "yes" : e2.msg);
#if !defined(__x86_64__)
	wp = false; /* inject.c runs system calls in other processes on x86_64 only */
#endif
	if (wp)
		return VZ_TRACK_UFFD_WP;
	if (sd)
		return VZ_TRACK_SOFT_DIRTY;
	return VZ_TRACK_NONE;
}

struct vz_track *vz_track_new_opts(const struct vz_track_opts *o, struct vz_err *err)
{
	struct vz_track *t = calloc(1, sizeof(*t));

	if (!t) {
		vz_error_msg(err, ENOMEM, "Out of memory");
		return NULL;
	}
	t->ops = backend(o->kind);
	t->o = *o;
	snprintf(t->pm_dir, sizeof(t->pm_dir), "%s", o->pagemap_dir ? o->pagemap_dir : "");
	t->o.pagemap_dir = NULL;
	t->buf = malloc(CHUNK_PAGES * PAGE);
	t->vec = calloc(VEC_LEN, sizeof(*t->vec));
	t->pm = calloc(CHUNK_PAGES, sizeof(uint64_t));
	if (!t->buf || !t->vec || !t->pm) {
		vz_track_free(t);
		vz_error_msg(err, ENOMEM, "Out of memory");
		return NULL;
	}
	return t;
}

struct vz_track *vz_track_new(enum vz_track_kind k, vz_track_hold_fn hold, void *hold_arg, struct vz_err *err)
{
	struct vz_track_opts o = { .kind = k, .hold = hold, .hold_arg = hold_arg };

	return vz_track_new_opts(&o, err);
}

void trk_proc_forget_uffd(struct tproc *p)
{
	if (p->uffd >= 0)
		close(p->uffd);
	p->uffd = -1;
	free(p->reg);
	p->reg = NULL;
	p->nreg = p->capreg = 0;
}

static void proc_drop(struct tproc *p)
{
	trk_proc_forget_uffd(p);
	free(p->sd);
	p->sd = NULL;
	p->nsd = p->capsd = 0;
}

void vz_track_free(struct vz_track *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->np; i++)
		proc_drop(&t->p[i]);
	free(t->p);
	free(t->buf);
	free(t->vec);
	free(t->pm);
	free(t);
}

/* Whose /proc files hold pid's memory: pid itself, or, for a zombie
 * leader whose threads live on, one of those; 0 for a true zombie. */
static pid_t memory_task(pid_t pid, char state)
{
	char path[64];
	pid_t found = 0;
	struct dirent *de;
	DIR *d;

	if (state != 'Z' && state != 'X')
		return pid;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	while (d && !found && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);
		struct vz_proc_id id;

		if (tid > 0 && tid != pid && vz_proc_identity(tid, &id) == 0 && id.state != 'Z' && id.state != 'X')
			found = tid;
	}
	if (d)
		closedir(d);
	return found;
}

struct tproc *trk_proc_find(struct vz_track *t, pid_t pid)
{
	for (size_t i = 0; i < t->np; i++)
		if (t->p[i].pid == pid)
			return &t->p[i];
	return NULL;
}

static void proc_remove(struct vz_track *t, struct tproc *p)
{
	proc_drop(p);
	*p = t->p[--t->np];
}

static struct tproc *proc_get(struct vz_track *t, pid_t pid, bool create, bool *fresh)
{
	struct vz_proc_id id;
	struct tproc *p;

	*fresh = false;
	if (vz_proc_identity(pid, &id) < 0)
		return NULL;
	p = trk_proc_find(t, pid);
	if (p && p->starttime == id.starttime) {
		p->task = memory_task(pid, id.state);
		return p;
	}
	if (p)
		proc_remove(t, p); /* same pid, another process: forget the old one */
	if (!create)
		return NULL;
	if (vz_grow((void **)&t->p, &t->capp, t->np, sizeof(*t->p), 16) < 0)
		return NULL;
	p = &t->p[t->np++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->task = memory_task(pid, id.state);
	p->vpid = id.vpid;
	p->starttime = id.starttime;
	p->uffd = -1;
	*fresh = true;
	return p;
}

/* Private anonymous mappings: the memory CRIU serves lazily. */
static int list_vmas(pid_t pid, struct range **out, size_t *n)
{
	char path[64], line[512];
	struct range *v = NULL;
	size_t cap = 0, k = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long s, e, off, ino;
		char perms[8], dev[32], name[256] = "";

		if (sscanf(line, "%llx-%llx %7s %llx %31s %llu %255s", &s, &e, perms, &off, dev, &ino, name) < 6)
			continue;
		if (perms[3] != 'p' || ino != 0)
			continue;
		if (name[0] == '[' && strcmp(name, "[heap]") && strncmp(name, "[stack", 6) && strncmp(name, "[anon", 5))
			continue; /* [vdso], [vvar], [vsyscall], ... */
		if (name[0] && name[0] != '[')
			continue; /* a deleted file's mapping, say */
		if (vz_grow((void **)&v, &cap, k, sizeof(*v), 64) < 0) {
			free(v);
			fclose(f);
			return -ENOMEM;
		}
		v[k++] = (struct range){ s, e };
	}
	fclose(f);
	*out = v;
	*n = k;
	return 0;
}

/* Read pages [s, e) and pass them on. A range that vanished meanwhile
 * is skipped: it is gone from the process too. */
int trk_emit_range(struct ctx *c, uint64_t s, uint64_t e, struct vz_err *err)
{
	if (!c->emit) {
		c->count += (e - s) / PAGE;
		return 0;
	}
	if (c->collect) {
		struct tproc *p = c->p;

		if (p->nsd && p->sd[p->nsd - 1].end == s) {
			p->sd[p->nsd - 1].end = e;
			return 0;
		}
		if (vz_grow((void **)&p->sd, &p->capsd, p->nsd, sizeof(*p->sd), 64) < 0)
			return vz_error_msg(err, ENOMEM, "Out of memory");
		p->sd[p->nsd++] = (struct range){ s, e };
		p->sd_unvouched = c->unvouched;
		return 0;
	}
	while (s < e) {
		size_t len = (size_t)(e - s > CHUNK_PAGES * PAGE ? CHUNK_PAGES * PAGE : e - s);
		ssize_t n = pread(c->mem, c->t->buf, len, (off_t)s);
		int ret;

		if (n == 0)
			return 0; /* the process ended: nothing of it moves */
		if (n < 0) {
			s += PAGE; /* unmapped meanwhile */
			continue;
		}
		n -= n % PAGE;
		if (n == 0)
			break;
		ret = c->emit(c->arg, c->p->vpid, s, c->t->buf, (size_t)n / PAGE, err);
		if (ret < 0)
			return ret;
		c->st->pages += (uint64_t)n / PAGE;
		if (c->unvouched)
			c->st->unvouched += (uint64_t)n / PAGE;
		s += (uint64_t)n;
	}
	return 0;
}

/* The pagemap of the process's memory task. */
int trk_proc_pagemap(struct vz_track *t, const struct tproc *p)
{
	char path[64];

	(void)t;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)p->task);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* ---- rounds ---- */

/* A peek at a process not seen yet: all of it. */
static int peek_new(struct vz_track *t, pid_t pid, struct vz_track_stats *st, struct vz_err *err)
{
	struct vz_proc_id id;
	struct tproc tmp = { .pid = pid, .uffd = -1 };
	struct ctx c = { .t = t, .p = &tmp, .st = st };
	_cleanup_close_ int pm = -1;
	struct range *v = NULL;
	size_t nv = 0;
	int ret;

	if (vz_proc_identity(pid, &id) < 0 || !(tmp.task = memory_task(pid, id.state)))
		return 0;
	pm = trk_proc_pagemap(t, &tmp);
	if (pm < 0 || list_vmas(tmp.task, &v, &nv) < 0)
		return 0;
	ret = trk_uffd_scan(&c, pm, v, nv, true, err);
	free(v);
	st->pages += c.count;
	return ret;
}

static int one_proc(struct vz_track *t, pid_t pid, bool peek, struct ctx *proto, struct vz_err *err)
{
	struct ctx c = *proto;
	_cleanup_close_ int pm = -1, mem = -1;
	struct range *v = NULL;
	size_t nv = 0;
	char path[64];
	bool fresh;
	int ret;

	c.p = proc_get(t, pid, !peek, &fresh);
	if (!c.p)
		return peek ? peek_new(t, pid, c.st, err) : 0; /* gone, or new */
	c.p->seen = true;
	if (!c.p->task)
		return 0; /* a zombie: no memory */
	c.st->procs++;
	if (fresh)
		c.st->new_procs++;
	if (!peek && t->ops->proc_ready && !t->ops->proc_ready(t, c.p))
		c.st->untracked_procs++;
	pm = t->ops->open_pagemap(t, c.p);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)c.p->task);
	mem = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0 || mem < 0 || list_vmas(c.p->task, &v, &nv) < 0)
		return 0; /* it ended meanwhile */
	c.mem = mem;
	ret = t->ops->scan(&c, pm, v, nv, peek, err);
	free(v);
	if (peek)
		c.st->pages += c.count;
	return ret;
}

/* Forget processes not in pids[n] (or not seen, when seen_only): one
 * that ended must not keep a userfaultfd over an mm another still uses. */
static void drop_gone(struct vz_track *t, const pid_t *pids, size_t n, bool seen_only)
{
	for (size_t i = 0; i < t->np; i++) {
		bool listed = seen_only ? t->p[i].seen : false;

		for (size_t k = 0; !seen_only && k < n && !listed; k++)
			listed = pids[k] == t->p[i].pid;
		if (!listed)
			proc_remove(t, &t->p[i--]);
	}
}

int vz_track_round(struct vz_track *t, const pid_t *pids, size_t n, vz_track_emit_fn emit, void *arg,
		   struct vz_track_stats *st, struct vz_err *err)
{
	struct ctx c = { .t = t, .emit = emit, .arg = arg, .st = st };
	int ret = 0;

	memset(st, 0, sizeof(*st));
	drop_gone(t, pids, n, false);
	for (size_t i = 0; i < t->np; i++)
		t->p[i].seen = false;
	if (t->ops->round_begin)
		ret = t->ops->round_begin(t, err);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = one_proc(t, pids[i], false, &c, err);
	if (t->ops->round_end)
		ret = t->ops->round_end(t, &c, ret, err);
	drop_gone(t, pids, n, true); /* those that ended meanwhile */
	return ret;
}

void vz_track_last(struct vz_track *t)
{
	t->last = true;
}

int vz_track_peek(struct vz_track *t, const pid_t *pids, size_t n, uint64_t *pages, struct vz_err *err)
{
	struct vz_track_stats st = { 0 };
	struct ctx c = { .t = t, .st = &st };
	int ret = 0;

	*pages = 0;
	if (!t->ops->can_peek)
		return 0; /* known only by a round; rounds decide */
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = one_proc(t, pids[i], true, &c, err);
	*pages = st.pages;
	return ret;
}
