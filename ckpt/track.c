/* Dirty-page tracking for pre-copy (see track.h). */
#define LOG_PREFIX "track: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ckpt.h"
#include "cleanup.h"
#include "inject.h"
#include "log.h"
#include "track.h"
#include "uffd.h"
#include "util.h"

#include <openssl/evp.h>

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

struct range {
	uint64_t start, end;
};

struct tproc {
	pid_t pid;
	int vpid;
	unsigned long long starttime;
	int uffd;           /* -1: untracked (soft-dirty: unused) */
	bool seen, failed;  /* failed: could not be given a userfaultfd */
	bool sd_clean;      /* soft-dirty: bits cleared at least once */
	struct range *sd;   /* soft-dirty: ranges to read once the VE runs */
	size_t nsd, capsd;
	bool sd_unvouched;
	struct range *reg;  /* registered mappings */
	size_t nreg, capreg;
};

struct vz_track {
	enum vz_track_kind kind;
	bool last; /* the VE is frozen: nothing to protect again */
	vz_track_hold_fn hold;
	void *hold_arg;
	struct tproc *p;
	size_t np, capp;
	uint8_t *buf;
	struct page_region *vec;
	uint64_t *pm; /* soft-dirty: pagemap entries */
	char pm_dir[256]; /* tests: where PID.pagemap files stand in */
};

