/* Enrolling hosts: vzcoord join and leave (join.c), over SSH (ssh.h),
 * and the coordinator's side of a leave (leave.c).
 *
 * join logs in to the host with the admin's key (its host key checked
 * against known_hosts), issues its agent certificate from the cluster CA
 * (deploy/vz-certs host), copies it with its key and the CA's certificate
 * where the agent reads them, points COORDINATOR in its vz.conf at this
 * coordinator, restarts its agent and waits until it is online. leave
 * refuses a host where VEs run; else it clears COORDINATOR there,
 * restarts the agent and has vzcoord serve forget the host.
 *
 * Settings of the admin's side, in vzcoord.conf:
 *   CA_DIR         the CA's directory (ca.key, ca.crt, as vz-certs ca makes
 *                  it; default VZ_ROOT/etc/vz/ca)
 *   VZ_CERTS       the vz-certs program (default: vz-certs from PATH)
 *   AGENT_RESTART  the host's command that (re)starts its agent, given to
 *                  its shell (default: systemctl restart vzagent)
 *   JOIN_TIMEOUT   seconds join waits for the host to be online (30) */
#ifndef VZ_COORD_JOIN_H
#define VZ_COORD_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "members.h"

/* The subcommands (argv[0] is the subcommand's name); an exit status or
 * a negative errno with err filled (bad usage: exit status 2). */
int coord_cmd_join(int argc, char **argv, struct vz_err *err);
int coord_cmd_leave(int argc, char **argv, struct vz_err *err);

/* text (a vz.conf of len bytes) with key set to value, as a new text
 * (malloc'd, NUL-terminated): its other lines, comments and order kept.
 * Pure. */
int coord_conf_edit(const char *text, size_t len, const char *key, const char *value, char **out, struct vz_err *err);

/* vzcoord serve's side of a leave: host name leaves the pool, and its
 * record the store (an event says so). -ENOENT for a host not in it. */
int pool_forget(struct pool *p, const char *name, uint64_t now, struct vz_err *err);

#endif
