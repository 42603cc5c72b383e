/* The source of a move, as a flat list of named steps (mig_source_run):
 * open the VE, choose the mode, connect, negotiate, stop it (offline),
 * first file pass while it runs, then either the offline commit or the
 * online copy (pre-copy rounds, dump and commit: commit.c), and finish:
 * the source copy goes, the summary is shown. A failure before the
 * decision leaves the VE running here, as it was. */
#define LOG_PREFIX "migrate: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "migrate_int.h"
#include "userns.h"
#include "util.h"

static void pass_progress(void *arg, uint64_t raw)
{
	mig_phase_show(arg, raw);
}

int mig_file_pass(struct mig_src *s, const char *what, double *t, struct vz_err *err)
{
	struct mig_pass_stats ps;
	uint64_t t0 = vz_now_ns();
	int ret;

	mig_phase_start(s, what, s->fs ? 0 : s->private_total);
	ret = mig_files_send(&s->conn, s->ve->private, &s->fs, &ps, pass_progress, s, err);
	*t = mig_ms_since(t0);
	if (ret < 0)
		return vz_error_wrap(err, "%s", what);
	s->raw_bytes += ps.raw_bytes;
	vz_say(s->progress, "%s: %llu entries, %llu bytes (%llu on the wire), %llu deleted, %.0f ms", what,
	       (unsigned long long)ps.files, (unsigned long long)ps.raw_bytes, (unsigned long long)ps.wire_bytes,
	       (unsigned long long)ps.deleted, *t);
	return 0;
}

/* Open and lock the VE; a stopped VE moves offline. */
static int open_ve(struct mig_src *s, struct vz_err *err)
{
	int ret;

	if (!s->req->dest || !*s->req->dest)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "No destination host given");
	ret = ve_open(s->req->veid, true, s->ve, err);
	if (ret == 0)
		ret = ve_lock(s->ve, 2000, err);
	if (ret < 0)
		return ret;
	s->was_running = ve_state(s->ve, &s->init) == VE_STATE_RUNNING;
	s->online = s->req->mode != MIG_OFFLINE;
	if (s->was_running)
		s->userns_src = ve_userns_running_id(s->ve, s->init);
	if (s->online && !s->was_running) {
		vz_say(s->progress, "VE %u is not running: migrating it offline", s->ve->veid);
		s->online = false;
	}
	return 0;
}

/* A new migration id, the mode's checks, the memory tracker. */
static int choose_mode(struct mig_src *s, struct vz_err *err)
{
	enum mig_mode mode = s->req->mode;
	uint8_t rnd[8];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return vz_error(err, errno, "Random migration id");
	for (int i = 0; i < 8; i++)
		snprintf(s->mid + 2 * i, 3, "%02x", rnd[i]);
	s->verify = s->req->verify_memory;
	s->ac.on = s->req->auto_converge;
	if (s->verify && mode == MIG_OFFLINE)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL,
					 "--verify-memory compares the memory of a live move: not without --online");
	if (s->verify && !s->online) {
		vz_say(s->progress, "VE %u has no memory to verify (--verify-memory)", s->ve->veid);
		s->verify = false;
	}
	if (s->ac.on && (mode == MIG_POSTCOPY || mode == MIG_STOP_COPY))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL,
					 "--auto-converge throttles the VE during pre-copy: not with %s",
					 mode == MIG_POSTCOPY ? "--postcopy" : "--stop-copy");
	if (s->online && mode == MIG_POSTCOPY) {
		s->postcopy = s->lazy = true;
		if (s->verify)
			return vz_error_exit_msg(
			    err, VZ_EXIT_INVAL, EINVAL,
			    "--verify-memory needs the memory on the destination before the go: not with --postcopy");
	} else if (s->online && mode == MIG_PRECOPY) {
		char why[600];

		s->pc.tkind = vz_track_detect(why, sizeof(why));
		s->precopy = s->lazy = s->pc.tkind != VZ_TRACK_NONE;
		if (!s->precopy) {
			snprintf(s->pc.why, sizeof(s->pc.why), "no memory tracker here: %s", why);
			vz_say(s->progress, "Memory pre-copy is not possible on this host (%s): stop-and-copy", why);
		}
	} else if (s->online) {
		snprintf(s->pc.why, sizeof(s->pc.why), "--stop-copy");
	}
	return 0;
}

static int connect_dest(struct mig_src *s, struct vz_err *err)
{
	unsigned port = s->req->port ? s->req->port : s->a->mig_port;
	struct vz_tls *tls = mig_tls(s->a, false, err);
	char addr[256];
	int ret;

	if (!tls)
		return vz_error_wrap(err, "This host cannot migrate");
	mig_resolve_dest(s->req->dest, addr, sizeof(addr));
	vz_say(s->progress, "Connecting to %s (%s:%u)", s->req->dest, addr, port);
	ret = vz_tls_connect(tls, addr, port, MIG_CONNECT_TIMEOUT_MS, (int)(s->a->mig_timeout * 1000), &s->conn, err);
	vz_tls_free(tls);
	if (ret < 0)
		return vz_error_exit_msg(err, VZ_EXIT_SYSTEM, -ret, "Cannot reach %s: %s", s->req->dest, err->msg);
	pr_info("VE %u: migration %s to %s (%s), %s", s->ve->veid, s->mid, s->req->dest, s->conn.peer,
		s->online ? "online" : "offline");
	return 0;
}

