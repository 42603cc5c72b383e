/* Post-copy on the source: after the go the VE runs on the destination
 * while its memory is still here, in the frozen source copy CRIU's
 * lazy-dump session holds. The destination opens two streams: PAGE_STREAM
 * for the pages it faults on (read through /proc/PID/mem) and PAGE_PUSH
 * for every page in the background. DONE on the fault stream, or a
 * recovered move's end, ends the lazy session and with it the copy. */
#define LOG_PREFIX "migrate: "
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "migrate_int.h"
#include "util.h"

bool mig_ve_traced(struct vz_agent *a, unsigned veid)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;
	bool traced = false;

	if (vz_cg_pids(&a->cg, veid, &pids, &n, NULL) < 0)
		return false;
	for (size_t i = 0; i < n && !traced; i++) {
		char path[64];
		_cleanup_free_ char *st = NULL;
		const char *t;

		snprintf(path, sizeof(path), "/proc/%d/status", (int)pids[i]);
		if (vz_read_file(path, &st, NULL, 8192) == 0 && (t = strstr(st, "TracerPid:")) && atoi(t + 10) != 0)
			traced = true;
	}
	return traced;
}

/* Is the outgoing record of this move there, and kept by a restarted agent? */
static bool outgoing_recovered(unsigned veid, const char *mid)
{
	struct mig_record r = mig_record_of(MIG_REC_OUTGOING, veid, mid);

	return mig_record_read(&r, NULL) == 0 && r.recovered;
}

static bool outgoing_exists(unsigned veid, const char *mid)
{
	struct mig_record r = mig_record_of(MIG_REC_OUTGOING, veid, mid);
	char path[PATH_MAX];

	return vz_exists(mig_record_path(&r, path, sizeof(path)));
}

/* End CRIU's lazy-dump session, which holds the frozen source copy.
 * Decided go: that copy dies as soon as it is thawed, never to run again.
 * CRIU listens once its post-dump call is answered, which may come after
 * the last page. */
void mig_end_lazy_session(struct vz_agent *a, unsigned veid, const char *mid, int port)
{
	struct vz_err err = { 0 };
	uint64_t end = vz_now_ns() + 120ull * 1000000000ull;
	/* Kept by a restarted agent: CRIU may have gone with its worker. */
	bool go, recovered = outgoing_recovered(veid, mid);
	int sk = VZ_FD_INIT;

	if (recovered)
		sk = mig_loopback_connect(port); /* before the tasks go: CRIU ends then */
	go = mig_decided_go(veid, mid);
	if (go)
		mig_kill_all(a, veid);
	while (sk < 0 && vz_now_ns() < end && outgoing_exists(veid, mid) && (!recovered || mig_ve_traced(a, veid)))
		if ((sk = mig_loopback_connect(port)) < 0)
			usleep(2000);
	if (sk >= 0)
		close(sk);
	if (go && vz_cg_thaw(&a->cg, veid, &err) < 0)
		pr_warn("VE %u: %s", veid, err.msg);
}

/* After the destination released a copy whose migration worker died (an
 * agent restart kept it for the destination, mig_recover): what that
 * worker would have done. */
static void finish_recovered(struct vz_agent *a, unsigned veid, const char *mid)
{
	struct mig_record out = mig_record_of(MIG_REC_OUTGOING, veid, mid);
	struct mig_record dec = mig_record_of(MIG_REC_DECISION, veid, mid);
	struct vz_err e = { 0 };
	struct ve ve;

	if (!outgoing_recovered(veid, mid))
		return;
	if (ve_open(veid, true, &ve, &e) == 0) {
		pr_info("VE %u: post-copy migration %s is over; removing the source copy", veid, mid);
		ve_kill(a, veid, 0);
		if (ve_teardown(a, &ve, &e) < 0 || ve_destroy_files(&ve, &e) < 0)
			pr_warn("VE %u: %s", veid, e.msg);
		ve_close(&ve);
	}
	mig_record_remove(&out);
	mig_record_remove(&dec);
}

