/* op_migrate: vzmigrate's control request becomes a mig_request for the
 * migration engine (agent/migrate/), and its progress goes to the client.
 * Nothing of the engine reads a control request. */
#include <errno.h>

#include "agent.h"
#include "migrate/migrate.h"

/* The request's flags as a mode. */
static enum mig_mode mode_of(const vz_request *req)
{
	if (!req->online)
		return MIG_OFFLINE;
	if (req->postcopy)
		return MIG_POSTCOPY;
	return req->stop_copy ? MIG_STOP_COPY : MIG_PRECOPY;
}

int op_migrate(struct vz_call *c, struct vz_err *err)
{
	const vz_request *req = c->req;
	struct vz_progress progress = vz_ctl_progress_sink(c->conn);
	struct mig_request r = MIG_REQUEST_INIT;

	/* Refused whatever the mode, offline included, as the flags conflict. */
	if (req->auto_converge && (req->postcopy || req->stop_copy))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL,
					 "--auto-converge throttles the VE during pre-copy: not with %s",
					 req->postcopy ? "--postcopy" : "--stop-copy");
	r.veid = req->veid;
	r.dest = req->dest;
	r.mode = mode_of(req);
	if (req->has_downtime_ms)
		r.downtime_ms = req->downtime_ms;
	if (req->has_max_rounds && req->max_rounds)
		r.max_rounds = req->max_rounds;
	r.keep_dst = req->keep_dst;
	r.keep_src = req->keep_src;
	r.verify_memory = req->verify_memory;
	r.auto_converge = req->auto_converge;
	r.dry_run = req->dry_run;
	r.times = req->times;
	/* --json: the one line the client prints is the summary's object. */
	if (req->json)
		r.json = &progress;
	return mig_source_run(c->agent, &r, req->json ? NULL : &progress, err);
}
