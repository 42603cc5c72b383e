/* One VE as the agent sees it, the model: its config, paths, lock, pid
 * file, root mount and running state (ve.c). What is done to a VE (start,
 * stop, options, running code inside) is in ve_ops.h. */
#ifndef VZ_VE_H
#define VZ_VE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "err.h"
#include "net.h"

struct vz_agent;

struct ve {
	unsigned veid;
	struct vz_conf conf;
	char conf_path[PATH_MAX];
	char private[PATH_MAX];
	char root[PATH_MAX];
	int lock_fd;
};

enum ve_state { VE_STATE_DELETED, VE_STATE_STOPPED, VE_STATE_MOUNTED, VE_STATE_RUNNING };

/* Fill paths for veid; load its config when it exists (must_exist: error
 * VZ_EXIT_NOCONF "VE N does not exist" when not). */
int ve_open(unsigned veid, bool must_exist, struct ve *ve, struct vz_err *err);
void ve_close(struct ve *ve);
#define _cleanup_ve_ __attribute__((cleanup(ve_close)))

/* Take the VE's lock (VZ_ROOT/vz/lock/VEID.lck, flock). Waits up to
 * wait_ms, then fails with VZ_EXIT_LOCKED. Released by ve_close. */
int ve_lock(struct ve *ve, int wait_ms, struct vz_err *err);

/* Running: the pid file names a live process with the recorded start time.
 * *init gets its host pid (0 when not running). */
enum ve_state ve_state(const struct ve *ve, pid_t *init);
bool ve_is_mounted(const struct ve *ve);
int ve_write_pidfile(const struct ve *ve, pid_t init, struct vz_err *err);
void ve_remove_pidfile(unsigned veid);
/* Read the pid file without checking liveness. */
int ve_read_pidfile(unsigned veid, pid_t *pid, unsigned long long *start);
/* Start time (clock ticks since boot) of pid, 0 when gone. */
unsigned long long ve_proc_start_time(pid_t pid);

int ve_save(struct ve *ve, struct vz_err *err);
/* The VEIDs that have a config on this host, ascending; *veids is the
 * caller's to free (NULL when there are none). */
int ve_list(unsigned **veids, size_t *n, struct vz_err *err);

/* What the file system of a mounted VE's root holds and its size, KiB,
 * and its inodes in use (vzlist's diskspace and diskinodes). -errno when
 * it cannot be read. */
int ve_disk_usage(const struct ve *ve, uint64_t *used_kib, uint64_t *total_kib, uint64_t *inodes);

/* Bind-mount the private area on the root (idempotent) / unmount it. */
int ve_mount(struct ve *ve, struct vz_err *err);
int ve_umount(struct ve *ve, struct vz_err *err);
/* Unmount, remove the private area, the root directory and the config. */
int ve_destroy_files(struct ve *ve, struct vz_err *err);

/* A yes/no setting: the VE's KEY when set, else vz.conf's, else yes. */
bool ve_setting_yes(const struct vz_agent *a, const struct ve *ve, const char *key);

/* The VE's interface from NETIF, created (and stored in conf, unsaved)
 * when the VE has none. */
int ve_netif(struct ve *ve, struct vz_agent *a, struct vz_netif *nif, struct vz_err *err);

/* Transitional: ve_ckpt.c and the migration engine include this header for
 * the lifecycle too. Drop this line once they include ve_ops.h. */
#include "ve_ops.h"

#endif
