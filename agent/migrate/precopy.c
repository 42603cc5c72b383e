/* Pre-copy on the source: rounds of the pages the VE wrote while it runs,
 * until the convergence rule (mig_should_freeze, a pure function) says
 * freeze; then, frozen, the last round and, with --verify-memory, the
 * digests. Auto-converge caps the VE's CPU between rounds while it writes
 * faster than the link carries. */
#define LOG_PREFIX "migrate: "
#include <errno.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "migrate_int.h"
#include "resources.h"
#include "util.h"

/* A tracker's pages go out as PAGES, one zstd stream for the migration. */
static int page_emit(void *arg, int vpid, uint64_t vaddr, const void *data, size_t npages, struct vz_err *err)
{
	struct mig_src *s = arg;

	s->raw_bytes += npages * 4096;
	mig_phase_show(s, s->phase.done + npages * 4096);
	return mig_send_pages(&s->conn, s->pc.pz, (uint32_t)vpid, vaddr, data, npages * 4096, err);
}

/* Soft-dirty rounds hold the VE still while its bits are read. */
static int hold_ve(void *arg, bool hold, struct vz_err *err)
{
	struct mig_src *s = arg;

	return hold ? vz_cg_freeze(&s->a->cg, s->ve->veid, 5000, err) : vz_cg_thaw(&s->a->cg, s->ve->veid, err);
}

/* Auto-converge. A VE that writes memory faster than the link carries it
 * gets less CPU, round after round, until it writes slowly enough (QEMU's
 * auto-converge throttles vCPUs the same way). The cap is a CPU quota on
 * the VE's group, derived from what the VE used during the last round; it
 * ends the moment the VE is frozen, and on any failure before. A record
 * (VEID.capped) lets a restarted agent end a cap its dead worker left. */

/* CPUs the VE used since the last call (or since the round began). */
static double used_cpus(struct mig_src *s)
{
	uint64_t ns = 0, t = vz_now_ns();
	double cpus = -1;

	if (res_cpu_usage(&s->a->cg, s->ve->veid, &ns, NULL) < 0)
		return -1;
	if (s->ac.cpu_t && t > s->ac.cpu_t)
		cpus = (double)(ns - s->ac.cpu_ns) / (double)(t - s->ac.cpu_t);
	s->ac.cpu_ns = ns;
	s->ac.cpu_t = t;
	return cpus;
}

/* After a round that left `left` pages written against `sent`: cap the VE
 * so that it writes about half as fast as the round sent. A VE that
 * rewrote about everything the round sent writes faster than that shows
 * (a page written twice counts once): a quarter then. */
static void cap_more(struct mig_src *s, double used, uint64_t left, uint64_t sent)
{
	struct mig_record rec = mig_record_of(MIG_REC_CAPPED, s->ve->veid, s->mid);
	double base = s->ac.cap > 0 && s->ac.cap < used ? s->ac.cap : used,
	       f = left ? 0.5 * (double)sent / (double)left : 1;
	struct vz_err e = { 0 };

	if (used < 0)
		return;
	if (10 * left >= 9 * sent)
		f = 0.25;
	f = f > 0.5 ? 0.5 : f < 0.05 ? 0.05 : f;
	base *= f;
	if (base < 0.001)
		base = 0.001;
	if (mig_record_write(&rec, &e) < 0 || res_cpu_cap(&s->a->cg, s->ve->veid, base, &e) < 0) {
		pr_warn("VE %u: auto-converge: %s", s->ve->veid, e.msg);
		return;
	}
	s->ac.cap = base;
	pr_info("VE %u: auto-converge: capped at %.3f CPUs (used %.3f)", s->ve->veid, base, used);
}

void mig_uncap(struct mig_src *s)
{
	struct mig_record rec = mig_record_of(MIG_REC_CAPPED, s->ve->veid, s->mid);
	struct vz_err e = { 0 };

	if (s->ac.cap <= 0)
		return;
	if (res_apply_cpu(&s->a->cg, s->ve->veid, &s->ve->conf, &e) < 0)
		pr_warn("VE %u: auto-converge: restore the CPU limits: %s", s->ve->veid, e.msg);
	else
		mig_record_remove(&rec);
	s->ac.cap = 0;
}

