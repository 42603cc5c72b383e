/* wl-churn [-n tag]: memory that keeps appearing. Every 20 ms a new
 * 64 KiB mapping is made and filled (the oldest of 64 is unmapped); every
 * 100 ms a child is forked that maps and fills 256 KiB of its own, checks
 * it 300 ms later and exits, its parent counting children that found
 * their memory wrong. All of it keeps a pattern derived from (mapping
 * number, page), so after a migration every mapping made before, during
 * or after it can prove itself. Verify: every live mapping intact, no
 * child failed, and churn goes on. */
#include <getopt.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "wl.h"

#define NMAPS	 64
#define MAPLEN	 (64 * 1024)
#define CHILDLEN (256 * 1024)

static struct wl w;
static struct {
	uint8_t *p;
	uint64_t id;
} maps[NMAPS];
static uint64_t next_id, children, child_failures;

static uint64_t word(uint64_t id, size_t off)
{
	uint64_t x = id * 0x9e3779b97f4a7c15ull + off;

	x ^= x >> 31;
	return x * 0xbf58476d1ce4e5b9ull;
}

static void fill(uint8_t *p, size_t len, uint64_t id)
{
	for (size_t o = 0; o < len; o += 8)
		*(uint64_t *)(p + o) = word(id, o);
}

static bool intact(const uint8_t *p, size_t len, uint64_t id)
{
	for (size_t o = 0; o < len; o += 8)
		if (*(const uint64_t *)(p + o) != word(id, o))
			return false;
	return true;
}

static void new_map(void)
{
	size_t slot = next_id % NMAPS;
	uint8_t *p;

	if (maps[slot].p) {
		if (!intact(maps[slot].p, MAPLEN, maps[slot].id))
			wl_fail(&w, "mapping %llu changed", (unsigned long long)maps[slot].id);
		munmap(maps[slot].p, MAPLEN);
	}
	p = mmap(NULL, MAPLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		wl_abort(&w, "mmap: %s", strerror(errno));
	fill(p, MAPLEN, next_id);
	maps[slot].p = p;
	maps[slot].id = next_id++;
}

static void child(void)
{
	uint64_t id = 1000000 + (uint64_t)getpid();
	uint8_t *p = mmap(NULL, CHILDLEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(2);
	fill(p, CHILDLEN, id);
	wl_sleep_us(300000);
	_exit(intact(p, CHILDLEN, id) ? 0 : 1);
}

static void reap(void)
{
	int st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0)
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			child_failures++;
}

/* 20 ms: a new mapping; every fifth time, a new child. */
static void churn(void)
{
	wl_sleep_us(20000);
	new_map();
	if (next_id % 5 == 0) {
		pid_t p = fork();

		if (p == 0)
			child();
		if (p > 0)
			children++;
	}
	reap();
}

static void verify(void)
{
	uint64_t start = next_id, kids = children, end = wl_now_ms() + 2000;

	wl_check_pid(&w);
	for (size_t i = 0; i < NMAPS; i++)
		if (maps[i].p && !intact(maps[i].p, MAPLEN, maps[i].id))
			wl_fail(&w, "mapping %llu changed", (unsigned long long)maps[i].id);
	if (child_failures)
		wl_fail(&w, "%llu children found their memory changed", (unsigned long long)child_failures);
	while (wl_now_ms() < end && (next_id < start + 2 || children < kids + 1))
		churn();
	if (next_id < start + 2 || children < kids + 1)
		wl_fail(&w, "the churn stopped");
	wl_answer(&w);
}

int main(int argc, char **argv)
{
	wl_start_args(&w, "wl-churn", argc, argv);
	wl_ready(&w);
	while (!wl_stop) {
		churn();
		if (wl_check_req) {
			wl_check_req = 0;
			verify();
		}
	}
	return 0;
}
