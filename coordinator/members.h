/* The coordinator's view of the pool: each host with its state and the
 * inventory of its last heartbeat, and the alerts that view raises. It
 * lives in memory behind these few calls, so that the store can take it
 * over without the server or the admin commands changing.
 *
 * The agents are the truth about where a VE runs: a heartbeat replaces
 * its host's inventory whole, and a VEID two hosts report is an alert
 * (never acted on). Every function is a pure function of its arguments
 * and the pool, with the time passed in (ns, monotonic), so tests can
 * drive it. Functions return 0 or a negative errno with err filled. */
#ifndef VZ_MEMBERS_H
#define VZ_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "pool.pb-c.h"
#include "store.h"

#define POOL_MAGIC   0x565a5031u /* "VZP1" */
#define POOL_VERSION 1
/* A heartbeat of 100,000 VEs is some 3 MiB: more is refused unread. */
#define POOL_MSG_MAX (4u << 20)
#define POOL_MAX_VES 100000
/* A VE's addresses and hostname are kept up to this many bytes. */
#define POOL_VE_TEXT_MAX 1024

struct pool_ve {
	unsigned veid;
	Vz__Pool__VeState state;
	uint64_t mem_used;
	uint32_t cpu_permille;
	bool cpu_known; /* its host measured it (a VE that just arrived has no rate yet) */
	uint64_t disk_used;
	uint32_t nproc;
	char *ip, *hostname;	/* malloc'd, "" when the agent did not say */
	bool pinned;		/* PIN=yes: the rebalancer leaves it where it is */
	char anti_affinity[64]; /* ANTI_AFFINITY, "" for none */
};

/* A host as the coordinator sees it (its record in the store is a
 * struct pool_host); its state is online, suspect or offline, and apart
 * from it its maintenance (a drain). */
struct pool_node {
	char name[64];
	char address[64];
	unsigned mig_port, cores;
	uint32_t interval_ms;
	uint64_t mem_total, mem_free, disk_free;
	uint32_t load_milli;
	enum pool_host_state state;
	enum pool_host_maint maint;
	bool agent_draining;	 /* its last heartbeat said it is in maintenance */
	bool maint_ordering;	 /* the coordinator's order in or out of maintenance is on its way */
	uint64_t drain_quiet_ns; /* when its drain's moves were all seen ended (0: not yet) */
	uint64_t hb_ns;		 /* its last heartbeat (0: no inventory since this coordinator began) */
	int64_t last_seen_ns;	 /* monotonic; below 0: heard of before this clock began (pool_load) */
	uint64_t saved_ns;	 /* when the store last had its record */
	uint64_t seq;
	unsigned rb_over_rounds; /* the automatic rebalancing rounds in a row it was hot */
	struct pool_ve *ves;	 /* VEID order */
	size_t n_ves;
};

struct pool {
	struct pool_node **hosts; /* name order */
	size_t n_hosts, cap_hosts;
	unsigned suspect_after; /* missed heartbeats */
	uint64_t offline_after_ns;
	char **alerts;
	size_t n_alerts;
	/* Where hosts, their states and the events are kept (NULL: nowhere):
	 * written at each change of state, and a host's last heartbeat at
	 * most every POOL_SEEN_SAVE_MS; a failed write is logged, and the
	 * pool goes on from the agents, the truth about their VEs. */
	struct pool_store *store;
	int64_t wall_offset_ms; /* the clock's ms less the monotonic ms */
};

#define POOL_SEEN_SAVE_MS 10000

/* Every VE of every host's last inventory, in VEID order, then host
 * (name order): the VEIDs two hosts report are side by side. *out is
 * malloc'd and points into the pool. */
struct pool_held {
	unsigned veid;
	size_t host; /* its index in p->hosts */
	const struct pool_ve *ve;
};
int pool_held_list(const struct pool *p, struct pool_held **out, size_t *n_out, struct vz_err *err);

/* The hosts the store holds, each with the age of its last heartbeat
 * (the store keeps the clock's time: wall_offset_ms converts) and no
 * inventory until its next one. Hosts already in the pool stay. */
int pool_load(struct pool *p, uint64_t now, struct vz_err *err);

/* A host (re)joins: known hosts keep their inventory until the next
 * heartbeat. The host is online from now. */
int pool_register(struct pool *p, const Vz__Pool__Register *r, uint64_t now, struct vz_err *err);
/* Host `name`'s heartbeat: its inventory replaces the one held, the host
 * is online, and the alerts are computed again (a new one is logged).
 * -ENOENT for a host that has not registered, -EINVAL for an inventory
 * with a bad VEID (nothing changed then). */
int pool_heartbeat(struct pool *p, const char *name, const Vz__Pool__Heartbeat *hb, uint64_t now, struct vz_err *err);
/* Host name's maintenance is now m: kept in the store, logged and an
 * event. -ENOENT for a host the pool does not know. */
int pool_set_maint(struct pool *p, const char *name, enum pool_host_maint m, uint64_t now, struct vz_err *err);
/* The host called name, or NULL. */
struct pool_node *pool_find_host(const struct pool *p, const char *name);

/* A move of veid from src to dst ended: until their next heartbeats say
 * it themselves, the pool shows the VE where it now runs (a drain or an
 * exec that follows the move at once would else act on where it was). */
int pool_ve_moved(struct pool *p, unsigned veid, const char *src, const char *dst, struct vz_err *err);
/* Host states from the time since each one's last heartbeat: suspect
 * after suspect_after missed, offline after offline_after_ns. Changes are
 * logged. */
void pool_tick(struct pool *p, uint64_t now);
/* The state a host has at now (pure). */
enum pool_host_state pool_host_state_at(const struct pool *p, const struct pool_node *h, uint64_t now);
/* The admin's view into r (initialised by the caller): hosts, every VE
 * (VE_UNKNOWN for those of a host that is not online) and the alerts. r
 * points into the pool: send it before the pool changes, then free it
 * with pool_report_free. */
int pool_report(const struct pool *p, uint64_t now, Vz__Pool__AdminReply *r, struct vz_err *err);
void pool_report_free(Vz__Pool__AdminReply *r);
void pool_free(struct pool *p);

#endif
