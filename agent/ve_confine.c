/* What a VE's root may not do although its namespaces would let it: the
 * capabilities dropped from every process of the VE, the system calls its
 * seccomp filter refuses, and the paths of /proc and /sys masked or made
 * read-only. The lists follow what LXC (its common.conf and
 * common.seccomp) and Docker (its default capabilities and seccomp
 * profile) refuse a container by default, less what a whole system in a
 * VE needs: a VE runs an init that halts it with reboot(2), mounts, a
 * network stack of its own, debuggers, and is checkpointed by CRIU, whose
 * lazy restore and our pre-copy tracker make a userfaultfd in its
 * processes. README.md ("VE isolation") has the same tables with the
 * reasons; keep the two in step. */
#define LOG_PREFIX "confine: "
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "ve_confine.h"

/* Dropped from every process of the VE: each reaches past the VE's
 * namespaces into what the host alone owns. */
static const struct {
	int cap;
	const char *name;
} dropped_caps[] = {
	{ CAP_SYS_MODULE, "CAP_SYS_MODULE" },	  /* loads code into the host's kernel (LXC, Docker) */
	{ CAP_SYS_RAWIO, "CAP_SYS_RAWIO" },	  /* I/O ports, /dev/mem, raw SCSI: the host's hardware (LXC, Docker) */
	{ CAP_SYS_TIME, "CAP_SYS_TIME" },	  /* sets the clock, which is the host's (LXC, Docker) */
	{ CAP_MAC_ADMIN, "CAP_MAC_ADMIN" },	  /* changes the host's LSM policy (LXC, Docker) */
	{ CAP_MAC_OVERRIDE, "CAP_MAC_OVERRIDE" }, /* bypasses the host's LSM policy (LXC, Docker) */
	{ CAP_AUDIT_CONTROL, "CAP_AUDIT_CONTROL" }, /* the audit rules, which are the host's (Docker) */
	{ CAP_AUDIT_READ, "CAP_AUDIT_READ" },	    /* reads the host's audit log (Docker) */
	{ CAP_SYSLOG, "CAP_SYSLOG" },		    /* the host's kernel log and kernel addresses (Docker) */
	{ CAP_WAKE_ALARM, "CAP_WAKE_ALARM" },	    /* wakes the host from suspend (Docker) */
	{ CAP_BLOCK_SUSPEND, "CAP_BLOCK_SUSPEND" }, /* keeps the host from suspending (Docker) */
	{ CAP_PERFMON, "CAP_PERFMON" },		    /* profiles every CPU, process and the kernel (Docker) */
	{ CAP_BPF, "CAP_BPF" },			    /* BPF programs that read kernel memory (Docker) */
};

/* Refused by the VE's filter. EPERM as LXC and Docker answer, but ENOSYS
 * for the keyrings (as Proxmox's LXC profile answers keyctl): programs
 * take it for a kernel without keyrings and go on, where EPERM makes some
 * (pam_keyinit, systemd's units) fail. */
struct denied_call {
	int nr;
	const char *name;
	int err;
};

#define DENY(call, e)                                                                                                  \
	{                                                                                                              \
		SCMP_SYS(call), #call, e                                                                               \
	}

static const struct denied_call denied_calls[] = {
	DENY(kexec_load, EPERM),	/* boots another kernel on the host (LXC, Docker) */
	DENY(kexec_file_load, EPERM),	/* the same from a file (Docker) */
	DENY(init_module, EPERM),	/* loads a module into the host's kernel (LXC, Docker) */
	DENY(finit_module, EPERM),	/* the same from a file (LXC, Docker) */
	DENY(delete_module, EPERM),	/* unloads one of the host's modules (LXC, Docker) */
	DENY(open_by_handle_at, EPERM), /* opens any file of a file system, outside the VE's root (LXC, Docker) */
	DENY(add_key, ENOSYS),		/* the kernel's keyrings are not namespaced (Docker) */
	DENY(keyctl, ENOSYS),		/* the same */
	DENY(request_key, ENOSYS),	/* the same */
	DENY(swapon, EPERM),		/* the host's swap (Docker) */
	DENY(swapoff, EPERM),		/* the same */
	DENY(settimeofday, EPERM),	/* the clock is the host's (Docker) */
	DENY(clock_settime, EPERM),	/* the same */
	DENY(clock_settime64, EPERM),	/* the same, i386 */
	DENY(stime, EPERM),		/* the same, i386 */
	DENY(iopl, EPERM),		/* I/O ports: the host's hardware (Docker) */
	DENY(ioperm, EPERM),		/* the same */
	DENY(bpf, EPERM),		/* BPF programs run in the host's kernel (Docker) */
	DENY(perf_event_open, EPERM),	/* watches the host's CPUs and kernel (Docker) */
	DENY(lookup_dcookie, EPERM),	/* names the host's files by cookie (Docker) */
	DENY(acct, EPERM),		/* process accounting is the host's to switch (Docker) */
};

