/* vzpkg list: caches with their size and date, and templates that have
 * metadata but no cache yet. vzpkg remove cache NAME. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "paths.h"
#include "util.h"
#include "vzpkg.h"

static const char suffix[] = ".tar.zst";

int cmd_list(int argc, char **argv, struct vz_err *err)
{
	char dir[PATH_MAX], tdir[PATH_MAX];
	_cleanup_closedir_ DIR *d = NULL, *t = NULL;
	struct dirent *de;

	(void)argv;
	if (argc != 1)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Usage: vzpkg list");
	vz_path(dir, sizeof(dir), VZ_CACHE_DIR);
	vz_path(tdir, sizeof(tdir), VZ_TEMPLATE_DIR);
	printf("%-24s %8s  %s\n", "NAME", "SIZE", "DATE");
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char path[PATH_MAX + 256], size[32], date[32];
		struct stat st;

		if (de->d_name[0] == '.' || len <= strlen(suffix) || strcmp(de->d_name + len - strlen(suffix), suffix))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0)
			continue;
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M", localtime(&st.st_mtime));
		printf("%-24.*s %8s  %s\n", (int)(len - strlen(suffix)), de->d_name,
		       vz_fmt_size((uint64_t)st.st_size / 1024 * 1024, size, sizeof(size)), date);
	}
	t = opendir(tdir);
	while (t && (de = readdir(t))) {
		char cache[PATH_MAX];

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "cache") || de->d_type != DT_DIR)
			continue;
		if (!vz_exists(vz_path_template_cache(cache, sizeof(cache), de->d_name)))
			printf("%-24s %8s  %s\n", de->d_name, "-", "not cached");
	}
	return 0;
}

int cmd_remove(int argc, char **argv, struct vz_err *err)
{
	char cache[PATH_MAX];
	int ret;

	if (argc != 3 || strcmp(argv[1], "cache"))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Usage: vzpkg remove cache NAME");
	ret = vzpkg_check_name(argv[2], err);
	if (ret < 0)
		return ret;
	vz_path_template_cache(cache, sizeof(cache), argv[2]);
	if (unlink(cache) != 0)
		return errno == ENOENT ? vz_error_exit_msg(err, VZ_EXIT_NOTEMPLATE, ENOENT,
							   "Remove cache %s: there is none", argv[2])
				       : vz_error_exit(err, VZ_EXIT_SYSTEM, errno, "Remove cache %s", argv[2]);
	printf("Cache %s removed\n", argv[2]);
	return 0;
}
