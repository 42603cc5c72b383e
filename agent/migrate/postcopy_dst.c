/* Post-copy on the destination: the VE runs here while its memory is
 * still on the source. Two connections to the source: the fault stream
 * (the page server asks for each page the store lacks, post_fetch, in the
 * page server's thread) and the push stream (the source sends every page
 * in the background, push_main, a thread of its own). Once every page is
 * here, DONE on the fault stream releases the source copy. A source lost
 * meanwhile is retried for a while; pages that cannot come freeze the VE
 * (it never runs on missing pages).
 *
 * Threads: fault_open, fconn and released belong to whoever holds flock
 * (post_fetch, the push thread once it is done, and the worker closing);
 * stopping is how the worker ends the push thread; lost is set from the
 * lazy restore's page-server thread (mig_lazy_failed). */
#define LOG_PREFIX "migrate: "
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "migrate_int.h"
#include "util.h"

/* A connection of its own to the source, opened with its first message
 * (PAGE_STREAM or PAGE_PUSH) naming this migration. */
static int open_source_stream(struct mig_dst *d, Vz__Migrate__Type type, struct vz_conn *c, struct vz_err *err)
{
	int ret = mig_connect(d->a, d->src_host, d->h->source_port, (int)(d->a->mig_timeout * 1000), c, err);

	if (ret < 0)
		return vz_error_wrap(err, "Post-copy: reach the source");
	ret = mig_send_named(c, type, d->mid, d->veid, err);
	if (ret < 0)
		vz_conn_close(c);
	return ret;
}

/* The fault stream, opened unless it is; flock held. */
static int fault_stream(struct mig_dst *d, struct vz_err *err)
{
	int ret = 0;

	if (!d->fault_open && (ret = open_source_stream(d, VZ__MIGRATE__TYPE__T_PAGE_STREAM, &d->fconn, err)) == 0)
		d->fault_open = true;
	return ret;
}

/* DONE on the fault stream tells the source that nothing more is wanted
 * from it: it ends its copy then (once the move is decided). A stream that
 * merely breaks does not: the source keeps its frozen copy for the
 * destination to come back to. flock held. */
static void release_source(struct mig_dst *d)
{
	struct vz_err e = { 0 };

	fault_stream(d, &e);
	if (!d->fault_open || mig_send_type(&d->fconn, VZ__MIGRATE__TYPE__T_DONE, &e) < 0)
		pr_warn("VE %u: post-copy: cannot tell the source it is released: %s", d->veid, e.msg);
	if (d->fault_open)
		vz_conn_close(&d->fconn);
	d->fault_open = false;
	d->released = true;
}

static void fault_stream_close(struct mig_dst *d)
{
	pthread_mutex_lock(&d->flock);
	if (!d->released && !atomic_load(&d->lost)) {
		release_source(d);
	} else if (d->fault_open) {
		vz_conn_close(&d->fconn);
		d->fault_open = false;
	}
	pthread_mutex_unlock(&d->flock);
}

/* Post-copy lost the source: how long to try again before giving up. */
static uint64_t postcopy_deadline(const struct mig_dst *d)
{
	return vz_now_ns() + 4ull * d->a->mig_timeout * 1000000000ull;
}

/* A failure to retry: the link or the peer went, not the source's refusal
 * (a TLS stream cut mid-record reads as EPROTO: retried too). */
static bool retryable(int ret)
{
	return ret != -EREMOTEIO && ret != -ENOMEM;
}

/* The push broke: start over on a new stream (the store keeps what came),
 * while the source copy is there to read. False when it cannot. */
static bool push_reopen(struct mig_dst *d, uint64_t *deadline, struct vz_err *err)
{
	if (!*deadline) {
		*deadline = postcopy_deadline(d);
		pr_warn("VE %u: post-copy: the push from the source broke (%s); trying again", d->veid, err->msg);
	}
	vz_conn_close(&d->pconn);
	d->push_open = false;
	vz_zdec_reset(d->pushz); /* a new stream, a new zstd frame */
	while (!atomic_load(&d->stopping) && vz_now_ns() < *deadline) {
		vz_err_clear(err);
		if (open_source_stream(d, VZ__MIGRATE__TYPE__T_PAGE_PUSH, &d->pconn, err) == 0) {
			d->push_open = true;
			return true;
		}
		usleep(500000);
	}
	pr_err("VE %u: post-copy: no push from the source: %s", d->veid, err->msg);
	return false;
}

/* The source sends every page on the push stream, then ROUND_END; this
 * thread puts them in the store. Once all are there the source is needed
 * no more: only then is the fault stream closed (a fetch in flight is
 * answered first). */
static void *push_main(void *arg)
{
	struct mig_dst *d = arg;
	struct vz_err err = { 0 };
	uint64_t deadline = 0;

	for (;;) {
		mig_msg *m = NULL;
		int ret = mig_recv(&d->pconn, &m, &err);

		if (ret < 0 && retryable(ret) && !atomic_load(&d->stopping)) {
			if (push_reopen(d, &deadline, &err))
				continue;
			break;
		}
		if (ret < 0)
			break;
		deadline = 0;
		if (m->type == VZ__MIGRATE__TYPE__T_ROUND_END) {
			mig_msg_free(m);
			fault_stream_close(d);
			pr_info("VE %u: post-copy: all %llu pages of the source copy are here; it is released", d->veid,
				(unsigned long long)d->pushed);
			break;
		}
		if (m->type != VZ__MIGRATE__TYPE__T_PAGES || mig_pages_into(d, m, d->pushz, d->pushbuf, &err) < 0) {
			mig_msg_free(m);
			break;
		}
		d->pushed += m->raw_len / 4096;
		mig_msg_free(m);
	}
	return NULL;
}