uint64_t ve_confine_dropped_caps(void)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < ARRAY_SIZE(dropped_caps); i++)
		mask |= 1ULL << dropped_caps[i].cap;
	return mask;
}

static int drop_caps(struct vz_err *err)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	uint64_t mask = ve_confine_dropped_caps();

	for (size_t i = 0; i < ARRAY_SIZE(dropped_caps); i++) {
		int cap = dropped_caps[i].cap;

		/* One this kernel does not know, no process holds. */
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
			return vz_error(err, errno, "Drop %s from the bounding set", dropped_caps[i].name);
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap, 0, 0) != 0 && errno != EINVAL)
			return vz_error(err, errno, "Drop %s from the ambient set", dropped_caps[i].name);
	}
	/* A root that execs gets back what its inheritable set and the
	 * bounding set allow: both must lack them. */
	if (syscall(SYS_capget, &hdr, data) != 0)
		return vz_error(err, errno, "Read the capability sets");
	for (int i = 0; i < 2; i++) {
		uint32_t keep = ~(uint32_t)(mask >> (32 * i));

		data[i].effective &= keep;
		data[i].permitted &= keep;
		data[i].inheritable &= keep;
	}
	if (syscall(SYS_capset, &hdr, data) != 0)
		return vz_error(err, errno, "Drop the capabilities");
	return 0;
}

/* The rules on ctx: each denied call, and LXC's reject_force_umount: a
 * forced unmount aborts the I/O of every user of the file system, the
 * host's included (EACCES, as LXC). */
static int add_rules(scmp_filter_ctx ctx, struct vz_err *err)
{
	int ret;

	for (size_t i = 0; i < ARRAY_SIZE(denied_calls); i++) {
		const struct denied_call *d = &denied_calls[i];

		/* libseccomp maps the call to each ABI of the filter, and
		 * leaves out an ABI that does not have it. */
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(d->err), d->nr, 0);
		if (ret < 0)
			return vz_error(err, ret, "Add %s to the VE's seccomp filter", d->name);
	}
	ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(umount2), 1,
			       SCMP_A1(SCMP_CMP_MASKED_EQ, MNT_FORCE, MNT_FORCE));
	if (ret < 0)
		return vz_error(err, ret, "Add umount2 to the VE's seccomp filter");
	return 0;
}

static int load_filter(struct vz_err *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int ret;

	if (!ctx)
		return vz_error_msg(err, ENOMEM, "Create the VE's seccomp filter");
	/* No no_new_privs: setuid programs must work in the VE. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (ret < 0) {
		vz_error(err, ret, "Leave no_new_privs unset");
		goto out;
	}
	/* An ABI the filter does not know gets no call through. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ERRNO(ENOSYS));
	if (ret < 0) {
		vz_error(err, ret, "Set the seccomp filter's answer to other ABIs");
		goto out;
	}
	/* An x86_64 process can make i386 calls (int 0x80) and, where the
	 * kernel has it, x32 calls: each is refused the same. */
	if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
		static const uint32_t compat[] = { SCMP_ARCH_X86, SCMP_ARCH_X32 };

		for (size_t i = 0; i < ARRAY_SIZE(compat); i++) {
			ret = seccomp_arch_add(ctx, compat[i]);
			if (ret < 0 && ret != -EEXIST) {
				vz_error(err, ret, "Add a 32-bit ABI to the VE's seccomp filter");
				goto out;
			}
		}
	}
	ret = add_rules(ctx, err);
	if (ret < 0)
		goto out;
	ret = seccomp_load(ctx);
	if (ret < 0)
		vz_error(err, ret, "Install the VE's seccomp filter");
out:
	seccomp_release(ctx);
	return ret < 0 ? ret : 0;
}

int ve_confine_self(struct vz_err *err)
{
	int ret = drop_caps(err);

	if (ret == 0)
		ret = load_filter(err);
	return ret < 0 ? vz_error_wrap(err, "Confine the VE's process") : 0;
}

/* ---- /proc and /sys ---------------------------------------------------- */

/* Masked, as runc's default masked paths: host-wide state a VE has no use
 * for, some of it a way into the kernel. */
static const char *const masked_paths[] = {
	"/proc/acpi",			 /* the host's ACPI, some of it writable */
	"/proc/asound",			 /* the host's sound cards */
	"/proc/kcore",			 /* the host's physical memory as an ELF core */
	"/proc/keys",			 /* every key of the kernel's keyrings a VE's process may view */
	"/proc/latency_stats",		 /* the host's scheduling latencies, and a switch for them */
	"/proc/sched_debug",		 /* every task of the host, with its name */
	"/proc/scsi",			 /* the host's SCSI bus, with commands to add and remove devices */
	"/proc/timer_list",		 /* the host's timers, with their owners' names */
	"/proc/timer_stats",		 /* the same, on kernels before 4.11 */
	"/sys/devices/virtual/powercap", /* the CPUs' energy counters: a side channel (PLATYPUS) */
	"/sys/firmware",		 /* the host's firmware tables and EFI variables */
};