/* One round: what the tracker finds, then ROUND_END. */
static int send_round(struct mig_src *s, unsigned r, struct vz_track_stats *st, struct vz_err *err)
{
	mig_msg m = VZ__MIGRATE__MSG__INIT;
	uint64_t t0 = vz_now_ns(), w0 = s->conn.bytes_out, t1, t2;
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;
	int ret = vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, err);

	t1 = vz_now_ns();
	if (ret == 0)
		ret = vz_track_round(s->pc.trk, pids, n, page_emit, s, st, err);
	t2 = vz_now_ns();
	pr_debug("VE %u: round %u: %zu processes listed in %.1f ms, tracked in %.1f ms", s->ve->veid, r, n,
		 (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
	if (ret < 0)
		return vz_error_wrap(err, "Memory round %u", r);
	m.type = VZ__MIGRATE__TYPE__T_ROUND_END;
	m.has_round = true;
	m.round = r;
	ret = vz_msg_send(&s->conn, &m.base, err);
	if (ret < 0)
		return ret;
	if (r <= MIG_MAX_ROUNDS) {
		s->pc.rounds[r].pages = st->pages;
		s->pc.rounds[r].wire = s->conn.bytes_out - w0;
		s->pc.rounds[r].ms = mig_ms_since(t0);
		s->pc.rounds[r].cap = s->ac.cap;
	}
	return 0;
}

void mig_should_freeze(const struct mig_conv_in *in, struct mig_conv_out *out)
{
	unsigned limit = in->max_rounds < MIG_MAX_ROUNDS ? in->max_rounds : MIG_MAX_ROUNDS;
	bool last = in->round + 1 >= limit;
	/* "Not shrinking" compares what is left with what the round before
	 * left. A tracker that measures it compares with this round's sent
	 * pages (what the last one left); soft-dirty's left is this round's
	 * sent pages, so it compares with the round before's. */
	uint64_t base = in->left_measured ? in->sent : in->prev_sent;

	out->base = base;
	/* bytes per ms the round achieved, reading and sending */
	out->rate = in->ms > 1 ? (double)in->sent * 4096 / in->ms : 1e9;
	out->est_ms = (double)in->left * 4096 / (out->rate > 0 ? out->rate : 1);
	/* Within budget: one more round, while the VE runs, when what is left
	 * still takes a noticeable time to send (it then takes about that
	 * long and leaves a fraction for the frozen moment). */
	if (out->est_ms <= in->downtime_ms && out->est_ms > 20 && !in->polished && !last)
		out->verdict = MIG_CONV_POLISH;
	else if (out->est_ms <= in->downtime_ms)
		out->verdict = MIG_CONV_CONVERGED;
	else if (last)
		out->verdict = MIG_CONV_ROUND_LIMIT;
	else if (in->autoconv && in->round >= 1 && 2 * in->left >= base && in->used >= 0)
		out->verdict = MIG_CONV_CAP;
	else if (in->round >= 1 && in->left >= base)
		out->verdict = MIG_CONV_NO_PROGRESS;
	else
		out->verdict = MIG_CONV_AGAIN;
}

/* Pages written during round r, still to send. */
static uint64_t pages_left(struct mig_src *s, unsigned r, const struct vz_track_stats *st)
{
	_cleanup_free_ pid_t *pids = NULL;
	struct vz_err e = { 0 };
	uint64_t left = 0;
	size_t n = 0;

	/* Soft-dirty knows it only by the next round: what this one sent is
	 * what the round before left; round 0 sent everything. */
	if (s->pc.tkind == VZ_TRACK_SOFT_DIRTY)
		return r ? st->pages : UINT64_MAX / 8192;
	if (vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, &e) == 0)
		vz_track_peek(s->pc.trk, pids, n, &left, &e);
	return left;
}

/* Why pre-copy ended, for the progress and the summary. */
static void conv_why(struct mig_src *s, const struct mig_conv_in *in, const struct mig_conv_out *out)
{
	struct mig_precopy *pc = &s->pc;
	size_t k;

	if (out->verdict == MIG_CONV_CONVERGED) {
		pc->converged = true;
		snprintf(pc->why, sizeof(pc->why),
			 "converged after %u rounds: %llu pages left, ~%.0f ms at %.0f MiB/s, budget %u ms",
			 in->round + 1, (unsigned long long)in->left, out->est_ms, out->rate * 1000 / 1048576,
			 in->downtime_ms);
	} else if (out->verdict == MIG_CONV_ROUND_LIMIT) {
		snprintf(pc->why, sizeof(pc->why),
			 "did not converge: round limit (%u) reached with %llu pages (%llu MiB) still written, "
			 "~%.0f ms to send against a budget of %u ms",
			 in->max_rounds, (unsigned long long)in->left, (unsigned long long)(in->left >> 8), out->est_ms,
			 in->downtime_ms);
	} else {
		snprintf(pc->why, sizeof(pc->why),
			 "did not converge: the VE writes memory as fast as it is sent (%llu pages written during "
			 "a round of %llu); the last %llu MiB go while it is frozen",
			 (unsigned long long)in->left, (unsigned long long)out->base,
			 (unsigned long long)(in->left >> 8));
	}
	k = strlen(pc->why);
	if (s->ac.cap > 0)
		snprintf(pc->why + k, sizeof(pc->why) - k, "; auto-converge capped the VE at %.3f CPUs", s->ac.cap);
	vz_say(s->progress, "Pre-copy %s", pc->why);
}

