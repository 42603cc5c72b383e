/* vzagent's /metrics page (lib/metrics_http.h serves it): each VE's state,
 * CPU, memory and beancounters, read when scraped; and the migrations this
 * host took part in, as source or destination, as histograms.
 *
 * Migrations run in forked workers, the page is built in the main
 * process: a worker that ends a move leaves one record in
 * VZ_ROOT/run/vz/metrics/ (agent_mig_stats_record), and the main process
 * folds the records into its histograms at each scrape and removes them.
 * The histograms count from the agent's start (Prometheus' counters may
 * reset); records not yet folded survive an agent restart. */
#ifndef VZ_AGENT_METRICS_H
#define VZ_AGENT_METRICS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* The phases of a move's summary (vzmigrate prints them in ms). */
enum mig_stat_phase {
	MIG_PH_PASS1,  /* first file pass, the VE running */
	MIG_PH_MEMORY, /* pre-copy rounds while it runs */
	MIG_PH_DUMP,   /* suspend + dump */
	MIG_PH_PASS2,  /* second file pass, frozen */
	MIG_PH_COPY,   /* copy dump */
	MIG_PH_UNDUMP, /* undump + resume */
	MIG_PH_N,
};

/* One finished move, as one side saw it. A phase not gone through is < 0. */
struct mig_stats {
	bool source; /* else the destination */
	bool ok;
	double phase_ms[MIG_PH_N];
	double total_ms;
	double downtime_ms; /* < 0: offline (the VE was stopped, not paused) */
	uint64_t raw_bytes, wire_bytes;
	unsigned rounds; /* pre-copy rounds while it ran */
};

/* The phase's label value ("pass1", "memory", ...). */
const char *mig_stat_phase_name(enum mig_stat_phase p);
/* A worker: leave st for the main process; logged when it cannot. */
void agent_mig_stats_record(const struct mig_stats *st);
/* Pure: st as the one-line text of a record, and back (0, or -EINVAL for
 * text that is not one). */
int mig_stats_format(const struct mig_stats *st, char *buf, size_t len);
int mig_stats_parse(const char *text, struct mig_stats *st);

struct vz_agent;
/* Listen on METRICS_LISTEN (agent_load_global read it); nothing when "". */
int agent_metrics_start(struct vz_agent *a, struct vz_err *err);
void agent_metrics_stop(struct vz_agent *a);

#endif