/* Read-only, as runc's and LXC's: the host's, and writable by root. */
static const char *const readonly_paths[] = {
	"/proc/bus",	       /* the host's PCI and USB devices' configuration */
	"/proc/fs",	       /* the host's file system settings (nfsd and others) */
	"/proc/irq",	       /* the host's interrupt affinities */
	"/proc/sysrq-trigger", /* reboots or crashes the host */
};

/* /proc/sys is read-only but for its net/ (as LXC's proc:mixed): those
 * knobs belong to the VE's own network namespace, and servers tune them. */
#define SYSCTL_DIR  "/proc/sys"
#define SYSCTL_KEEP "/proc/sys/net"

/* The mount flags of path that a bind remount must repeat (it replaces
 * them all): nosuid, nodev, noexec and the atime ones of /proc and /sys. */
static unsigned long kept_flags(const char *path)
{
	static const struct {
		unsigned long st, ms;
	} map[] = {
		{ ST_NOSUID, MS_NOSUID },   { ST_NODEV, MS_NODEV },	      { ST_NOEXEC, MS_NOEXEC },
		{ ST_NOATIME, MS_NOATIME }, { ST_NODIRATIME, MS_NODIRATIME }, { ST_RELATIME, MS_RELATIME },
	};
	unsigned long flags = 0;
	struct statvfs sv;

	if (statvfs(path, &sv) != 0)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (sv.f_flag & map[i].st)
			flags |= map[i].ms;
	return flags;
}

/* 1 when root/rel exists (with its type in *mode), 0 when it does not. */
static int lookup(const char *root, const char *rel, char *path, size_t size, mode_t *mode, struct vz_err *err)
{
	struct stat st;

	snprintf(path, size, "%s%s", root, rel);
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		return vz_error(err, errno, "Look up %s in the VE", rel);
	}
	*mode = st.st_mode;
	return 1;
}

static int bind_readonly(const char *path, const char *rel, struct vz_err *err)
{
	if (mount(path, path, NULL, MS_BIND, NULL) != 0)
		return vz_error(err, errno, "Bind %s in the VE", rel);
	if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | kept_flags(path), NULL) != 0)
		return vz_error(err, errno, "Make %s read-only in the VE", rel);
	return 0;
}

static int mask(const char *root, const char *rel, struct vz_err *err)
{
	char path[PATH_MAX], null[PATH_MAX];
	mode_t mode;
	int ret = lookup(root, rel, path, sizeof(path), &mode, err);

	if (ret <= 0)
		return ret;
	if (S_ISDIR(mode)) {
		if (mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			  "size=4k,nr_inodes=1,mode=0555") != 0)
			return vz_error(err, errno, "Mask %s in the VE", rel);
		return 0;
	}
	/* The VE's own /dev/null, not the host's: a mount from inside the
	 * VE's tree, which CRIU dumps and restores with it. */
	snprintf(null, sizeof(null), "%s/dev/null", root);
	if (mount(null, path, NULL, MS_BIND, NULL) != 0)
		return vz_error(err, errno, "Mask %s in the VE", rel);
	return 0;
}

/* /proc/sys read-only with /proc/sys/net as it was: a clone of net/ is
 * taken aside, /proc/sys is made read-only, and the clone goes back on
 * top, so no mount is left hidden under another. */
static int readonly_sysctl(const char *root, struct vz_err *err)
{
	_cleanup_close_ int net = VZ_FD_INIT;
	char path[PATH_MAX], keep[PATH_MAX];
	mode_t mode;
	int ret = lookup(root, SYSCTL_DIR, path, sizeof(path), &mode, err);

	if (ret <= 0)
		return ret;
	ret = lookup(root, SYSCTL_KEEP, keep, sizeof(keep), &mode, err);
	if (ret < 0)
		return ret;
	if (ret > 0) {
		net = open_tree(AT_FDCWD, keep, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		if (net < 0)
			return vz_error(err, errno, "Clone %s in the VE", SYSCTL_KEEP);
	}
	ret = bind_readonly(path, SYSCTL_DIR, err);
	if (ret < 0)
		return ret;
	if (net >= 0 && move_mount(net, "", AT_FDCWD, keep, MOVE_MOUNT_F_EMPTY_PATH) != 0)
		return vz_error(err, errno, "Keep %s writable in the VE", SYSCTL_KEEP);
	return 0;
}

int ve_mask_paths(const char *root, struct vz_err *err)
{
	char path[PATH_MAX];
	mode_t mode;
	int ret;

	for (size_t i = 0; i < ARRAY_SIZE(masked_paths); i++) {
		ret = mask(root, masked_paths[i], err);
		if (ret < 0)
			return ret;
	}
	for (size_t i = 0; i < ARRAY_SIZE(readonly_paths); i++) {
		ret = lookup(root, readonly_paths[i], path, sizeof(path), &mode, err);
		if (ret > 0)
			ret = bind_readonly(path, readonly_paths[i], err);
		if (ret < 0)
			return ret;
	}
	return readonly_sysctl(root, err);
}
