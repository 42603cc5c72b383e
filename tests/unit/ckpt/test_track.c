/* ckpt/track.c on a live child process: the first round sends every
 * present page, later rounds exactly the pages written since (from any
 * thread), and memory it could not vouch for (a mapping made or a process
 * forked after tracking began) is sent whole. Data handed on is the
 * page's content at the time of the round. A process in a user namespace
 * of its own (as a VE's are) is tracked too, and the kernel's writes into
 * its protected pages (a read()) are seen and let through. Skipped, with
 * the kernel's reason, where no tracker works. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memverify.h"
#include "track.h"
#include "sanitized.h"

#define PG     4096
#define NPAGES 64

/* The child: a region of NPAGES pages, commands on a pipe. */
static int cmd[2], rep[2];
static pid_t child;
static uint8_t *region;

struct twrite {
	int page;
};

static void *thread_write(void *arg)
{
	struct twrite *t = arg;

	memset(region + (size_t)t->page * PG, 0x70 + t->page, PG);
	return NULL;
}

static void *thread_idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void child_main(void)
{
	char c;
	unsigned long v;

	region = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; i < NPAGES; i++)
		memset(region + i * PG, i, PG);
	v = (unsigned long)region;
	if (write(rep[1], &v, sizeof(v)) != sizeof(v))
		_exit(1);
	while (read(cmd[0], &c, 1) == 1) {
		int arg = 0;

		if (c == 'w' && read(cmd[0], &arg, sizeof(arg)) == sizeof(arg)) {
			memset(region + (size_t)arg * PG, 0xA0 + arg % 16, PG);
			v = 0;
		} else if (c == 'r' && read(cmd[0], &arg, sizeof(arg)) == sizeof(arg)) {
			/* The kernel writes the page: read() from a pipe. */
			uint8_t buf[PG];
			int p[2];

			memset(buf, 0xC0 + arg % 16, PG);
			if (pipe(p) != 0 || write(p[1], buf, PG) != PG)
				_exit(1);
			v = read(p[0], region + (size_t)arg * PG, PG) == PG ? 0 : (unsigned long)errno;
			close(p[0]);
			close(p[1]);
		} else if (c == 't') {
			/* Four threads, one page each: 10..13. */
			pthread_t th[4];
			struct twrite tw[4];

			for (int i = 0; i < 4; i++) {
				tw[i].page = 10 + i;
				pthread_create(&th[i], NULL, thread_write, &tw[i]);
			}
			for (int i = 0; i < 4; i++)
				pthread_join(th[i], NULL);
			v = 0;
		} else if (c == 'T') {
			/* A thread that stays. */
			pthread_t th;

			v = pthread_create(&th, NULL, thread_idle, NULL) == 0 ? 0 : 1;
		} else if (c == 'm') {
			uint8_t *m = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			memset(m, 0x55, 8 * PG);
			v = (unsigned long)m;
		} else if (c == 'f') {
			int ready[2];
			pid_t p;
			char b;

			if (pipe(ready) != 0)
				_exit(1);
			p = fork();
			if (p == 0) {
				memset(region, 0x66, PG);
				if (write(ready[1], "x", 1) != 1)
					_exit(1);
				for (;;)
					pause();
			}
			if (read(ready[0], &b, 1) != 1)
				_exit(1);
			close(ready[0]);
			close(ready[1]);
			v = (unsigned long)p;
		}
		if (write(rep[1], &v, sizeof(v)) != sizeof(v))
			_exit(1);
	}
	_exit(0);
}

static unsigned long ask(char c, int arg)
{
	unsigned long v = 0;

	cr_assert_eq(write(cmd[1], &c, 1), 1);
	if (c == 'w' || c == 'r')
		cr_assert_eq(write(cmd[1], &arg, sizeof(arg)), (ssize_t)sizeof(arg));
	cr_assert_eq(read(rep[0], &v, sizeof(v)), (ssize_t)sizeof(v));
	return v;
}

