/* wl-readinto [-m MiB] [-r MiB/s] [-n tag]: memory only the kernel writes.
 * A buffer of -m MiB (default 16) is filled, and then rewritten at -r MiB/s
 * (default 4), 16 KiB chunk by chunk, by read(): each step makes the next
 * generation of one chunk's content in a scratch buffer, puts it in a file
 * (<base>.dat, pread() back into the chunk) or in a pipe (read() back into
 * it), in turn. The pages a pre-copy tracker write-protected are thus
 * written by the kernel (copy_to_user), not by the process: a tracker that
 * made such writes fail (EFAULT) or missed them leaves a chunk behind.
 * Verify: every chunk holds the content of the generation recorded for it,
 * no read() ever failed or came short, and reading goes on. */
#include <getopt.h>
#include <sys/mman.h>

#include "wl.h"

#define CHUNK (16 << 10)
#define SLOTS 16 /* chunks the file holds */

static struct wl w;
static uint8_t *buf;
static uint64_t *gens, seed, steps;
static size_t nchunks;
static int fd, pfd[2];

/* Word k of chunk i at generation gen. */
static uint64_t word(size_t i, uint64_t gen, size_t k)
{
	return wl_mix(seed ^ wl_mix(i ^ (gen << 32)) ^ k);
}

/* All of len bytes from fd into p (a pipe may hand them in parts). */
static bool read_full(int from, uint8_t *p, size_t len, off_t off, bool positioned)
{
	while (len > 0) {
		ssize_t n = positioned ? pread(from, p, len, off) : read(from, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			wl_fail(&w, "read() into the buffer at %p: %s", (void *)p,
				n < 0 ? strerror(errno) : "end of file");
			return false;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return true;
}

/* Chunk i becomes generation gen, written by the kernel. */
static void step(size_t i, uint64_t gen, bool by_pipe)
{
	static uint64_t scratch[CHUNK / 8];
	off_t off = (off_t)(i % SLOTS) * CHUNK;

	for (size_t k = 0; k < CHUNK / 8; k++)
		scratch[k] = word(i, gen, k);
	if (by_pipe) {
		if (write(pfd[1], scratch, CHUNK) != CHUNK) {
			wl_fail(&w, "write() to the pipe: %s", strerror(errno));
			return;
		}
		if (!read_full(pfd[0], buf + i * CHUNK, CHUNK, 0, false))
			return;
	} else {
		if (pwrite(fd, scratch, CHUNK, off) != CHUNK) {
			wl_fail(&w, "pwrite() to the file: %s", strerror(errno));
			return;
		}
		if (!read_full(fd, buf + i * CHUNK, CHUNK, off, true))
			return;
	}
	gens[i] = gen;
	steps++;
}

static void verify(void)
{
	wl_check_pid(&w);
	for (size_t i = 0; i < nchunks && !w.fail[0]; i++) {
		const uint64_t *p = (const uint64_t *)(buf + i * CHUNK);

		for (size_t k = 0; k < CHUNK / 8; k++)
			if (p[k] != word(i, gens[i], k)) {
				wl_fail(&w, "chunk %zu (generation %llu) differs at word %zu", i,
					(unsigned long long)gens[i], k);
				break;
			}
	}
}

int main(int argc, char **argv)
{
	const char *tag = NULL;
	unsigned long mib = 16;
	double rate = 4, due = 0;
	uint64_t r, next, asked = 0;
	bool answer = false;
	char path[512];
	int c;

	while ((c = getopt(argc, argv, "m:r:n:")) != -1) {
		switch (c) {
		case 'm': mib = strtoul(optarg, NULL, 10); break;
		case 'r': rate = strtod(optarg, NULL); break;
		case 'n': tag = optarg; break;
		default: fprintf(stderr, "usage: wl-readinto [-m MiB] [-r MiB/s] [-n tag]\n"); return 2;
		}
	}
	if (mib == 0 || rate <= 0) {
		fprintf(stderr, "wl-readinto: bad arguments\n");
		return 2;
	}
	wl_start(&w, "wl-readinto", tag);
	nchunks = (size_t)mib * ((1 << 20) / CHUNK);
	seed = r = wl_mix((uint64_t)getpid() ^ (uint64_t)time(NULL));
	snprintf(path, sizeof(path), "%s/%s.dat", w.dir, w.base);
	buf = mmap(NULL, nchunks * CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gens = calloc(nchunks, sizeof(*gens));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (buf == MAP_FAILED || !gens || fd < 0 || pipe(pfd) != 0)
		wl_abort(&w, "set up %lu MiB and %s: %s", mib, path, strerror(errno));
	for (size_t i = 0; i < nchunks; i++)
		step(i, 0, false);
	if (w.fail[0])
		wl_abort(&w, "%s", w.fail);
	wl_ready(&w);
	next = wl_now_ms();
	while (!wl_stop) {
		/* 64 chunks a MiB: due grows by rate * 64 chunks a second. */
		due += rate * 64 / 100;
		while (due >= 1) {
			size_t i = (size_t)((r = wl_mix(r)) % nchunks);

			step(i, gens[i] + 1, steps % 2);
			due -= 1;
		}
		if (wl_check_req) {
			wl_check_req = 0;
			verify();
			asked = steps;
			answer = true;
		}
		/* Answered once reading went on after the request. */
		if (answer && steps > asked + 4) {
			answer = false;
			wl_answer(&w);
		}
		wl_tick(&next, 10);
	}
	return 0;
}
