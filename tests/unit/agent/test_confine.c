/* agent/ve_confine.c: the capabilities a VE's processes lose, and what its
 * seccomp filter refuses and lets through, in the native and the i386
 * ABI. Criterion runs each test in a process of its own, so a test may
 * confine itself. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "ve_confine.h"

#define BIT(cap) (1ULL << (cap))

Test(confine, dropped_caps_are_the_hosts_and_keep_what_a_system_needs)
{
	static const int dropped[] = {
		CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME,   CAP_MAC_ADMIN,	  CAP_MAC_OVERRIDE, CAP_AUDIT_CONTROL,
		CAP_AUDIT_READ, CAP_SYSLOG,    CAP_WAKE_ALARM, CAP_BLOCK_SUSPEND, CAP_PERFMON,	    CAP_BPF,
	};
	/* A VE halts itself with reboot(2), mounts, runs its own network
	 * and debuggers, and its own CRIU. */
	static const int kept[] = {
		CAP_SYS_BOOT, CAP_SYS_ADMIN,	CAP_NET_ADMIN, CAP_SYS_PTRACE,	       CAP_SETPCAP,  CAP_SETUID,
		CAP_SETGID,   CAP_DAC_OVERRIDE, CAP_CHOWN,     CAP_CHECKPOINT_RESTORE, CAP_SYS_NICE, CAP_SYS_RESOURCE,
	};
	uint64_t mask = ve_confine_dropped_caps(), want = 0;

	for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
		want |= BIT(dropped[i]);
	cr_assert_eq(mask, want, "dropped %#llx, expected %#llx", (unsigned long long)mask, (unsigned long long)want);
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		cr_assert_eq(mask & BIT(kept[i]), 0, "capability %d must stay", kept[i]);
}

/* The hex mask of field ("CapBnd", ...) or the number of "Seccomp" in
 * /proc/self/status. */
static uint64_t status_field(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	uint64_t v = UINT64_MAX;
	FILE *f = fopen("/proc/self/status", "r");

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = strtoull(line + n + 1, NULL, strncmp(field, "Cap", 3) ? 10 : 16);
	fclose(f);
	cr_assert_neq(v, UINT64_MAX, "no %s in /proc/self/status", field);
	return v;
}

/* errno of a native call that failed, 0 when it succeeded. */
static int call_errno(long ret)
{
	return ret < 0 ? errno : 0;
}

static void confine_or_skip(void)
{
	struct vz_err err = { 0 };

	if (geteuid() != 0)
		cr_skip_test("Confinement needs root (CAP_SETPCAP, CAP_SYS_ADMIN)");
	cr_assert_eq(ve_confine_self(&err), 0, "%s", err.msg);
}

Test(confine, confined_process_lacks_the_caps_and_runs_the_filter_without_nnp)
{
	uint64_t mask = ve_confine_dropped_caps();

	confine_or_skip();
	cr_assert_eq(status_field("Seccomp"), 2);
	/* setuid programs in the VE rely on it. */
	cr_assert_eq(status_field("NoNewPrivs"), 0);
	cr_assert_eq(status_field("CapBnd") & mask, 0);
	cr_assert_eq(status_field("CapEff") & mask, 0);
	cr_assert_eq(status_field("CapPrm") & mask, 0);
	cr_assert_eq(status_field("CapInh") & mask, 0);
	cr_assert_eq(status_field("CapAmb") & mask, 0);
	cr_assert_neq(status_field("CapBnd") & BIT(CAP_SYS_BOOT), 0);
}

Test(confine, filter_refuses_the_hosts_calls_with_their_errno)
{
	confine_or_skip();
	/* Without the filter each of these gets another answer (a key's
	 * id, EBADF, EFAULT, ENOENT), so each errno is the filter's. */
	cr_assert_eq(call_errno(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0)), ENOSYS);
	cr_assert_eq(call_errno(syscall(SYS_add_key, NULL, NULL, NULL, 0, 0)), ENOSYS);
	cr_assert_eq(call_errno(syscall(SYS_open_by_handle_at, -1, NULL, 0)), EPERM);
	cr_assert_eq(call_errno(syscall(SYS_kexec_load, 0, 0, NULL, 0)), EPERM);
	cr_assert_eq(call_errno(syscall(SYS_finit_module, -1, "", 0)), EPERM);
	cr_assert_eq(call_errno(syscall(SYS_swapon, NULL, 0)), EPERM);
	cr_assert_eq(call_errno(syscall(SYS_clock_settime, CLOCK_REALTIME, NULL)), EPERM);
	cr_assert_eq(call_errno(syscall(SYS_bpf, 0, NULL, 0)), EPERM);
	cr_assert_eq(call_errno(umount2("/nonexistent-confine-test", MNT_FORCE)), EACCES);
}

Test(confine, filter_lets_through_what_a_ve_and_criu_need)
{
	long fd;

	confine_or_skip();
	/* CRIU's lazy restore and the pre-copy tracker inject it. */
	fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	cr_assert_geq(fd, 0, "userfaultfd: %s", strerror(errno));
	close((int)fd);
	cr_assert_eq(call_errno(umount2("/nonexistent-confine-test", 0)), ENOENT);
	cr_assert_eq(call_errno(syscall(SYS_name_to_handle_at, AT_FDCWD, "/", NULL, NULL, 0)), EFAULT);
}

#if defined(__x86_64__)
/* An i386 system call from this x86_64 process. */
static int int80(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return (int)ret;
}

#define I386_GETPID	       20
#define I386_SWAPON	       87
#define I386_KEYCTL	       288
#define I386_OPEN_BY_HANDLE_AT 342

/* Whether this kernel runs i386 calls at all (ia32_emulation): a child
 * tries, since int 0x80 without it is a fault. */
static bool have_ia32(void)
{
	int status;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(int80(I386_GETPID, 0, 0, 0) == getpid() ? 0 : 1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Test(confine, filter_refuses_the_same_calls_in_the_i386_abi)
{
	if (!have_ia32())
		cr_skip_test("This kernel runs no i386 system calls");
	confine_or_skip();
	cr_assert_eq(int80(I386_KEYCTL, 0, -3, 0), -ENOSYS);
	cr_assert_eq(int80(I386_SWAPON, 0, 0, 0), -EPERM);
	cr_assert_eq(int80(I386_OPEN_BY_HANDLE_AT, -1, 0, 0), -EPERM);
	cr_assert_eq(int80(I386_GETPID, 0, 0, 0), getpid());
}
#endif
