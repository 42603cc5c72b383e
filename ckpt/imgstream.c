/* Image directory <-> compressed record stream (see imgstream.h): the
 * packer, the pure record parser, and the unpacker that writes files. */
#define LOG_PREFIX "imgstream: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "cleanup.h"
#include "imgstream.h"
#include "log.h"

static const uint8_t img_magic[8] = { 'V', 'Z', 'I', 'M', 'G', 0, 0, 1 };

enum { REC_FILE = 1, REC_END = 2 };

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

static bool name_ok(const char *name, size_t len)
{
	if (len == 0 || len > 255 || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* ---- packing ---- */

struct zout {
	ZSTD_CCtx *cctx;
	uint8_t *buf;
	size_t cap;
	vz_img_sink sink;
	void *arg;
	struct vz_img_stats *st;
};

static int zout_push(struct zout *z, const void *src, size_t len, ZSTD_EndDirective mode, struct vz_err *err)
{
	ZSTD_inBuffer in = { src, len, 0 };

	for (;;) {
		ZSTD_outBuffer out = { z->buf, z->cap, 0 };
		size_t left = ZSTD_compressStream2(z->cctx, &out, &in, mode);

		if (ZSTD_isError(left))
			return vz_error_msg(err, EIO, "Compress images: %s", ZSTD_getErrorName(left));
		if (out.pos) {
			int ret = z->sink(z->arg, z->buf, out.pos, err);

			if (ret < 0)
				return ret;
			z->st->wire_bytes += out.pos;
		}
		if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0)
			return 0;
	}
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Regular files of dir_fd, sorted. */
static int list_files(int dir_fd, char ***out, size_t *n, struct vz_err *err)
{
	int fd = dup(dir_fd);
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t cap = 0;

	*n = 0;
	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return vz_error(err, errno, "Read the image directory");
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		struct stat st;

		if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (!name_ok(de->d_name, strlen(de->d_name))) {
			closedir(d);
			free_names(names, *n);
			return vz_error_msg(err, EINVAL, "Image file name %s cannot be packed", de->d_name);
		}
		if (*n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*names));

			if (!nn)
				goto nomem;
			names = nn;
		}
		if (!(names[*n] = strdup(de->d_name)))
			goto nomem;
		(*n)++;
	}
	closedir(d);
	qsort(names, *n, sizeof(*names), cmp_names);
	*out = names;
	return 0;
nomem:
	closedir(d);
	free_names(names, *n);
	return vz_error_msg(err, ENOMEM, "Out of memory");
}

static int pack_file(struct zout *z, int dir_fd, const char *name, uint8_t *io, size_t iosz, struct vz_err *err)
{
	_cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	uint8_t hdr[1 + 2 + 255 + 4 + 8];
	size_t nl = strlen(name), hl = 0;
	struct stat st;
	uint64_t left;
	int ret;

	if (fd < 0 || fstat(fd, &st) != 0)
		return vz_error(err, errno, "Open image %s", name);
	hdr[hl++] = REC_FILE;
	put_be(hdr + hl, nl, 2);
	hl += 2;
	memcpy(hdr + hl, name, nl);
	hl += nl;
	put_be(hdr + hl, st.st_mode & 07777, 4);
	hl += 4;
	put_be(hdr + hl, (uint64_t)st.st_size, 8);
	hl += 8;
	ret = zout_push(z, hdr, hl, ZSTD_e_continue, err);
	for (left = (uint64_t)st.st_size; ret == 0 && left > 0;) {
		ssize_t n = read(fd, io, left < iosz ? left : iosz);

		if (n < 0)
			return vz_error(err, errno, "Read image %s", name);
		if (n == 0)
			return vz_error_msg(err, EIO, "Read image %s: it shrank while being read", name);
		ret = zout_push(z, io, (size_t)n, ZSTD_e_continue, err);
		left -= (uint64_t)n;
	}
	if (ret == 0) {
		z->st->nfiles++;
		z->st->raw_bytes += (uint64_t)st.st_size;
	}
	return ret;
}

