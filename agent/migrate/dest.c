/* The destination of a move (mig_dest_serve, a worker per accepted
 * connection): route the first message (a HELLO starts a move here; the
 * rest are questions to this host as a source), check and accept the
 * HELLO, record the incoming move, then the loop: files, pre-copy's pages,
 * the images, the restore (frozen), and on GO the VE runs here. Before
 * the go any failure removes everything the move made; a VE restored and
 * frozen whose source is lost waits for the decision (recover.c). */
#define LOG_PREFIX "migrate: "
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "imgstream.h"
#include "log.h"
#include "migrate_int.h"
#include "userns.h"
#include "net.h"
#include "orders.h"
#include "paths.h"
#include "util.h"

void mig_dst_init(struct mig_dst *d, struct vz_agent *a)
{
	*d = (struct mig_dst){ .a = a, .img_fd = VZ_FD_INIT, .flock = PTHREAD_MUTEX_INITIALIZER };
	/* No connection yet: not fd 0. */
	d->conn.fd = d->fconn.fd = d->pconn.fd = -EBADF;
	atomic_init(&d->stopping, false);
	atomic_init(&d->lost, false);
}

/* The VE's host-side pair goes with the VE's namespace, but only once the
 * kernel gets round to it: remove it now, so that a retry does not find
 * the name taken. */
static void kill_restored(struct mig_dst *d)
{
	struct vz_err e = { 0 };
	struct vz_netif nif;

	/* Frozen tasks die only once thawed. */
	vz_cg_thaw(&d->a->cg, d->veid, &e);
	ve_kill(d->a, d->veid, d->pid);
	if (d->pid > 0)
		waitpid(d->pid, NULL, WNOHANG);
	if (!d->ve_open)
		return;
	if (ve_teardown(d->a, &d->ve, &e) < 0)
		pr_warn("VE %u: %s", d->veid, e.msg);
	if (ve_has_veth(&d->ve) && ve_netif(&d->ve, d->a, &nif, &e) == 0 && if_nametoindex(nif.host_ifname))
		vz_net_veth_del(&nif, &e);
}

void mig_dst_cleanup(struct mig_dst *d)
{
	struct vz_err e = { 0 };

	if (d->restored || d->pid > 0)
		kill_restored(d);
	if (d->ve_open) {
		ve_restore_undo(d->a, &d->ve, &d->prep);
		/* A worker that died before its restore's end left it. */
		ve_idroot_put(&d->ve);
		ve_umount(&d->ve, &e);
		rmdir(d->ve.root);
	}
	mig_lazy_free(d->lazy);
	d->lazy = NULL;
	mig_postcopy_close(d);
	if (d->imgdir[0])
		vz_rm_rf(d->imgdir);
	if (d->workdir[0])
		vz_rm_rf(d->workdir);
	if (d->made_conf)
		unlink(d->conf_path);
	if (d->made_private && !d->keep)
		vz_rm_rf(d->private);
	if (d->marker[0])
		unlink(d->marker);
	pr_info("VE %u: incoming migration %s undone", d->veid, d->mid);
}

void mig_dst_free(struct mig_dst *d)
{
	mig_lazy_free(d->lazy);
	d->lazy = NULL;
	mig_postcopy_close(d);
	vz_zdec_free(d->pushz);
	free(d->pushbuf);
	vz_zdec_free(d->fz);
	free(d->fbuf);
	vz_pstore_free(d->ps);
	vz_zdec_free(d->pz);
	free(d->pbuf);
	free(d->memhash);
	if (d->ve_open)
		ve_close(&d->ve);
	d->ve_open = false;
	if (d->img_fd >= 0)
		close(d->img_fd);
	d->img_fd = VZ_FD_INIT;
	vz_conn_close(&d->conn);
}

