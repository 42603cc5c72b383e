/* The figures of a move's summary (progress.c prints them for people) as
 * one JSON object, for vzmigrate --json, and as the record the agent's
 * metrics fold (agent/metrics.h), on both sides of a move. */
#define LOG_PREFIX "migrate: "
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "metrics.h"
#include "migrate_int.h"
#include "util.h"

static double memory_ms(const struct mig_src *s)
{
	double ms = 0;

	for (unsigned r = 0; s->precopy && r < s->pc.nrounds && r <= MIG_MAX_ROUNDS; r++)
		ms += s->pc.rounds[r].ms;
	return ms;
}

static void json_key_str(FILE *f, const char *key, const char *v)
{
	fprintf(f, "\"%s\": ", key);
	vz_json_fstr(f, v, strlen(v));
}

static void json_memory(FILE *f, const struct mig_src *s)
{
	const struct mig_precopy *pc = &s->pc;

	if (s->precopy) {
		fprintf(f, "\"memory\": {\"kind\": \"precopy\", ");
		json_key_str(f, "tracker", vz_track_name(pc->tkind));
		fprintf(f, ", \"rounds\": [");
		for (unsigned r = 0; r < pc->nrounds && r <= MIG_MAX_ROUNDS; r++) {
			fprintf(f, "%s{\"round\": %u, \"pages\": %llu, \"wire_bytes\": %llu, \"ms\": %.3f",
				r ? ", " : "", r, (unsigned long long)pc->rounds[r].pages,
				(unsigned long long)pc->rounds[r].wire, pc->rounds[r].ms);
			if (pc->rounds[r].cap > 0)
				fprintf(f, ", \"cpu_cap\": %.3f", pc->rounds[r].cap);
			fputc('}', f);
		}
		fprintf(f, "], \"frozen\": {\"pages\": %llu, \"wire_bytes\": %llu, \"ms\": %.3f}, ",
			(unsigned long long)pc->final_pages,
			(unsigned long long)(pc->nrounds <= MIG_MAX_ROUNDS ? pc->rounds[pc->nrounds].wire : 0),
			s->t.final);
		json_key_str(f, "end", pc->why);
		fputs("}, ", f);
	} else if (s->postcopy) {
		fprintf(f, "\"memory\": {\"kind\": \"postcopy\", \"fetch_ms\": %.3f}, ", s->t.postcopy);
	} else {
		fprintf(f, "\"memory\": {\"kind\": \"stop-copy\", ");
		json_key_str(f, "end", s->pc.why[0] ? s->pc.why : "all of it while frozen");
		fputs("}, ", f);
	}
}

void mig_summary_json(struct mig_src *s, double total)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!s->req->json || !s->req->json->line || !(f = open_memstream(&text, &len)))
		return;
	fprintf(f, "{\"veid\": %u, \"ok\": true, ", s->ve->veid);
	json_key_str(f, "dest", s->req->dest);
	fputs(", ", f);
	json_key_str(f, "peer", s->conn.peer);
	fprintf(f, ", \"mode\": \"%s\", ", s->online ? "online" : "offline");
	if (s->online) {
		json_memory(f, s);
		fprintf(f, "\"userns\": {\"source\": %u, \"destination\": %u}, ", s->userns_src, s->userns_dst);
	}
	fprintf(f, "\"times_ms\": {\"first_file_pass\": %.3f", s->t.pass1);
	if (s->online)
		fprintf(f,
			", \"memory\": %.3f, \"suspend_dump\": %.3f, \"second_file_pass\": %.3f, \"copy_dump\": %.3f, "
			"\"undump_resume\": %.3f, \"downtime\": %.3f",
			memory_ms(s), s->t.dump, s->t.pass2, s->t.copy, s->t.undump, s->t.frozen);
	fprintf(f, ", \"total\": %.3f}, \"bytes\": {\"raw\": %llu, \"wire\": %llu}}", total,
		(unsigned long long)s->raw_bytes, (unsigned long long)s->conn.bytes_out);
	if (fclose(f) == 0)
		s->req->json->line(s->req->json->arg, text);
	free(text);
}

/* A move's figures with no phase gone through yet. */
static struct mig_stats stats_of(bool source, bool ok, double total)
{
	struct mig_stats st = { .source = source, .ok = ok, .total_ms = total, .downtime_ms = -1 };

	for (int p = 0; p < MIG_PH_N; p++)
		st.phase_ms[p] = -1;
	return st;
}

void mig_src_record_stats(struct mig_src *s, bool ok, double total)
{
	struct mig_stats st = stats_of(true, ok, total);

	if (!s->a->metrics_listen[0])
		return;
	st.phase_ms[MIG_PH_PASS1] = s->t.pass1;
	if (s->online) {
		st.phase_ms[MIG_PH_MEMORY] = s->precopy ? memory_ms(s) : -1;
		st.phase_ms[MIG_PH_DUMP] = s->t.dump;
		st.phase_ms[MIG_PH_PASS2] = s->t.pass2;
		st.phase_ms[MIG_PH_COPY] = s->t.copy;
		st.phase_ms[MIG_PH_UNDUMP] = s->t.undump;
		st.downtime_ms = s->t.frozen;
	}
	st.rounds = s->precopy ? s->pc.nrounds : 0;
	st.raw_bytes = s->raw_bytes;
	st.wire_bytes = s->conn.bytes_out;
	agent_mig_stats_record(&st);
}

void mig_dst_record_stats(struct mig_dst *d, bool ok, double total)
{
	struct mig_stats st = stats_of(false, ok, total);

	if (!d->a->metrics_listen[0])
		return;
	st.wire_bytes = d->conn.bytes_in;
	agent_mig_stats_record(&st);
}