const char *vz_track_name(enum vz_track_kind k)
{
	switch (k) {
	case VZ_TRACK_UFFD_WP:
		return "uffd-wp";
	case VZ_TRACK_SOFT_DIRTY:
		return "soft-dirty";
	default:
		return "none";
	}
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

struct vz_track *vz_track_new(enum vz_track_kind k, vz_track_hold_fn hold, void *hold_arg, struct vz_err *err)
{
	struct vz_track *t = calloc(1, sizeof(*t));

	if (!t) {
		vz_error_msg(err, ENOMEM, "Out of memory");
		return NULL;
	}
	t->kind = k;
	t->hold = hold;
	t->hold_arg = hold_arg;
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

static void proc_drop(struct tproc *p)
{
	if (p->uffd >= 0)
		close(p->uffd);
	p->uffd = -1;
	free(p->reg);
	p->reg = NULL;
	p->nreg = p->capreg = 0;
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

/* Start time (clock ticks since boot) tells a pid's reuse apart. */
static int proc_identity(pid_t pid, unsigned long long *start, int *vpid)
{
	_cleanup_free_ char *stat = NULL, *status = NULL;
	char path[64], *s, *tok, *save = NULL;
	int field = 2, ret;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	ret = vz_read_file(path, &stat, NULL, 4096);
	if (ret < 0)
		return ret;
	s = strrchr(stat, ')');
	if (!s)
		return -EIO;
	/* Field 22 is starttime; after ')' come fields 3.. */
	for (tok = strtok_r(s + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		if (++field == 22) {
			*start = strtoull(tok, NULL, 10);
			break;
		}
	if (field != 22)
		return -EIO;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	ret = vz_read_file(path, &status, NULL, 16384);
	if (ret < 0)
		return ret;
	*vpid = (int)pid;
	s = strstr(status, "\nNSpid:");
	if (s) {
		/* The innermost namespace's pid is the last one. */
		char *end = strchr(s + 1, '\n'), *last = NULL;

		if (end)
			*end = '\0';
		for (char *q = s + 7; *q; q++)
			if ((*q >= '0' && *q <= '9') && (q[-1] == ' ' || q[-1] == '\t'))
				last = q;
		if (last)
			*vpid = atoi(last);
	}
	return 0;
}

/* Make the process create a userfaultfd, take it, close its copy. */
static int give_uffd(struct tproc *p, struct vz_err *err)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	struct vz_inject in;
	long args[6] = { O_CLOEXEC | O_NONBLOCK, 0, 0, 0, 0, 0 }, rfd = -1, res = 0;
	int pidfd = -1, fd = -1, ret;

	ret = vz_inject_begin(&in, p->pid, err);
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
		ret = vz_error(err, (int)-rfd, "A userfaultfd in process %d", (int)p->pid);
	if (ret == 0) {
		pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
		fd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, (int)rfd, 0);
		if (fd < 0)
			ret = vz_error(err, errno, "Take the userfaultfd of process %d", (int)p->pid);
		args[0] = rfd;
		if (vz_inject_call(&in, SYS_close, args, &res, err) < 0 && ret == 0)
			ret = -EIO;
	}
	if (vz_inject_end(&in, err) < 0 && ret == 0)
		ret = -EIO;
	if (pidfd >= 0)
		close(pidfd);
	if (ret == 0 && ioctl(fd, UFFDIO_API, &api) != 0)
		ret = vz_error(err, errno, "UFFDIO_API (write-protect, async)");
	if (ret < 0) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	p->uffd = fd;
	return 0;
}

static struct tproc *proc_get(struct vz_track *t, pid_t pid, bool create, bool *fresh)
{
	unsigned long long start = 0;
	int vpid = 0;

	*fresh = false;
	if (proc_identity(pid, &start, &vpid) < 0)
		return NULL;
	for (size_t i = 0; i < t->np; i++)
		if (t->p[i].pid == pid) {
			if (t->p[i].starttime == start)
				return &t->p[i];
			/* Same pid, another process: forget the old one. */
			proc_drop(&t->p[i]);
			t->p[i] = t->p[--t->np];
			break;
		}
	if (!create)
		return NULL;
	if (vz_grow((void **)&t->p, &t->capp, t->np, sizeof(*t->p), 16) < 0)
		return NULL;
	memset(&t->p[t->np], 0, sizeof(t->p[0]));
	t->p[t->np].pid = pid;
	t->p[t->np].vpid = vpid;
	t->p[t->np].starttime = start;
	t->p[t->np].uffd = -1;
	*fresh = true;
	return &t->p[t->np++];
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

static int round_uffd(struct ctx *c, int pm, const struct range *v, size_t nv, bool peek, struct vz_err *err)
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

/* Soft-dirty: pages with bit 55 set (all present ones until the bits
 * were cleared once). The caller clears the bits with the VE held. */
static int round_soft_dirty(struct ctx *c, int pm, const struct range *v, size_t nv, struct vz_err *err)
{
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

static int one_proc(struct vz_track *t, pid_t pid, bool peek, vz_track_emit_fn emit, void *arg,
		    struct vz_track_stats *st, struct vz_err *err)
{
	struct ctx c = { .t = t, .emit = peek ? NULL : emit, .arg = arg, .st = st };
	_cleanup_close_ int pm = -1, mem = -1;
	struct range *v = NULL;
	size_t nv = 0;
	char path[64];
	bool fresh;
	int ret;

	c.p = proc_get(t, pid, !peek, &fresh);
	if (!c.p) {
		if (peek) {
			/* Not seen yet: all of it. */
			struct tproc tmp = { .pid = pid, .uffd = -1 };

			c.p = &tmp;
			snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
			pm = open(path, O_RDONLY | O_CLOEXEC);
			if (pm < 0 || list_vmas(pid, &v, &nv) < 0)
				return 0;
			ret = round_uffd(&c, pm, v, nv, true, err);
			free(v);
			st->pages += c.count;
			return ret;
		}
		return 0; /* gone */
	}
	c.p->seen = true;
	st->procs++;
	if (fresh)
		st->new_procs++;
	if (t->kind == VZ_TRACK_UFFD_WP && c.p->uffd < 0 && !c.p->failed && !peek) {
		struct vz_err e = { 0 };

		if (give_uffd(c.p, &e) < 0) {
			/* Its memory is sent whole every round instead. */
			c.p->failed = true;
			pr_warn("Process %d is not tracked: %s", (int)pid, e.msg);
		}
	}
	if (t->kind == VZ_TRACK_UFFD_WP && c.p->uffd < 0)
		st->untracked_procs++;
	if (t->kind == VZ_TRACK_SOFT_DIRTY && t->pm_dir[0])
		snprintf(path, sizeof(path), "%s/%d.pagemap", t->pm_dir, (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	pm = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem = open(path, O_RDONLY | O_CLOEXEC);
	if (pm < 0 || mem < 0 || list_vmas(pid, &v, &nv) < 0)
		return 0; /* it ended meanwhile */
	c.mem = mem;
	c.collect = t->kind == VZ_TRACK_SOFT_DIRTY && !peek;
	if (t->kind == VZ_TRACK_SOFT_DIRTY)
		ret = round_soft_dirty(&c, pm, v, nv, err);
	else
		ret = round_uffd(&c, pm, v, nv, peek, err);
	free(v);
	if (peek)
		st->pages += c.count;
	return ret;
}

static int clear_soft_dirty(struct vz_track *t, const pid_t *pids, size_t n, struct vz_err *err)
{
	for (size_t i = 0; i < n; i++) {
		char path[64];
		bool fresh;
		struct tproc *p = proc_get(t, pids[i], false, &fresh);
		int fd;

		if (!p)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pids[i]);
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

int vz_track_round(struct vz_track *t, const pid_t *pids, size_t n, vz_track_emit_fn emit, void *arg,
		   struct vz_track_stats *st, struct vz_err *err)
{
	int ret = 0;

	memset(st, 0, sizeof(*st));
	for (size_t i = 0; i < t->np; i++)
		t->p[i].seen = false;
	if (t->kind == VZ_TRACK_SOFT_DIRTY) {
		/* Which pages are dirty and clearing their bits must be one
		 * step: hold the VE still meanwhile. Pages are read after, so
		 * a write racing the read is caught by the next round. */
		ret = t->hold(t->hold_arg, true, err);
		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = one_proc(t, pids[i], false, emit, arg, st, err);
	if (t->kind == VZ_TRACK_SOFT_DIRTY) {
		if (ret == 0)
			ret = clear_soft_dirty(t, pids, n, err);
		if (t->hold(t->hold_arg, false, err) < 0 && ret == 0)
			ret = -EIO;
		/* Now read what was dirty; a write racing the read sets the
		 * bit again and is caught by the next round. */
		for (size_t i = 0; i < t->np && ret == 0; i++) {
			struct tproc *p = &t->p[i];
			struct ctx c = { .t = t, .p = p, .emit = emit, .arg = arg, .st = st,
					 .unvouched = p->sd_unvouched };
			char path[64];

			snprintf(path, sizeof(path), "/proc/%d/mem", (int)p->pid);
			c.mem = open(path, O_RDONLY | O_CLOEXEC);
			for (size_t k = 0; c.mem >= 0 && k < p->nsd && ret == 0; k++)
				ret = emit_range(&c, p->sd[k].start, p->sd[k].end, err);
			if (c.mem >= 0)
				close(c.mem);
			p->nsd = 0;
		}
	}
	/* Processes that ended. */
	for (size_t i = 0; i < t->np; i++)
		if (!t->p[i].seen) {
			proc_drop(&t->p[i]);
			t->p[i--] = t->p[--t->np];
		}
	return ret;
}

void vz_track_pagemap_from(struct vz_track *t, const char *dir)
{
	snprintf(t->pm_dir, sizeof(t->pm_dir), "%s", dir ? dir : "");
}

void vz_track_last(struct vz_track *t)
{
	t->last = true;
}

int vz_track_peek(struct vz_track *t, const pid_t *pids, size_t n, uint64_t *pages, struct vz_err *err)
{
	struct vz_track_stats st = { 0 };
	int ret = 0;

	if (t->kind == VZ_TRACK_SOFT_DIRTY) {
		*pages = 0;
		return 0; /* known only by a round; rounds decide */
	}
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = one_proc(t, pids[i], true, NULL, NULL, &st, err);
	*pages = st.pages;
	return ret;
}

static int cmp_line(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	long vx = atol(x), vy = atol(y);

	if (vx != vy)
		return vx < vy ? -1 : 1;
	return strcmp(x, y);
}

int vz_proc_vpid(pid_t pid)
{
	unsigned long long st;
	int vpid, ret = proc_identity(pid, &st, &vpid);

	return ret < 0 ? ret : vpid;
}

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif

struct rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size, signature, flags, pad;
};

static int cmp_tid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

/* Calls fn for every thread of pids[n] until it returns non-zero. */
static int each_thread(const pid_t *pids, size_t n, int (*fn)(pid_t pid, pid_t tid, void *arg), void *arg)
{
	int ret = 0;

	for (size_t i = 0; i < n && ret == 0; i++) {
		char path[64];
		DIR *d;
		struct dirent *de;

		snprintf(path, sizeof(path), "/proc/%d/task", (int)pids[i]);
		d = opendir(path);
		while (d && ret == 0 && (de = readdir(d))) {
			pid_t tid = atoi(de->d_name);

			if (tid > 0)
				ret = fn(pids[i], tid, arg);
		}
		if (d)
			closedir(d);
	}
	return ret;
}

struct rseq_read {
	struct vz_mem_mask *m;
	size_t k, cap;
	pid_t *seen;
	size_t ns, scap;
	pid_t last_pid;
	int vpid;
};

static int rseq_one(pid_t pid, pid_t tid, void *arg)
{
	struct rseq_read *r = arg;
	struct rseq_conf rc = { 0 };
	int w;

	if (pid != r->last_pid) {
		unsigned long long st;

		r->last_pid = pid;
		if (proc_identity(pid, &st, &r->vpid) < 0)
			r->vpid = -1;
	}
	if (r->vpid < 0 || ptrace(PTRACE_SEIZE, tid, NULL, NULL) != 0)
		return 0;
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) == 0 && waitpid(tid, &w, __WALL) == tid) {
		if (vz_grow((void **)&r->seen, &r->scap, r->ns, sizeof(*r->seen), 16) == 0)
			r->seen[r->ns++] = tid;
		if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(rc), &rc) > 0 && rc.rseq_abi_pointer &&
		    rc.rseq_abi_size && vz_grow((void **)&r->m, &r->cap, r->k, sizeof(*r->m), 16) == 0)
			r->m[r->k++] = (struct vz_mem_mask){ r->vpid, rc.rseq_abi_pointer, rc.rseq_abi_size };
	}
	ptrace(PTRACE_DETACH, tid, NULL, NULL);
	return 0;
}

int vz_rseq_areas(const pid_t *pids, size_t n, struct vz_mem_mask **out, size_t *nout, pid_t **seen,
		  size_t *nseen, struct vz_err *err)
{
	struct rseq_read r = { .last_pid = -1 };

	(void)err;
	each_thread(pids, n, rseq_one, &r);
	qsort(r.seen, r.ns, sizeof(*r.seen), cmp_tid);
	*out = r.m;
	*nout = r.k;
	if (seen) {
		*seen = r.seen;
		*nseen = r.ns;
	} else {
		free(r.seen);
	}
	return 0;
}

struct seen_set {
	const pid_t *tids;
	size_t n;
};

static int unseen(pid_t pid, pid_t tid, void *arg)
{
	const struct seen_set *s = arg;

	(void)pid;
	return !bsearch(&tid, s->tids, s->n, sizeof(*s->tids), cmp_tid);
}

bool vz_threads_seen(const pid_t *pids, size_t n, const pid_t *seen, size_t nseen)
{
	struct seen_set s = { seen, nseen };

	return each_thread(pids, n, unseen, &s) == 0;
}

static void apply_mask(int vpid, uint64_t a, uint8_t *buf, size_t len, const struct vz_mem_mask *mask, size_t nmask)
{
	for (size_t i = 0; i < nmask; i++) {
		uint64_t s = mask[i].addr, e = s + mask[i].len;

		if (mask[i].vpid != vpid || e <= a || s >= a + len)
			continue;
		if (s < a)
			s = a;
		if (e > a + len)
			e = a + len;
		memset(buf + (s - a), 0, (size_t)(e - s));
	}
}

int vz_mem_digest(const pid_t *pids, size_t n, const struct vz_mem_mask *mask, size_t nmask, char **text,
		  size_t *len, struct vz_err *err)
{
	char **lines = NULL;
	size_t nl = 0, cap = 0, total = 0;
	uint8_t *buf = malloc(CHUNK_PAGES * PAGE);
	int ret = 0;

	if (!buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (size_t i = 0; i < n && ret == 0; i++) {
		char path[64], line[512];
		unsigned long long st;
		int vpid, mem;
		FILE *f;

		if (proc_identity(pids[i], &st, &vpid) < 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/maps", (int)pids[i]);
		f = fopen(path, "re");
		snprintf(path, sizeof(path), "/proc/%d/mem", (int)pids[i]);
		mem = open(path, O_RDONLY | O_CLOEXEC);
		/* Adjacent mappings are hashed as one range: how the kernel
		 * splits or merges VMAs (a userfaultfd registration keeps them
		 * apart) differs between hosts, the bytes must not. */
		EVP_MD_CTX *h = NULL;
		unsigned long long rs = 0, re = 0;
		bool more = true;

		while (f && mem >= 0 && ret == 0 && more) {
			unsigned long long s = 0, e = 0, off, ino;
			char perms[8], dev[32], name[256] = "";
			bool ok = false;

			more = fgets(line, sizeof(line), f) != NULL;
			if (more && sscanf(line, "%llx-%llx %7s %llx %31s %llu %255s", &s, &e, perms, &off, dev, &ino,
					   name) >= 6)
				ok = perms[1] == 'w' && perms[3] == 'p' && strncmp(name, "[v", 2);
			if (!more || !ok || s != re) {
				if (h) {
					/* close the range [rs, re) */
					unsigned char md[EVP_MAX_MD_SIZE];
					unsigned mdlen = 0;
					char out[256];
					int k;

					EVP_DigestFinal_ex(h, md, &mdlen);
					EVP_MD_CTX_free(h);
					h = NULL;
					k = snprintf(out, sizeof(out), "%d %llx-%llx ", vpid, rs, re);
					for (unsigned j = 0; j < mdlen && k < (int)sizeof(out) - 3; j++)
						k += snprintf(out + k, sizeof(out) - (size_t)k, "%02x", md[j]);
					if (vz_grow((void **)&lines, &cap, nl, sizeof(*lines), 64) < 0) {
						ret = vz_error_msg(err, ENOMEM, "Out of memory");
						break;
					}
					lines[nl] = strdup(out);
					total += strlen(out) + 1;
					nl++;
				}
				if (!ok)
					continue;
				h = EVP_MD_CTX_new();
				EVP_DigestInit_ex(h, EVP_sha256(), NULL);
				rs = s;
			}
			re = e;
			for (unsigned long long a = s; a < e;) {
				size_t l = (size_t)(e - a > CHUNK_PAGES * PAGE ? CHUNK_PAGES * PAGE : e - a);
				ssize_t r = pread(mem, buf, l, (off_t)a);

				if (r <= 0) {
					/* Unreadable page: its absence is hashed. */
					EVP_DigestUpdate(h, "?", 1);
					a += PAGE;
					continue;
				}
				apply_mask(vpid, a, buf, (size_t)r, mask, nmask);
				EVP_DigestUpdate(h, buf, (size_t)r);
				a += (unsigned long long)r;
			}
		}
		if (h)
			EVP_MD_CTX_free(h);
		if (f)
			fclose(f);
		if (mem >= 0)
			close(mem);
	}
	free(buf);
	if (ret == 0) {
		char *t = malloc(total + 1), *p = t;

		qsort(lines, nl, sizeof(*lines), cmp_line);
		for (size_t i = 0; t && i < nl; i++)
			p += sprintf(p, "%s\n", lines[i]);
		if (t)
			*p = '\0';
		*text = t;
		*len = total;
		if (!t)
			ret = vz_error_msg(err, ENOMEM, "Out of memory");
	}
	for (size_t i = 0; i < nl; i++)
		free(lines[i]);
	free(lines);
	return ret;
}
