/* A VE's user namespace: its root is an unprivileged range of the host's
 * ids (VE_USERNS_SIZE of them, from the VE config's USERNS_UID), given to
 * each VE by the agent and never to two VEs of one host; and the
 * idmapped mount through which the VE sees its files, which keep their
 * ordinary owners on disk (userns.c). */
#ifndef VZ_USERNS_H
#define VZ_USERNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

struct vz_agent;
struct ve;

#define VE_USERNS_SIZE 65536u
/* vz.conf's USERNS_BASE when it does not say: the first host id given to a
 * VE (Incus starts its ranges at 1000000 too). */
#define VE_USERNS_BASE_DEFAULT 1000000u

/* The VE runs in a user namespace of its own: USERNS in its config, else
 * vz.conf's USERNS (default yes). */
bool ve_userns_enabled(const struct vz_agent *a, const struct ve *ve);

/* The host id of the VE's root: USERNS_UID from its config when it is a
 * slot of this host's pool that no other VE of this host holds; otherwise
 * the lowest free slot, preferring `prefer` (a migration's source range,
 * 0: none), written to the config and saved. Under a host-wide lock, so
 * two starts cannot take the same range. */
int ve_userns_assign(struct vz_agent *a, struct ve *ve, uint32_t prefer, uint32_t *host_id, struct vz_err *err);

/* pid is in a user namespace other than the agent's. */
bool ve_pid_has_userns(pid_t pid);

/* The host id of the root of the running VE whose init is init: its
 * USERNS_UID when init is in a user namespace of its own, 0 when it
 * shares the host's. */
uint32_t ve_userns_running_id(const struct ve *ve, pid_t init);

/* In a VE's user namespace, once its maps are written: take the ids of
 * its root (uid and gid 0, no supplementary groups); the capabilities
 * held are then those of that namespace only. */
int ve_become_root(struct vz_err *err);

/* Write "0 host_id VE_USERNS_SIZE" as pid's uid and gid map. */
int ve_userns_write_maps(pid_t pid, uint32_t host_id, struct vz_err *err);

/* A detached copy of the mount tree at path (open_tree), idmapped so that
 * id k on disk is seen as k by a task of a user namespace whose map is
 * "0 host_id VE_USERNS_SIZE": the returned fd is for move_mount. */
int ve_idmapped_tree(const char *path, uint32_t host_id, struct vz_err *err);

/* The idmapped tree of the VE's root attached at VZ_RUN_DIR/idroot/VEID
 * (made if needed; the path goes in buf) for CRIU's --root, which bind-
 * mounts it as the restored VE's "/". ve_idroot_put detaches it. */
int ve_idroot_get(const struct ve *ve, uint32_t host_id, char *buf, size_t len, struct vz_err *err);
void ve_idroot_put(const struct ve *ve);

#endif
