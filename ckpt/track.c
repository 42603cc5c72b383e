/* Dirty-page tracking for pre-copy (see track.h): the processes, their
 * mappings and the reading of pages here; each back-end (uffd-wp,
 * soft-dirty, none) is a table of functions, struct track_ops. */
#define LOG_PREFIX "track: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ckpt.h"
#include "cleanup.h"
#include "inject.h"
#include "log.h"
#include "proc.h"
#include "track.h"
#include "uffd.h"
#include "util.h"

#define PAGE 4096ull
#define CHUNK_PAGES 256      /* read and emit at most 1 MiB at a time */
#define VEC_LEN 4096         /* regions per PAGEMAP_SCAN call */
#define PM_SOFT_DIRTY (1ull << 55)
#define PM_PRESENT (1ull << 63)
#define PM_SWAP (1ull << 62)

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef KCMP_VM
#define KCMP_VM 1
#endif

struct range {
	uint64_t start, end;
};

struct tproc {
	pid_t pid;
	pid_t task;         /* whose /proc files are read: pid, or a live thread of a zombie leader */
	int vpid;
	unsigned long long starttime;
	int uffd;           /* -1: untracked (soft-dirty: unused) */
	bool seen, failed;  /* failed: could not be given a userfaultfd */
	pid_t shares_with;  /* shares its mm with this tracked process: not given a uffd of its own */
	bool sd_clean;      /* soft-dirty: bits cleared at least once */
	struct range *sd;   /* soft-dirty: ranges to read once the VE runs */
	size_t nsd, capsd;
	bool sd_unvouched;
	struct range *reg;  /* registered mappings */
	size_t nreg, capreg;
};

struct ctx;

/* A back-end, as CRIU's struct page_xfer: NULL members do nothing. */
struct track_ops {
	const char *name;
	bool can_peek; /* whether a peek can tell what a round would send */
	/* Before and after the processes' scan (soft-dirty: hold the VE,
	 * then clear the bits, let it go and read what was dirty); round_end
	 * gets the scan's result and returns the round's. */
	int (*round_begin)(struct vz_track *t, struct vz_err *err);
	int (*round_end)(struct vz_track *t, const pid_t *pids, size_t n, struct ctx *c, int ret, struct vz_err *err);
	/* Ready a process for its scan (uffd-wp: its userfaultfd); false:
	 * it is not tracked this round. */
	bool (*proc_ready)(struct vz_track *t, struct tproc *p);
	/* Its pagemap, opened. */
	int (*open_pagemap)(struct vz_track *t, const struct tproc *p);
	/* Emit (or note) what counts in its mappings v[nv]. */
	int (*scan)(struct ctx *c, int pm, const struct range *v, size_t nv, bool peek, struct vz_err *err);
};

struct vz_track {
	const struct track_ops *ops;
	struct vz_track_opts o;
	char pm_dir[256];
	bool last; /* the VE is frozen: nothing to protect again */
	struct tproc *p;
	size_t np, capp;
	uint8_t *buf;
	struct page_region *vec;
	uint64_t *pm; /* soft-dirty: pagemap entries */
};

static const struct track_ops none_ops, uffd_ops, sd_ops;

static const struct track_ops *backend(enum vz_track_kind k)
{
	switch (k) {
	case VZ_TRACK_UFFD_WP:
		return &uffd_ops;
	case VZ_TRACK_SOFT_DIRTY:
		return &sd_ops;
	default:
		return &none_ops;
	}
}

const char *vz_track_name(enum vz_track_kind k)
{
	return backend(k)->name;
}

