/* Dump files: header, whole-file SHA-256, write, verify, unpack. */
#define LOG_PREFIX "dumpfile: "
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "dumpfile.h"
#include "log.h"
#include "util.h"

static const uint8_t dump_magic[8] = { 'V', 'Z', 'D', 'U', 'M', 'P', '\r', '\n' };
#define SHA_OFF 144

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

/* A NUL-padded printable string field. */
static bool get_str(const uint8_t *p, size_t len, char *out)
{
	size_t n = strnlen((const char *)p, len);

	if (n == len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return false;
	for (size_t i = n; i < len; i++)
		if (p[i])
			return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

int vz_dump_hdr_parse(const uint8_t *buf, size_t len, struct vz_dump_hdr *h, struct vz_err *err)
{
	memset(h, 0, sizeof(*h));
	if (len < VZ_DUMP_HDR_SIZE || memcmp(buf, dump_magic, sizeof(dump_magic)))
		return vz_error_msg(err, EBADMSG, "Not a vzcluster dump file");
	h->version = (unsigned)get_be(buf + 8, 2);
	if (h->version != VZ_DUMP_VERSION)
		return vz_error_msg(err, EPROTONOSUPPORT, "Dump file format version %u is not supported (this is %u)",
				    h->version, VZ_DUMP_VERSION);
	if (get_be(buf + 10, 2) != VZ_DUMP_HDR_SIZE)
		return vz_error_msg(err, EBADMSG, "Dump file header has a wrong size");
	h->veid = (unsigned)get_be(buf + 12, 4);
	h->created = get_be(buf + 16, 8);
	h->payload_bytes = get_be(buf + 24, 8);
	h->image_bytes = get_be(buf + 32, 8);
	h->nfiles = (uint32_t)get_be(buf + 40, 4);
	if (get_be(buf + 44, 4) != 0)
		return vz_error_msg(err, EBADMSG, "Dump file header has unknown flags");
	if (!get_str(buf + 48, 16, h->criu_version) || !get_str(buf + 64, 64, h->kernel) ||
	    !get_str(buf + 128, 16, h->machine))
		return vz_error_msg(err, EBADMSG, "Dump file header has a malformed text field");
	for (size_t i = SHA_OFF + 32; i < VZ_DUMP_HDR_SIZE; i++)
		if (buf[i])
			return vz_error_msg(err, EBADMSG, "Dump file header has data in reserved bytes");
	memcpy(h->sha256, buf + SHA_OFF, 32);
	return 0;
}

void vz_dump_hdr_format(const struct vz_dump_hdr *h, uint8_t *buf)
{
	memset(buf, 0, VZ_DUMP_HDR_SIZE);
	memcpy(buf, dump_magic, sizeof(dump_magic));
	put_be(buf + 8, VZ_DUMP_VERSION, 2);
	put_be(buf + 10, VZ_DUMP_HDR_SIZE, 2);
	put_be(buf + 12, h->veid, 4);
	put_be(buf + 16, h->created, 8);
	put_be(buf + 24, h->payload_bytes, 8);
	put_be(buf + 32, h->image_bytes, 8);
	put_be(buf + 40, h->nfiles, 4);
	memcpy(buf + 48, h->criu_version, strnlen(h->criu_version, 15));
	memcpy(buf + 64, h->kernel, strnlen(h->kernel, 63));
	memcpy(buf + 128, h->machine, strnlen(h->machine, 15));
	memcpy(buf + SHA_OFF, h->sha256, 32);
}

int vz_version_cmp(const char *a, const char *b)
{
	for (int i = 0; i < 3; i++) {
		unsigned long x = strtoul(a, (char **)&a, 10), y = strtoul(b, (char **)&b, 10);

		if (x != y)
			return x < y ? -1 : 1;
		a += *a == '.';
		b += *b == '.';
	}
	return 0;
}

struct writer {
	int fd;
	EVP_MD_CTX *sha;
	uint64_t bytes;
};

static int file_sink(void *arg, const void *buf, size_t len, struct vz_err *err)
{
	struct writer *w = arg;
	int ret = vz_write_all(w->fd, buf, len);

	if (ret < 0)
		return vz_error(err, -ret, "Write the dump file");
	EVP_DigestUpdate(w->sha, buf, len);
	w->bytes += len;
	return 0;
}

int vz_dumpfile_write(const char *path, int images_fd, struct vz_dump_hdr *h, struct vz_img_stats *st,
		      struct vz_err *err)
{
	char tmp[4200];
	uint8_t hdr[VZ_DUMP_HDR_SIZE];
	struct writer w = { .fd = -1 };
	struct utsname u;
	unsigned int shalen;
	int ret;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	uname(&u);
	snprintf(h->kernel, sizeof(h->kernel), "%s", u.release);
	snprintf(h->machine, sizeof(h->machine), "%s", u.machine);
	h->created = (uint64_t)time(NULL);
	h->version = VZ_DUMP_VERSION;
	memset(h->sha256, 0, sizeof(h->sha256));
	w.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w.fd < 0)
		return vz_error(err, errno, "Create %s", tmp);
	w.sha = EVP_MD_CTX_new();
	if (!w.sha || !EVP_DigestInit_ex(w.sha, EVP_sha256(), NULL)) {
		ret = vz_error_msg(err, ENOMEM, "Set up SHA-256");
		goto fail;
	}
	/* Room for the header, written last when sizes and hash are known. */
	if (lseek(w.fd, VZ_DUMP_HDR_SIZE, SEEK_SET) < 0) {
		ret = vz_error(err, errno, "Seek in %s", tmp);
		goto fail;
	}
	ret = vz_img_pack(images_fd, 3, file_sink, &w, st, err);
	if (ret < 0)
		goto fail;
	h->payload_bytes = w.bytes;
	h->image_bytes = st->raw_bytes;
	h->nfiles = st->nfiles;
	vz_dump_hdr_format(h, hdr);
	EVP_DigestUpdate(w.sha, hdr, sizeof(hdr));
	EVP_DigestFinal_ex(w.sha, h->sha256, &shalen);
	vz_dump_hdr_format(h, hdr);
	if (pwrite(w.fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || fsync(w.fd) != 0) {
		ret = vz_error(err, errno, "Write %s", tmp);
		goto fail;
	}
	close(w.fd);
	EVP_MD_CTX_free(w.sha);
	if (rename(tmp, path) != 0) {
		ret = vz_error(err, errno, "Rename %s to %s", tmp, path);
		unlink(tmp);
		return ret;
	}
	return 0;
fail:
	close(w.fd);
	EVP_MD_CTX_free(w.sha);
	unlink(tmp);
	return ret;
}

int vz_dumpfile_verify(const char *path, unsigned veid, const struct vz_criu_version *ours, struct vz_dump_hdr *h,
		       struct vz_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t hdr[VZ_DUMP_HDR_SIZE], sum[32], buf[1 << 16];
	unsigned int shalen;
	struct stat st;
	EVP_MD_CTX *sha;
	ssize_t n;
	int ret;

	if (fd < 0)
		return vz_error(err, errno, "Open dump file %s", path);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return vz_error_msg(err, EINVAL, "Dump file %s is not a regular file", path);
	n = read(fd, hdr, sizeof(hdr));
	if (n != (ssize_t)sizeof(hdr))
		return vz_error_msg(err, EBADMSG, "Dump file %s is truncated: no complete header", path);
	ret = vz_dump_hdr_parse(hdr, sizeof(hdr), h, err);
	if (ret < 0)
		return vz_error_wrap(err, "Dump file %s", path);
	if ((uint64_t)st.st_size < VZ_DUMP_HDR_SIZE + h->payload_bytes)
		return vz_error_msg(err, EBADMSG, "Dump file %s is truncated: %llu of %llu bytes", path,
				    (unsigned long long)st.st_size,
				    (unsigned long long)(VZ_DUMP_HDR_SIZE + h->payload_bytes));
	if ((uint64_t)st.st_size > VZ_DUMP_HDR_SIZE + h->payload_bytes)
		return vz_error_msg(err, EBADMSG, "Dump file %s has data after its end", path);
	if (h->veid != veid)
		return vz_error_msg(err, EINVAL, "Dump file %s holds VE %u, not VE %u", path, h->veid, veid);
	if (ours && vz_version_cmp(h->criu_version, ours->text) > 0)
		return vz_error_msg(err, EPROTONOSUPPORT, "Dump file %s was made by CRIU %s, newer than this host's %s",
				    path, h->criu_version, ours->text);
	{
		struct utsname u;

		uname(&u);
		if (strcmp(h->machine, u.machine))
			return vz_error_msg(err, EPROTONOSUPPORT, "Dump file %s was made on %s, this host is %s", path,
					    h->machine, u.machine);
	}
	sha = EVP_MD_CTX_new();
	if (!sha || !EVP_DigestInit_ex(sha, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(sha);
		return vz_error_msg(err, ENOMEM, "Set up SHA-256");
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(sha, buf, (size_t)n);
	memset(hdr + SHA_OFF, 0, 32);
	EVP_DigestUpdate(sha, hdr, sizeof(hdr));
	EVP_DigestFinal_ex(sha, sum, &shalen);
	EVP_MD_CTX_free(sha);
	if (n < 0)
		return vz_error(err, errno, "Read dump file %s", path);
	if (memcmp(sum, h->sha256, sizeof(sum)))
		return vz_error_msg(err, EBADMSG, "Dump file %s is corrupted: its checksum does not match", path);
	return 0;
}

int vz_dumpfile_unpack(const char *path, int dir_fd, struct vz_img_stats *st, struct vz_err *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t hdr[VZ_DUMP_HDR_SIZE], buf[1 << 16];
	struct vz_dump_hdr h;
	struct vz_img_unpacker *u;
	ssize_t n;
	int ret;

	if (fd < 0)
		return vz_error(err, errno, "Open dump file %s", path);
	if (read(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr))
		return vz_error_msg(err, EBADMSG, "Dump file %s is truncated", path);
	ret = vz_dump_hdr_parse(hdr, sizeof(hdr), &h, err);
	if (ret < 0)
		return ret;
	u = vz_img_unpacker_new(dir_fd, h.image_bytes, err);
	if (!u)
		return -ENOMEM;
	while (ret == 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		ret = vz_img_unpacker_feed(u, buf, (size_t)n, err);
	if (ret == 0 && n < 0)
		ret = vz_error(err, errno, "Read dump file %s", path);
	if (ret == 0)
		ret = vz_img_unpacker_finish(u, st, err);
	vz_img_unpacker_free(u);
	return ret;
}