/* What the rounds sent may still sit in the socket and the link's queue:
 * let it reach the destination while the VE still runs, not while it is
 * frozen. */
static void drain_socket(struct mig_src *s)
{
	uint64_t end = vz_now_ns() + 5000000000ull;
	int q = 0;

	while (vz_now_ns() < end && ioctl(s->conn.fd, SIOCOUTQ, &q) == 0 && q > 65536)
		usleep(1000);
}

/* Round r sent, measured and shown; the rule's input. */
static void round_done(struct mig_src *s, unsigned r, const struct vz_track_stats *st, uint64_t prev_sent,
		       bool polished, struct mig_conv_in *in, struct mig_conv_out *out)
{
	*in = (struct mig_conv_in){
		.round = r,
		.sent = st->pages,
		.prev_sent = prev_sent,
		.left_measured = s->pc.tkind != VZ_TRACK_SOFT_DIRTY,
		.left = pages_left(s, r, st),
		.ms = s->pc.rounds[r].ms,
		.downtime_ms = s->req->downtime_ms,
		.max_rounds = s->req->max_rounds ? s->req->max_rounds : MIG_ROUNDS,
		.polished = polished,
		.autoconv = s->ac.on && !(s->ac.cap > 0 && s->ac.cap <= 0.001),
		.used = s->ac.on ? used_cpus(s) : -1,
	};
	mig_should_freeze(in, out);
	vz_say(s->progress,
	       "Memory round %u: %llu pages (%llu MiB, %llu MiB on the wire) in %.0f ms%s; "
	       "%llu pages written meanwhile, ~%.0f ms to send",
	       r, (unsigned long long)st->pages, (unsigned long long)(st->pages >> 8),
	       (unsigned long long)(s->pc.rounds[r].wire >> 20), s->pc.rounds[r].ms,
	       st->new_procs && r ? ", new processes" : "", (unsigned long long)in->left, out->est_ms);
}

int mig_precopy_rounds(struct mig_src *s, struct vz_err *err)
{
	uint64_t prev_sent = 0;
	bool polished = false;

	s->pc.trk = vz_track_new(s->pc.tkind, hold_ve, s, err);
	if (!s->pc.trk)
		return vz_error_wrap(err, "Memory tracker");
	s->pc.pz = vz_zenc_new(1, err);
	if (!s->pc.pz)
		return vz_error_wrap(err, "Memory tracker");
	if (s->ac.on)
		used_cpus(s);
	for (unsigned r = 0;; r++) {
		struct vz_track_stats st;
		struct mig_conv_in in;
		struct mig_conv_out out;
		char name[40];
		int ret;

		snprintf(name, sizeof(name), "Memory round %u", r);
		mig_phase_start(s, name, 0);
		ret = send_round(s, r, &st, err);
		if (ret < 0)
			return ret;
		s->pc.nrounds = r + 1;
		round_done(s, r, &st, prev_sent, polished, &in, &out);
		prev_sent = st.pages;
		if (out.verdict == MIG_CONV_CAP) {
			cap_more(s, in.used, in.left, out.base);
			if (s->ac.cap > 0) {
				vz_say(s->progress, "Auto-converge: VE %u may use %.3f CPUs from now (it used %.3f)",
				       s->ve->veid, s->ac.cap, in.used);
				continue;
			}
			in.autoconv = false;
			mig_should_freeze(&in, &out);
		}
		if (out.verdict == MIG_CONV_POLISH)
			polished = true;
		if (out.verdict == MIG_CONV_POLISH || out.verdict == MIG_CONV_AGAIN)
			continue;
		conv_why(s, &in, &out);
		break;
	}
	drain_socket(s);
	return 0;
}

int mig_precopy_final(struct mig_src *s, struct vz_err *err)
{
	struct vz_track_stats st;
	uint64_t t0 = vz_now_ns();
	int ret;

	mig_phase_start(s, "Memory, last round", 0);
	vz_track_last(s->pc.trk);
	ret = send_round(s, s->pc.nrounds, &st, err);
	/* The tracker stays until CRIU is done: closing a userfaultfd walks
	 * every page it protects (tens of ms per GiB), which is no work for
	 * the frozen moment; once the source copy is gone it costs nothing. */
	if (ret < 0)
		return ret;
	s->pc.final_pages = st.pages;
	if (s->verify) {
		ret = mig_send_digests(s, err);
		if (ret < 0)
			return ret;
	}
	s->t.final = mig_ms_since(t0);
	vz_say(s->progress, "Memory, last round (frozen): %llu pages in %.0f ms", (unsigned long long)st.pages,
	       s->t.final);
	return 0;
}
