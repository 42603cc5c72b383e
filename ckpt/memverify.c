/* --verify-memory's digest and the rseq areas it masks (see memverify.h). */
#define LOG_PREFIX "memverify: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "inject.h"
#include "log.h"
#include "memverify.h"
#include "util.h"

#define PAGE  4096ull
#define CHUNK (256 * PAGE) /* read at most 1 MiB at a time */

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif

struct rseq_conf {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size, signature, flags, pad;
};

static int cmp_tid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return x < y ? -1 : x > y;
}

struct rseq_read {
	const pid_t *pids;
	size_t n;
	struct vz_mem_mask *m;
	size_t k, cap;
	pid_t *seen;
	size_t ns, scap;
	pid_t last_pid;
	int vpid;
};

static int rseq_one(pid_t pid, pid_t tid, void *arg)
{
	struct rseq_read *r = arg;
	struct rseq_conf rc = { 0 };
	struct vz_err e = { 0 };
	int sig, ret;

	if (pid != r->last_pid) {
		r->last_pid = pid;
		r->vpid = vz_proc_vpid(pid);
	}
	if (r->vpid < 0)
		return 0;
	ret = vz_ptrace_stop(tid, 0, &sig, &e);
	/* A thread that could not stop existed all the same: it is seen,
	 * only its area is unknown. */
	if ((ret == 0 || ret == -ETIMEDOUT) && vz_grow((void **)&r->seen, &r->scap, r->ns, sizeof(*r->seen), 16) == 0)
		r->seen[r->ns++] = tid;
	if (ret == -ETIMEDOUT)
		pr_warn("%s: the rseq area of thread %d is not masked", e.msg, (int)tid);
	if (ret == 0 && ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(rc), &rc) > 0 &&
	    rc.rseq_abi_pointer && rc.rseq_abi_size && vz_grow((void **)&r->m, &r->cap, r->k, sizeof(*r->m), 16) == 0)
		r->m[r->k++] = (struct vz_mem_mask){ r->vpid, rc.rseq_abi_pointer, rc.rseq_abi_size };
	/* A thread in group-stop goes back to it. One that never stopped
	 * is detached when the reading thread ends. */
	if (ret == 0)
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
	return 0;
}

static int rseq_read_all(void *arg)
{
	struct rseq_read *r = arg;

	return vz_proc_each_thread(r->pids, r->n, rseq_one, r);
}

int vz_rseq_areas(const pid_t *pids, size_t n, struct vz_mem_mask **out, size_t *nout, pid_t **seen, size_t *nseen,
		  struct vz_err *err)
{
	struct rseq_read r = { .pids = pids, .n = n, .last_pid = -1 };
	int ret = vz_ptrace_thread(rseq_read_all, &r);

	if (ret < 0) {
		free(r.m);
		free(r.seen);
		return vz_error(err, -ret, "Read the threads' rseq areas");
	}
	qsort(r.seen, r.ns, sizeof(*r.seen), cmp_tid);
	*out = r.m;
	*nout = r.k;
	if (seen) {
		*seen = r.seen;
		*nseen = r.ns;
	} else {
		free(r.seen);
	}
	return 0;
}

struct seen_set {
	const pid_t *tids;
	size_t n;
};

static int unseen(pid_t pid, pid_t tid, void *arg)
{
	const struct seen_set *s = arg;

	(void)pid;
	return !bsearch(&tid, s->tids, s->n, sizeof(*s->tids), cmp_tid);
}

bool vz_threads_seen(const pid_t *pids, size_t n, const pid_t *seen, size_t nseen)
{
	struct seen_set s = { seen, nseen };

	return vz_proc_each_thread(pids, n, unseen, &s) == 0;
}

static void apply_mask(int vpid, uint64_t a, uint8_t *buf, size_t len, const struct vz_mem_mask *mask, size_t nmask)
{
	for (size_t i = 0; i < nmask; i++) {
		uint64_t s = mask[i].addr, e = s + mask[i].len;

		if (mask[i].vpid != vpid || e <= a || s >= a + len)
			continue;
		if (s < a)
			s = a;
		if (e > a + len)
			e = a + len;
		memset(buf + (s - a), 0, (size_t)(e - s));
	}
}

/* The digest's lines, before they are sorted and joined. */
struct digest {
	const struct vz_mem_mask *mask;
	size_t nmask;
	uint8_t *buf;
	char **lines;
	size_t nl, cap, total;
	EVP_MD_CTX *h; /* the open range [rs, re) */
	unsigned long long rs, re;
};