int vz_img_pack(int dir_fd, int zstd_level, vz_img_sink sink, void *arg, struct vz_img_stats *st, struct vz_err *err)
{
	struct zout z = { .sink = sink, .arg = arg, .st = st };
	_cleanup_free_ uint8_t *io = NULL;
	char **names = NULL;
	size_t n = 0, iosz = 1 << 20;
	uint8_t end[1 + 4 + 8];
	int ret;

	memset(st, 0, sizeof(*st));
	ret = list_files(dir_fd, &names, &n, err);
	if (ret < 0)
		return ret;
	z.cctx = ZSTD_createCCtx();
	z.cap = ZSTD_CStreamOutSize();
	z.buf = malloc(z.cap);
	io = malloc(iosz);
	if (!z.cctx || !z.buf || !io) {
		ret = vz_error_msg(err, ENOMEM, "Out of memory");
		goto out;
	}
	ZSTD_CCtx_setParameter(z.cctx, ZSTD_c_compressionLevel, zstd_level);
	ZSTD_CCtx_setParameter(z.cctx, ZSTD_c_checksumFlag, 1);
	ret = zout_push(&z, img_magic, sizeof(img_magic), ZSTD_e_continue, err);
	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = pack_file(&z, dir_fd, names[i], io, iosz, err);
	if (ret == 0) {
		end[0] = REC_END;
		put_be(end + 1, st->nfiles, 4);
		put_be(end + 5, st->raw_bytes, 8);
		ret = zout_push(&z, end, sizeof(end), ZSTD_e_end, err);
	}
out:
	free_names(names, n);
	ZSTD_freeCCtx(z.cctx);
	free(z.buf);
	return ret;
}

/* ---- parsing ---- */

enum pstate { P_MAGIC, P_TYPE, P_NAMELEN, P_NAME, P_MODE, P_SIZE, P_DATA, P_END, P_DONE };

struct vz_img_parser {
	enum pstate state;
	const struct vz_img_ops *ops;
	void *arg;
	uint64_t max_bytes, total, data_left;
	uint32_t nfiles;
	uint32_t mode;
	size_t need, have;
	uint8_t acc[256];
	char name[256];
};

struct vz_img_parser *vz_img_parser_new(uint64_t max_bytes, const struct vz_img_ops *ops, void *arg)
{
	struct vz_img_parser *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->ops = ops;
	p->arg = arg;
	p->max_bytes = max_bytes;
	p->state = P_MAGIC;
	p->need = sizeof(img_magic);
	return p;
}

void vz_img_parser_free(struct vz_img_parser *p)
{
	free(p);
}

bool vz_img_parser_done(const struct vz_img_parser *p)
{
	return p->state == P_DONE;
}

static int bad(struct vz_err *err, const char *what)
{
	return vz_error_msg(err, EBADMSG, "Malformed image stream: %s", what);
}

static void expect(struct vz_img_parser *p, enum pstate s, size_t need)
{
	p->state = s;
	p->need = need;
	p->have = 0;
}

/* A fixed-size field is complete in p->acc: act on it. */
static int field_done(struct vz_img_parser *p, struct vz_err *err)
{
	uint64_t v;
	int ret;

	switch (p->state) {
	case P_MAGIC:
		if (memcmp(p->acc, img_magic, sizeof(img_magic)))
			return bad(err, "bad magic or version");
		expect(p, P_TYPE, 1);
		return 0;
	case P_TYPE:
		if (p->acc[0] == REC_FILE)
			expect(p, P_NAMELEN, 2);
		else if (p->acc[0] == REC_END)
			expect(p, P_END, 12);
		else
			return bad(err, "unknown record type");
		return 0;
	case P_NAMELEN:
		v = get_be(p->acc, 2);
		if (v == 0 || v > 255)
			return bad(err, "file name length out of range");
		expect(p, P_NAME, (size_t)v);
		return 0;
	case P_NAME:
		memcpy(p->name, p->acc, p->need);
		p->name[p->need] = '\0';
		if (!name_ok(p->name, p->need))
			return bad(err, "file name not allowed");
		expect(p, P_MODE, 4);
		return 0;
	case P_MODE:
		v = get_be(p->acc, 4);
		if (v & ~(uint64_t)07777)
			return bad(err, "file mode out of range");
		p->mode = (uint32_t)v;
		expect(p, P_SIZE, 8);
		return 0;
	case P_SIZE:
		v = get_be(p->acc, 8);
		if (v > p->max_bytes - p->total)
			return bad(err, "file larger than the stream may hold");
		p->total += v;
		p->nfiles++;
		ret = p->ops->begin ? p->ops->begin(p->arg, p->name, p->mode, v, err) : 0;
		if (ret < 0)
			return ret;
		p->data_left = v;
		if (v == 0) {
			ret = p->ops->end ? p->ops->end(p->arg, err) : 0;
			expect(p, P_TYPE, 1);
			return ret;
		}
		p->state = P_DATA;
		return 0;
	case P_END:
		if (get_be(p->acc, 4) != p->nfiles || get_be(p->acc + 4, 8) != p->total)
			return bad(err, "end record does not match the files");
		p->state = P_DONE;
		return 0;
	default: return bad(err, "internal state");
	}
}

