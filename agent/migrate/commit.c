/* The online source's frozen moment and the commit: the VE frozen for
 * CRIU's dump, whose post-dump call (the VE seized and dumped, CRIU waiting
 * for our answer) runs the commit phase: the last memory round, the second
 * file pass, the images, the destination's "restored", the decision and
 * the go. Only a go lets CRIU end the source copy; any failure before makes
 * CRIU resume it. The closer thread ends CRIU's lazy-dump page-server
 * session when nobody needs it. */
#define LOG_PREFIX "migrate: "
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "criu.h"
#include "imgstream.h"
#include "log.h"
#include "migrate_int.h"
#include "util.h"

static void *closer_main(void *arg)
{
	struct mig_closer *c = arg;

	while (!atomic_load(&c->stop) && atomic_load(&c->mode) != CLOSER_LEAVE) {
		int fd;

		if (atomic_load(&c->mode) == CLOSER_WAIT) {
			usleep(2000);
			continue;
		}
		fd = mig_loopback_connect(c->port);
		if (fd >= 0) {
			close(fd);
			pr_debug("Ended CRIU's lazy-dump page server session");
			return NULL;
		}
		usleep(2000);
	}
	return NULL;
}

/* A free loopback port for CRIU to listen on, and the thread that waits. */
static int closer_start(struct mig_closer *c, struct vz_err *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		return vz_error(err, errno, "A port for CRIU's page server");
	c->port = ntohs(sa.sin_port);
	atomic_store(&c->stop, false);
	if (pthread_create(&c->th, NULL, closer_main, c) != 0)
		return vz_error_msg(err, EAGAIN, "Cannot start a thread");
	c->running = true;
	return 0;
}

static void closer_stop(struct mig_closer *c)
{
	if (!c->running)
		return;
	atomic_store(&c->stop, true);
	pthread_join(c->th, NULL);
	c->running = false;
}

/* Freezes the VE for the dump. Ourselves: CRIU polls the freezer every
 * 100 ms, we every millisecond or so; CRIU then finds it frozen, seizes
 * it, and leaves the cgroup frozen whatever happens (a failure thaws it).
 * With --verify-memory the rseq areas the digests leave out are read with
 * ptrace the moment before; a thread started in between would go
 * unmasked, so then the VE thaws and both steps are done again. An
 * auto-converge cap ends first: a capped VE would take its time to stop
 * for ptrace and the freezer (a second per stop at the least cap); what it
 * writes meanwhile goes in the last round. */
static int freeze_for_dump(struct mig_src *s, bool use_freezer, struct vz_err *err)
{
	mig_uncap(s);
	for (int tries = 1;; tries++) {
		_cleanup_free_ pid_t *pids = NULL, *seen = NULL, *now = NULL;
		size_t n = 0, nseen = 0;
		bool all = true;
		int ret;

		if (s->verify) {
			free(s->mask);
			s->mask = NULL;
			s->nmask = 0;
			if (vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, err) == 0)
				vz_rseq_areas(pids, n, &s->mask, &s->nmask, &seen, &nseen, err);
			vz_err_clear(err);
		}
		s->freeze_ns = vz_now_ns();
		if (!use_freezer)
			return 0; /* CRIU's ptrace seize stops the VE */
		ret = vz_cg_freeze(&s->a->cg, s->ve->veid, 5000, err);
		if (ret == 0 && s->verify && vz_cg_pids(&s->a->cg, s->ve->veid, &now, &n, NULL) == 0)
			all = vz_threads_seen(now, n, seen, nseen);
		if (ret < 0 || all)
			return ret;
		if (tries == 3) {
			pr_warn("VE %u: threads keep starting; a digest mismatch may be a thread's rseq area",
				s->ve->veid);
			return 0;
		}
		pr_debug("VE %u: a thread started while its rseq areas were read; again", s->ve->veid);
		ret = vz_cg_thaw(&s->a->cg, s->ve->veid, err);
		if (ret < 0)
			return ret;
	}
}

/* A VE whose root is a file system of its own (a disk image on a loop
 * device) has what it wrote reach the image first. A root that is a
 * directory of the host's file system needs nothing: the page cache is the
 * file's contents, and syncing the whole host file system would cost as
 * much as its dirty data, the VE's or not. */