/* What a round handed on, restricted to one range. */
struct seen {
	unsigned long lo, hi;
	int vpid; /* 0: any */
	int pages[1024];
	uint8_t first[1024];
	int n;
	uint64_t total;
};

static int emit(void *arg, int vpid, uint64_t vaddr, const void *data, size_t npages, struct vz_err *err)
{
	struct seen *s = arg;

	(void)err;
	s->total += npages;
	if (s->vpid && vpid != s->vpid)
		return 0;
	for (size_t i = 0; i < npages; i++) {
		uint64_t a = vaddr + i * PG;

		if (a >= s->lo && a < s->hi && s->n < 1024) {
			s->pages[s->n] = (int)((a - s->lo) / PG);
			s->first[s->n++] = ((const uint8_t *)data)[i * PG];
		}
	}
	return 0;
}

/* Start a new record of what a round hands on within [lo, hi). */
static void seen_reset(struct seen *s, unsigned long lo, unsigned long hi, int vpid)
{
	memset(s, 0, sizeof(*s));
	s->lo = lo;
	s->hi = hi;
	s->vpid = vpid;
}

static struct vz_track *t;
static unsigned long base;

/* The child, in a user namespace of its own when userns (it has then no
 * capability over the host's). */
static void spawn_child_in(bool userns)
{
	SKIP_IF_SANITIZED();
	cr_assert_eq(pipe(cmd), 0);
	cr_assert_eq(pipe(rep), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		if (userns && unshare(CLONE_NEWUSER) != 0)
			_exit(1);
		child_main();
	}
	cr_assert_eq(read(rep[0], &base, sizeof(base)), (ssize_t)sizeof(base), "the child did not start");
}

static void spawn_child(void)
{
	spawn_child_in(false);
}

static void setup_in(bool userns)
{
	char why[512];
	enum vz_track_kind k = vz_track_detect(why, sizeof(why));
	struct vz_err err = { 0 };

	if (k != VZ_TRACK_UFFD_WP)
		cr_skip_test("No userfaultfd write-protect tracker on this kernel (%s)", why);
	spawn_child_in(userns);
	t = vz_track_new(k, NULL, NULL, &err);
	cr_assert_not_null(t, "%s", err.msg);
}

static void setup(void)
{
	setup_in(false);
}

static void setup_userns(void)
{
	setup_in(true);
}

static void teardown(void)
{
	vz_track_free(t);
	t = NULL;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	child = 0;
}

static void round_of(pid_t *pids, size_t n, struct seen *s, struct vz_track_stats *st)
{
	struct vz_err err = { 0 };

	cr_assert_eq(vz_track_round(t, pids, n, emit, s, st, &err), 0, "%s", err.msg);
}

Test(track, first_round_all_then_only_written, .init = setup, .fini = teardown)
{
	struct seen s = { .lo = base, .hi = base + NPAGES * PG };
	struct vz_track_stats st;
	struct vz_err err = { 0 };
	uint64_t peek = 99;

	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, NPAGES, "round 0 sent %d of the region's %d pages", s.n, NPAGES);
	cr_assert_eq(st.new_procs, 1);
	cr_assert_eq(st.untracked_procs, 0);

	/* Nothing written: a peek and a round find nothing in the region. */
	seen_reset(&s, base, base + NPAGES * PG, 0);
	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, 0, "a quiet region sent %d pages", s.n);

	ask('w', 3);
	ask('w', 40);
	cr_assert_eq(vz_track_peek(t, &child, 1, &peek, &err), 0, "%s", err.msg);
	cr_assert_geq(peek, 2);
	seen_reset(&s, base, base + NPAGES * PG, 0);
	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, 2, "two written pages, %d sent", s.n);
	cr_assert(s.pages[0] == 3 && s.pages[1] == 40);
	cr_assert_eq(s.first[0], 0xA3, "page 3 carries the new content");
	cr_assert_eq(s.first[1], 0xA8);
}