int vz_img_parser_feed(struct vz_img_parser *p, const uint8_t *buf, size_t len, struct vz_err *err)
{
	while (len > 0) {
		int ret;

		if (p->state == P_DONE)
			return bad(err, "data after the end record");
		if (p->state == P_DATA) {
			size_t n = len < p->data_left ? len : (size_t)p->data_left;

			ret = p->ops->data ? p->ops->data(p->arg, buf, n, err) : 0;
			if (ret < 0)
				return ret;
			buf += n;
			len -= n;
			p->data_left -= n;
			if (p->data_left == 0) {
				ret = p->ops->end ? p->ops->end(p->arg, err) : 0;
				if (ret < 0)
					return ret;
				expect(p, P_TYPE, 1);
			}
			continue;
		}
		size_t n = p->need - p->have < len ? p->need - p->have : len;

		memcpy(p->acc + p->have, buf, n);
		p->have += n;
		buf += n;
		len -= n;
		if (p->have == p->need) {
			ret = field_done(p, err);
			if (ret < 0)
				return ret;
		}
	}
	return 0;
}

/* ---- unpacking into a directory ---- */

struct vz_img_unpacker {
	int dir_fd, fd;
	mode_t mode;
	char name[256];
	ZSTD_DCtx *dctx;
	uint8_t *out;
	size_t cap;
	bool frame_open; /* inside a zstd frame */
	struct vz_img_parser *parser;
	struct vz_img_stats st;
};

static int u_begin(void *arg, const char *name, uint32_t mode, uint64_t size, struct vz_err *err)
{
	struct vz_img_unpacker *u = arg;

	(void)size;
	u->fd = openat(u->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (u->fd < 0)
		return vz_error(err, errno, "Create image %s", name);
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->mode = mode & 0777;
	return 0;
}

static int u_data(void *arg, const void *buf, size_t len, struct vz_err *err)
{
	struct vz_img_unpacker *u = arg;
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(u->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return vz_error(err, n < 0 ? errno : EIO, "Write image %s", u->name);
		p += n;
		len -= (size_t)n;
		u->st.raw_bytes += (uint64_t)n;
	}
	return 0;
}

static int u_end(void *arg, struct vz_err *err)
{
	struct vz_img_unpacker *u = arg;
	int ret = 0;

	if (fchmod(u->fd, u->mode) != 0 || close(u->fd) != 0)
		ret = vz_error(err, errno, "Write image %s", u->name);
	u->fd = -1;
	u->st.nfiles++;
	return ret;
}

static const struct vz_img_ops unpack_ops = { u_begin, u_data, u_end };

struct vz_img_unpacker *vz_img_unpacker_new(int dir_fd, uint64_t max_bytes, struct vz_err *err)
{
	struct vz_img_unpacker *u = calloc(1, sizeof(*u));

	if (!u) {
		vz_error_msg(err, ENOMEM, "Out of memory");
		return NULL;
	}
	u->dir_fd = dir_fd;
	u->fd = -1;
	u->dctx = ZSTD_createDCtx();
	u->cap = ZSTD_DStreamOutSize();
	u->out = malloc(u->cap);
	u->parser = vz_img_parser_new(max_bytes, &unpack_ops, u);
	if (!u->dctx || !u->out || !u->parser) {
		vz_img_unpacker_free(u);
		vz_error_msg(err, ENOMEM, "Out of memory");
		return NULL;
	}
	/* A window larger than 128 MiB would let a hostile stream make us
	 * allocate that much; we never write one. */
	ZSTD_DCtx_setParameter(u->dctx, ZSTD_d_windowLogMax, 27);
	return u;
}

int vz_img_unpacker_feed(struct vz_img_unpacker *u, const void *buf, size_t len, struct vz_err *err)
{
	ZSTD_inBuffer in = { buf, len, 0 };

	u->st.wire_bytes += len;
	for (;;) {
		ZSTD_outBuffer out = { u->out, u->cap, 0 };
		size_t r;
		int ret;

		if (!u->frame_open && vz_img_parser_done(u->parser) && in.pos < in.size)
			return bad(err, "data after the end of the stream");
		r = ZSTD_decompressStream(u->dctx, &out, &in);
		if (ZSTD_isError(r))
			return vz_error_msg(err, EBADMSG, "Malformed image stream: %s", ZSTD_getErrorName(r));
		u->frame_open = r != 0;
		ret = vz_img_parser_feed(u->parser, u->out, out.pos, err);
		if (ret < 0)
			return ret;
		/* A full output buffer may leave more inside the decoder. */
		if (in.pos == in.size && out.pos < out.size)
			return 0;
	}
}

int vz_img_unpacker_finish(struct vz_img_unpacker *u, struct vz_img_stats *st, struct vz_err *err)
{
	if (u->frame_open || !vz_img_parser_done(u->parser))
		return bad(err, "the stream ends early");
	if (st)
		*st = u->st;
	return 0;
}

void vz_img_unpacker_free(struct vz_img_unpacker *u)
{
	if (!u)
		return;
	if (u->fd >= 0)
		close(u->fd);
	ZSTD_freeDCtx(u->dctx);
	free(u->out);
	vz_img_parser_free(u->parser);
	free(u);
}
