/* Page store and lazy-pages page server (see pagestore.h). */
#define LOG_PREFIX "pagestore: "
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "pagestore.h"

#define PAGE		4096u
#define MAX_REPLY_PAGES 256u /* 1 MiB per answer at most */

struct slot {
	uint64_t key; /* 0: empty */
	uint64_t off; /* page index in the file */
};

struct vz_pstore {
	int fd;
	struct slot *tab;
	size_t cap, used;
	uint64_t next; /* next free page in the file */
	uint8_t *buf;
	vz_pstore_fetch_fn fetch;
	void *fetch_arg;
	pthread_mutex_t lock; /* post-copy: a pushing thread and the server */
};

void vz_pstore_set_fetch(struct vz_pstore *s, vz_pstore_fetch_fn fn, void *arg)
{
	s->fetch = fn;
	s->fetch_arg = arg;
}

/* pid in the VE (22 bits) and page number (36 bits), plus one so that no
 * key is zero. */
static uint64_t key_of(int vpid, uint64_t vaddr)
{
	return (((uint64_t)(uint32_t)vpid << 36) | ((vaddr / PAGE) & ((1ull << 36) - 1))) + 1;
}

static size_t hash(uint64_t k, size_t cap)
{
	k ^= k >> 31;
	k *= 0x7fb5d329728ea185ull;
	k ^= k >> 27;
	return (size_t)k & (cap - 1);
}

struct vz_pstore *vz_pstore_new(const char *dir, struct vz_err *err)
{
	struct vz_pstore *s = calloc(1, sizeof(*s));

	if (!s) {
		vz_error_msg(err, ENOMEM, "Out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->cap = 1 << 16;
	s->tab = calloc(s->cap, sizeof(*s->tab));
	s->buf = malloc(MAX_REPLY_PAGES * PAGE + sizeof(struct vz_ps_iov));
	s->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (s->fd < 0 || !s->tab || !s->buf) {
		vz_error(err, s->fd < 0 ? errno : ENOMEM, "Page store in %s", dir);
		vz_pstore_free(s);
		return NULL;
	}
	return s;
}

void vz_pstore_free(struct vz_pstore *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->tab);
	free(s->buf);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

uint64_t vz_pstore_pages(const struct vz_pstore *s)
{
	return __atomic_load_n(&s->used, __ATOMIC_RELAXED);
}

static struct slot *lookup(struct vz_pstore *s, uint64_t k)
{
	for (size_t i = hash(k, s->cap);; i = (i + 1) & (s->cap - 1))
		if (s->tab[i].key == k || s->tab[i].key == 0)
			return &s->tab[i];
}

static int grow(struct vz_pstore *s)
{
	struct slot *old = s->tab;
	size_t ocap = s->cap;

	s->tab = calloc(ocap * 2, sizeof(*s->tab));
	if (!s->tab) {
		s->tab = old;
		return -ENOMEM;
	}
	s->cap = ocap * 2;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key)
			*lookup(s, old[i].key) = old[i];
	free(old);
	return 0;
}

static int put_locked(struct vz_pstore *s, int vpid, uint64_t vaddr, const void *data, size_t npages,
		      struct vz_err *err)
{
	if (vpid <= 0 || vaddr % PAGE)
		return vz_error_msg(err, EINVAL, "Page for pid %d at %#llx is not page-aligned", vpid,
				    (unsigned long long)vaddr);
	for (size_t i = 0; i < npages;) {
		/* Runs of pages new to the store go to the file in one write. */
		struct slot *sl;
		size_t run = 0;
		uint64_t first;

		if ((s->used + npages) * 2 > s->cap && grow(s) < 0)
			return vz_error_msg(err, ENOMEM, "Out of memory for the page index");
		sl = lookup(s, key_of(vpid, vaddr + i * PAGE));
		if (sl->key) {
			if (pwrite(s->fd, (const uint8_t *)data + i * PAGE, PAGE, (off_t)(sl->off * PAGE)) != PAGE)
				return vz_error(err, errno ? errno : EIO, "Write the page store");
			i++;
			continue;
		}
		first = s->next;
		while (i + run < npages) {
			sl = lookup(s, key_of(vpid, vaddr + (i + run) * PAGE));
			if (sl->key)
				break;
			sl->key = key_of(vpid, vaddr + (i + run) * PAGE);
			sl->off = first + run;
			s->used++;
			run++;
		}
		{
			const uint8_t *p = (const uint8_t *)data + i * PAGE;
			size_t len = run * PAGE;
			off_t off = (off_t)(first * PAGE);

			while (len) {
				ssize_t n = pwrite(s->fd, p, len, off);

				if (n <= 0)
					return vz_error(err, errno ? errno : EIO, "Write the page store");
				p += n;
				len -= (size_t)n;
				off += n;
			}
		}
		s->next += run;
		i += run;
	}
	return 0;
}

int vz_pstore_put(struct vz_pstore *s, int vpid, uint64_t vaddr, const void *data, size_t npages, struct vz_err *err)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = put_locked(s, vpid, vaddr, data, npages, err);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int get_locked(struct vz_pstore *s, int vpid, uint64_t vaddr, void *page)
{
	struct slot *sl = lookup(s, key_of(vpid, vaddr));

	if (!sl->key)
		return -ENOENT;
	if (pread(s->fd, page, PAGE, (off_t)(sl->off * PAGE)) != PAGE)
		return -EIO;
	return 0;
}

int vz_pstore_get(struct vz_pstore *s, int vpid, uint64_t vaddr, void *page)
{
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = get_locked(s, vpid, vaddr, page);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, p + got, len - got, 0);

