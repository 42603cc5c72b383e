/* The host's checkpoint abilities, each found by trying it: CRIU's check
 * and feature probes, the cgroup freezer, nftables locking, and the
 * kernel's userfaultfd write-protect with PAGEMAP_SCAN on a page of ours. */
#define LOG_PREFIX "features: "
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ckpt.h"
#include "cleanup.h"
#include "log.h"
#include "sysctl.h"
#include "uffd.h"
#include "util.h"

static struct vz_feat *add(struct vz_ckpt_report *r, const char *name, bool required, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static struct vz_feat *add(struct vz_ckpt_report *r, const char *name, bool required, bool ok, const char *fmt, ...)
{
	struct vz_feat *f;
	va_list ap;

	if (r->n >= VZ_FEAT_MAX)
		return NULL;
	f = &r->feat[r->n++];
	f->name = name;
	f->required = required;
	f->state = ok ? VZ_FEAT_YES : VZ_FEAT_NO;
	va_start(ap, fmt);
	vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
	va_end(ap);
	if (required && !ok)
		r->can_checkpoint = false;
	return f;
}

int vz_uffd_wp_probe(struct vz_err *err)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	long psz = sysconf(_SC_PAGESIZE);
	_cleanup_close_ int uffd = -1, pm = -1;
	struct page_region reg[4];
	struct pm_scan_arg scan;
	char *mem;
	long n;
	int ret = 0;

	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		return vz_error(err, errno, "The userfaultfd() call fails");
	if (ioctl(uffd, UFFDIO_API, &api) != 0)
		return vz_error(err, errno, "Userfaultfd has no async write-protect (needs Linux 6.7)");
	mem = mmap(NULL, (size_t)psz * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return vz_error(err, errno, "Map a page");
	{
		struct uffdio_register rg = { .range = { (unsigned long)mem, (unsigned long)psz * 2 },
					      .mode = UFFDIO_REGISTER_MODE_WP };
		struct uffdio_writeprotect wp = { .range = rg.range, .mode = UFFDIO_WRITEPROTECT_MODE_WP };

		if (ioctl(uffd, UFFDIO_REGISTER, &rg) != 0 || ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) != 0) {
			ret = vz_error(err, errno, "Userfaultfd write-protect fails");
			goto out;
		}
	}
	/* Write the second page only: a scan must name it and not the first. */
	mem[psz] = 1;
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	memset(&scan, 0, sizeof(scan));
	scan.size = sizeof(scan);
	scan.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
	scan.start = (unsigned long)mem;
	scan.end = (unsigned long)mem + (unsigned long)psz * 2;
	scan.vec = (unsigned long)reg;
	scan.vec_len = ARRAY_SIZE(reg);
	scan.category_mask = PAGE_IS_WRITTEN;
	scan.return_mask = PAGE_IS_WRITTEN;
	n = pm < 0 ? -1 : ioctl(pm, PAGEMAP_SCAN, &scan);
	if (n < 0) {
		ret = vz_error(err, errno, "PAGEMAP_SCAN fails (needs Linux 6.7)");
		goto out;
	}
	if (n != 1 || reg[0].start != (unsigned long)mem + (unsigned long)psz ||
	    reg[0].end != reg[0].start + (unsigned long)psz) {
		ret = vz_error_msg(err, EIO, "PAGEMAP_SCAN did not report exactly the page written");
		goto out;
	}
	/* WP_MATCHING protected it again: a second scan finds nothing. */
	n = ioctl(pm, PAGEMAP_SCAN, &scan);
	if (n != 0)
		ret = vz_error_msg(err, EIO, "PAGEMAP_SCAN did not re-protect the page it reported");
out:
	munmap(mem, (size_t)psz * 2);
	return ret;
}

static bool criu_feature(const struct vz_criu *c, const char *name)
{
	char *argv[] = { (char *)c->path, "check", "--feature", (char *)name, NULL };

	return vz_run(argv, NULL) == 0;
}

void vz_ckpt_probe(const struct vz_criu *c, int work_fd, const char *freezer_path, struct vz_ckpt_report *r)
{
	struct vz_criu_features f = { 0 };
	struct vz_err err = { 0 };
	bool criu_ok, uffd_wp;
	_cleanup_free_ char *pms = NULL;
	char path[4200];
	int ufd;

	memset(r, 0, sizeof(*r));
	r->can_checkpoint = true;
	criu_ok = vz_criu_version(c, &r->criu, &err) == 0;
	if (criu_ok)
		add(r, "CRIU", true, true, "%s, version %s", c->path, r->criu.text);
	else
		add(r, "CRIU", true, false, "%s", err.msg);
	vz_err_clear(&err);
	if (criu_ok && vz_criu_check(c, work_fd, &err) == 0)
		add(r, "Kernel support for checkpoints (criu check)", true, true, "passed");
	else
		add(r, "Kernel support for checkpoints (criu check)", true, false, "%s",
		    criu_ok ? err.msg : "CRIU cannot run");

	snprintf(path, sizeof(path), "%s/%s", freezer_path ? freezer_path : "", "cgroup.procs");
	add(r, "Cgroup freezer", true, freezer_path && vz_exists(path), "%s",
	    freezer_path ? freezer_path : "no freezer hierarchy mounted");

	add(r, "Established TCP connections, network locked with nftables", true,
	    criu_ok && criu_feature(c, "network_lock_nftables"), "%s",
	    criu_ok ? "CRIU's network_lock_nftables feature" : "CRIU cannot run");

	if (criu_ok)
		vz_criu_features(c, &f, &err);
	add(r, "Memory tracking with soft-dirty bits (CRIU pre-dump)", false, f.mem_track, "%s",
	    f.mem_track ? "available" : "the kernel has no soft-dirty tracking (CONFIG_MEM_SOFT_DIRTY)");

	ufd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	add(r, "userfaultfd", false, ufd >= 0, "%s", ufd >= 0 ? "available" : strerror(errno));
	if (ufd >= 0)
		close(ufd);
	vz_err_clear(&err);
	uffd_wp = vz_uffd_wp_probe(&err) == 0;
	add(r, "Memory tracking with userfaultfd write-protect and PAGEMAP_SCAN", false, uffd_wp, "%s",
	    uffd_wp ? "a written page was found and protected again" : err.msg);

	add(r, "Lazy pages (restore first, memory after, through userfaultfd)", false, f.lazy_pages, "%s",
	    f.lazy_pages ? "available" : "CRIU reports no lazy-pages support");
	if (vz_read_file(VZ_SYSCTL_PIPE_MAX, &pms, NULL, 64) == 0) {
		unsigned long v = strtoul(pms, NULL, 10);
		struct vz_feat *x = add(r, "Pipes of 4 MiB for lazy pages (fs.pipe-max-size)", false, v >= 4u << 20,
					"%lu bytes%s", v, v >= 4u << 20 ? "" : "; vzagent raises it when it starts");

		if (x && v < 4u << 20)
			x->state = VZ_FEAT_WARN;
	}
	r->tracker = uffd_wp ? "uffd-wp" : f.mem_track ? "soft-dirty" : "none";
}
