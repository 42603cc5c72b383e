/* The user namespace in a set of CRIU images. CRIU writes it as
 * userns-ID.img: the common image magic, the user namespace magic, then
 * one entry, a 32-bit length and a userns_entry message (uid and gid maps
 * as the dumping host saw them). A VE moved to a host that gives it other
 * ids has each extent moved into that range before CRIU reads it. */
#define LOG_PREFIX "userns-img: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "criu_userns.pb-c.h"
#include "log.h"
#include "userns_img.h"
#include "util.h"

#define IMG_COMMON_MAGIC 0x54564319u
#define USERNS_MAGIC	 0x55474906u
#define USERNS_IMG_MAX	 (64u << 10)

/* A listing of dir_fd from its start, through a copy of it. */
static DIR *open_dir(int dir_fd, struct vz_err *err)
{
	int fd = dup(dir_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		vz_error(err, errno, "Read the image directory");
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	rewinddir(d);
	return d;
}

/* The name of the user namespace image in dir_fd, 0 when there is none. */
static int find_image(int dir_fd, char *name, size_t len, struct vz_err *err)
{
	_cleanup_closedir_ DIR *d = open_dir(dir_fd, err);
	struct dirent *de;

	if (!d)
		return -EIO;
	while ((de = readdir(d))) {
		unsigned id;
		char rest[8];

		if (sscanf(de->d_name, "userns-%u%7s", &id, rest) == 2 && !strcmp(rest, ".img")) {
			snprintf(name, len, "%s", de->d_name);
			return 1;
		}
	}
	return 0;
}

static int load(int dir_fd, const char *name, UsernsEntry **e, struct vz_err *err)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ uint8_t *buf = NULL;
	uint32_t head[3];
	ssize_t n;

	if (fd < 0)
		return vz_error(err, errno, "Open %s", name);
	n = read(fd, head, sizeof(head));
	if (n != (ssize_t)sizeof(head) || head[0] != IMG_COMMON_MAGIC || head[1] != USERNS_MAGIC ||
	    head[2] > USERNS_IMG_MAX)
		return vz_error_msg(err, EINVAL, "%s is not a CRIU user namespace image", name);
	buf = malloc(head[2] ? head[2] : 1);
	if (!buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	n = read(fd, buf, head[2]);
	if (n != (ssize_t)head[2])
		return vz_error_msg(err, EINVAL, "%s is cut short", name);
	*e = userns_entry__unpack(NULL, head[2], buf);
	if (!*e)
		return vz_error_msg(err, EINVAL, "%s does not parse", name);
	return 0;
}

int vz_userns_img_root(int dir_fd, uint32_t *root_id, struct vz_err *err)
{
	UsernsEntry *e = NULL;
	char name[64];
	int ret = find_image(dir_fd, name, sizeof(name), err);

	if (ret <= 0)
		return ret;
	ret = load(dir_fd, name, &e, err);
	if (ret < 0)
		return ret;
	ret = vz_error_msg(err, EINVAL, "%s maps no uid 0", name);
	for (size_t i = 0; i < e->n_uid_map; i++)
		if (e->uid_map[i]->first == 0) {
			*root_id = e->uid_map[i]->lower_first;
			vz_err_clear(err);
			ret = 1;
		}
	userns_entry__free_unpacked(e, NULL);
	return ret;
}

static int remap(UidGidExtent **x, size_t n, uint32_t from, uint32_t to, uint32_t count, struct vz_err *err)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t lo = x[i]->lower_first, end = lo + x[i]->count;

		if (lo < from || end > (uint64_t)from + count)
			return vz_error_msg(err, ERANGE, "The images map ids %u..%llu, outside the VE's range from %u",
					    x[i]->lower_first, (unsigned long long)end - 1, from);
		x[i]->lower_first = to + (x[i]->lower_first - from);
	}
	return 0;
}

static int store(int dir_fd, const char *name, const UsernsEntry *e, struct vz_err *err)
{
	size_t len = userns_entry__get_packed_size(e);
	_cleanup_free_ uint8_t *buf = malloc(12 + len);
	char tmp[80];
	int ret;

	if (!buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	((uint32_t *)buf)[0] = IMG_COMMON_MAGIC;
	((uint32_t *)buf)[1] = USERNS_MAGIC;
	((uint32_t *)buf)[2] = (uint32_t)len;
	userns_entry__pack(e, buf + 12);
	snprintf(tmp, sizeof(tmp), ".%s.tmp", name);
	{
		_cleanup_close_ int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		if (fd < 0)
			return vz_error(err, errno, "Create %s", tmp);
		ret = vz_write_all(fd, (const char *)buf, 12 + len);
		if (ret < 0)
			return vz_error(err, -ret, "Write %s", tmp);
	}
	if (renameat(dir_fd, tmp, dir_fd, name) != 0)
		return vz_error(err, errno, "Replace %s", name);
	return 0;
}

int vz_userns_img_own(int dir_fd, uint32_t id, struct vz_err *err)
{
	_cleanup_closedir_ DIR *d = open_dir(dir_fd, err);
	struct dirent *de;
	struct stat st;

	if (!d)
		return -EIO;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || de->d_type != DT_REG)
			continue;
		if (fchownat(dir_fd, de->d_name, (uid_t)-1, id, AT_SYMLINK_NOFOLLOW) != 0 ||
		    fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    fchmodat(dir_fd, de->d_name, (st.st_mode & 07777) | S_IRGRP, 0) != 0)
			return vz_error(err, errno, "Let the VE's root read %s", de->d_name);
	}
	if (fchown(dir_fd, (uid_t)-1, id) != 0 || fstat(dir_fd, &st) != 0 ||
	    fchmod(dir_fd, (st.st_mode & 07777) | S_IRGRP | S_IXGRP) != 0)
		return vz_error(err, errno, "Let the VE's root read the image directory");
	return 0;
}

int vz_userns_img_remap(int dir_fd, uint32_t from, uint32_t to, uint32_t count, struct vz_err *err)
{
	UsernsEntry *e = NULL;
	char name[64];
	int ret = find_image(dir_fd, name, sizeof(name), err);

	if (ret <= 0)
		return ret < 0 ? ret : vz_error_msg(err, ENOENT, "The images hold no user namespace");
	ret = load(dir_fd, name, &e, err);
	if (ret < 0)
		return ret;
	ret = remap(e->uid_map, e->n_uid_map, from, to, count, err);
	if (ret == 0)
		ret = remap(e->gid_map, e->n_gid_map, from, to, count, err);
	if (ret == 0)
		ret = store(dir_fd, name, e, err);
	userns_entry__free_unpacked(e, NULL);
	if (ret == 0)
		pr_info("User namespace of the images moved from host ids %u to %u", from, to);
	return ret;
}