int vz_soft_dirty_probe(struct vz_err *err)
{
	_cleanup_close_ int pm = -1, cr = -1;
	volatile char *p;
	uint64_t e = 0;
	int ret = 0;

	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return vz_error(err, errno, "Map a probe page");
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	p[0] = 1;
	if (pm < 0 || cr < 0 || write(cr, "4", 1) != 1)
		ret = vz_error(err, errno, "Clear soft-dirty bits");
	else {
		p[0] = 2;
		if (pread(pm, &e, sizeof(e), (off_t)((uintptr_t)p / PAGE * 8)) != sizeof(e) || !(e & PM_SOFT_DIRTY))
			ret = vz_error_msg(err, ENOTSUP,
				       "the kernel keeps no soft-dirty bits (CONFIG_MEM_SOFT_DIRTY is off)");
	}
	munmap((void *)p, PAGE);
	return ret;
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

static void proc_forget_uffd(struct tproc *p)
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
	proc_forget_uffd(p);
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

struct uffd_call {
	struct tproc *p;
	unsigned timeout_ms;
	struct vz_err *err;
	int fd;
};

/* Make the process create a userfaultfd, take it, close its copy. Runs
 * in a thread of its own (vz_ptrace_thread): a process that does not
 * stop in time is detached when that thread ends. */
static int uffd_inject(void *arg)
{
	struct uffd_call *u = arg;
	struct vz_err *err = u->err;
	struct vz_inject in;
	long args[6] = { O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0 }, rfd = -1, res = 0;
	pid_t pid = u->p->task;
	int pidfd = -1, ret;

	ret = vz_inject_begin_timeout(&in, pid, u->timeout_ms, err);
	if (ret < 0)
		return ret;
	ret = vz_inject_call(&in, SYS_userfaultfd, args, &rfd, err);
	if (ret == 0 && rfd == -EPERM) {
		/* Without CAP_SYS_PTRACE in the VE: user-mode faults only,
		 * which async write-protect does not depend on. */
		args[0] |= UFFD_USER_MODE_ONLY;
		ret = vz_inject_call(&in, SYS_userfaultfd, args, &rfd, err);
	}
	if (ret == 0 && rfd < 0)
		ret = vz_error(err, (int)-rfd, "A userfaultfd in process %d", (int)pid);
	if (ret == 0) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		u->fd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, (int)rfd, 0);
		if (u->fd < 0)
			ret = vz_error(err, errno, "Take the userfaultfd of process %d", (int)pid);
		args[0] = rfd;
		if (vz_inject_call(&in, SYS_close, args, &res, err) < 0 && ret == 0)
			ret = -EIO;
	}
	if (vz_inject_end(&in, err) < 0 && ret == 0)
		ret = -EIO;
	if (pidfd >= 0)
		close(pidfd);
	return ret;
}

static int give_uffd(struct vz_track *t, struct tproc *p, struct vz_err *err)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct uffd_call u = { p, t->o.stop_timeout_ms, err, -1 };
	int ret = vz_ptrace_thread(uffd_inject, &u);

	if (ret == 0 && ioctl(u.fd, UFFDIO_API, &api) != 0)
		ret = vz_error(err, errno, "UFFDIO_API (write-protect, async)");
	if (ret < 0) {
		if (u.fd >= 0)
			close(u.fd);
		return ret;
	}
	p->uffd = u.fd;
	return 0;
}

static struct tproc *proc_find(struct vz_track *t, pid_t pid)
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
	p = proc_find(t, pid);
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

static bool is_registered(const struct tproc *p, uint64_t s, uint64_t e)
{
	for (size_t i = 0; i < p->nreg; i++)
		if (p->reg[i].start == s && p->reg[i].end == e)
			return true;
	return false;
}

static void unregistered(struct tproc *p, uint64_t s, uint64_t e)
{
	for (size_t i = 0; i < p->nreg; i++)
		if (p->reg[i].start < e && p->reg[i].end > s)
			p->reg[i--] = p->reg[--p->nreg];
}

static int add_registered(struct tproc *p, uint64_t s, uint64_t e)
{
	unregistered(p, s, e);
	if (vz_grow((void **)&p->reg, &p->capreg, p->nreg, sizeof(*p->reg), 32) < 0)
		return -ENOMEM;
	p->reg[p->nreg++] = (struct range){ s, e };
	return 0;
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
		if (name[0] == '[' && strcmp(name, "[heap]") && strncmp(name, "[stack", 6) &&
		    strncmp(name, "[anon", 5))
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

struct ctx {
	struct vz_track *t;
	struct tproc *p;
	int mem;
	vz_track_emit_fn emit;
	void *arg;
	struct vz_track_stats *st;
	bool unvouched;
	bool collect;   /* soft-dirty: note ranges, read them later */
	uint64_t count; /* peek */
};

/* Read pages [s, e) and pass them on. A range that vanished meanwhile
 * is skipped: it is gone from the process too. */
static int emit_range(struct ctx *c, uint64_t s, uint64_t e, struct vz_err *err)
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

/* PAGEMAP_SCAN over [s, e): regions in category (protecting them again
 * when wp). Returns -EPERM when some of it is not registered. */
static int scan(struct ctx *c, int pm, uint64_t s, uint64_t e, bool wp, uint64_t cat_all, uint64_t cat_any,
		struct vz_err *err)
{
	while (s < e) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			/* The last round only reads: no PTE changes, no TLB flushes. */
			.flags = wp ? (c->t->last ? PM_SCAN_CHECK_WPASYNC : (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)) : 0,
			.start = s,
			.end = e,
			.vec = (uintptr_t)c->t->vec,
			.vec_len = VEC_LEN,
			.category_mask = cat_all,
			.category_anyof_mask = cat_any,
			.return_mask = cat_all | cat_any,
		};
		long n = ioctl(pm, PAGEMAP_SCAN, &a);

		if (n < 0 && (errno == EPERM || errno == ESRCH))
			return -errno; /* not registered; gone: the caller decides */
		if (n < 0)
			return vz_error(err, errno, "PAGEMAP_SCAN of process %d", (int)c->p->pid);
		for (long i = 0; i < n; i++) {
			int ret = emit_range(c, c->t->vec[i].start, c->t->vec[i].end, err);

			if (ret < 0)
				return ret;
		}
		if (a.walk_end <= s)
			break;
		s = a.walk_end;
	}
	return 0;
}