static int write_conf(struct mig_dst *d, struct vz_err *err)
{
	int ret = vz_write_file_replace(d->conf_path, d->h->conf.data, d->h->conf.len, 0644, false);

	if (ret < 0)
		return vz_error(err, -ret, "Write %s", d->conf_path);
	d->made_conf = true;
	ret = ve_open(d->veid, true, &d->ve, err);
	if (ret == 0)
		d->ve_open = true;
	return ret;
}

/* Online, from the HELLO on: the config, the VE's lock (no one else may
 * start it here meanwhile: it runs at the source), and what the restore
 * needs but the images (ve_restore_prepare), made while the VE still runs
 * at the source instead of while it is frozen. The private area is not
 * final yet: a disk image is mounted only at the restore. */
static int prepare_restore(struct mig_dst *d, struct vz_err *err)
{
	uint32_t userns_id = d->h->has_userns_uid ? d->h->userns_uid : 0;
	int ret = write_conf(d, err);

	if (ret == 0)
		ret = ve_lock(&d->ve, 2000, err);
	if (ret == 0)
		ret = ve_restore_prepare(d->a, &d->ve, userns_id, false, &d->prep, err);
	if (ret < 0)
		return vz_error_wrap(err, "Prepare the restore of VE %u on %s", d->veid, d->a->host_name);
	return 0;
}

/* The lazy-pages daemon the restore fetches from, with its socket in a
 * work dir of its own (one per migration); *work becomes that dir. */
