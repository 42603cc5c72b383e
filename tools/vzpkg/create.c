/* vzpkg create|update cache NAME: build the tree in a temporary directory
 * beside the cache, run the template's post-install, pack it with tar and
 * zstd into a temporary file, and rename it into place. Any failure or
 * interruption removes what the build made and keeps the old cache. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "paths.h"
#include "util.h"
#include "vzpkg.h"

volatile int vzpkg_interrupted;

static void on_signal(int sig)
{
	if (vzpkg_interrupted)
		return;
	vzpkg_interrupted = sig;
	/* Stop what runs for us (tar, debootstrap); we clean up after it. */
	signal(sig, SIG_IGN);
	kill(0, sig);
}

static int parse_args(int argc, char **argv, const char **name, struct vz_err *err)
{
	if (argc != 3 || strcmp(argv[1], "cache"))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Usage: vzpkg %s cache NAME", argv[0]);
	*name = argv[2];
	return vzpkg_check_name(*name, err);
}

static int build(const char *name, bool replace, struct vz_err *err)
{
	char meta_dir[PATH_MAX], cache_dir[PATH_MAX], cache[PATH_MAX], tmp[PATH_MAX + 16], tree[PATH_MAX],
	    path[PATH_MAX + 32], lockp[PATH_MAX + 16], size[32];
	_cleanup_conf_ struct vz_conf meta = { 0 };
	_cleanup_close_ int lock = -EBADF;
	const char *builder;
	uint64_t t0 = vz_now_ns();
	struct stat st;
	int ret;

	ret = vzpkg_meta_dir(name, meta_dir, sizeof(meta_dir), err);
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s/config", meta_dir);
	ret = vz_conf_load(&meta, path, err);
	if (ret < 0)
		return vz_error_wrap(err, "Template %s", name);
	builder = vz_conf_get(&meta, "BUILDER");
	if (!builder || (strcmp(builder, "busybox") && strcmp(builder, "debootstrap")))
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL,
					 "Template %s: BUILDER must be busybox or debootstrap", name);
	vz_path(cache_dir, sizeof(cache_dir), VZ_CACHE_DIR);
	ret = vz_mkdir_p(cache_dir, 0755);
	if (ret < 0)
		return vz_error(err, -ret, "Create %s", cache_dir);
	vz_path_template_cache(cache, sizeof(cache), name);
	snprintf(lockp, sizeof(lockp), "%s/.%s.lock", cache_dir, name);
	lock = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0)
		return vz_error_exit_msg(err, VZ_EXIT_LOCKED, EBUSY, "Cache %s is being built by another vzpkg", name);
	if (!replace && vz_exists(cache))
		return vz_error_exit_msg(err, VZ_EXIT_EXISTS, EEXIST,
					 "Cache %s exists; use vzpkg update cache %s or remove it", name, name);

	snprintf(tree, sizeof(tree), "%s/.%s.build.XXXXXX", cache_dir, name);
	if (!mkdtemp(tree))
		return vz_error(err, errno, "Create a build directory in %s", cache_dir);
	chmod(tree, 0755);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tar.zst.tmp", cache_dir, name);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	printf("Building %s with %s\n", name, builder);
	fflush(stdout);
	if (!strcmp(builder, "busybox"))
		ret = vzpkg_build_busybox(tree, &meta, err);
	else
		ret = vzpkg_build_debootstrap(tree, meta_dir, &meta, err);
	if (ret < 0)
		goto on_error;
	snprintf(path, sizeof(path), "%s/post-install", meta_dir);
	if (!vzpkg_interrupted && vz_exists(path)) {
		char *argv[] = { path, tree, NULL };

		printf("Running post-install\n");
		fflush(stdout);
		ret = vz_run_checked(argv, err);
		if (ret < 0) {
			vz_error_wrap(err, "Template %s post-install", name);
			goto on_error;
		}
	}
	if (!vzpkg_interrupted) {
		char *argv[] = {
			"tar", "--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", tree, "-cf", tmp,
			".",   NULL
		};

		printf("Packing %s\n", cache);
		fflush(stdout);
		ret = vz_run_checked(argv, err);
		if (ret < 0)
			goto on_error;
	}
	if (vzpkg_interrupted) {
		ret = vz_error_msg(err, EINTR, "Interrupted by signal %d", vzpkg_interrupted);
		goto on_error;
	}
	if (rename(tmp, cache) != 0) {
		ret = vz_error(err, errno, "Rename %s", tmp);
		goto on_error;
	}
	vz_rm_rf(tree);
	unlink(lockp);
	stat(cache, &st);
	printf("Cache %s created: %s, %.1f s\n", cache,
	       vz_fmt_size((uint64_t)st.st_size / 1024 * 1024, size, sizeof(size)), (double)(vz_now_ns() - t0) / 1e9);
	return 0;

on_error:
	vz_rm_rf(tree);
	unlink(tmp);
	unlink(lockp);
	return ret;
}

int cmd_create(int argc, char **argv, struct vz_err *err)
{
	const char *name = NULL;
	int ret = parse_args(argc, argv, &name, err);

	return ret < 0 ? ret : build(name, false, err);
}

int cmd_update(int argc, char **argv, struct vz_err *err)
{
	const char *name = NULL;
	int ret = parse_args(argc, argv, &name, err);

	return ret < 0 ? ret : build(name, true, err);
}