/* Close the open range: one line "vpid start-end sha256". */
static int range_close(struct digest *d, int vpid, struct vz_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char out[256];
	int k;

	if (!d->h)
		return 0;
	EVP_DigestFinal_ex(d->h, md, &mdlen);
	EVP_MD_CTX_free(d->h);
	d->h = NULL;
	k = snprintf(out, sizeof(out), "%d %llx-%llx ", vpid, d->rs, d->re);
	for (unsigned j = 0; j < mdlen && k < (int)sizeof(out) - 3; j++)
		k += snprintf(out + k, sizeof(out) - (size_t)k, "%02x", md[j]);
	if (vz_grow((void **)&d->lines, &d->cap, d->nl, sizeof(*d->lines), 64) < 0 || !(d->lines[d->nl] = strdup(out)))
		return vz_error_msg(err, ENOMEM, "Out of memory");
	d->total += strlen(out) + 1;
	d->nl++;
	return 0;
}

/* Hash [s, e) of mem into the open range. */
static void range_hash(struct digest *d, int mem, int vpid, unsigned long long s, unsigned long long e)
{
	for (unsigned long long a = s; a < e;) {
		size_t l = (size_t)(e - a > CHUNK ? CHUNK : e - a);
		ssize_t r = pread(mem, d->buf, l, (off_t)a);

		if (r <= 0) {
			/* Unreadable page: its absence is hashed. */
			EVP_DigestUpdate(d->h, "?", 1);
			a += PAGE;
			continue;
		}
		apply_mask(vpid, a, d->buf, (size_t)r, d->mask, d->nmask);
		EVP_DigestUpdate(d->h, d->buf, (size_t)r);
		a += (unsigned long long)r;
	}
}

/* Adjacent mappings are hashed as one range: how the kernel splits or
 * merges VMAs (a userfaultfd registration keeps them apart) differs
 * between hosts, the bytes must not. */
static int digest_proc(struct digest *d, pid_t pid, struct vz_err *err)
{
	char path[64], line[512];
	int vpid = vz_proc_vpid(pid), mem, ret = 0;
	bool more = true;
	FILE *f;

	if (vpid < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem = open(path, O_RDONLY | O_CLOEXEC);
	d->re = 0;
	while (f && mem >= 0 && ret == 0 && more) {
		unsigned long long s = 0, e = 0, off, ino;
		char perms[8], dev[32], name[256] = "";
		bool ok = false;

		more = fgets(line, sizeof(line), f) != NULL;
		if (more &&
		    sscanf(line, "%llx-%llx %7s %llx %31s %llu %255s", &s, &e, perms, &off, dev, &ino, name) >= 6)
			ok = perms[1] == 'w' && perms[3] == 'p' && strncmp(name, "[v", 2);
		if (!more || !ok || s != d->re) {
			ret = range_close(d, vpid, err);
			if (ret < 0 || !ok)
				continue;
			d->h = EVP_MD_CTX_new();
			if (!d->h || !EVP_DigestInit_ex(d->h, EVP_sha256(), NULL)) {
				ret = vz_error_msg(err, ENOMEM, "Out of memory");
				continue;
			}
			d->rs = s;
		}
		d->re = e;
		range_hash(d, mem, vpid, s, e);
	}
	EVP_MD_CTX_free(d->h);
	d->h = NULL;
	if (f)
		fclose(f);
	if (mem >= 0)
		close(mem);
	return ret;
}

static int cmp_line(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	long vx = atol(x), vy = atol(y);

	if (vx != vy)
		return vx < vy ? -1 : 1;
	return strcmp(x, y);
}

int vz_mem_digest(const pid_t *pids, size_t n, const struct vz_mem_mask *mask, size_t nmask, char **text, size_t *len,
		  struct vz_err *err)
{
	struct digest d = { .mask = mask, .nmask = nmask, .buf = malloc(CHUNK) };
	int ret = 0;

	if (!d.buf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (size_t i = 0; i < n && ret == 0; i++)
		ret = digest_proc(&d, pids[i], err);
	free(d.buf);
	if (ret == 0) {
		char *t = malloc(d.total + 1), *p = t;

		qsort(d.lines, d.nl, sizeof(*d.lines), cmp_line);
		for (size_t i = 0; t && i < d.nl; i++)
			p += sprintf(p, "%s\n", d.lines[i]);
		if (t)
			*p = '\0';
		*text = t;
		*len = d.total;
		if (!t)
			ret = vz_error_msg(err, ENOMEM, "Out of memory");
	}
	for (size_t i = 0; i < d.nl; i++)
		free(d.lines[i]);
	free(d.lines);
	return ret;
}
