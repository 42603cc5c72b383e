/* wl-threads [-t N] [-n tag]: a thread pool. Each thread bumps its own
 * counter and a __thread copy in lockstep and records its tid. Verify:
 * every thread's counter moves after the request, each thread finds its
 * tid and its __thread value unchanged, and /proc/self/task lists exactly
 * the threads recorded. */
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>

#include "wl.h"

#define MAXT 64

static struct wl w;
static int nthreads = 8;
static struct {
	pid_t tid;
	uint64_t count;
	int bad; /* 1: tid changed, 2: __thread value differs */
} t[MAXT];
static volatile uint64_t check_gen;
static __thread uint64_t mine;

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t seen = 0;

	t[id].tid = (pid_t)syscall(SYS_gettid);
	while (!wl_stop) {
		mine++;
		__atomic_store_n(&t[id].count, mine, __ATOMIC_RELEASE);
		if (check_gen != seen) {
			seen = check_gen;
			if ((pid_t)syscall(SYS_gettid) != t[id].tid)
				t[id].bad = 1;
			else if (mine != __atomic_load_n(&t[id].count, __ATOMIC_ACQUIRE))
				t[id].bad = 2;
		}
		wl_sleep_us(1000);
	}
	return NULL;
}

static int task_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0, known = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0)
			continue;
		n++;
		if (tid == w.pid)
			known++;
		for (int i = 0; i < nthreads; i++)
			known += t[i].tid == tid;
	}
	closedir(d);
	return n == known ? n : -n;
}

int main(int argc, char **argv)
{
	const char *tag = NULL;
	pthread_t th[MAXT];
	int opt;

	while ((opt = getopt(argc, argv, "t:n:")) != -1) {
		if (opt == 't')
			nthreads = atoi(optarg);
		else if (opt == 'n')
			tag = optarg;
		else
			return 2;
	}
	if (nthreads < 1 || nthreads > MAXT) {
		fprintf(stderr, "wl-threads: -t must be 1..%d\n", MAXT);
		return 2;
	}
	wl_start(&w, "wl-threads", tag);
	for (int i = 0; i < nthreads; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0)
			wl_abort(&w, "pthread_create: %s", strerror(errno));
	for (int i = 0; i < nthreads; i++)
		while (!__atomic_load_n(&t[i].tid, __ATOMIC_ACQUIRE))
			wl_sleep_us(1000);
	wl_ready(&w);
	while (!wl_stop) {
		wl_sleep_us(20000);
		if (wl_check_req) {
			uint64_t before[MAXT], end = wl_now_ms() + 1000;
			int n, moved;

			wl_check_req = 0;
			wl_check_pid(&w);
			for (int i = 0; i < nthreads; i++)
				before[i] = __atomic_load_n(&t[i].count, __ATOMIC_ACQUIRE);
			check_gen++;
			do {
				wl_sleep_us(10000);
				moved = 0;
				for (int i = 0; i < nthreads; i++)
					moved += __atomic_load_n(&t[i].count, __ATOMIC_ACQUIRE) > before[i] + 1;
			} while (moved < nthreads && wl_now_ms() < end);
			if (moved < nthreads)
				wl_fail(&w, "%d of %d threads stopped", nthreads - moved, nthreads);
			for (int i = 0; i < nthreads; i++)
				if (t[i].bad)
					wl_fail(&w, "thread %d: %s", i,
						t[i].bad == 1 ? "tid changed" : "__thread value lost");
			n = task_count();
			if (n != nthreads + 1)
				wl_fail(&w, "/proc/self/task has %d threads, want the %d recorded", n < 0 ? -n : n,
					nthreads + 1);
			wl_answer(&w);
		}
	}
	return 0;
}
