/* The destination's side of a pre-copy migration's last step: our page
 * server (the pages of every round, from the local store) on 127.0.0.1,
 * and CRIU's lazy-pages daemon fetching from it into the VE that
 * `criu restore --lazy-pages` brings back. Nothing is fetched from the
 * source: after the go the destination needs nothing more from it. */
#ifndef VZ_AGENT_MIG_LAZY_H
#define VZ_AGENT_MIG_LAZY_H

#include "err.h"
#include "pagestore.h"

struct mig_lazy;

/* Start both; returns when the daemon listens for the restore (its
 * socket is in workdir, which the restore must use as its work dir).
 * on_fail, when set, is called when our page server cannot answer, before
 * the daemon hears of it. */
int mig_lazy_start(struct mig_lazy **out, const char *criu, struct vz_pstore *ps, const char *imgdir,
		   const char *workdir, const char *logname, void (*on_fail)(void *arg), void *fail_arg,
		   struct vz_err *err);

/* Wait until every page is in the VE (the daemon exits when so). */
int mig_lazy_wait(struct mig_lazy *l, int timeout_ms, struct vz_err *err);

/* Kill the daemon if still there and free everything. */
void mig_lazy_free(struct mig_lazy *l);

#endif
