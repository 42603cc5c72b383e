/* vzcoord serve's side of vzcoord leave: the host out of the pool's view
 * and out of the store (join.h). */
#define LOG_PREFIX "leave: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "join.h"
#include "log.h"

int pool_forget(struct pool *p, const char *name, uint64_t now, struct vz_err *err)
{
	struct pool_event ev = { 0 };
	struct vz_err serr = { 0 };
	size_t i;

	for (i = 0; i < p->n_hosts && strcmp(p->hosts[i]->name, name); i++)
		;
	if (i == p->n_hosts)
		return vz_error_msg(err, ENOENT, "No host %s in the pool", name);
	free(p->hosts[i]->ves);
	free(p->hosts[i]);
	memmove(&p->hosts[i], &p->hosts[i + 1], (p->n_hosts - i - 1) * sizeof(*p->hosts));
	p->n_hosts--;
	pr_info("Host %s left the pool", name);
	if (!p->store)
		return 0;
	if (pool_store_host_del(p->store, name, &serr) < 0)
		pr_warn("Store: host %s not removed: %s", name, serr.msg);
	ev.time_ms = (int64_t)(now / 1000000) + p->wall_offset_ms;
	snprintf(ev.kind, sizeof(ev.kind), "left");
	snprintf(ev.host, sizeof(ev.host), "%s", name);
	snprintf(ev.text, sizeof(ev.text), "left the pool (vzcoord leave)");
	if (pool_store_event_add(p->store, &ev, &serr) < 0)
		pr_warn("Store: event not recorded: %s", serr.msg);
	return 0;
}
