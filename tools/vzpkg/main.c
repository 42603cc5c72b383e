/* vzpkg: template caches as OpenVZ's vzpkg: create, update, list, remove.
 * Only main prints the error and exits. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "util.h"
#include "vzpkg.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv, struct vz_err *err);
	const char *usage;
} cmds[] = {
	{ "create", cmd_create, "create cache NAME" },
	{ "update", cmd_update, "update cache NAME" },
	{ "list", cmd_list, "list" },
	{ "remove", cmd_remove, "remove cache NAME" },
};

int vzpkg_check_name(const char *name, struct vz_err *err)
{
	if (!*name || strlen(name) > 100 || strstr(name, "..") || name[0] == '.')
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Invalid template name '%s'", name);
	for (const char *p = name; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
		    !strchr("._-", *p))
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Invalid template name '%s'", name);
	return 0;
}

/* Where the project's own template metadata lives: $VZ_DATADIR, the source
 * tree beside build/bin, or PREFIX/share/vz/templates beside PREFIX/sbin
 * (make install, the Debian package), whatever PREFIX is. */
static int shipped_dir(const char *name, char *buf, size_t len)
{
	const char *env = getenv("VZ_DATADIR");
	char exe[PATH_MAX];
	ssize_t n;

	if (env && *env) {
		snprintf(buf, len, "%s/%s", env, name);
		if (vz_exists(buf))
			return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		*strrchr(exe, '/') = '\0';
		snprintf(buf, len, "%s/../../deploy/templates/%s", exe, name);
		if (vz_exists(buf))
			return 0;
		snprintf(buf, len, "%s/../share/vz/templates/%s", exe, name);
		if (vz_exists(buf))
			return 0;
	}
	return -ENOENT;
}

int vzpkg_meta_dir(const char *name, char *buf, size_t len, struct vz_err *err)
{
	char src[PATH_MAX], parent[PATH_MAX];
	int ret;

	vz_path(buf, len, VZ_TEMPLATE_DIR "/%s", name);
	if (vz_exists(buf))
		return 0;
	if (shipped_dir(name, src, sizeof(src)) < 0)
		return vz_error_exit_msg(err, VZ_EXIT_NOTEMPLATE, ENOENT, "Template %s not found: no metadata in %s",
					 name, buf);
	vz_mkdir_p(vz_path(parent, sizeof(parent), VZ_TEMPLATE_DIR), 0755);
	/* -L: a template may take a file of another by a symbolic link (the
	 * Debian templates share the minimal one's post-install); the copy
	 * holds the file itself, so it needs no sibling. */
	char *argv[] = { "cp", "-a", "-L", "--", src, buf, NULL };

	ret = vz_run_checked(argv, err);
	if (ret < 0)
		return vz_error_wrap(err, "Install metadata of %s", name);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage:\n");
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		fprintf(f, "  vzpkg %s\n", cmds[i].usage);
	fprintf(f, "Templates: metadata in $VZ_ROOT" VZ_TEMPLATE_DIR "/NAME/, caches in $VZ_ROOT" VZ_CACHE_DIR "/\n");
}

int main(int argc, char **argv)
{
	struct vz_err err = { 0 };
	int ret;

	vz_log_init("vzpkg", VZ_LOG_WARN, 1);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? VZ_EXIT_INVAL : 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		ret = cmds[i].fn(argc - 1, argv + 1, &err);
		if (ret < 0) {
			fprintf(stderr, "vzpkg: %s\n", err.msg);
			return err.exit_code ? err.exit_code : VZ_EXIT_SYSTEM;
		}
		return ret;
	}
	fprintf(stderr, "vzpkg: Unknown command '%s'; see vzpkg --help\n", argv[1]);
	return VZ_EXIT_INVAL;
}
