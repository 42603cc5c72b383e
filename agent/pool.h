/* The agent's membership of the pool: with COORDINATOR="host[:port]" in
 * vz.conf, a member process of its own keeps a TLS connection to vzcoord
 * (this host's certificate, as for migrations), registers, then sends a
 * heartbeat with the host's whole inventory every HEARTBEAT_INTERVAL
 * seconds, and reconnects with backoff (1 s doubling to 10 s) when the
 * coordinator is gone.
 *
 * A process rather than a timer in the main loop: the transport blocks
 * (with timeouts), and so does reading the inventory (cgroup files,
 * statvfs of every VE's root); in a process of its own neither can ever
 * stall the main loop, and the main process only reaps and respawns it.
 * It dies with the agent (PR_SET_PDEATHSIG), so a killed agent's host
 * falls silent as it should. */
#ifndef VZ_AGENT_POOL_H
#define VZ_AGENT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct vz_agent;

#define POOL_COORD_PORT 7800
/* The CN of the coordinator's certificate (deploy/vz-certs coordinator). */
#define POOL_COORD_CN	      "vzcoord"
#define POOL_INTERVAL_DEFAULT 2
#define POOL_BACKOFF_MAX_MS   10000

/* COORDINATOR and HEARTBEAT_INTERVAL from vz.conf into a (coordinator ""
 * when unset). A bad value fails with VZ_EXIT_BADVAL, naming the key. */
int agent_pool_conf(struct vz_agent *a, const char *path, struct vz_err *err);
/* Parse "host", "host:port", "[v6]" or "[v6]:port" (pure, unit-tested). */
int agent_pool_parse_coordinator(const char *s, char *host, size_t len, unsigned *port);
/* Pure: a VE's IP_ADDRESS as a heartbeat's ip, its addresses without
 * their /N, one space between each (as vzlist shows them); malloc'd, NULL
 * when there are none (or no memory). */
char *agent_pool_addresses(const char *list);
/* Fork the member process when a coordinator is set (and say why not
 * when this host has no certificate). */
void agent_pool_start(struct vz_agent *a);
/* From the main loop's child watcher: the member process pid ended;
 * start another one a second later. */
void agent_pool_reaped(struct vz_agent *a, pid_t pid);
/* Stop the member process (the agent is leaving). */
void agent_pool_stop(struct vz_agent *a);

#endif
