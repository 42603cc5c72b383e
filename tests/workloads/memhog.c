/* memhog MiB [hold]: allocate and touch MiB of memory, one page at a time,
 * printing progress every 16 MiB; with "hold", wait for SIGTERM after.
 * Used to push a VE past its memory limit. Exits 0 when it got it all. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	size_t mib, len, page = (size_t)sysconf(_SC_PAGESIZE);
	char *p;

	if (argc < 2 || (mib = strtoul(argv[1], NULL, 10)) == 0) {
		fprintf(stderr, "usage: memhog MiB [hold]\n");
		return 2;
	}
	len = mib << 20;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t off = 0; off < len; off += page) {
		p[off] = (char)(off / page);
		if (off % (16u << 20) == 0) {
			printf("%zu MiB\n", off >> 20);
			fflush(stdout);
		}
	}
	printf("got %zu MiB\n", mib);
	fflush(stdout);
	if (argc > 2 && !strcmp(argv[2], "hold"))
		pause();
	return 0;
}
