/* Template builders: busybox (Debian's static busybox, no network) and
 * debootstrap (a Debian release from the package registry). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "util.h"
#include "vzpkg.h"

#define BUSYBOX "/bin/busybox"

/* A static executable has no PT_INTERP program header. */
static int is_static_elf(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf64_Ehdr eh;

	if (fd < 0 || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64)
		return 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * eh.e_phentsize)) != sizeof(ph))
			return 0;
		if (ph.p_type == PT_INTERP)
			return 0;
	}
	return 1;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int ret = vz_read_file(from, &buf, &len, 64 << 20);

	if (ret < 0)
		return ret;
	ret = vz_write_file(to, buf, len, 0);
	if (ret == 0 && chmod(to, mode) != 0)
		ret = -errno;
	return ret;
}

static int put(const char *tree, const char *rel, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	int ret;

	snprintf(path, sizeof(path), "%s/%s", tree, rel);
	ret = vz_write_file(path, text, strlen(text), 0);
	if (ret == 0 && chmod(path, mode) != 0)
		ret = -errno;
	return ret;
}

static const struct {
	const char *path, *text;
	mode_t mode;
} busybox_files[] = {
	{ "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0644 },
	{ "etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0644 },
	{ "etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0600 },
	{ "etc/hostname", "localhost\n", 0644 },
	{ "etc/hosts", "127.0.0.1 localhost\n::1 localhost\n", 0644 },
	{ "etc/resolv.conf", "", 0644 },
	/* A VE's init has /dev/null for a console: no gettys. */
	{ "etc/inittab", "::sysinit:/etc/init.d/rcS\n::shutdown:/bin/sync\n", 0644 },
	{ "etc/init.d/rcS", "#!/bin/sh\n[ -x /etc/rc.local ] && /etc/rc.local\nexit 0\n", 0755 },
	{ "etc/profile",
	  "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
	  "PS1='\\u@\\h:\\w\\$ '\n",
	  0644 },
	{ "etc/os-release", "NAME=\"BusyBox\"\nID=busybox\nPRETTY_NAME=\"BusyBox (vzcluster template)\"\n", 0644 },
};

static const char *const busybox_dirs[] = { "bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "dev", "proc",
					    "sys", "root", "run",     "var/log",  "home",	"mnt" };

int vzpkg_build_busybox(const char *tree, const struct vz_conf *meta, struct vz_err *err)
{
	char path[PATH_MAX], last[256];
	_cleanup_free_ char *list = NULL;
	int ret;

	(void)meta;
	if (!is_static_elf(BUSYBOX))
		return vz_error_msg(err, ENOENT, "%s is missing or not static: install busybox-static", BUSYBOX);
	for (size_t i = 0; i < ARRAY_SIZE(busybox_dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", tree, busybox_dirs[i]);
		ret = vz_mkdir_p(path, 0755);
		if (ret < 0)
			return vz_error(err, -ret, "Create %s", path);
	}
	snprintf(path, sizeof(path), "%s/tmp", tree);
	if (mkdir(path, 01777) != 0 || chmod(path, 01777) != 0)
		return vz_error(err, errno, "Create %s", path);
	snprintf(path, sizeof(path), "%s/var/run", tree);
	if (symlink("../run", path) != 0)
		return vz_error(err, errno, "Create %s", path);
	snprintf(path, sizeof(path), "%s/bin/busybox", tree);
	ret = copy_file(BUSYBOX, path, 0755);
	if (ret < 0)
		return vz_error(err, -ret, "Copy %s", BUSYBOX);

	char *argv[] = { BUSYBOX, "--list-full", NULL };

	ret = vz_run(argv, &list);
	if (ret != 0)
		return vz_error_msg(err, EIO, "%s --list-full failed", BUSYBOX);
	for (char *save = NULL, *app = strtok_r(list, "\n", &save); app; app = strtok_r(NULL, "\n", &save)) {
		char *slash;

		if (!strcmp(app, "bin/busybox") || strstr(app, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", tree, app);
		slash = strrchr(path, '/');
		*slash = '\0';
		vz_mkdir_p(path, 0755);
		*slash = '/';
		if (symlink("/bin/busybox", path) != 0 && errno != EEXIST)
			return vz_error(err, errno, "Link %s", app);
	}
	for (size_t i = 0; i < ARRAY_SIZE(busybox_files); i++) {
		ret = put(tree, busybox_files[i].path, busybox_files[i].text, busybox_files[i].mode);
		if (ret < 0)
			return vz_error(err, -ret, "Write %s", busybox_files[i].path);
	}
	/* Prove the tree works before it becomes a cache. */
	char *smoke[] = { "chroot", (char *)tree, "/bin/sh", "-c", "ip link show lo >/dev/null && test -x /sbin/init",
			  NULL };
	_cleanup_free_ char *out = NULL;

	ret = vz_run(smoke, &out);
	if (ret != 0)
		return vz_error_msg(err, EIO, "The built tree does not run: %s",
				    vz_last_line(out ? out : "", last, sizeof(last)));
	return 0;
}

int vzpkg_build_debootstrap(const char *tree, const char *meta_dir, const struct vz_conf *meta, struct vz_err *err)
{
	const char *suite = vz_conf_get(meta, "SUITE"), *mirror = vz_conf_get(meta, "MIRROR"),
		   *variant = vz_conf_get(meta, "VARIANT");
	char path[PATH_MAX], include[4096] = "--include=", var[64];
	_cleanup_free_ char *pkgs = NULL;
	int ret;

	if (!suite || !*suite)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Template metadata %s/config has no SUITE",
					 meta_dir);
	snprintf(path, sizeof(path), "%s/packages", meta_dir);
	if (vz_read_file(path, &pkgs, NULL, 65536) == 0) {
		for (char *save = NULL, *line = strtok_r(pkgs, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			line += strspn(line, " \t");
			if (!*line || *line == '#')
				continue;
			line[strcspn(line, " \t#")] = '\0';
			if (strlen(include) + strlen(line) + 2 >= sizeof(include))
				return vz_error_msg(err, E2BIG, "Too many packages in %s", path);
			if (include[strlen(include) - 1] != '=')
				strcat(include, ",");
			strcat(include, line);
		}
	}
	snprintf(var, sizeof(var), "--variant=%s", variant && *variant ? variant : "minbase");
	char *argv[] = { "debootstrap", var,
			 include,	(char *)suite,
			 (char *)tree,	(char *)(mirror && *mirror ? mirror : "http://deb.debian.org/debian"),
			 NULL };
	if (include[strlen(include) - 1] == '=')
		memmove(&argv[2], &argv[3], 4 * sizeof(char *));

	printf("Running debootstrap %s (this downloads packages and takes minutes)\n", suite);
	fflush(stdout);
	ret = vz_run_checked(argv, err);
	if (ret < 0)
		return ret;
	char *clean[] = { "sh", "-c",	      "rm -rf \"$1\"/var/cache/apt/archives/*.deb \"$1\"/var/lib/apt/lists/*",
			  "sh", (char *)tree, NULL };
	return vz_run_checked(clean, err);
}