/* A VE's process, in a user namespace, with vm.unprivileged_userfaultfd 0:
 * only a user-mode-only userfaultfd can be made in it. It is tracked all
 * the same, and read() (the kernel writing its protected pages) neither
 * fails with EFAULT nor goes unseen. */
Test(track, process_in_a_userns_is_tracked_and_its_reads_seen, .init = setup_userns, .fini = teardown)
{
	struct seen s = { .lo = base, .hi = base + NPAGES * PG };
	struct vz_track_stats st;

	round_of(&child, 1, &s, &st);
	cr_assert_eq(st.untracked_procs, 0, "the process in a user namespace got no userfaultfd");
	seen_reset(&s, base, base + NPAGES * PG, 0);
	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, 0, "a quiet region sent %d pages", s.n);
	cr_assert_eq(ask('r', 5), 0, "read() into a protected page failed");
	cr_assert_eq(ask('r', 50), 0, "read() into a protected page failed");
	ask('w', 20);
	seen_reset(&s, base, base + NPAGES * PG, 0);
	round_of(&child, 1, &s, &st);
	cr_assert_eq(st.untracked_procs, 0);
	cr_assert_eq(s.n, 3, "two pages read into and one written: %d sent", s.n);
	cr_assert(s.pages[0] == 5 && s.pages[1] == 20 && s.pages[2] == 50, "pages %d %d %d sent", s.pages[0],
		  s.pages[1], s.pages[2]);
	cr_assert_eq(s.first[0], 0xC5, "page 5 carries what read() put there");
	cr_assert_eq(s.first[1], 0xA4);
	cr_assert_eq(s.first[2], 0xC2);
}

Test(track, writes_from_many_threads, .init = setup, .fini = teardown)
{
	struct seen s = { .lo = base, .hi = base + NPAGES * PG };
	struct vz_track_stats st;

	round_of(&child, 1, &s, &st);
	ask('t', 0);
	seen_reset(&s, base, base + NPAGES * PG, 0);
	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, 4, "four threads wrote four pages, %d sent", s.n);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(s.pages[i], 10 + i);
		cr_assert_eq(s.first[i], 0x70 + 10 + i);
	}
}

Test(track, new_mapping_is_sent_whole, .init = setup, .fini = teardown)
{
	struct seen s = { .lo = base, .hi = base + NPAGES * PG };
	struct vz_track_stats st;
	unsigned long m;

	round_of(&child, 1, &s, &st);
	m = ask('m', 0);
	seen_reset(&s, m, m + 8 * PG, 0);
	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, 8, "a mapping made after tracking began: %d of 8 pages sent", s.n);
	cr_assert_eq(s.first[0], 0x55);
	/* From then on it is tracked like the rest. */
	seen_reset(&s, m, m + 8 * PG, 0);
	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, 0, "the new mapping, untouched, sent %d pages again", s.n);
}

Test(track, forked_process_is_sent_whole, .init = setup, .fini = teardown)
{
	struct seen s = { .lo = base, .hi = base + NPAGES * PG };
	struct vz_track_stats st;
	pid_t pids[2];

	round_of(&child, 1, &s, &st);
	pids[0] = child;
	pids[1] = (pid_t)ask('f', 0);
	seen_reset(&s, base, base + NPAGES * PG, pids[1]);
	round_of(pids, 2, &s, &st);
	cr_assert_eq(st.new_procs, 1);
	cr_assert_eq(s.n, NPAGES, "a process forked after tracking began: %d of %d pages sent", s.n, NPAGES);
	cr_assert_eq(s.first[0], 0x66, "the fork child's own write is what is sent");
	/* The parent's region was not written: nothing from it. */
	seen_reset(&s, base, base + NPAGES * PG, child);
	round_of(pids, 2, &s, &st);
	cr_assert_eq(s.n, 0);
	kill(pids[1], SIGKILL);
}

/* --verify-memory masks each thread's rseq area, read just before the
 * freeze; a thread started after the read must be noticed, so that the
 * freeze is undone and the read done again. */
