/* The uffd-wp back-end of the tracker (see track.h): each process is
 * made to create a userfaultfd (inject.c), registered over its private
 * anonymous mappings in async write-protect mode; PAGEMAP_SCAN reports
 * the written pages and protects them again in one call. The "none"
 * back-end is its scan without a userfaultfd: every present page. */
#define LOG_PREFIX "track: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "inject.h"
#include "log.h"
#include "proc.h"
#include "track-int.h"
#include "uffd.h"
#include "util.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

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
	/* User-mode faults only: what a task without CAP_SYS_PTRACE over
	 * the host may make (a VE in a user namespace, with the host's
	 * vm.unprivileged_userfaultfd 0). Async write-protect needs no more:
	 * the kernel resolves every fault on a protected page itself, the
	 * kernel's own writes too (a read() into it), without the handler. */
	long args[6] = { O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0, 0, 0, 0, 0 }, rfd = -1, res = 0;
	pid_t pid = u->p->task;
	int pidfd = -1, ret;

	ret = vz_inject_begin_timeout(&in, pid, u->timeout_ms, err);
	if (ret < 0)
		return ret;
	ret = vz_inject_call(&in, SYS_userfaultfd, args, &rfd, err);
	if (ret == 0 && rfd < 0)
		ret = vz_error(err, (int)-rfd, "A userfaultfd in process %d", (int)pid);
	if (ret == 0) {
		/* A zombie leader's files are gone: take it from the thread. */
		pidfd = (int)syscall(SYS_pidfd_open, pid, pid == u->p->pid ? 0 : PIDFD_THREAD);
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

/* PAGEMAP_SCAN over [s, e): regions in category (protecting them again
 * when wp). Returns -EPERM when some of it is not registered. */
static int scan(struct ctx *c, int pm, uint64_t s, uint64_t e, bool wp, uint64_t cat_all, uint64_t cat_any,
		struct vz_err *err)
{
	while (s < e) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			/* The last round only reads: no PTE changes, no TLB flushes. */
			.flags =
			    wp ? (c->t->last ? PM_SCAN_CHECK_WPASYNC : (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC))
			       : 0,
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
			int ret = trk_emit_range(c, c->t->vec[i].start, c->t->vec[i].end, err);

			if (ret < 0)
				return ret;
		}
		if (a.walk_end <= s)
			break;
		s = a.walk_end;
	}
	return 0;
}

int trk_uffd_scan(struct ctx *c, int pm, const struct range *v, size_t nv, bool peek, struct vz_err *err)
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

/* A tracked process whose mm p shares (a vfork parent and its child),
 * or NULL. */
static struct tproc *mm_partner(struct vz_track *t, const struct tproc *p)
{
	for (size_t i = 0; i < t->np; i++) {
		struct tproc *q = &t->p[i];

		if (q != p && q->uffd >= 0 && q->task && vz_proc_same_mm(p->task, q->task))
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
		q = trk_proc_find(t, p->shares_with);
		if (q && q->uffd >= 0 && vz_proc_same_mm(p->task, q->task))
			return false;
		/* They parted (one exec'd or ended): whose mm q's userfaultfd
		 * covers is no longer known. Drop it; both start over. */
		if (q) {
			trk_proc_forget_uffd(q);
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
		pr_info("Process %d shares its memory with process %d: sent whole each round", (int)p->pid,
			(int)q->pid);
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

const struct track_ops vz_track_none_ops = {
	.name = "none",
	.can_peek = true,
	.open_pagemap = trk_proc_pagemap,
	.scan = trk_uffd_scan, /* no userfaultfd: every present page */
};

const struct track_ops vz_track_uffd_ops = {
	.name = "uffd-wp",
	.can_peek = true,
	.proc_ready = uffd_ready,
	.open_pagemap = trk_proc_pagemap,
	.scan = trk_uffd_scan,
};