/* Both streams to the source, the one for faults first. The source copy
 * lives as long as that one is open. */
static void push_start(struct mig_dst *d)
{
	struct vz_err err = { 0 };

	pthread_mutex_lock(&d->flock);
	fault_stream(d, &err);
	pthread_mutex_unlock(&d->flock);
	if (!d->fault_open)
		pr_warn("VE %u: post-copy: %s (a fault retries)", d->veid, err.msg);
	vz_err_clear(&err);
	d->pushz = vz_zdec_new();
	d->pushbuf = malloc(MIG_PAGES_MAX);
	if (!d->pushz || !d->pushbuf || open_source_stream(d, VZ__MIGRATE__TYPE__T_PAGE_PUSH, &d->pconn, &err) < 0) {
		/* Faults alone still bring every page. */
		pr_warn("VE %u: post-copy without a background push: %s", d->veid, err.msg[0] ? err.msg : "no memory");
		return;
	}
	d->push_open = true;
	if (pthread_create(&d->pth, NULL, push_main, d) == 0)
		d->push_thread_on = true;
}

static void push_stop(struct mig_dst *d)
{
	atomic_store(&d->stopping, true);
	if (d->push_open && d->pconn.fd >= 0)
		shutdown(d->pconn.fd, SHUT_RDWR);
	if (d->push_thread_on) {
		pthread_join(d->pth, NULL);
		d->push_thread_on = false;
	}
	if (d->push_open) {
		vz_conn_close(&d->pconn);
		d->push_open = false;
		pr_info("VE %u: post-copy: %llu pages pushed by the source", d->veid, (unsigned long long)d->pushed);
	}
}

void mig_postcopy_close(struct mig_dst *d)
{
	push_stop(d);
	fault_stream_close(d);
}

void mig_lazy_failed(void *arg)
{
	struct mig_dst *d = arg;
	struct vz_err e = { 0 };

	/* A lazy restore that cannot bring every page: the VE must not run
	 * on with some of its memory missing (it would read zeros there). It
	 * stays frozen, as QEMU pauses a guest whose post-copy broke; before
	 * the go it is frozen anyway and the move is undone. */
	atomic_store(&d->lost, true);
	if (vz_cg_freeze_start(&d->a->cg, d->veid, &e) < 0)
		pr_err("VE %u: freeze after a failed lazy restore: %s", d->veid, e.msg);
	else
		pr_err("VE %u: its memory cannot be brought in full: the VE is frozen so that it never runs on "
		       "missing pages",
		       d->veid);
}

/* One PAGE_REQ on the fault stream and its PAGES into the store; flock held. */
static int fetch_once(struct mig_dst *d, int vpid, uint64_t vaddr, uint64_t npages, struct vz_err *err)
{
	mig_msg q = VZ__MIGRATE__MSG__INIT, *r = NULL;
	int ret = fault_stream(d, err);

	if (ret < 0)
		return ret;
	q.type = VZ__MIGRATE__TYPE__T_PAGE_REQ;
	q.has_vpid = q.has_vaddr = q.has_raw_len = true;
	q.vpid = (uint32_t)vpid;
	q.vaddr = vaddr;
	q.raw_len = npages * 4096;
	ret = vz_msg_send(&d->fconn, &q.base, err);
	if (ret == 0)
		ret = mig_expect(&d->fconn, VZ__MIGRATE__TYPE__T_PAGES, &r, err);
	if (ret == 0 && (r->vpid != (uint32_t)vpid || r->vaddr != vaddr))
		ret = vz_error_msg(err, EPROTO, "Post-copy: the source answered for other pages");
	if (ret == 0)
		ret = mig_pages_into(d, r, d->fz, d->fbuf, err);
	mig_msg_free(r);
	return ret;
}

/* In the page server's thread: ask the source for pages the store lacks.
 * The source went away: the faulting threads wait while we try again; its
 * frozen copy waits for us. */
static int post_fetch(void *arg, int vpid, uint64_t vaddr, uint64_t npages, struct vz_err *err)
{
	struct mig_dst *d = arg;
	uint64_t deadline = 0;
	int ret = 0;

	pthread_mutex_lock(&d->flock);
	for (;;) {
		if (d->released) {
			ret = vz_error_msg(err, ENOENT, "Not among the pages the source copy has");
			break;
		}
		vz_err_clear(err);
		ret = fetch_once(d, vpid, vaddr, npages, err);
		if (ret == 0 || !retryable(ret))
			break;
		if (d->fault_open)
			vz_conn_close(&d->fconn);
		d->fault_open = false;
		vz_zdec_reset(d->fz);
		if (!deadline) {
			deadline = postcopy_deadline(d);
			pr_warn("VE %u: post-copy: lost the source (%s); trying again", d->veid, err->msg);
		} else if (vz_now_ns() > deadline) {
			break;
		}
		usleep(500000);
	}
	if (ret == 0 && deadline)
		pr_info("VE %u: post-copy: the source is back", d->veid);
	pthread_mutex_unlock(&d->flock);
	if (ret < 0)
		return vz_error_wrap(err, "Post-copy: pid %d's page at %#llx", vpid, (unsigned long long)vaddr);
	return 0;
}

int mig_postcopy_start(struct mig_dst *d, struct vz_err *err)
{
	d->fz = vz_zdec_new();
	d->fbuf = malloc(MIG_PAGES_MAX);
	if (!d->fz || !d->fbuf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	vz_pstore_set_fetch(d->ps, post_fetch, d);
	push_start(d);
	return 0;
}
