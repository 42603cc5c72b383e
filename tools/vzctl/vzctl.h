/* vzctl: one file per subcommand; main.c holds the table. */
#ifndef VZCTL_H
#define VZCTL_H

#include <stdbool.h>

#include "control.h"
#include "err.h"

struct vzctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv, struct vz_err *err);
	const char *usage;
	const char *notes; /* more for `vzctl CMD --help`, or NULL */
};

/* A request for op on the VE named by argv[1] (checked). */
int vzctl_request(vz_request *req, Vz__Control__Op op, int argc, char **argv, struct vz_err *err);
/* Parse OpenVZ options argv[from..] into req->params; the flags in
 * `flags` (NULL-terminated, such as "save", "fast") set *flag_seen bits.
 * Unknown options and missing values fail with VZ_EXIT_INVAL. */
int vzctl_parse_params(vz_request *req, int argc, char **argv, int from, const char *const *flags, unsigned *flag_seen,
		       struct vz_err *err);
void vzctl_free_params(vz_request *req);
/* Send, print progress, and turn the final reply into an exit status. */
int vzctl_run(const vz_request *req, struct vz_err *err);

int cmd_create(int argc, char **argv, struct vz_err *err);
int cmd_set(int argc, char **argv, struct vz_err *err);
int cmd_start(int argc, char **argv, struct vz_err *err);
int cmd_stop(int argc, char **argv, struct vz_err *err);
int cmd_restart(int argc, char **argv, struct vz_err *err);
int cmd_destroy(int argc, char **argv, struct vz_err *err);
int cmd_mount(int argc, char **argv, struct vz_err *err);
int cmd_umount(int argc, char **argv, struct vz_err *err);
int cmd_status(int argc, char **argv, struct vz_err *err);
int cmd_exec(int argc, char **argv, struct vz_err *err);
int cmd_enter(int argc, char **argv, struct vz_err *err);
int cmd_ubc(int argc, char **argv, struct vz_err *err);
int cmd_chkpnt(int argc, char **argv, struct vz_err *err);
int cmd_restore(int argc, char **argv, struct vz_err *err);

#endif
