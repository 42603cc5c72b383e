/* The migration engine: moves a VE from this host to another one running
 * vzagent, over TLS (migrate.proto). Its only orders are a struct
 * mig_request and its only output, besides the result, is a progress sink:
 * vzmigrate's control request (agent/ops_migrate.c) and, next, the
 * coordinator's orders are both turned into a mig_request.
 *
 * The invariant. At every instant at most one copy of the VE runs, and a
 * failed move never leaves none. The move is a two-phase commit whose
 * decision is a file on the source, created whole and exclusively (a
 * temporary file linked into place, vz_write_file_excl): before it exists
 * the source is authoritative (any failure resumes the source copy and
 * removes what the destination made), after a "go" the destination is
 * (the source copy never runs again; a destination that lost the source
 * keeps the restored VE frozen and asks for the decision until it gets
 * one). A destination asking first makes the source write "abort", so a
 * late "go" cannot exist beside it.
 *
 * The records on disk, under VZ_ROOT/vz/migrate (record.c writes and
 * parses them; a restarted agent acts on each, mig_recover):
 *   VEID.ID.decision  source: "go" or "abort", written once, whole
 *   VEID.ID.outgoing  source, during an online dump: CRIU's lazy page-server
 *                     port (0: none), " postcopy", and " recovered" once a
 *                     restarted agent kept a post-copy source copy
 *   VEID.incoming     destination: "ID SOURCE-ADDRESS SOURCE-PORT ONLINE"
 *   VEID.capped       source: ID of the move whose auto-converge capped the
 *                     VE's CPU (the configured limits are due back)
 * ID is the migration's id: 16 hex digits (at most 64 are accepted). */
#ifndef VZ_MIGRATE_H
#define VZ_MIGRATE_H

#include <stdbool.h>

#include "err.h"
#include "progress.h"

struct vz_agent;

enum mig_mode {
	MIG_OFFLINE,   /* stop, copy the files, start there */
	MIG_STOP_COPY, /* online: memory copied while the VE is frozen */
	MIG_PRECOPY,   /* online: memory rounds while it runs, then frozen (stop-copy without a tracker) */
	MIG_POSTCOPY,  /* online: runs there at once, memory follows from here */
};

/* Defaults for what a request leaves 0: */
#define MIG_DOWNTIME_MS 300 /* (downtime_ms is taken as given, 0 included) */
#define MIG_ROUNDS	10

struct mig_request {
	unsigned veid;
	const char *dest;     /* a name from VZ_ROOT/etc/vz/hosts, an address or a resolvable name */
	unsigned port;	      /* the destination agent's migration port; 0: this agent's mig_port */
	enum mig_mode mode;   /* an online mode for a stopped VE means offline */
	unsigned downtime_ms; /* pre-copy: freeze once what is left takes no longer to send */
	unsigned max_rounds;  /* pre-copy: rounds while running at most; 0: MIG_ROUNDS */
	bool keep_dst;	      /* the destination keeps the private area if the move fails */
	bool keep_src;	      /* keep the stopped source copy after the move */
	bool verify_memory;   /* go only if memory digests match, at least one (online, not post-copy) */
	bool auto_converge;   /* cap the VE's CPU while pre-copy does not converge (pre-copy only) */
	bool dry_run;	      /* negotiate only */
	bool times;	      /* add OpenVZ vzmigrate -t's lines to the summary */
	/* When set, the summary's figures also go there, as one line: a JSON
	 * object (vzmigrate --json). */
	const struct vz_progress *json;
};

/* A request with the defaults above. */
#define MIG_REQUEST_INIT                                                                                               \
	{                                                                                                              \
		.mode = MIG_PRECOPY, .downtime_ms = MIG_DOWNTIME_MS, .max_rounds = MIG_ROUNDS                          \
	}

/* Source: move req->veid to req->dest. Takes the VE's lock; progress
 * (NULL: nobody) gets the phases and the summary. Returns 0 (the VE runs
 * there, or a dry run found it could) or a negative errno with err filled
 * (the VE runs here, as before). */
int mig_source_run(struct vz_agent *a, const struct mig_request *req, const struct vz_progress *progress,
		   struct vz_err *err);

/* A worker for an accepted migration connection; takes fd (closes it).
 * The destination side of a move, or this host as the source answering a
 * destination's question (the decision, post-copy's pages). */
void mig_dest_serve(struct vz_agent *a, int fd);

/* At agent start: act on the records a dead worker left (see above): end
 * or resume source copies, restore CPU limits, wait for decisions on VEs
 * restored here, remove what unfinished moves made. Forks a worker for
 * each VE waiting for a decision. */
void mig_recover(struct vz_agent *a);

/* Is a move of VE veid to this host unfinished (its incoming record is
 * there)? Until the move ends, or a restarted agent clears what it left,
 * the VE is the move's: it may run at the source, so nothing here may
 * start it. */
bool mig_incoming_pending(unsigned veid);

/* Is a move of VE veid from this host unresolved (a decision or an
 * outgoing record of it is there)? A restarted agent resolves it
 * (mig_recover). */
bool mig_outgoing_pending(unsigned veid);

#endif
