/* ckpt/track.c and the rseq read on processes that cannot stop or must
 * stay stopped (issue 12, bug 3): a process in vfork() (its child has
 * neither exec'd nor exited) cannot make a ptrace stop, a stopped process
 * (SIGSTOP) must still be stopped afterwards, a zombie has no memory. The
 * tracker's creation and each round finish within the stop bound, and no
 * page written after round 0 goes unreported. Each test has a criterion
 * timeout: before the fix they hung in waitpid(). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "memverify.h"
#include "track.h"
#include "sanitized.h"

#define PG	 4096
#define NPAGES	 16
#define BOUND_MS 500

static struct vz_track *t;
static pid_t parent, grandchild;
static unsigned long base;
static int cmd[2], rep[2], gcmd[2];

/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z', ...). */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return '?';
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

static void wait_state(pid_t pid, char want)
{
	for (int i = 0; i < 2000 && proc_state(pid) != want; i++)
		usleep(1000);
	cr_assert_eq(proc_state(pid), want, "process %d: state %c, want %c", (int)pid, proc_state(pid), want);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A command loop over the shared region: 'w' N writes page N; any other
 * byte ends the loop. */
static void serve(int in, uint8_t *region)
{
	char c;
	int arg;

	while (read(in, &c, 1) == 1 && c == 'w' && read(in, &arg, sizeof(arg)) == sizeof(arg)) {
		memset(region + (size_t)arg * PG, 0xA0 + arg, PG);
		if (write(rep[1], "k", 1) != 1)
			_exit(1);
	}
}

/* The parent: maps a region, vfork()s; the grandchild serves writes on
 * gcmd until told to go (or 20 s pass), then _exits; the parent then
 * serves writes on cmd. */
static void parent_main(void)
{
	uint8_t *region = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned long v = (unsigned long)region;
	pid_t p;

	for (int i = 0; i < NPAGES; i++)
		memset(region + i * PG, i, PG);
	if (write(rep[1], &v, sizeof(v)) != sizeof(v))
		_exit(1);
	p = vfork();
	if (p == 0) {
		pid_t me = getpid();

		alarm(20);
		if (write(rep[1], &me, sizeof(me)) != sizeof(me))
			_exit(1);
		serve(gcmd[0], region);
		_exit(0);
	}
	waitpid(p, NULL, 0);
	serve(cmd[0], region);
	_exit(0);
}

static void spawn_vfork(void)
{
	SKIP_IF_SANITIZED();
	cr_assert_eq(pipe(cmd), 0);
	cr_assert_eq(pipe(rep), 0);
	cr_assert_eq(pipe(gcmd), 0);
	parent = fork();
	cr_assert_geq(parent, 0);
	if (parent == 0)
		parent_main();
	cr_assert_eq(read(rep[0], &base, sizeof(base)), (ssize_t)sizeof(base));
	cr_assert_eq(read(rep[0], &grandchild, sizeof(grandchild)), (ssize_t)sizeof(grandchild));
	/* The parent sits in vfork() until the grandchild goes. */
	wait_state(parent, 'D');
}

static void write_page(int fd, int page)
{
	char c = 'w', k;

	cr_assert_eq(write(fd, &c, 1), 1);
	cr_assert_eq(write(fd, &page, sizeof(page)), (ssize_t)sizeof(page));
	cr_assert_eq(read(rep[0], &k, 1), 1);
}

static bool uffd_wp(void)
{
	char why[512];

	return vz_track_detect(why, sizeof(why)) == VZ_TRACK_UFFD_WP;
}

static void make_tracker(void)
{
	struct vz_track_opts o = { .kind = VZ_TRACK_UFFD_WP, .stop_timeout_ms = BOUND_MS };
	struct vz_err err = { 0 };

	if (!uffd_wp())
		cr_skip_test("No userfaultfd write-protect tracker on this kernel");
	t = vz_track_new_opts(&o, &err);
	cr_assert_not_null(t, "%s", err.msg);
}

static void teardown(void)
{
	vz_track_free(t);
	t = NULL;
	if (grandchild > 0)
		kill(grandchild, SIGKILL);
	if (parent > 0) {
		kill(parent, SIGKILL);
		waitpid(parent, NULL, 0);
	}
	parent = grandchild = 0;
}

/* Which pages of the region a round handed on for one vpid, and the
 * first byte of each. */
struct seen {
	int vpid;
	int n;
	int pages[NPAGES];
	uint8_t first[NPAGES];
};

struct seen2 {
	struct seen a, b;
};

static void note(struct seen *s, int vpid, uint64_t vaddr, const uint8_t *data, size_t npages)
{
	if (vpid != s->vpid)
		return;
	for (size_t i = 0; i < npages; i++) {
		uint64_t a = vaddr + i * PG;

		if (a >= base && a < base + NPAGES * PG && s->n < NPAGES) {
			s->pages[s->n] = (int)((a - base) / PG);
			s->first[s->n++] = data[i * PG];
		}
	}
}

static int emit(void *arg, int vpid, uint64_t vaddr, const void *data, size_t npages, struct vz_err *err)
{
	struct seen2 *s = arg;

	(void)err;
	note(&s->a, vpid, vaddr, data, npages);
	note(&s->b, vpid, vaddr, data, npages);
	return 0;
}

static bool has_page(const struct seen *s, int page, uint8_t first)
{
	for (int i = 0; i < s->n; i++)
		if (s->pages[i] == page && s->first[i] == first)
			return true;
	return false;
}

/* One round, bounded: each process may cost at most one stop bound. */
static void round_of(pid_t *pids, size_t n, struct seen2 *s, struct vz_track_stats *st)
{
	struct vz_err err = { 0 };
	uint64_t t0 = now_ms();

	s->a.n = s->b.n = 0;
	cr_assert_eq(vz_track_round(t, pids, n, emit, s, st, &err), 0, "%s", err.msg);
	cr_assert_lt(now_ms() - t0, (uint64_t)BOUND_MS * n + 1000, "a round took %llu ms",
		     (unsigned long long)(now_ms() - t0));
}

Test(track_stops, vfork_parent_and_child, .fini = teardown, .timeout = 15)
{
	struct vz_track_stats st;
	struct seen2 s = { 0 };
	pid_t pids[2];

	make_tracker();
	spawn_vfork();
	pids[0] = parent;
	pids[1] = grandchild;
	s.a.vpid = vz_proc_vpid(parent);
	s.b.vpid = vz_proc_vpid(grandchild);
	round_of(pids, 2, &s, &st);
	cr_assert_eq(s.a.n, NPAGES, "round 0 sent %d of the parent's %d pages", s.a.n, NPAGES);
	cr_assert_eq(s.b.n, NPAGES, "round 0 sent %d of the child's %d pages", s.b.n, NPAGES);
	cr_assert_eq(proc_state(parent), 'D', "the parent is still in vfork()");

	/* The grandchild writes the memory both share: it is dirty (or
	 * untracked, hence sent) for each of them. */
	write_page(gcmd[1], 5);
	round_of(pids, 2, &s, &st);
	cr_assert(has_page(&s.a, 5, 0xA5), "page 5, written after round 0, not sent for the vfork parent");
	cr_assert(has_page(&s.b, 5, 0xA5), "page 5, written after round 0, not sent for the vfork child");
	write_page(gcmd[1], 6);
	round_of(pids, 2, &s, &st);
	cr_assert(has_page(&s.a, 6, 0xA6), "page 6 not sent for the vfork parent");
	cr_assert(has_page(&s.b, 6, 0xA6), "page 6 not sent for the vfork child");

	/* The grandchild goes; the parent runs on and writes. */
	cr_assert_eq(write(gcmd[1], "x", 1), 1);
	wait_state(parent, 'S');
	grandchild = 0;
	round_of(pids, 1, &s, &st);
	write_page(cmd[1], 9);
	round_of(pids, 1, &s, &st);
	cr_assert(has_page(&s.a, 9, 0xA9), "page 9, written by the parent after vfork, not sent");
}

Test(track_stops, tracker_on_a_stopped_process_leaves_it_stopped, .fini = teardown, .timeout = 15)
{
	struct vz_track_stats st;
	struct seen2 s = { 0 };

	make_tracker();
	spawn_vfork();
	/* Let the parent out of vfork(), then stop it. */
	cr_assert_eq(write(gcmd[1], "x", 1), 1);
	wait_state(parent, 'S');
	grandchild = 0;
	kill(parent, SIGSTOP);
	wait_state(parent, 'T');
	s.a.vpid = s.b.vpid = vz_proc_vpid(parent);
	round_of(&parent, 1, &s, &st);
	cr_assert_eq(s.a.n, NPAGES);
	cr_assert_eq(proc_state(parent), 'T', "a stopped process ran on after round 0: state %c", proc_state(parent));
	usleep(100000);
	cr_assert_eq(proc_state(parent), 'T', "a stopped process ran on after round 0: state %c", proc_state(parent));
	round_of(&parent, 1, &s, &st);
	cr_assert_eq(proc_state(parent), 'T');
	cr_assert_eq(s.a.n, 0, "a stopped process wrote nothing, %d pages sent", s.a.n);

	/* Once continued it is tracked as any other. */
	kill(parent, SIGCONT);
	wait_state(parent, 'S');
	write_page(cmd[1], 3);
	round_of(&parent, 1, &s, &st);
	cr_assert_eq(s.a.n, 1, "one page written, %d sent", s.a.n);
	cr_assert(has_page(&s.a, 3, 0xA3));
}

Test(track_stops, zombie_is_skipped, .fini = teardown, .timeout = 15)
{
	struct vz_track_stats st;
	struct seen2 s = { 0 };
	pid_t z, pids[2];

	make_tracker();
	z = fork();
	cr_assert_geq(z, 0);
	if (z == 0)
		_exit(0);
	wait_state(z, 'Z');
	spawn_vfork();
	cr_assert_eq(write(gcmd[1], "x", 1), 1);
	wait_state(parent, 'S');
	grandchild = 0;
	pids[0] = z;
	pids[1] = parent;
	s.a.vpid = s.b.vpid = vz_proc_vpid(parent);
	round_of(pids, 2, &s, &st);
	cr_assert_eq(s.a.n, NPAGES);
	cr_assert_eq(st.untracked_procs, 0, "a zombie counted as an untracked process");
	write_page(cmd[1], 2);
	round_of(pids, 2, &s, &st);
	cr_assert_eq(s.a.n, 1);
	cr_assert_eq(proc_state(z), 'Z');
	waitpid(z, NULL, 0);
}

/* --verify-memory's rseq read stops each thread for an instant: bounded
 * for a vfork parent, and a stopped process stays stopped. */
Test(track_stops, rseq_read_is_bounded_and_keeps_stops, .fini = teardown, .timeout = 15)
{
	struct vz_mem_mask *m = NULL;
	pid_t *seen = NULL, pids[2];
	size_t nm = 0, ns = 0;
	struct vz_err err = { 0 };
	uint64_t t0;

	spawn_vfork();
	pids[0] = parent;
	pids[1] = grandchild;
	t0 = now_ms();
	cr_assert_eq(vz_rseq_areas(pids, 2, &m, &nm, &seen, &ns, &err), 0, "%s", err.msg);
	cr_assert_lt(now_ms() - t0, 2 * 2000 + 1000, "the rseq read took %llu ms", (unsigned long long)(now_ms() - t0));
	cr_assert_eq(ns, 2, "both threads are listed as seen (%zu)", ns);
	cr_assert_eq(proc_state(parent), 'D', "the parent is still in vfork()");
	free(m);
	free(seen);

	kill(grandchild, SIGSTOP);
	wait_state(grandchild, 'T');
	cr_assert_eq(vz_rseq_areas(&grandchild, 1, &m, &nm, &seen, &ns, &err), 0, "%s", err.msg);
	usleep(100000);
	cr_assert_eq(proc_state(grandchild), 'T', "a stopped process ran on after the rseq read");
	free(m);
	free(seen);
}

/* The injection's own bound, without the tracker's state-D shortcut: a
 * vfork parent does not stop, begin gives up in time, and once its child
 * goes the parent runs on (it is not left in a ptrace stop). */
struct begin_call {
	pid_t pid;
	int ret;
};

static int begin_bounded(void *arg)
{
	struct begin_call *b = arg;
	struct vz_inject in;
	struct vz_err err = { 0 };

	b->ret = vz_inject_begin_timeout(&in, b->pid, 300, &err);
	if (b->ret == 0)
		vz_inject_end(&in, &err);
	return b->ret;
}

Test(track_stops, injection_into_a_vfork_parent_times_out_and_it_runs_on, .fini = teardown, .timeout = 15)
{
	struct begin_call b;
	uint64_t t0;

	spawn_vfork();
	b.pid = parent;
	t0 = now_ms();
	cr_assert_eq(vz_ptrace_thread(begin_bounded, &b), -ETIMEDOUT);
	cr_assert_lt(now_ms() - t0, 1300, "begin took %llu ms", (unsigned long long)(now_ms() - t0));
	cr_assert_eq(write(gcmd[1], "x", 1), 1);
	grandchild = 0;
	wait_state(parent, 'S');
	write_page(cmd[1], 1); /* it answers */
}
