/* escape WHAT [ARG...]: one system call that a VE's root must not be able
 * to make, tried as it is, for tests/integration/isolation.bats.
 *
 *   handle PATH             print PATH's file handle (run on the host)
 *   open_by_handle H [TEXT] open_by_handle_at(H) relative to "/"; read its
 *                           first line, or append TEXT when given
 *   init_module             init_module() of bytes that are no module, and
 *                           finit_module() of this program with a bad flag
 *   kexec                   kexec_load() and kexec_file_load() with bad
 *                           arguments: they load and unload nothing
 *   settime                 clock_settime(CLOCK_REALTIME) to the time just
 *                           read, so that even a success moves no clock
 *
 * Prints one line per call: its name and "permitted" or "refused", with
 * the errno's name. A call that got past the permission checks and failed
 * only on its argument (ENOEXEC for a module that is none) is permitted:
 * the caller was allowed to try.
 * Exit: 0 when a call was permitted, 1 when all were refused (EPERM or
 * EACCES), 3 when the kernel has none of them (ENOSYS), 2 on bad usage or
 * any other error. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { PERMITTED = 0, REFUSED = 1, OTHER = 2, NOSYS = 3 };

static const char *errno_name(int e)
{
	switch (e) {
	case 0: return "success";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOSYS: return "ENOSYS";
	case ENOEXEC: return "ENOEXEC";
	case EINVAL: return "EINVAL";
	case ESTALE: return "ESTALE";
	default: return strerror(e);
	}
}

/* What a call's result says: refused by a permission check, absent from
 * the kernel, or let through. */
static int verdict(const char *call, long ret, int e)
{
	const char *word = "permitted";
	int v = PERMITTED;

	if (ret == 0) {
		e = 0;
	} else if (e == EPERM || e == EACCES) {
		v = REFUSED;
		word = "refused";
	} else if (e == ENOSYS) {
		v = NOSYS;
		word = "not in this kernel";
	}
	printf("%s: %s (%s)\n", call, word, errno_name(e));
	return v;
}

/* The verdict of several calls: permitted if any was. */
static int worst(int a, int b)
{
	if (a == PERMITTED || b == PERMITTED)
		return PERMITTED;
	if (a == REFUSED || b == REFUSED)
		return REFUSED;
	return a;
}

/* A handle of the largest size; the bytes follow the header. */
static struct file_handle *new_handle(void)
{
	struct file_handle *fh = calloc(1, sizeof(*fh) + MAX_HANDLE_SZ);

	if (!fh) {
		perror("calloc");
		exit(OTHER);
	}
	fh->handle_bytes = MAX_HANDLE_SZ;
	return fh;
}

static int print_handle(const char *path)
{
	struct file_handle *fh = new_handle();
	unsigned char *bytes = (unsigned char *)(fh + 1);
	int mount_id;

	if (name_to_handle_at(AT_FDCWD, path, fh, &mount_id, 0) != 0) {
		fprintf(stderr, "name_to_handle_at %s: %s\n", path, strerror(errno));
		return OTHER;
	}
	printf("%d:", fh->handle_type);
	for (unsigned i = 0; i < fh->handle_bytes; i++)
		printf("%02x", bytes[i]);
	printf("\n");
	free(fh);
	return 0;
}

/* "TYPE:HEX" as print_handle writes it. */
static int parse_handle(const char *s, struct file_handle *fh)
{
	unsigned char *bytes = (unsigned char *)(fh + 1);
	char *end;
	size_t n = 0;

	fh->handle_type = (int)strtol(s, &end, 10);
	if (*end != ':')
		return -1;
	for (s = end + 1; s[0] && s[1] && n < MAX_HANDLE_SZ; s += 2) {
		unsigned v;

		if (sscanf(s, "%2x", &v) != 1)
			return -1;
		bytes[n++] = (unsigned char)v;
	}
	fh->handle_bytes = (unsigned)n;
	return *s ? -1 : 0;
}

static int open_by_handle(const char *hex, const char *text)
{
	struct file_handle *fh = new_handle();
	char line[256];
	int root, fd, v;
	ssize_t n;

	if (parse_handle(hex, fh) != 0) {
		fprintf(stderr, "Bad handle %s\n", hex);
		return OTHER;
	}
	root = open("/", O_RDONLY | O_DIRECTORY);
	if (root < 0) {
		perror("open /");
		return OTHER;
	}
	fd = open_by_handle_at(root, fh, text ? O_WRONLY | O_APPEND : O_RDONLY);
	v = verdict("open_by_handle_at", fd < 0 ? -1 : 0, errno);
	free(fh);
	if (fd < 0)
		return v;
	if (text) {
		n = write(fd, text, strlen(text));
		printf("wrote %zd bytes\n", n);
	} else {
		n = read(fd, line, sizeof(line) - 1);
		line[n > 0 ? n : 0] = '\0';
		line[strcspn(line, "\n")] = '\0';
		printf("read: %s\n", line);
	}
	close(fd);
	return v;
}

static int try_init_module(void)
{
	static const char not_a_module[64] = "this is not an ELF file";
	int fd, v;
	long r;

	r = syscall(SYS_init_module, not_a_module, sizeof(not_a_module), "");
	v = verdict("init_module", r, errno);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		perror("open /proc/self/exe");
		return OTHER;
	}
	/* A flag that does not exist: refused with EINVAL after the
	 * permission check, before the file is read. */
	r = syscall(SYS_finit_module, fd, "", 1 << 30);
	v = worst(v, verdict("finit_module", r, errno));
	close(fd);
	return v;
}

/* Arguments the kernel checks only after the permission check, and then
 * refuses with EINVAL: 17 segments (KEXEC_SEGMENT_MAX is 16) and a flag
 * that does not exist. Even where the call is permitted nothing is loaded
 * or unloaded. */
static int try_kexec(void)
{
	long r;
	int v;

	r = syscall(SYS_kexec_load, 0UL, 17UL, NULL, 0UL);
	v = verdict("kexec_load", r, errno);
#ifdef SYS_kexec_file_load
	r = syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 1UL << 30);
	v = worst(v, verdict("kexec_file_load", r, errno));
#endif
	return v;
}

/* The time just read, set again: even a success moves the clock only by
 * the microseconds between the two calls. (settimeofday(NULL, NULL) would
 * be no probe: Linux answers it without a permission check.) */
static int try_settime(void)
{
	struct timespec ts;
	int r;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
		perror("clock_gettime");
		return OTHER;
	}
	r = clock_settime(CLOCK_REALTIME, &ts);
	return verdict("clock_settime", r, errno);
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	int v = OTHER;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(what, "handle") && argc == 3)
		v = print_handle(argv[2]);
	else if (!strcmp(what, "open_by_handle") && (argc == 3 || argc == 4))
		v = open_by_handle(argv[2], argc == 4 ? argv[3] : NULL);
	else if (!strcmp(what, "init_module") && argc == 2)
		v = try_init_module();
	else if (!strcmp(what, "kexec") && argc == 2)
		v = try_kexec();
	else if (!strcmp(what, "settime") && argc == 2)
		v = try_settime();
	else
		fprintf(stderr, "usage: escape handle PATH | open_by_handle HANDLE [TEXT] | init_module | kexec | "
				"settime\n");
	return v;
}
