/* The decision after a lost connection, and recovery after an agent
 * restart. A destination holding a restored, frozen VE asks the source
 * for the decision until it answers (mig_ask_decision); the source answers,
 * recording "abort" first when there is no decision yet
 * (mig_answer_decision). At start an agent acts on each record a dead
 * worker left (mig_recover), one function per kind, in this order:
 * outgoing (end CRIU's session, thaw or end the source copy), capped
 * (restore CPU limits), decision (remove a source copy moved away),
 * incoming (wait for the decision on a VE restored here, or undo). */
#define LOG_PREFIX "migrate: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "migrate_int.h"
#include "paths.h"
#include "resources.h"
#include "util.h"

/* One question: the decision, or a negative errno. */
static int ask_once(struct mig_dst *d, const char *host, bool *go, struct vz_err *err)
{
	struct vz_conn c;
	mig_msg *r = NULL;
	int ret = mig_connect(d->a, host, d->h->source_port, 10000, &c, err);

	if (ret < 0)
		return ret;
	ret = mig_send_named(&c, VZ__MIGRATE__TYPE__T_ASK_DECISION, d->mid, d->veid, err);
	if (ret == 0)
		ret = mig_expect(&c, VZ__MIGRATE__TYPE__T_DECISION, &r, err);
	if (ret == 0)
		*go = r->has_go && r->go;
	mig_msg_free(r);
	vz_conn_close(&c);
	return ret;
}

void mig_ask_decision(struct mig_dst *d)
{
	struct vz_err err = { 0 };
	char host[128] = "";
	uint64_t end = vz_now_ns() + (uint64_t)MIG_DECISION_WAIT_S * 1000000000ULL;

	if (d->src_host[0])
		snprintf(host, sizeof(host), "%s", d->src_host);
	else
		vz_sock_peer_host(d->conn.fd, host, sizeof(host));
	if (!host[0])
		snprintf(host, sizeof(host), "%s", d->h->source_host ? d->h->source_host : "");
	vz_conn_close(&d->conn);
	while (vz_now_ns() < end) {
		bool go = false;

		if (ask_once(d, host, &go, &err) == 0) {
			pr_info("VE %u: the source decided %s for migration %s", d->veid, go ? "go" : "abort", d->mid);
			if (go && mig_dst_finish(d, &err) == 0)
				mig_dst_finish_lazy(d);
			else
				mig_dst_cleanup(d);
			return;
		}
		pr_warn("VE %u: waiting for the decision on migration %s from %s: %s", d->veid, d->mid, host, err.msg);
		vz_err_clear(&err);
		sleep(2);
	}
	pr_err("VE %u: no decision from the source in %d s; the VE stays frozen here (migration %s)", d->veid,
	       MIG_DECISION_WAIT_S, d->mid);
}

void mig_answer_decision(struct mig_srv *v, const mig_msg *q)
{
	mig_msg r = VZ__MIGRATE__MSG__INIT;
	struct vz_err err = { 0 };
	bool go = false;
	unsigned veid;

	if (!mig_named_ok(q, &veid)) {
		mig_send_error(&v->conn, VZ_EXIT_INVAL, "Malformed question");
		return;
	}
	/* No decision yet means the source gave up: record abort, first. */
	if (mig_decide(veid, q->migration_id, false, &go, &err) < 0) {
		mig_send_error(&v->conn, VZ_EXIT_SYSTEM, err.msg);
		return;
	}
	pr_info("VE %u: told %s the decision on migration %s: %s", veid, v->conn.peer, q->migration_id,
		go ? "go" : "abort");
	r.type = VZ__MIGRATE__TYPE__T_DECISION;
	r.has_go = true;
	r.go = go;
	vz_msg_send(&v->conn, &r.base, &err);
}

/* The source side of a move whose worker died during the dump: once CRIU
 * has let go of the VE, thaw it, unless the move was decided go. */
static void resume_or_end(struct vz_agent *a, unsigned veid, const char *mid)
{
	uint64_t end = vz_now_ns() + 15ull * 1000000000ull;
	struct vz_err e = { 0 };
	bool go = false;

	while (mig_ve_traced(a, veid) && vz_now_ns() < end)
		usleep(20000);
	/* No decision yet means none will be "go": record the abort first. */
	if (mig_decide(veid, mid, false, &go, &e) < 0) {
		pr_err("VE %u: migration %s: %s", veid, mid, e.msg);
		return;
	}
	if (go) {
		pr_info("VE %u: migration %s was decided go; ending the source copy", veid, mid);
		ve_kill(a, veid, 0);
	} else if (vz_cg_thaw(&a->cg, veid, &e) == 0) {
		pr_info("VE %u: migration %s was not decided; the VE runs here again", veid, mid);
	} else {
		pr_err("VE %u: thaw after migration %s: %s", veid, mid, e.msg);
	}
}

/* A worker that died during an online move's dump left CRIU with the VE
 * seized (and, with a lazy dump, waiting on its page server): end that
 * session, then resume or end the VE. Post-copy after the go: the frozen
 * copy holds pages the destination may still lack; it stays until the
 * destination says it has them all (mig_serve_page_stream). */
