/* The soft-dirty back-end of the tracker (see track.h): the kernel's
 * soft-dirty bits (pagemap bit 55, cleared through /proc/PID/clear_refs),
 * read and cleared with the VE held still, the pages read after. */
#define LOG_PREFIX "track: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "track-int.h"
#include "util.h"

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

static int sd_round_begin(struct vz_track *t, struct vz_err *err)
{
	/* Which pages are dirty and clearing their bits must be one step:
	 * hold the VE still meanwhile. */
	return t->o.hold ? t->o.hold(t->o.hold_arg, true, err) : 0;
}

static int sd_open_pagemap(struct vz_track *t, const struct tproc *p)
{
	char path[320];

	if (!t->pm_dir[0])
		return trk_proc_pagemap(t, p);
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
					int ret = trk_emit_range(c, s + k * PAGE, s + j * PAGE, err);

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

/* The bits of every process this round read. */
static int clear_soft_dirty(struct vz_track *t, struct vz_err *err)
{
	for (size_t i = 0; i < t->np; i++) {
		struct tproc *p = &t->p[i];
		char path[64];
		int fd;

		if (!p->seen || !p->task)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)p->task);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (write(fd, "4", 1) != 1) {
			int e = errno;

			close(fd);
			return vz_error(err, e, "Clear soft-dirty bits of process %d", (int)p->pid);
		}
		close(fd);
		p->sd_clean = true;
	}
	return 0;
}

/* Clear the bits, let the VE go, then read what was dirty: a write
 * racing the read sets the bit again and is caught by the next round. */
static int sd_round_end(struct vz_track *t, struct ctx *proto, int ret, struct vz_err *err)
{
	if (ret == 0)
		ret = clear_soft_dirty(t, err);
	if (t->o.hold && t->o.hold(t->o.hold_arg, false, err) < 0 && ret == 0)
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
			ret = trk_emit_range(&c, p->sd[k].start, p->sd[k].end, err);
		if (c.mem >= 0)
			close(c.mem);
		p->nsd = 0;
	}
	return ret;
}

const struct track_ops vz_track_sd_ops = {
	.name = "soft-dirty",
	.round_begin = sd_round_begin,
	.round_end = sd_round_end,
	.open_pagemap = sd_open_pagemap,
	.scan = sd_scan,
};
