/* wl-mem -m MiB [-r MiB/s] [-t threads] [-n tag]: memory whose every page
 * can prove itself. Each 4 KiB page holds {magic, index, generation} and a
 * body derived from (index, generation, seed). Writers (-t threads) rewrite
 * random pages of their own slice at -r MiB/s in all, bumping the page's
 * generation. Verify: every page self-consistent and no newer than the
 * writes done, and (with -r) writing goes on. SIGUSR2 writes an FNV-1a
 * digest of the whole region to <base>.digest. */
#include <getopt.h>
#include <pthread.h>
#include <sys/mman.h>

#include "wl.h"

#define PAGE  4096
#define MAGIC 0x574c4d454d504147ull /* "WLMEMPAG" */

struct page_hdr {
	uint64_t magic, index, gen;
};

static struct wl w;
static uint8_t *mem;
static size_t npages;
static uint64_t seed;
static double rate_mib;
static int nthreads = 1;
static uint64_t *writes; /* per thread */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static void fill_page(size_t i, uint64_t gen)
{
	uint64_t *p = (uint64_t *)(mem + i * PAGE), v = wl_mix(i ^ (gen << 32) ^ seed);
	struct page_hdr *h = (struct page_hdr *)p;

	for (size_t k = 3; k < PAGE / 8; k++) {
		v = wl_mix(v + k);
		p[k] = v;
	}
	h->index = i;
	h->gen = gen;
	h->magic = MAGIC;
}

static bool page_ok(size_t i, uint64_t max_gen, char *why, size_t len)
{
	uint64_t *p = (uint64_t *)(mem + i * PAGE), v;
	struct page_hdr h = *(struct page_hdr *)p;

	if (h.magic != MAGIC || h.index != i) {
		snprintf(why, len, "page %zu has a wrong header", i);
		return false;
	}
	if (h.gen > max_gen) {
		snprintf(why, len, "page %zu has generation %llu, beyond the %llu writes made", i,
			 (unsigned long long)h.gen, (unsigned long long)max_gen);
		return false;
	}
	v = wl_mix(i ^ (h.gen << 32) ^ seed);
	for (size_t k = 3; k < PAGE / 8; k++) {
		v = wl_mix(v + k);
		if (p[k] != v) {
			snprintf(why, len, "page %zu word %zu differs", i, k);
			return false;
		}
	}
	return true;
}

static uint64_t total_writes(void)
{
	uint64_t t = 0;

	for (int i = 0; i < nthreads; i++)
		t += __atomic_load_n(&writes[i], __ATOMIC_RELAXED);
	return t;
}

/* A writer owns pages [lo, hi) and rewrites them at its share of the rate. */
static void *writer(void *arg)
{
	int id = (int)(intptr_t)arg;
	size_t lo = npages * (size_t)id / (size_t)nthreads, hi = npages * (size_t)(id + 1) / (size_t)nthreads;
	double pages_per_10ms = rate_mib * 256.0 / 100.0 / nthreads, due = 0;
	uint64_t r = wl_mix(seed + (uint64_t)id), next = wl_now_ms();

	if (hi <= lo)
		return NULL;
	while (!wl_stop) {
		due += pages_per_10ms;
		while (due >= 1) {
			size_t i = lo + (size_t)((r = wl_mix(r)) % (hi - lo));
			uint64_t gen = ((struct page_hdr *)(mem + i * PAGE))->gen + 1;

			/* Count the write before making it, so a page is never
			 * newer than the count a verifier reads. */
			__atomic_add_fetch(&writes[id], 1, __ATOMIC_SEQ_CST);
			fill_page(i, gen);
			due -= 1;
		}
		wl_tick(&next, 10);
	}
	return NULL;
}

static void digest(void)
{
	uint64_t h = 0xcbf29ce484222325ull;
	char buf[64];

	for (size_t i = 0; i < npages * PAGE; i++) {
		h ^= mem[i];
		h *= 0x100000001b3ull;
	}
	snprintf(buf, sizeof(buf), "%016llx\n", (unsigned long long)h);
	wl_write_file(&w, "digest", buf);
}

static void verify(void)
{
	uint64_t before = total_writes(), end = wl_now_ms() + 2000;
	char why[256];

	wl_check_pid(&w);
	for (size_t i = 0; i < npages; i++) {
		/* A page may be rewritten while we read it: look again. */
		if (!page_ok(i, total_writes(), why, sizeof(why)) && !page_ok(i, total_writes(), why, sizeof(why))) {
			wl_sleep_us(1000);
			if (!page_ok(i, total_writes(), why, sizeof(why))) {
				pthread_mutex_lock(&fail_lock);
				wl_fail(&w, "%s", why);
				pthread_mutex_unlock(&fail_lock);
				break;
			}
		}
	}
	if (rate_mib > 0) {
		while (total_writes() == before && wl_now_ms() < end)
			wl_sleep_us(10000);
		if (total_writes() == before)
			wl_fail(&w, "the writers stopped");
	}
	wl_answer(&w);
}

int main(int argc, char **argv)
{
	const char *tag = NULL;
	unsigned long mib = 64;
	pthread_t *th;
	int c;

	while ((c = getopt(argc, argv, "m:r:t:n:")) != -1) {
		switch (c) {
		case 'm': mib = strtoul(optarg, NULL, 10); break;
		case 'r': rate_mib = strtod(optarg, NULL); break;
		case 't': nthreads = atoi(optarg); break;
		case 'n': tag = optarg; break;
		default: fprintf(stderr, "usage: wl-mem -m MiB [-r MiB/s] [-t threads] [-n tag]\n"); return 2;
		}
	}
	if (mib == 0 || nthreads < 1 || nthreads > 256 || rate_mib < 0) {
		fprintf(stderr, "wl-mem: bad arguments\n");
		return 2;
	}
	wl_start(&w, "wl-mem", tag);
	npages = (size_t)mib * 256;
	seed = wl_mix((uint64_t)getpid() ^ (uint64_t)time(NULL));
	mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	writes = calloc((size_t)nthreads, sizeof(*writes));
	th = calloc((size_t)nthreads, sizeof(*th));
	if (mem == MAP_FAILED || !writes || !th)
		wl_abort(&w, "cannot map %lu MiB", mib);
	for (size_t i = 0; i < npages; i++)
		fill_page(i, 0);
	if (rate_mib > 0)
		for (int i = 0; i < nthreads; i++)
			if (pthread_create(&th[i], NULL, writer, (void *)(intptr_t)i) != 0)
				wl_abort(&w, "cannot start writer threads");
	wl_ready(&w);
	while (!wl_stop) {
		if (wl_check_req) {
			wl_check_req = 0;
			verify();
		}
		if (wl_dump_req) {
			wl_dump_req = 0;
			digest();
		}
		wl_sleep_us(20000);
	}
	return 0;
}