static void sync_root_fs(struct mig_src *s)
{
	_cleanup_close_ int rfd = open(s->ve->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat rs, ps;

	if (rfd >= 0 && fstat(rfd, &rs) == 0 && stat(s->ve->private, &ps) == 0 && rs.st_dev != ps.st_dev) {
		uint64_t t1 = vz_now_ns();

		syncfs(rfd);
		pr_debug("VE %u: synced its file system in %.0f ms", s->ve->veid, mig_ms_since(t1));
	}
}

static int images_sink(void *arg, const void *buf, size_t len, struct vz_err *err)
{
	struct mig_src *s = arg;
	mig_msg m = VZ__MIGRATE__MSG__INIT;

	/* The image stream is compressed already: DATA carries it as is. */
	m.type = VZ__MIGRATE__TYPE__T_DATA;
	m.has_data = true;
	m.data.data = (uint8_t *)buf;
	m.data.len = len;
	mig_phase_show(s, s->phase.done + len);
	return vz_msg_send(&s->conn, &m.base, err);
}

static int send_images(struct mig_src *s, struct vz_err *err)
{
	struct vz_img_stats st;
	uint64_t t0 = vz_now_ns(), total = 0;
	int ret;

	/* What the images hold, for the progress bar (compressed, so the bar
	 * ends early on compressible memory). */
	vz_du(s->images_dir, &total);
	mig_phase_start(s, "Copying the dump", total);
	ret = mig_send_type(&s->conn, VZ__MIGRATE__TYPE__T_IMAGES, err);
	if (ret == 0)
		ret = vz_img_pack(s->images_fd, 1, images_sink, s, &st, err);
	if (ret == 0)
		ret = mig_send_type(&s->conn, VZ__MIGRATE__TYPE__T_IMAGES_END, err);
	if (ret < 0)
		return vz_error_wrap(err, "Send the dump");
	s->raw_bytes += st.raw_bytes;
	s->t.copy = mig_ms_since(t0);
	vz_say(s->progress, "Dump sent: %u images, %llu bytes (%llu compressed), %.0f ms", st.nfiles,
	       (unsigned long long)st.raw_bytes, (unsigned long long)st.wire_bytes, s->t.copy);
	return 0;
}

/* The source copy is doomed from the decision on, whatever becomes of
 * this worker: CRIU holds its tasks with ptrace (it thawed the cgroup once
 * it had seized them), and a SIGKILL ends a ptrace-stopped task at once,
 * so that were this worker to die now and CRIU let the tasks go, none
 * would run again. Post-copy reads the source copy's memory after the go:
 * it is frozen instead, so that it never runs again, and killed when the
 * destination has every page (mig_end_lazy_session). */
static void doom_source_copy(struct mig_src *s)
{
	struct vz_err e = { 0 };

	if (!s->postcopy)
		mig_kill_all(s->a, s->ve->veid);
	else if (vz_cg_freeze_start(&s->a->cg, s->ve->veid, &e) < 0)
		pr_warn("VE %u: %s", s->ve->veid, e.msg);
}

int mig_decide_go(struct mig_src *s, struct vz_err *err)
{
	bool go = false;
	int ret = mig_decide(s->ve->veid, s->mid, true, &go, err);

	if (ret < 0)
		return ret;
	if (!go)
		return vz_error_msg(err, ECANCELED, "The destination lost us and the migration was aborted");
	s->committed = true;
	pr_info("VE %u: migration %s committed", s->ve->veid, s->mid);
	return 0;
}

void mig_say_go(struct mig_src *s, struct vz_err *err)
{
	uint64_t t0 = vz_now_ns();

	s->go_ns = t0;
	if (mig_send_type(&s->conn, VZ__MIGRATE__TYPE__T_GO, err) == 0) {
		s->go_sent = true;
		if (s->postcopy)
			vz_say(s->progress,
			       "VE %u runs on %s now; its memory follows from this host (post-copy): it depends on "
			       "this host until the last page has arrived",
			       s->ve->veid, s->conn.peer);
		s->done_seen = mig_expect(&s->conn, VZ__MIGRATE__TYPE__T_DONE, NULL, err) == 0;
	}
	s->t.undump += mig_ms_since(t0);
}

/* With the source copy frozen and dumped: the rest of the migration up
 * to the decision. A failure here resumes the source copy. */
static int commit_phase(struct mig_src *s, struct vz_err *err)
{
	mig_msg *m = NULL;
	uint64_t t0;
	int ret;

	s->t.dump = mig_ms_since(s->freeze_ns);
	/* Stop-and-copy has its memory in the images; --verify-memory
	 * compares it all the same. */
	if (s->precopy || s->verify) {
		ret = s->precopy ? mig_precopy_final(s, err) : mig_send_digests(s, err);
		if (ret < 0)
			return ret;
	}
	sync_root_fs(s);
	ret = mig_file_pass(s, "Second file pass", &s->t.pass2, err);
	if (ret == 0)
		ret = send_images(s, err);
	if (ret < 0)
		return ret;
	t0 = vz_now_ns();
	ret = mig_expect(&s->conn, VZ__MIGRATE__TYPE__T_RESTORED, &m, err);
	if (ret < 0)
		return vz_error_wrap(err, "Restore on the destination");
	s->userns_dst = m->has_userns_uid ? m->userns_uid : 0;
	mig_msg_free(m);
	s->t.undump = mig_ms_since(t0);
	ret = mig_decide_go(s, err);
	if (ret < 0)
		return ret;
	doom_source_copy(s);
	mig_say_go(s, err);
	s->t.frozen = mig_ms_since(s->freeze_ns);
	if (!s->done_seen)
		pr_warn("VE %u: no confirmation from the destination (%s); it will ask for the decision", s->ve->veid,
			err->msg);
	vz_err_clear(err);
	return 0;
}

/* CRIU's notification: post-dump is the frozen moment. */
static int dump_notify(const char *script, pid_t pid, void *arg)
{
	struct mig_src *s = arg;
	int ret;

	(void)pid;
	if (strcmp(script, "post-dump"))
		return 0;
	ret = commit_phase(s, &s->err);
	if (ret < 0) {
		struct vz_err e = { 0 };

		pr_err("VE %u: %s", s->ve->veid, s->err.msg);
		mig_send_type(&s->conn, VZ__MIGRATE__TYPE__T_ABORT, &e);
		if (s->cl)
			atomic_store(&s->cl->mode, CLOSER_CLOSE);
		return ret;
	}
	if (s->cl && s->postcopy)
		atomic_store(&s->cl->mode, CLOSER_LEAVE); /* the destination's page stream takes it */
	return 0;
}

/* What a dump needs beyond the VE: image and work directories, and for a
 * lazy dump the page-server configuration and the closer. */
struct dump_ctx {
	char conf[PATH_MAX + 16], freezer[PATH_MAX], logname[64];
	int work;
	struct mig_closer cl;
	struct vz_criu_opts o;
};

/* CRIU's lazy dump serves pages on loopback only: pre-copy ends its
 * session as soon as it opens (the destination has the pages); post-copy
 * leaves it to the destination's page stream after the go. */
static int prepare_lazy(struct mig_src *s, struct dump_ctx *x, struct vz_err *err)
{
	int ret;

	snprintf(x->conf, sizeof(x->conf), "%s.conf", s->images_dir);
	ret = vz_write_file(x->conf, "address 127.0.0.1\n", 18, 0);
	if (ret < 0)
		return vz_error(err, -ret, "Write %s", x->conf);
	atomic_store(&x->cl.mode, s->precopy ? CLOSER_CLOSE : CLOSER_WAIT);
	ret = closer_start(&x->cl, err);
	s->cl = &x->cl;
	if (ret < 0)
		return ret;
	x->o.lazy_pages = true;
	x->o.ps_address = "127.0.0.1";
	x->o.ps_port = x->cl.port;
	x->o.config_file = x->conf;
	return 0;
}

static int prepare_dump(struct mig_src *s, struct dump_ctx *x, struct vz_err *err)
{
	struct vz_criu_opts *o = &x->o;
	int ret;

	ret = vz_cg_path(&s->a->cg, s->ve->veid, "freezer", x->freezer, sizeof(x->freezer), err);
	if (ret == 0)
		ret = ve_make_img_dir(s->ve->veid, "mig", s->images_dir, sizeof(s->images_dir), &s->images_fd, &x->work,
				      err);
	if (ret < 0)
		return ret;
	if (s->lazy) {
		ret = prepare_lazy(s, x, err);
		if (ret < 0) {
			vz_rm_rf(s->images_dir);
			return ret;
		}
	}
	snprintf(x->logname, sizeof(x->logname), "%u.migrate.log", s->ve->veid);
	o->images_dir_fd = s->images_fd;
	o->work_dir_fd = x->work;
	o->log_file = x->logname;
	o->pid = s->init;
	o->freeze_cgroup = x->freezer;
	o->timeout_s = s->a->criu_timeout;
	o->tcp_established = true;
	o->nftables_lock = true;
	o->notify = dump_notify;
	o->notify_arg = s;
	return ve_ckpt_dump_externals(s->init, o, err);
}

/* Should this worker die from here, a restarted agent finds the outgoing
 * record: it ends CRIU's lazy session through the port, then thaws the
 * VE or, after a go, ends it (mig_recover). */
static int write_outgoing(struct mig_src *s, struct dump_ctx *x, struct vz_err *err)
{
	struct mig_record rec = mig_record_of(MIG_REC_OUTGOING, s->ve->veid, s->mid);

	rec.port = s->lazy ? x->cl.port : 0;
	rec.postcopy = s->postcopy;
	return mig_record_write(&rec, err);
}

/* CRIU is done, one way or the other. */
static void after_dump(struct mig_src *s, struct dump_ctx *x)
{
	if (s->lazy) {
		closer_stop(&x->cl);
		unlink(x->conf);
		s->cl = NULL;
	}
	if (s->postcopy && s->committed)
		s->t.postcopy = mig_ms_since(s->go_ns);
	vz_track_free(s->pc.trk);
	s->pc.trk = NULL;
	vz_rm_rf(s->images_dir);
	close(s->images_fd);
	s->images_fd = VZ_FD_INIT;
	close(x->work);
	s->images_dir[0] = '\0';
}

/* A stopped task in a frozen cgroup never answers CRIU's ptrace attach
 * (CRIU #1813), and once frozen it no longer reads as stopped in /proc: a
 * VE with one is stopped by CRIU's seize alone. A parent in vfork() cannot
 * be dumped at all and is waited for, within a bound, by ve_ckpt_precheck.
 * A task stopped in the instant between the check and the freeze is left
 * to CRIU_TIMEOUT, which ends the move with the VE running. */
static int choose_freeze(struct mig_src *s, struct dump_ctx *x, struct vz_err *err)
{
	bool use_freezer = true;
	int ret;

	ret = ve_ckpt_precheck(s->a, s->ve->veid, &use_freezer, err);
	if (ret == 0)
		ret = freeze_for_dump(s, use_freezer, err);
	if (!use_freezer)
		x->o.freeze_cgroup = NULL;
	return ret;
}

int mig_dump_and_commit(struct mig_src *s, struct vz_err *err)
{
	struct mig_record out = mig_record_of(MIG_REC_OUTGOING, s->ve->veid, s->mid);
	struct vz_criu criu = { s->a->criu };
	struct dump_ctx x = { .work = VZ_FD_INIT };
	struct vz_err e = { 0 };
	int ret;

	ret = prepare_dump(s, &x, err);
	if (ret < 0) {
		s->cl = NULL; /* x goes with this frame */
		return ret;
	}
	vz_say(s->progress, "Suspending and dumping VE %u", s->ve->veid);
	ret = write_outgoing(s, &x, err);
	if (ret < 0) {
		if (s->lazy)
			closer_stop(&x.cl);
		s->cl = NULL;
		vz_rm_rf(s->images_dir);
		return ret;
	}
	ret = choose_freeze(s, &x, err);
	if (ret == 0)
		ret = vz_criu_dump(&criu, &x.o, err);
	after_dump(s, &x);
	if (!s->committed) {
		/* The commit phase's own error says more than CRIU's (whose
		 * exit code stands). */
		int code = err->exit_code ? err->exit_code : VZ_EXIT_SYSTEM;

		if (s->err.msg[0])
			ret = vz_error_exit_msg(err, code, s->err.errnum ? s->err.errnum : EIO, "%s", s->err.msg);
		else if (ret == 0)
			ret = vz_error_exit_msg(err, code, EIO, "The dump ended without a decision");
		/* CRIU resumed the VE; make sure it is not left frozen. */
		if (ve_state(s->ve, NULL) == VE_STATE_RUNNING)
			vz_cg_thaw(&s->a->cg, s->ve->veid, &e);
		mig_record_remove(&out);
		return ret;
	}
	if (ret < 0)
		pr_warn("VE %u: CRIU after the commit: %s", s->ve->veid, err->msg);
	vz_err_clear(err);
	ve_kill(s->a, s->ve->veid, 0);
	if (ve_teardown(s->a, s->ve, err) < 0)
		pr_warn("VE %u: %s", s->ve->veid, err->msg);
	vz_err_clear(err);
	mig_record_remove(&out);
	return 0;
}