		if (n == 0)
			return got ? -EPROTO : 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return 1;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vz_pstore_serve(struct vz_pstore *s, int fd, struct vz_pstore_stats *st, struct vz_err *err)
{
	int one = 1;

	/* Answers go out at once, not after the peer's delayed ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (;;) {
		struct vz_ps_iov pi;
		uint32_t cmd;
		size_t n = 0;
		int ret = read_full(fd, &pi, sizeof(pi));

		if (ret == 0)
			return 0;
		if (ret < 0)
			return vz_error(err, -ret, "Page server: read a request");
		cmd = pi.cmd & 0xffff;
		if (cmd == VZ_PS_IOV_CLOSE || cmd == VZ_PS_IOV_FORCE_CLOSE) {
			int32_t status = 0;

			ret = write_full(fd, &status, sizeof(status));
			return ret < 0 ? vz_error(err, -ret, "Page server") : 0;
		}
		if (cmd != VZ_PS_IOV_GET)
			return vz_error_msg(err, EPROTO, "Page server: unexpected command %#x", pi.cmd);
		if (pi.nr_pages == 0 || pi.vaddr % PAGE || pi.dst_id == 0 || pi.dst_id > INT32_MAX)
			return vz_error_msg(err, EPROTO, "Page server: bad request for %llu pages at %#llx of pid %llu",
					    (unsigned long long)pi.nr_pages, (unsigned long long)pi.vaddr,
					    (unsigned long long)pi.dst_id);
		/* The longest run held from vaddr; CRIU asks again for the rest. */
		while (n < pi.nr_pages && n < MAX_REPLY_PAGES &&
		       vz_pstore_get(s, (int)pi.dst_id, pi.vaddr + n * PAGE, s->buf + n * PAGE) == 0)
			n++;
		/* Post-copy: whatever part of the request the store lacks is
		 * fetched, so that CRIU gets the whole range it asked for. */
		if (s->fetch && n < pi.nr_pages && n < MAX_REPLY_PAGES) {
			uint64_t want = (pi.nr_pages > MAX_REPLY_PAGES ? MAX_REPLY_PAGES : pi.nr_pages) - n;
			uint64_t before = vz_pstore_pages(s);

			ret = s->fetch(s->fetch_arg, (int)pi.dst_id, pi.vaddr + n * PAGE, want, err);
			if (ret < 0)
				return ret;
			if (st)
				st->fetched += vz_pstore_pages(s) - before;
			while (n < pi.nr_pages && n < MAX_REPLY_PAGES &&
			       vz_pstore_get(s, (int)pi.dst_id, pi.vaddr + n * PAGE, s->buf + n * PAGE) == 0)
				n++;
		}
		if (n == 0)
			return vz_error_msg(err, ENOENT, "Page server: pid %llu's page at %#llx was never sent here",
					    (unsigned long long)pi.dst_id, (unsigned long long)pi.vaddr);
		pi.cmd = (uint32_t)VZ_PE_PRESENT << 16 | VZ_PS_IOV_ADD_F;
		pi.nr_pages = n;
		/* Header and pages in one send: a faulting thread waits on it. */
		memmove(s->buf + sizeof(pi), s->buf, n * PAGE);
		memcpy(s->buf, &pi, sizeof(pi));
		ret = write_full(fd, s->buf, sizeof(pi) + n * PAGE);
		if (ret < 0)
			return vz_error(err, -ret, "Page server: send pages");
		if (st) {
			st->requests++;
			st->pages += n;
		}
	}
}