static int start_lazy(struct mig_dst *d, int *work, struct vz_err *err)
{
	char lazylog[64];
	uint64_t t0;
	int ret;

	vz_path(d->workdir, sizeof(d->workdir), VZ_DUMP_DIR "/%u.lazy.%d", d->veid, (int)getpid());
	vz_rm_rf(d->workdir);
	close(*work);
	*work = VZ_FD_INIT;
	if (mkdir(d->workdir, 0700) != 0 || (*work = open(d->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return vz_error(err, errno, "Create %s", d->workdir);
	snprintf(lazylog, sizeof(lazylog), "%u.migrate-lazy.log", d->veid);
	if (d->postcopy) {
		ret = mig_postcopy_start(d, err);
		if (ret < 0)
			return ret;
	}
	t0 = vz_now_ns();
	ret = mig_lazy_start(&d->lazy, d->a->criu, d->ps, d->imgdir, d->workdir, lazylog, mig_lazy_failed, d, err);
	if (ret < 0)
		return vz_error_wrap(err, "Lazy restore");
	pr_debug("VE %u: lazy-pages daemon ready in %.0f ms", d->veid, mig_ms_since(t0));
	return 0;
}

static int restore_here(struct mig_dst *d, struct vz_err *err)
{
	_cleanup_close_ int img = VZ_FD_INIT, work = VZ_FD_INIT;
	char logname[64];
	int ret;

	img = open(d->imgdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	work = open(vz_path(logname, sizeof(logname), VZ_DUMP_DIR), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (img < 0 || work < 0)
		return vz_error(err, errno, "Open the images");
	/* The rest was made at the HELLO (prepare_restore), but CRIU's
	 * lazy-pages daemon reads the images as it starts (their inventory and
	 * process tree): it starts only now. */
	if (d->precopy) {
		ret = start_lazy(d, &work, err);
		if (ret < 0)
			return ret;
	}
	snprintf(logname, sizeof(logname), "%u.migrate-restore.log", d->veid);
	ret = ve_restore_run(d->a, &d->ve, &d->prep, img, work, logname, true, d->precopy, &d->pid, err);
	if (ret < 0)
		return ret;
	d->restored = true;
	if (d->memhash || (d->h->has_verify_memory && d->h->verify_memory))
		return mig_dst_verify_memory(d, err);
	return 0;
}

/* Online: thaw; the restore left the VE off the bridge until now. */
static int thaw_restored(struct mig_dst *d, struct vz_err *err)
{
	struct vz_netif nif;
	bool have_nif = ve_has_veth(&d->ve) && ve_netif(&d->ve, d->a, &nif, err) == 0;
	int ret;

	if (have_nif && vz_net_bridge_port(nif.bridge, nif.host_ifname, true, err) < 0)
		pr_warn("VE %u: %s", d->veid, err->msg);
	vz_err_clear(err);
	ret = vz_cg_thaw(&d->a->cg, d->veid, err);
	if (ret == 0 && have_nif && vz_net_garp(d->pid, nif.ifname, err) < 0)
		pr_warn("VE %u: %s", d->veid, err->msg);
	if (ret == 0)
		vz_err_clear(err);
	return ret;
}

int mig_dst_finish(struct mig_dst *d, struct vz_err *err)
{
	int ret = 0;

	if (d->h->online) {
		ret = thaw_restored(d, err);
	} else if (d->h->start_after) {
		ret = ve_do_start(d->a, &d->ve, NULL, err);
	}
	unlink(d->marker);
	d->marker[0] = '\0';
	if (d->imgdir[0] && !d->lazy)
		vz_rm_rf(d->imgdir);
	/* The VE is this host's: others may take its lock. */
	vz_closep(&d->ve.lock_fd);
	pr_info("VE %u: migration %s from %s completed", d->veid, d->mid, d->conn.peer);
	return ret;
}

void mig_dst_finish_lazy(struct mig_dst *d)
{
	if (d->lazy) {
		struct vz_err e = { 0 };
		uint64_t t0 = vz_now_ns();

		if (mig_lazy_wait(d->lazy, 600000, &e) < 0) {
			pr_err("VE %u: %s", d->veid, e.msg);
			mig_lazy_failed(d);
		} else
			pr_info("VE %u: every page in place %.0f ms after the go", d->veid, mig_ms_since(t0));
		mig_lazy_free(d->lazy);
		d->lazy = NULL;
	}
	mig_postcopy_close(d);
	if (d->workdir[0]) {
		char from[PATH_MAX + 64], to[PATH_MAX];

		/* Keep CRIU's logs where the other logs are. */
		for (int i = 0; i < 2; i++) {
			const char *n = i ? "migrate-lazy" : "migrate-restore";

			snprintf(from, sizeof(from), "%s/%u.%s.log", d->workdir, d->veid, n);
			rename(from, vz_path(to, sizeof(to), VZ_DUMP_DIR "/%u.%s.log", d->veid, n));
		}
		vz_rm_rf(d->workdir);
		d->workdir[0] = '\0';
	}
	if (d->imgdir[0])
		vz_rm_rf(d->imgdir);
}

struct sink {
	uint8_t *buf;
	size_t len;
};

static int pages_sink(void *arg, const void *buf, size_t len, struct vz_err *err)
{
	struct sink *k = arg;

	(void)err;
	memcpy(k->buf + k->len, buf, len);
	k->len += len;
	return 0;
}

int mig_pages_into(struct mig_dst *d, const mig_msg *m, struct vz_zdec *z, uint8_t *buf, struct vz_err *err)
{
	struct sink k = { buf, 0 };
	size_t raw;
	int ret;

	if (!d->ps || !mig_pages_ok(m))
		return vz_error_msg(err, EPROTO, "Malformed PAGES");
	raw = (size_t)m->raw_len;
	ret = vz_zdec_chunk(z, m->data.data, m->data.len, raw, pages_sink, &k, err);
	if (ret == 0 && k.len != raw)
		ret = vz_error_msg(err, EPROTO, "PAGES holds %zu bytes, not %zu", k.len, raw);
	if (ret == 0)
		ret = vz_pstore_put(d->ps, (int)m->vpid, m->vaddr, buf, raw / 4096, err);
	return ret;
}

/* What the loop holds: the files' receiver and the images' unpacker. */
struct dst_loop {
	struct mig_recv *rcv;
	struct vz_img_unpacker *u;
	bool done;
};

static int on_images(struct mig_dst *d, struct dst_loop *l, struct vz_err *err)
{
	int work = VZ_FD_INIT, ret;

	if (l->u || d->img_fd >= 0)
		return vz_error_msg(err, EPROTO, "A second IMAGES");
	ret = ve_make_img_dir(d->veid, "incoming", d->imgdir, sizeof(d->imgdir), &d->img_fd, &work, err);
	if (ret < 0)
		return ret;
	close(work);
	/* Images hold memory: cap at what a host may hold. */
	l->u = vz_img_unpacker_new(d->img_fd, 64ull << 30, err);
	return l->u ? 0 : -ENOMEM;
}

/* RESTORED, with the range of ids the VE's root has here. */
static int send_restored(struct mig_dst *d, struct vz_err *err)
{
	mig_msg m = VZ__MIGRATE__MSG__INIT;

	m.type = VZ__MIGRATE__TYPE__T_RESTORED;
	m.userns_uid = ve_userns_running_id(&d->ve, d->pid);
	m.has_userns_uid = m.userns_uid != 0;
	return vz_msg_send(&d->conn, &m.base, err);
}

static int on_images_end(struct mig_dst *d, struct dst_loop *l, struct vz_err *err)
{
	uint64_t t0 = vz_now_ns();
	int ret =
	    l->u ? vz_img_unpacker_finish(l->u, NULL, err) : vz_error_msg(err, EPROTO, "IMAGES_END without IMAGES");

	if (ret == 0)
		ret = restore_here(d, err);
	if (ret == 0)
		ret = send_restored(d, err);
	if (ret == 0)
		pr_info("VE %u: restored (frozen) %.0f ms after the images", d->veid, mig_ms_since(t0));
	return ret;
}

static int on_go(struct mig_dst *d, struct dst_loop *l, struct vz_err *err)
{
	uint64_t t0 = vz_now_ns();
	int ret = mig_dst_finish(d, err);

	/* Decided go: the VE is this host's now, whatever failed here. */
	if (ret < 0)
		pr_err("VE %u: after the go: %s", d->veid, err->msg);
	mig_send_type(&d->conn, VZ__MIGRATE__TYPE__T_DONE, &(struct vz_err){ 0 });
	pr_info("VE %u: running here %.0f ms after the go", d->veid, mig_ms_since(t0));
	mig_dst_finish_lazy(d);
	l->done = true;
	return ret;
}

/* Offline: the files are all here; the config makes it a VE. */
static int on_pass_end(struct mig_dst *d, struct dst_loop *l, struct vz_err *err)
{
	int ret;

	mig_recv_pass_end(l->rcv);
	if (d->h->online)
		return 0;
	ret = write_conf(d, err);
	if (ret == 0)
		ret = mig_send_type(&d->conn, VZ__MIGRATE__TYPE__T_RESTORED, err);
	return ret;
}

static int dst_handle(struct mig_dst *d, struct dst_loop *l, const mig_msg *m, struct vz_err *err)
{
	switch (m->type) {
	case VZ__MIGRATE__TYPE__T_FILE:
	case VZ__MIGRATE__TYPE__T_FILE_END:
	case VZ__MIGRATE__TYPE__T_DELETE: return mig_recv_msg(l->rcv, m, err);
	case VZ__MIGRATE__TYPE__T_DATA:
		return l->u ? vz_img_unpacker_feed(l->u, m->data.data, m->data.len, err) : mig_recv_msg(l->rcv, m, err);
	case VZ__MIGRATE__TYPE__T_PAGES: return mig_pages_into(d, m, d->pz, d->pbuf, err);
	case VZ__MIGRATE__TYPE__T_ROUND_END:
		pr_info("VE %u: pre-copy round %u received, %llu pages held", d->veid, m->round,
			(unsigned long long)(d->ps ? vz_pstore_pages(d->ps) : 0));
		return 0;
	case VZ__MIGRATE__TYPE__T_MEMHASH:
		free(d->memhash);
		d->memhash = strndup((const char *)m->data.data, m->data.len);
		return 0;
	case VZ__MIGRATE__TYPE__T_PASS_END: return on_pass_end(d, l, err);
	case VZ__MIGRATE__TYPE__T_IMAGES: return on_images(d, l, err);
	case VZ__MIGRATE__TYPE__T_IMAGES_END: return on_images_end(d, l, err);
	case VZ__MIGRATE__TYPE__T_GO: return on_go(d, l, err);
	case VZ__MIGRATE__TYPE__T_ABORT: return vz_error_msg(err, ECANCELED, "The source aborted the migration");
	default: return vz_error_msg(err, EPROTO, "Unexpected message %d", (int)m->type);
	}
}

/* Until GO (*done; the result is the finish's) or a failure. */
static int dst_loop(struct mig_dst *d, bool *done, struct vz_err *err)
{
	struct dst_loop l = { .rcv = mig_recv_new(d->private, err) };
	int ret = l.rcv ? 0 : -EIO;

	while (ret == 0 && !l.done) {
		mig_msg *m = NULL;

		ret = mig_recv(&d->conn, &m, err);
		if (ret < 0)
			break;
		ret = dst_handle(d, &l, m, err);
		mig_msg_free(m);
	}
	mig_recv_free(l.rcv);
	vz_img_unpacker_free(l.u);
	*done = l.done;
	return ret;
}

/* Accept the HELLO: checks, lazy restore, HELLO_OK (sent by the caller). */
static int accept_hello(struct mig_dst *d, mig_msg *ok, char *criu_text, size_t len, uint64_t *free_bytes)
{
	struct vz_err err = { 0 };

	d->veid = d->h->veid;
	d->keep = d->h->has_keep_dst && d->h->keep_dst;
	snprintf(d->mid, sizeof(d->mid), "%s", d->h->migration_id);
	if (mig_check_hello(d, free_bytes, criu_text, len, &err) < 0) {
		pr_info("Refused migration of VE %u from %s: %s", d->veid, d->conn.peer, err.msg);
		mig_send_error(&d->conn, err.exit_code, err.msg);
		return -EPERM;
	}
	ok->type = VZ__MIGRATE__TYPE__T_HELLO_OK;
	ok->has_free_bytes = true;
	ok->free_bytes = *free_bytes;
	ok->criu_version = criu_text;
	if (mig_accept_lazy(d, ok, &err) < 0) {
		mig_send_error(&d->conn, VZ_EXIT_SYSTEM, err.msg);
		return -EIO;
	}
	return 0;
}

/* The incoming record and the private area: from here a restarted agent
 * knows of this move (mig_recover). */
static int prepare_incoming(struct mig_dst *d)
{
	struct mig_record inc = mig_record_of(MIG_REC_INCOMING, d->veid, NULL);
	char dir[PATH_MAX];

	mig_record_path(&inc, d->marker, sizeof(d->marker));
	vz_path(d->private, sizeof(d->private), VZ_PRIVATE_DIR "/%u", d->veid);
	vz_path(d->conf_path, sizeof(d->conf_path), VZ_CONF_DIR "/%u.conf", d->veid);
	vz_mkdir_p(vz_path(dir, sizeof(dir), VZ_CONF_DIR), 0755);
	vz_mkdir_p(vz_path(dir, sizeof(dir), VZ_PRIVATE_DIR), 0755);
	vz_sock_peer_host(d->conn.fd, d->src_host, sizeof(d->src_host));
	if (!d->src_host[0])
		snprintf(d->src_host, sizeof(d->src_host), "-");
	snprintf(inc.mid, sizeof(inc.mid), "%s", d->mid);
	snprintf(inc.host, sizeof(inc.host), "%s", d->src_host);
	inc.port = (int)d->h->source_port;
	inc.online = d->h->online;
	if (mig_record_write(&inc, NULL) < 0 || mkdir(d->private, 0755) != 0) {
		mig_send_error(&d->conn, VZ_EXIT_CREATE, "Cannot make the VE's private area");
		d->marker[0] = '\0';
		return -EIO;
	}
	d->made_private = true;
	return 0;
}

/* The move, from HELLO_OK to its end, one way or the other. */
static void run_incoming(struct mig_dst *d, const mig_msg *ok)
{
	struct vz_err err = { 0 };
	uint64_t t0 = vz_now_ns();
	bool done = false;
	int ret;

	pr_info("VE %u: incoming migration %s from %s (%s)", d->veid, d->mid, d->conn.peer,
		d->h->online ? "online" : "offline");
	ret = vz_msg_send(&d->conn, &ok->base, &err);
	if (ret == 0 && d->h->online)
		ret = prepare_restore(d, &err);
	if (ret == 0)
		ret = dst_loop(d, &done, &err);
	if (done) {
		mig_dst_record_stats(d, true, mig_ms_since(t0));
		return;
	}
	if (d->restored && d->h->online && err.errnum != ECANCELED && !d->failed_here) {
		/* Lost the source after restoring: the VE stays frozen until the
		 * source's decision is known. */
		pr_warn("VE %u: lost the source (%s) after the restore; asking for the decision", d->veid, err.msg);
		mig_ask_decision(d);
		return;
	}
	pr_info("VE %u: incoming migration failed: %s", d->veid, err.msg);
	mig_dst_record_stats(d, false, mig_ms_since(t0));
	mig_send_error(&d->conn, err.exit_code, err.msg);
	mig_dst_cleanup(d);
}

/* A HELLO: a move to this host. */
static void serve_move(struct mig_srv *v, mig_msg *hello)
{
	struct mig_dst d;
	mig_msg ok = VZ__MIGRATE__MSG__INIT;
	char criu_text[32] = "";
	uint64_t free_bytes = 0;

	mig_dst_init(&d, v->a);
	d.conn = v->conn;
	d.h = hello->hello;
	if (accept_hello(&d, &ok, criu_text, sizeof(criu_text), &free_bytes) == 0) {
		if (d.h->dry_run)
			vz_msg_send(&d.conn, &ok.base, &(struct vz_err){ 0 });
		else if (prepare_incoming(&d) == 0)
			run_incoming(&d, &ok);
	}
	mig_dst_free(&d);
}

void mig_dest_serve(struct vz_agent *a, int fd)
{
	struct mig_srv v = { .a = a };
	struct vz_err err = { 0 };
	struct vz_tls *tls = mig_tls(a, true, &err);
	mig_msg *m = NULL;
	int ret;

	if (!tls) {
		pr_err("Migration refused: %s", err.msg);
		close(fd);
		return;
	}
	ret = vz_tls_accept(tls, fd, (int)(a->mig_timeout * 1000), &v.conn, &err);
	vz_tls_free(tls);
	if (ret < 0) {
		pr_err("Refused a migration peer: %s", err.msg);
		return;
	}
	if (mig_recv(&v.conn, &m, &err) < 0) {
		pr_warn("%s: %s", v.conn.peer, err.msg);
		vz_conn_close(&v.conn);
		return;
	}
	if (m->type == VZ__MIGRATE__TYPE__T_ASK_DECISION)
		mig_answer_decision(&v, m);
	else if (m->type == VZ__MIGRATE__TYPE__T_PAGE_STREAM)
		mig_serve_page_stream(&v, m);
	else if (m->type == VZ__MIGRATE__TYPE__T_PAGE_PUSH)
		mig_serve_page_push(&v, m);
	else if (m->type == VZ__MIGRATE__TYPE__T_ORDER)
		agent_order_serve(a, &v.conn, m);
	else if (m->type == VZ__MIGRATE__TYPE__T_HELLO && m->hello) {
		serve_move(&v, m);
		v.conn.ops = NULL; /* the move's worker closed it */
	} else
		mig_send_error(&v.conn, VZ_EXIT_INVAL, "Expected HELLO");
	mig_msg_free(m);
	vz_conn_close(&v.conn);
}
