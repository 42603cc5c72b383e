/* The kernel's side of what the uffd-wp tracker relies on in a VE that
 * has a user namespace of its own: there, with vm.unprivileged_userfaultfd
 * 0, only a userfaultfd for user-mode faults can be made
 * (UFFD_USER_MODE_ONLY); in async write-protect mode the kernel's own
 * writes into protected pages (a read() into them) still succeed and
 * PAGEMAP_SCAN reports those pages written. In synchronous mode the same
 * read() fails with EFAULT: the control that shows the read is a
 * kernel-mode write to a protected page. Each case runs in a child that
 * made a user namespace and reports one line on a pipe. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "uffd.h"
#include "util.h"

#define PG 4096
#define NP 16

static char why[256];

static int fail(const char *what)
{
	snprintf(why, sizeof(why), "%s: %s", what, strerror(errno));
	return -1;
}

/* read() from a pipe into page i of m: the kernel writes it. */
static ssize_t read_into(uint8_t *m, int i, int fill)
{
	char buf[PG];
	int p[2];
	ssize_t r;

	memset(buf, fill, PG);
	if (pipe(p) != 0 || write(p[1], buf, PG) != PG)
		return -1;
	r = read(p[0], m + (size_t)i * PG, PG);
	close(p[0]);
	close(p[1]);
	return r;
}

/* The pages PAGEMAP_SCAN reports written in m, as a list "2 9" in out. */
static int written(int pm, uint8_t *m, bool protect, char *out, size_t len)
{
	struct page_region v[NP];
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = protect ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0,
		.start = (unsigned long)m,
		.end = (unsigned long)m + NP * PG,
		.vec = (unsigned long)v,
		.vec_len = NP,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	long n = ioctl(pm, PAGEMAP_SCAN, &a);

	if (n < 0)
		return fail("PAGEMAP_SCAN");
	out[0] = '\0';
	for (long i = 0; i < n; i++)
		for (unsigned long p = v[i].start; p < v[i].end; p += PG)
			snprintf(out + strlen(out), len - strlen(out), "%s%lu", *out ? " " : "",
				 (p - (unsigned long)m) / PG);
	return 0;
}

/* In the user namespace: async mode, pages 2 (present) and 9 (never
 * touched) written by read(), page 5 by the process itself. */
static int async_case(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	_cleanup_free_ char *unpriv = NULL;
	uint8_t *m;
	char pages[128];
	int fd, pm;

	/* With vm.unprivileged_userfaultfd 0, a userfaultfd that handles
	 * the kernel's faults too is refused here: the VE's case. */
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		close(fd);
	if (vz_read_file("/proc/sys/vm/unprivileged_userfaultfd", &unpriv, NULL, 8) == 0 && unpriv[0] == '0' &&
	    fd >= 0) {
		snprintf(why, sizeof(why), "a full userfaultfd was made in a user namespace");
		return -1;
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return fail("userfaultfd(UFFD_USER_MODE_ONLY)");
	if (ioctl(fd, UFFDIO_API, &api) != 0)
		return fail("UFFDIO_API with WP_ASYNC on a user-mode-only userfaultfd");
	m = mmap(NULL, NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(m, 1, NP / 2 * PG);
	struct uffdio_register rg = { .range = { (unsigned long)m, NP * PG }, .mode = UFFDIO_REGISTER_MODE_WP };

	if (ioctl(fd, UFFDIO_REGISTER, &rg) != 0)
		return fail("UFFDIO_REGISTER");
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0 || written(pm, m, true, pages, sizeof(pages)) < 0 || written(pm, m, true, pages, sizeof(pages)) < 0)
		return fail("Protect");
	if (*pages) {
		snprintf(why, sizeof(why), "pages written right after protecting: %s", pages);
		return -1;
	}
	if (read_into(m, 2, 0x22) != PG || read_into(m, 9, 0x99) != PG)
		return fail("read() into a protected page");
	m[5 * PG] = 0x55;
	if (m[2 * PG] != 0x22 || m[2 * PG + PG - 1] != 0x22 || m[9 * PG] != 0x99 || m[9 * PG + PG - 1] != 0x99) {
		snprintf(why, sizeof(why), "read() put the wrong data");
		return -1;
	}
	if (written(pm, m, false, pages, sizeof(pages)) < 0)
		return -1;
	snprintf(why, sizeof(why), "written: %s", pages);
	return 0;
}

/* In the user namespace: synchronous write-protect, no handler. */
static int sync_case(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint8_t *m;
	ssize_t r;
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) != 0)
		return fail("userfaultfd(UFFD_USER_MODE_ONLY)");
	m = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	m[0] = 1;
	struct uffdio_register rg = { .range = { (unsigned long)m, PG }, .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .range = rg.range, .mode = UFFDIO_WRITEPROTECT_MODE_WP };

	if (ioctl(fd, UFFDIO_REGISTER, &rg) != 0 || ioctl(fd, UFFDIO_WRITEPROTECT, &wp) != 0)
		return fail("Write-protect");
	r = read_into(m, 0, 0x11);
	snprintf(why, sizeof(why), "read() = %zd (%s)", r, strerror(errno));
	return 0;
}

/* Run fn in a child in a new user namespace; its line in out. */
static int in_userns(int (*fn)(void), char *out, size_t len)
{
	int p[2], st;
	pid_t c;
	ssize_t n;

	cr_assert_eq(pipe(p), 0);
	c = fork();
	cr_assert_geq(c, 0);
	if (c == 0) {
		int ret = unshare(CLONE_NEWUSER) == 0 ? fn() : fail("unshare(CLONE_NEWUSER)");

		if (write(p[1], why, strlen(why)) < 0)
			_exit(2);
		_exit(ret < 0);
	}
	close(p[1]);
	n = read(p[0], out, len - 1);
	out[n > 0 ? n : 0] = '\0';
	close(p[0]);
	cr_assert_eq(waitpid(c, &st, 0), c);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void need_wp_async(void)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) != 0)
		cr_skip_test("No userfaultfd async write-protect on this kernel (%s)", strerror(errno));
	close(fd);
}

Test(uffd, user_mode_only_wp_async_lets_kernel_writes_through_in_a_userns, .init = need_wp_async)
{
	char out[256];
	int rc = in_userns(async_case, out, sizeof(out));

	cr_assert_eq(rc, 0, "%s", out);
	cr_assert_str_eq(out, "written: 2 5 9", "PAGEMAP_SCAN after read() into pages 2 and 9, a store into 5: %s",
			 out);
}

Test(uffd, user_mode_only_sync_wp_refuses_kernel_writes, .init = need_wp_async)
{
	char out[256];

	cr_assert_eq(in_userns(sync_case, out, sizeof(out)), 0, "%s", out);
	cr_assert_str_eq(out, "read() = -1 (Bad address)");
}