Test(track, thread_started_after_rseq_read_is_noticed, .init = setup, .fini = teardown)
{
	struct vz_mem_mask *m = NULL;
	pid_t *seen = NULL;
	size_t nm = 0, ns = 0;
	struct vz_err err = { 0 };

	cr_assert_eq(vz_rseq_areas(&child, 1, &m, &nm, &seen, &ns, &err), 0);
	cr_assert_eq(ns, 1, "threads read: %zu", ns);
	cr_assert_eq(seen[0], child);
	cr_assert(vz_threads_seen(&child, 1, seen, ns), "no thread started: all seen");
	cr_assert_eq(ask('T', 0), 0);
	cr_assert_not(vz_threads_seen(&child, 1, seen, ns), "a thread started after the read went unnoticed");
	free(m);
	free(seen);
	cr_assert_eq(vz_rseq_areas(&child, 1, &m, &nm, &seen, &ns, &err), 0);
	cr_assert_eq(ns, 2, "threads read the second time: %zu", ns);
	cr_assert(vz_threads_seen(&child, 1, seen, ns));
	free(m);
	free(seen);
}

/* The soft-dirty back-end, on a kernel without soft-dirty bits: the page
 * table bits come from a file standing in for /proc/PID/pagemap; all the
 * rest (holding the VE, clearing the bits through clear_refs, reading the
 * pages from /proc/PID/mem) is real. */
static int holds;

static int count_hold(void *arg, bool hold, struct vz_err *err)
{
	(void)arg;
	(void)err;
	holds += hold ? 1 : 100;
	return 0;
}

static void set_bits(int fd, unsigned long addr, uint64_t bits)
{
	cr_assert_eq(pwrite(fd, &bits, sizeof(bits), (off_t)(addr / PG * 8)), (ssize_t)sizeof(bits));
}

Test(track, soft_dirty_backend_sends_what_the_bits_say)
{
	char dir[] = "/tmp/vz-sd-XXXXXX", path[64];
	struct seen s = { .lo = 0 };
	struct vz_track_stats st;
	struct vz_err err = { 0 };
	int fd;

	spawn_child();
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/%d.pagemap", dir, (int)child);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	/* Every page of the region present, none soft-dirty. */
	for (int i = 0; i < NPAGES; i++)
		set_bits(fd, base + (unsigned long)i * PG, 1ull << 63);
	struct vz_track_opts o = { .kind = VZ_TRACK_SOFT_DIRTY, .hold = count_hold, .pagemap_dir = dir };

	t = vz_track_new_opts(&o, &err);
	cr_assert_not_null(t, "%s", err.msg);

	/* Before the bits were ever cleared, every present page counts. */
	seen_reset(&s, base, base + NPAGES * PG, 0);
	holds = 0;
	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, NPAGES, "first round: %d of %d pages", s.n, NPAGES);
	cr_assert_eq(holds, 101, "the VE is held while the bits are read and cleared, then let go");
	cr_assert_geq(st.unvouched, (uint64_t)NPAGES);

	/* Cleared by that round: now only the soft-dirty pages, read as the
	 * process has them now. */
	ask('w', 3);
	set_bits(fd, base + 3 * PG, 1ull << 63 | 1ull << 55);
	set_bits(fd, base + 7 * PG, 1ull << 63 | 1ull << 55);
	seen_reset(&s, base, base + NPAGES * PG, 0);
	round_of(&child, 1, &s, &st);
	cr_assert_eq(s.n, 2, "second round: %d pages (want the 2 soft-dirty ones)", s.n);
	cr_assert_eq(s.pages[0], 3);
	cr_assert_eq(s.first[0], 0xA3, "page 3 as written after the first round");
	cr_assert_eq(s.pages[1], 7);
	cr_assert_eq(s.first[1], 7);
	cr_assert_eq(st.unvouched, 0);
	close(fd);
	unlink(path);
	rmdir(dir);
	teardown();
}