/* The outgoing record of the move a PAGE_STREAM or PAGE_PUSH names, with
 * CRIU's page-server port; -EINVAL after telling the peer why not. */
static int outgoing_of(struct mig_srv *v, const mig_msg *m, const char *what, struct mig_record *out)
{
	char msg[64];
	unsigned veid;

	if (!mig_named_ok(m, &veid)) {
		snprintf(msg, sizeof(msg), "Malformed %s", what);
		mig_send_error(&v->conn, VZ_EXIT_INVAL, msg);
		return -EINVAL;
	}
	*out = mig_record_of(MIG_REC_OUTGOING, veid, m->migration_id);
	if (mig_record_read(out, NULL) < 0 || out->port <= 0) {
		mig_send_error(&v->conn, VZ_EXIT_INVAL, "No post-copy migration of that id here");
		return -EINVAL;
	}
	return 0;
}

struct push {
	struct vz_conn *conn;
	struct vz_zenc *z;
	uint64_t pages;
};

static int push_emit(void *arg, int vpid, uint64_t vaddr, const void *data, size_t npages, struct vz_err *err)
{
	struct push *p = arg;

	p->pages += npages;
	return mig_send_pages(p->conn, p->z, (uint32_t)vpid, vaddr, data, npages * 4096, err);
}

void mig_serve_page_push(struct mig_srv *v, const mig_msg *m)
{
	struct mig_record out;
	struct vz_err err = { 0 };
	struct push p = { .conn = &v->conn };
	struct vz_track *t = NULL;
	struct vz_track_stats st;
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;
	int ret = -ENOMEM;

	if (outgoing_of(v, m, "PAGE_PUSH", &out) < 0)
		return;
	/* The tracker with no back-end finds every present private page. */
	p.z = vz_zenc_new(1, &err);
	t = p.z ? vz_track_new(VZ_TRACK_NONE, NULL, NULL, &err) : NULL;
	if (t && (ret = vz_cg_pids(&v->a->cg, out.veid, &pids, &n, &err)) == 0)
		ret = vz_track_round(t, pids, n, push_emit, &p, &st, &err);
	vz_track_free(t);
	vz_zenc_free(p.z);
	/* The end. The destination, once it has stored all of it, says DONE
	 * on its fault stream, and that ends the source copy; not this:
	 * pages sent are not yet pages held. */
	if (ret == 0)
		ret = mig_send_type(&v->conn, VZ__MIGRATE__TYPE__T_ROUND_END, &err);
	pr_info("VE %u: post-copy: %llu pages pushed to %s%s%s", out.veid, (unsigned long long)p.pages, v->conn.peer,
		err.msg[0] ? ": " : "", err.msg);
}

/* /proc/PID/mem of each process of the VE, by its pid in the VE. */
struct mem_map {
	struct {
		int vpid, mem;
	} e[256];
	size_t n;
};

static void open_mems(struct vz_agent *a, unsigned veid, struct mem_map *map)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;

	map->n = 0;
	if (vz_cg_pids(&a->cg, veid, &pids, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < n && map->n < 256; i++) {
		char mp[64];
		int vpid = vz_proc_vpid(pids[i]), fd;

		snprintf(mp, sizeof(mp), "/proc/%d/mem", (int)pids[i]);
		if (vpid > 0 && (fd = open(mp, O_RDONLY | O_CLOEXEC)) >= 0) {
			map->e[map->n].vpid = vpid;
			map->e[map->n++].mem = fd;
		}
	}
}

static bool page_req_ok(const mig_msg *q)
{
	return q->type == VZ__MIGRATE__TYPE__T_PAGE_REQ && q->has_vpid && q->has_vaddr && q->has_raw_len && q->vpid &&
	       q->vpid <= INT32_MAX && q->vaddr % 4096 == 0 && q->raw_len && q->raw_len % 4096 == 0 &&
	       q->raw_len <= MIG_PAGES_MAX;
}