/* The pagemap of the process's memory task. */
static int proc_pagemap(struct vz_track *t, const struct tproc *p)
{
	char path[64];

	(void)t;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)p->task);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* ---- uffd-wp ---- */

static int uffd_scan(struct ctx *c, int pm, const struct range *v, size_t nv, bool peek, struct vz_err *err)
{
	struct tproc *p = c->p;

	for (size_t i = 0; i < nv; i++) {
		uint64_t s = v[i].start, e = v[i].end;
		int ret = -EPERM;

		if (p->uffd >= 0 && !peek && !is_registered(p, s, e)) {
			struct uffdio_register rg = { .range = { s, e - s }, .mode = UFFDIO_REGISTER_MODE_WP };

			if (ioctl(p->uffd, UFFDIO_REGISTER, &rg) == 0)
				add_registered(p, s, e);
			else
				pr_debug("Process %d: register %llx-%llx: %s", (int)p->pid, (unsigned long long)s,
					 (unsigned long long)e, strerror(errno));
		}
		if (p->uffd >= 0 && is_registered(p, s, e)) {
			c->unvouched = false;
			/* A peek reads the written bits without touching them. */
			ret = peek ? scan(c, pm, s, e, false, PAGE_IS_WRITTEN | PAGE_IS_WPALLOWED, 0, err)
				   : scan(c, pm, s, e, true, PAGE_IS_WRITTEN, 0, err);
			if (ret == -EPERM)
				unregistered(p, s, e); /* replaced behind our back */
			else if (ret == -ESRCH)
				return 0; /* it ended meanwhile: nothing of it moves */
			else if (ret < 0)
				return ret;
		}
		if (ret == -EPERM) {
			/* Not tracked: every page there counts. */
			c->unvouched = true;
			ret = scan(c, pm, s, e, false, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED, err);
			if (ret == -ESRCH)
				return 0;
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

static bool same_mm(pid_t a, pid_t b)
{
	return syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
}

/* A tracked process whose mm p shares (a vfork parent and its child),
 * or NULL. */
static struct tproc *mm_partner(struct vz_track *t, const struct tproc *p)
{
	for (size_t i = 0; i < t->np; i++) {
		struct tproc *q = &t->p[i];

		if (q != p && q->uffd >= 0 && q->task && same_mm(p->task, q->task))
			return q;
	}
	return NULL;
}

/* Whether p is tracked this round: it has, or is now given, a
 * userfaultfd. What is not tracked is sent whole, so nothing here waits
 * long for a process that cannot stop (see track.h). */
static bool uffd_ready(struct vz_track *t, struct tproc *p)
{
	struct vz_err e = { 0 };
	struct vz_proc_id id;
	struct tproc *q;

	if (p->shares_with) {
		q = proc_find(t, p->shares_with);
		if (q && q->uffd >= 0 && same_mm(p->task, q->task))
			return false;
		/* They parted (one exec'd or ended): whose mm q's userfaultfd
		 * covers is no longer known. Drop it; both start over. */
		if (q) {
			proc_forget_uffd(q);
			q->failed = false;
		}
		p->shares_with = 0;
	}
	if (p->uffd >= 0)
		return true;
	if (p->failed || t->last)
		return false; /* the frozen round reads all of it anyway */
	q = mm_partner(t, p);
	if (q) {
		p->shares_with = q->pid;
		pr_info("Process %d shares its memory with process %d: sent whole each round", (int)p->pid, (int)q->pid);
		return false;
	}
	if (vz_proc_identity(p->task, &id) == 0 && id.state == 'D') {
		pr_info("Process %d cannot stop now (in vfork() or an uninterruptible sleep): not tracked this round",
			(int)p->pid);
		return false;
	}
	if (give_uffd(t, p, &e) < 0) {
		/* Its memory is sent whole every round instead. */
		p->failed = true;
		pr_warn("Process %d is not tracked, all its memory is sent each round: %s", (int)p->pid, e.msg);
		return false;
	}
	return true;
}

/* ---- soft-dirty ---- */

static int sd_round_begin(struct vz_track *t, struct vz_err *err)
{
	/* Which pages are dirty and clearing their bits must be one step:
	 * hold the VE still meanwhile. */
	return t->o.hold(t->o.hold_arg, true, err);
}

static int sd_open_pagemap(struct vz_track *t, const struct tproc *p)
{
	char path[320];

	if (!t->pm_dir[0])
		return proc_pagemap(t, p);
	snprintf(path, sizeof(path), "%s/%d.pagemap", t->pm_dir, (int)p->pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Soft-dirty: pages with bit 55 set (all present ones until the bits
 * were cleared once). The caller clears the bits with the VE held. */
static int sd_scan(struct ctx *c, int pm, const struct range *v, size_t nv, bool peek, struct vz_err *err)
{
	(void)peek; /* a soft-dirty round cannot be peeked at */
	c->collect = true;
	for (size_t i = 0; i < nv; i++) {
		for (uint64_t s = v[i].start; s < v[i].end;) {
			size_t np = (size_t)((v[i].end - s) / PAGE > CHUNK_PAGES ? CHUNK_PAGES : (v[i].end - s) / PAGE);
			ssize_t n = pread(pm, c->t->pm, np * 8, (off_t)(s / PAGE * 8));

			if (n <= 0)
				break;
			np = (size_t)n / 8;
			for (size_t k = 0; k < np;) {
				size_t j = k;
				bool want;

				while (j < np) {
					uint64_t e = c->t->pm[j];

					want = (e & (PM_PRESENT | PM_SWAP)) && (!c->p->sd_clean || (e & PM_SOFT_DIRTY));
					if (!want)
						break;
					j++;
				}
				if (j > k) {
					c->unvouched = !c->p->sd_clean;
					int ret = emit_range(c, s + k * PAGE, s + j * PAGE, err);

					if (ret < 0)
						return ret;
					k = j;
				} else {
					k++;
				}
			}
			s += np * PAGE;
		}
	}
	return 0;
}

static int clear_soft_dirty(struct vz_track *t, const pid_t *pids, size_t n, struct vz_err *err)
{
	for (size_t i = 0; i < n; i++) {
		char path[64];
		bool fresh;
		struct tproc *p = proc_get(t, pids[i], false, &fresh);
		int fd;

		if (!p || !p->task)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)p->task);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (write(fd, "4", 1) != 1) {
			int e = errno;

			close(fd);
			return vz_error(err, e, "Clear soft-dirty bits of process %d", (int)pids[i]);
		}
		close(fd);
		p->sd_clean = true;
	}
	return 0;
}

/* Clear the bits, let the VE go, then read what was dirty: a write
 * racing the read sets the bit again and is caught by the next round. */
static int sd_round_end(struct vz_track *t, const pid_t *pids, size_t n, struct ctx *proto, int ret,
			struct vz_err *err)
{
	if (ret == 0)
		ret = clear_soft_dirty(t, pids, n, err);
	if (t->o.hold(t->o.hold_arg, false, err) < 0 && ret == 0)
		ret = -EIO;
	for (size_t i = 0; i < t->np && ret == 0; i++) {
		struct tproc *p = &t->p[i];
		struct ctx c = *proto;
		char path[64];

		c.p = p;
		c.unvouched = p->sd_unvouched;
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)p->task);
		c.mem = open(path, O_RDONLY | O_CLOEXEC);
		for (size_t k = 0; c.mem >= 0 && k < p->nsd && ret == 0; k++)
			ret = emit_range(&c, p->sd[k].start, p->sd[k].end, err);
		if (c.mem >= 0)
			close(c.mem);
		p->nsd = 0;
	}
	return ret;
}

static const struct track_ops none_ops = {
	.name = "none",
	.can_peek = true,
	.open_pagemap = proc_pagemap,
	.scan = uffd_scan, /* no userfaultfd: every present page */
};

static const struct track_ops uffd_ops = {
	.name = "uffd-wp",
	.can_peek = true,
	.proc_ready = uffd_ready,
	.open_pagemap = proc_pagemap,
	.scan = uffd_scan,
};

static const struct track_ops sd_ops = {
	.name = "soft-dirty",
	.round_begin = sd_round_begin,
	.round_end = sd_round_end,
	.open_pagemap = sd_open_pagemap,
	.scan = sd_scan,
};

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
	pm = proc_pagemap(t, &tmp);
	if (pm < 0 || list_vmas(tmp.task, &v, &nv) < 0)
		return 0;
	ret = uffd_scan(&c, pm, v, nv, true, err);
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
		ret = t->ops->round_end(t, pids, n, &c, ret, err);
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