static void recover_outgoing(void *arg, const struct mig_record *name, const char *path)
{
	struct vz_agent *a = arg;
	struct mig_record r = *name;

	if (mig_record_read(&r, NULL) < 0)
		r.port = 0;
	if (r.postcopy && mig_decided_go(r.veid, r.mid)) {
		r.recovered = true;
		mig_record_write(&r, NULL);
		pr_info("VE %u: migration %s is in post-copy: the frozen source copy stays until %s", r.veid, r.mid,
			"the destination has every page");
		return;
	}
	if (r.port > 0) {
		int fd = mig_loopback_connect(r.port);

		if (fd >= 0) {
			pr_info("VE %u: ended the lazy-dump session of migration %s", r.veid, r.mid);
			close(fd);
		}
	}
	resume_or_end(a, r.veid, r.mid);
	unlink(path);
}

/* An auto-converge cap a dead worker left on a VE: its configured CPU
 * limits again. */
static void recover_capped(void *arg, const struct mig_record *r, const char *path)
{
	struct vz_agent *a = arg;
	struct vz_err e = { 0 };
	struct ve ve;

	if (ve_open(r->veid, true, &ve, &e) == 0) {
		if (vz_cg_exists(&a->cg, r->veid) && res_apply_cpu(&a->cg, r->veid, &ve.conf, &e) < 0)
			pr_warn("VE %u: restore the CPU limits after auto-converge: %s", r->veid, e.msg);
		else
			pr_info("VE %u: CPU limits restored after an unfinished migration's auto-converge", r->veid);
		ve_close(&ve);
	}
	unlink(path);
}

/* An outgoing move decided go whose source copy is still here (the worker
 * died after the decision): it ran for the last time when the decision was
 * written; remove it, frozen or not (a frozen copy with its SIGKILL pending
 * reads as running; ve_kill thaws what it kills). A VE that came back later
 * has a newer config than the decision. The one copy that stays is
 * post-copy's frozen source, which still holds pages the destination lacks
 * (its outgoing record, kept by recover_outgoing, says so). */
static void recover_decision(void *arg, const struct mig_record *r, const char *path)
{
	struct mig_record out = mig_record_of(MIG_REC_OUTGOING, r->veid, r->mid);
	struct vz_agent *a = arg;
	struct stat ds, cs;
	struct ve ve;

	if (!mig_decided_go(r->veid, r->mid) || stat(path, &ds) != 0)
		return;
	if (mig_record_read(&out, NULL) == 0 && out.postcopy)
		return;
	if (ve_open(r->veid, true, &ve, NULL) < 0)
		return;
	if (stat(ve.conf_path, &cs) == 0 && cs.st_mtime <= ds.st_mtime && ve_lock(&ve, 10000, NULL) == 0) {
		struct vz_err e = { 0 };

		pr_info("VE %u: moved away by migration %s; removing the source copy", r->veid, r->mid);
		ve_kill(a, r->veid, 0);
		ve_teardown(a, &ve, &e);
		ve_destroy_files(&ve, &e);
	}
	ve_close(&ve);
}

/* In a worker of its own: a VE restored and frozen here waits for the
 * source's decision; anything less is removed. */
static void recover_incoming_worker(struct vz_agent *a, const struct mig_record *r, const char *path)
{
	Vz__Migrate__Hello h = VZ__MIGRATE__HELLO__INIT;
	struct mig_dst d;

	mig_dst_init(&d, a);
	d.h = &h;
	h.veid = r->veid;
	h.online = r->online;
	h.source_port = (uint32_t)r->port;
	d.veid = r->veid;
	snprintf(d.mid, sizeof(d.mid), "%s", r->mid);
	snprintf(d.src_host, sizeof(d.src_host), "%s", r->host);
	snprintf(d.marker, sizeof(d.marker), "%s", path);
	vz_path(d.private, sizeof(d.private), VZ_PRIVATE_DIR "/%u", r->veid);
	vz_path(d.conf_path, sizeof(d.conf_path), VZ_CONF_DIR "/%u.conf", r->veid);
	d.made_private = d.made_conf = true;
	if (ve_open(r->veid, true, &d.ve, NULL) == 0)
		d.ve_open = true;
	if (d.ve_open && ve_state(&d.ve, &d.pid) == VE_STATE_RUNNING && r->online) {
		d.restored = true;
		pr_info("VE %u: found restored by migration %s, waiting for its decision", r->veid, r->mid);
		mig_ask_decision(&d);
	} else {
		pr_info("VE %u: removing what the unfinished migration %s left", r->veid, r->mid);
		d.pid = 0;
		d.restored = d.ve_open;
		mig_dst_cleanup(&d);
	}
}

static void recover_incoming(void *arg, const struct mig_record *name, const char *path)
{
	struct vz_agent *a = arg;
	struct mig_record r = *name;
	pid_t pid;

	if (mig_record_read(&r, NULL) < 0)
		return;
	pid = fork();
	if (pid != 0)
		return;
	close(a->listen_fd);
	if (a->mig_fd >= 0)
		close(a->mig_fd);
	recover_incoming_worker(a, &r, path);
	_exit(0);
}

void mig_recover(struct vz_agent *a)
{
	mig_record_scan(MIG_REC_OUTGOING, recover_outgoing, a);
	mig_record_scan(MIG_REC_CAPPED, recover_capped, a);
	mig_record_scan(MIG_REC_DECISION, recover_decision, a);
	mig_record_scan(MIG_REC_INCOMING, recover_incoming, a);
}