/* Answer PAGE_REQs until the destination says DONE (true) or goes. */
static bool answer_faults(struct mig_srv *v, unsigned veid, const struct mem_map *map, uint64_t *pages)
{
	struct vz_err err = { 0 };
	struct vz_zenc *z = vz_zenc_new(1, &err);
	uint8_t *buf = malloc(MIG_PAGES_MAX);
	bool released = false;

	if (!z || !buf)
		pr_err("VE %u: post-copy: cannot answer faults: %s", veid, z ? "Out of memory" : err.msg);
	while (z && buf) {
		mig_msg *q = NULL;
		uint32_t vpid;
		uint64_t vaddr;
		ssize_t got = -1;

		if (mig_recv(&v->conn, &q, &err) < 0)
			break; /* gone, without a word */
		if (q->type == VZ__MIGRATE__TYPE__T_DONE) {
			mig_msg_free(q);
			released = true; /* it has all it wants */
			break;
		}
		if (!page_req_ok(q)) {
			mig_msg_free(q);
			mig_send_error(&v->conn, VZ_EXIT_INVAL, "Malformed PAGE_REQ");
			break;
		}
		for (size_t i = 0; i < map->n; i++)
			if (map->e[i].vpid == (int)q->vpid)
				got = pread(map->e[i].mem, buf, (size_t)q->raw_len, (off_t)q->vaddr);
		vpid = q->vpid;
		vaddr = q->vaddr;
		mig_msg_free(q);
		if (got < 4096) {
			pr_err("VE %u: post-copy: cannot read pid %u's page at %#llx", veid, vpid,
			       (unsigned long long)vaddr);
			mig_send_error(&v->conn, VZ_EXIT_SYSTEM, "The source cannot read that page");
			break;
		}
		got -= got % 4096;
		if (mig_send_pages(&v->conn, z, vpid, vaddr, buf, (size_t)got, &err) < 0)
			break;
		*pages += (uint64_t)got / 4096;
	}
	vz_zenc_free(z);
	free(buf);
	return released;
}

/* A destination fetches the pages of a VE it runs now (or is restoring)
 * from the frozen source copy until it closes this stream. */
void mig_serve_page_stream(struct mig_srv *v, const mig_msg *m)
{
	/* Faults come when they come: no read timeout (keepalive and the
	 * user timeout still end it if the destination goes). */
	struct timeval tv = { 0, 0 };
	struct mig_record out;
	struct mem_map map;
	uint64_t pages = 0;
	bool released;

	if (outgoing_of(v, m, "PAGE_STREAM", &out) < 0)
		return;
	setsockopt(v->conn.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	open_mems(v->a, out.veid, &map);
	pr_info("VE %u: post-copy: serving migration %s's pages to %s (%zu processes)", out.veid, out.mid, v->conn.peer,
		map.n);
	released = answer_faults(v, out.veid, &map, &pages);
	for (size_t i = 0; i < map.n; i++)
		close(map.e[i].mem);
	pr_info("VE %u: post-copy: %llu pages served to %s", out.veid, (unsigned long long)pages, v->conn.peer);
	/* The destination wants nothing more: the source copy ends with the
	 * session, as the decision says once there is one. Gone without a
	 * word after a go: the copy holds pages the VE may still lack, so it
	 * stays, frozen, for the destination to come back for. */
	while (outgoing_exists(out.veid, out.mid) && !mig_decision_exists(out.veid, out.mid))
		usleep(10000);
	if (!released && mig_decided_go(out.veid, out.mid)) {
		pr_warn("VE %u: post-copy: %s went away before it had every page; the frozen copy stays here "
			"for it (migration %s)",
			out.veid, v->conn.peer, out.mid);
		return;
	}
	mig_end_lazy_session(v->a, out.veid, out.mid, out.port);
	finish_recovered(v->a, out.veid, out.mid);
}
