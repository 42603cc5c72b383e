/* The control conversation between the CLIs and vzagent: control.proto
 * messages in frames on the agent's unix socket. */
#ifndef VZ_CONTROL_H
#define VZ_CONTROL_H

#include <stddef.h>

#include "control.pb-c.h"
#include "err.h"
#include "progress.h"

#define VZ_CONTROL_MAGIC     0x565a4331u /* "VZC1" */
#define VZ_CONTROL_VERSION   1
#define VZ_CONTROL_MAX_FRAME (4u << 20)

typedef Vz__Control__Request vz_request;
typedef Vz__Control__Reply vz_reply;

/* Connect to the agent socket under VZ_ROOT. Sets *fd (close-on-exec). */
int vz_ctl_connect(int *fd, struct vz_err *err);

/* Connect to the unix socket at path; a failure names `who` (VZ_EXIT_PERM
 * when it is not ours to reach). */
int vz_unix_connect(const char *path, const char *who, int *fd, struct vz_err *err);
/* Listen on the unix socket at path (mode 0600, its directory made):
 * refuses, naming `who`, when a live server answers there already, and
 * replaces a stale socket. *fd is non-blocking and close-on-exec. */
int vz_unix_listen(const char *path, const char *who, int *fd, struct vz_err *err);

int vz_ctl_send_request(int fd, const vz_request *req, const int *fds, size_t nfds, struct vz_err *err);
/* Receive and check magic and version. Free with vz__control__request__free_unpacked. */
int vz_ctl_recv_request(int fd, vz_request **req, int *fds, size_t *nfds, struct vz_err *err);

int vz_ctl_send_reply(int fd, const vz_reply *reply, const int *fds, size_t nfds, struct vz_err *err);
int vz_ctl_recv_reply(int fd, vz_reply **reply, int *fds, size_t *nfds, struct vz_err *err);

/* Send a progress line (done = false). Errors are ignored: a client that
 * went away does not stop the operation. */
void vz_ctl_progress(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A progress sink (lib/progress.h) that sends each line to the client on
 * control connection fd, as vz_ctl_progress does. */
struct vz_progress vz_ctl_progress_sink(int fd);
/* Send the final reply for a result: 0, or the error's code and message. */
int vz_ctl_finish(int fd, int ret, const struct vz_err *err);

/* Client side of one call: connect, send req (with fds), print progress
 * lines to stdout as they come, hand a descriptor that travels with a
 * progress frame to on_fd (may be NULL), and return the final reply in
 * *final (free with vz__control__reply__free_unpacked). */
int vz_ctl_call(const vz_request *req, const int *fds, size_t nfds, int (*on_fd)(void *ctx, int fd, int conn),
		void *ctx, vz_reply **final, struct vz_err *err);

#endif