/* Offline: the VE stops for the move (it starts again on a failure). */
static int stop_offline(struct mig_src *s, struct vz_err *err)
{
	if (s->online || !s->was_running)
		return 0;
	return ve_do_stop(s->a, s->ve, s->init, false, s->progress, err);
}

static int first_pass(struct mig_src *s, struct vz_err *err)
{
	vz_say(s->progress, "Syncing the private area of VE %u", s->ve->veid);
	return mig_file_pass(s, "First file pass", &s->t.pass1, err);
}

/* Offline: the files are there; the destination wrote the config. */
static int commit_offline(struct mig_src *s, struct vz_err *err)
{
	int ret = mig_expect(&s->conn, VZ__MIGRATE__TYPE__T_RESTORED, NULL, err);

	if (ret == 0)
		ret = mig_decide_go(s, err);
	if (ret < 0)
		return ret;
	mig_say_go(s, err);
	vz_err_clear(err);
	return 0;
}

static int copy_online(struct mig_src *s, struct vz_err *err)
{
	int ret;

	if (s->precopy) {
		vz_say(s->progress, "Copying the memory of VE %u while it runs (%s tracker)", s->ve->veid,
		       vz_track_name(s->pc.tkind));
		ret = mig_precopy_rounds(s, err);
		if (ret < 0)
			return ret;
	}
	return mig_dump_and_commit(s, err);
}

/* Moved: the source copy goes (unless kept), and the decision with it
 * once the destination confirmed (a restarted agent would otherwise
 * remove a copy by it). */
static void finish_source(struct mig_src *s, struct vz_err *err)
{
	double total;

	if (!s->req->keep_src) {
		if (ve_destroy_files(s->ve, err) < 0)
			pr_warn("VE %u: remove the source copy: %s", s->ve->veid, err->msg);
		vz_err_clear(err);
	} else {
		vz_say(s->progress, "Keeping the stopped source copy of VE %u (-r no)", s->ve->veid);
	}
	if (s->done_seen) {
		struct mig_record dec = mig_record_of(MIG_REC_DECISION, s->ve->veid, s->mid);

		mig_record_remove(&dec);
	}
	/* One figure for the summary, its JSON and the metrics. */
	total = mig_ms_since(s->t0);
	mig_summary(s, total);
	mig_summary_json(s, total);
	mig_src_record_stats(s, true, total);
	vz_say(s->progress, "VE %u migrated to %s", s->ve->veid, s->req->dest);
	pr_info("VE %u: migrated to %s", s->ve->veid, s->req->dest);
}

static void release(struct mig_src *s)
{
	vz_track_free(s->pc.trk);
	s->pc.trk = NULL;
	vz_zenc_free(s->pc.pz);
	s->pc.pz = NULL;
	free(s->mask);
	s->mask = NULL;
	mig_fstate_free(s->fs);
	s->fs = NULL;
	vz_conn_close(&s->conn);
}

/* Before the decision: tell the destination, and the VE runs here. */
static int source_failed(struct mig_src *s, struct vz_err *err)
{
	struct vz_err e2 = { 0 };
	char why[sizeof(err->msg)];

	snprintf(why, sizeof(why), "%s", err->msg);
	mig_src_record_stats(s, false, mig_ms_since(s->t0));
	mig_send_type(&s->conn, VZ__MIGRATE__TYPE__T_ABORT, &e2);
	mig_uncap(s);
	release(s);
	/* Offline: the VE was stopped for the move; it runs again here. */
	if (!s->online && s->was_running && !s->req->dry_run && ve_state(s->ve, NULL) != VE_STATE_RUNNING &&
	    ve_do_start(s->a, s->ve, s->progress, &e2) < 0)
		pr_err("VE %u: restart after a failed migration: %s", s->ve->veid, e2.msg);
	pr_err("VE %u: migration to %s failed: %s", s->ve->veid, s->req->dest, why);
	return vz_error_exit_msg(err, err->exit_code ? err->exit_code : VZ_EXIT_SYSTEM, EIO,
				 "Migration of VE %u to %s failed: %s", s->ve->veid, s->req->dest, why);
}

static int dry_run_done(struct mig_src *s, struct vz_err *err)
{
	mig_send_type(&s->conn, VZ__MIGRATE__TYPE__T_ABORT, err);
	vz_err_clear(err);
	vz_say(s->progress, "Dry run: VE %u can be migrated to %s", s->ve->veid, s->req->dest);
	release(s);
	return 0;
}

int mig_source_run(struct vz_agent *a, const struct mig_request *req, const struct vz_progress *progress,
		   struct vz_err *err)
{
	_cleanup_ve_ struct ve ve = { .lock_fd = -EBADF };
	struct mig_src s = {
		.a = a, .req = req, .progress = progress, .ve = &ve, .images_fd = VZ_FD_INIT, .t0 = vz_now_ns()
	};
	int ret;

	ret = open_ve(&s, err);
	if (ret == 0)
		ret = choose_mode(&s, err);
	if (ret == 0)
		ret = connect_dest(&s, err);
	if (ret < 0)
		return ret;
	ret = mig_hello(&s, err);
	if (ret == 0 && req->dry_run)
		return dry_run_done(&s, err);
	if (ret == 0)
		ret = stop_offline(&s, err);
	if (ret == 0)
		ret = first_pass(&s, err);
	if (ret == 0)
		ret = s.online ? copy_online(&s, err) : commit_offline(&s, err);
	if (ret < 0)
		return source_failed(&s, err);
	finish_source(&s, err);
	release(&s);
	return 0;
}
