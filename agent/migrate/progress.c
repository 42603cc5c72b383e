/* What the source of a move tells whoever listens (a progress sink): one
 * progress line per 8 MiB of a phase (bytes, rate, time left, a bar when
 * the total is known), and the summary at the end, with OpenVZ vzmigrate
 * -t's lines when asked. */
#include <stdio.h>

#include "migrate_int.h"
#include "util.h"

void mig_phase_start(struct mig_src *s, const char *name, uint64_t total)
{
	s->phase.name = name;
	s->phase.total = total;
	s->phase.t0 = vz_now_ns();
	s->phase.done = s->phase.last_shown = 0;
}

void mig_phase_show(struct mig_src *s, uint64_t done)
{
	struct mig_phase *p = &s->phase;
	double secs = (double)(vz_now_ns() - p->t0) / 1e9, rate = secs > 0 ? (double)done / secs : 0;
	char left[32] = "";

	p->done = done;
	if (done - p->last_shown < (8u << 20) && (done < p->total || !p->total))
		return;
	p->last_shown = done;
	if (p->total > done && rate > 0)
		snprintf(left, sizeof(left), ", %.0f s left", (double)(p->total - done) / rate);
	if (p->total) {
		int pct = (int)(done * 100 / p->total), bar = pct > 100 ? 20 : pct / 5;

		vz_say(s->progress, "[progress] %-18s [%.*s%*s] %3d%% %llu/%llu MiB, %.0f MiB/s%s", p->name, bar,
		       "####################", 20 - bar, "", pct > 100 ? 100 : pct, (unsigned long long)(done >> 20),
		       (unsigned long long)(p->total >> 20), rate / 1048576, left);
	} else {
		vz_say(s->progress, "[progress] %-18s %llu MiB, %.0f MiB/s", p->name, (unsigned long long)(done >> 20),
		       rate / 1048576);
	}
}

/* The memory lines: rounds, post-copy or stop-and-copy. */
static void summary_memory(struct mig_src *s)
{
	const struct vz_progress *p = s->progress;
	const struct mig_precopy *pc = &s->pc;

	if (s->precopy) {
		vz_say(p, "  memory (%s tracker), rounds while running:", vz_track_name(pc->tkind));
		for (unsigned r = 0; r < pc->nrounds && r <= MIG_MAX_ROUNDS; r++) {
			char cap[48] = "";

			if (pc->rounds[r].cap > 0)
				snprintf(cap, sizeof(cap), "  (CPU capped at %.3f)", pc->rounds[r].cap);
			vz_say(p, "    round %-3u %10llu pages %8llu KiB on the wire %8.0f ms%s", r,
			       (unsigned long long)pc->rounds[r].pages, (unsigned long long)(pc->rounds[r].wire >> 10),
			       pc->rounds[r].ms, cap);
		}
		vz_say(p, "    frozen    %10llu pages %8llu KiB on the wire %8.0f ms",
		       (unsigned long long)pc->final_pages,
		       (unsigned long long)(pc->nrounds <= MIG_MAX_ROUNDS ? pc->rounds[pc->nrounds].wire >> 10 : 0),
		       s->t.final);
		vz_say(p, "    %s", pc->why);
	} else if (s->postcopy) {
		vz_say(p, "  memory: post-copy: fetched by %s from this host for %.0f ms after the go;", s->conn.peer,
		       s->t.postcopy);
		vz_say(p, "          until then the VE depended on this host");
	} else {
		vz_say(p, "  memory: stop-and-copy (%s)", pc->why[0] ? pc->why : "all of it while frozen");
	}
}

/* OpenVZ vzmigrate -t's own lines. */
static void summary_times(struct mig_src *s, double total)
{
	const struct vz_progress *p = s->progress;

	vz_say(p, "Times:");
	if (s->online) {
		vz_say(p, "  Suspend + Dump:         %.3f", s->t.dump / 1000);
		vz_say(p, "  Copy dump file:         %.3f", s->t.copy / 1000);
		vz_say(p, "  Second rsync:           %.3f", s->t.pass2 / 1000);
		vz_say(p, "  Undump + Resume:        %.3f", s->t.undump / 1000);
		vz_say(p, "  Total time suspended:   %.3f", s->t.frozen / 1000);
	}
	vz_say(p, "  Total time:             %.3f", total / 1000);
}

/* Which ids the VE's root has on each side. */
static void summary_userns(struct mig_src *s)
{
	char here[32] = "the host's", there[32] = "the host's";

	if (s->userns_src)
		snprintf(here, sizeof(here), "%u", s->userns_src);
	if (s->userns_dst)
		snprintf(there, sizeof(there), "%u", s->userns_dst);
	if (!s->userns_src && !s->userns_dst)
		vz_say(s->progress, "  user namespace: the host's on both sides (--userns no)");
	else
		vz_say(s->progress, "  user namespace: root is host uid %s here, %s on %s%s", here, there, s->conn.peer,
		       s->userns_src == s->userns_dst ? " (the same range)" : "");
}

void mig_summary(struct mig_src *s, double total)
{
	const struct vz_progress *p = s->progress;

	vz_say(p, "Migration summary for VE %u to %s (%s):", s->ve->veid, s->conn.peer,
	       s->online ? "online" : "offline");
	vz_say(p, "  first file pass      %8.0f ms", s->t.pass1);
	if (s->online) {
		summary_memory(s);
		vz_say(p, "  suspend + dump       %8.0f ms", s->t.dump);
		vz_say(p, "  second file pass     %8.0f ms", s->t.pass2);
		vz_say(p, "  copy dump            %8.0f ms", s->t.copy);
		vz_say(p, "  undump + resume      %8.0f ms", s->t.undump);
		vz_say(p, "  total suspended      %8.0f ms  (downtime)", s->t.frozen);
		summary_userns(s);
	}
	vz_say(p, "  total                %8.0f ms", total);
	vz_say(p, "  bytes: %llu before compression, %llu on the wire", (unsigned long long)s->raw_bytes,
	       (unsigned long long)s->conn.bytes_out);
	if (s->req->times)
		summary_times(s, total);
}
