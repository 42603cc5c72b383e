/* An SSH client for enrolling hosts (vzcoord join, leave), on libssh2:
 * key authentication only, the host's key checked against a known_hosts
 * file before anything is sent, commands run by the host's shell and
 * files read and written over SFTP.
 *
 * Functions return 0 or a negative errno with err filled; the calls are
 * blocking, each under the session's timeout. */
#ifndef VZ_COORD_SSH_H
#define VZ_COORD_SSH_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

#define COORD_SSH_PORT 22

/* [USER@]HOST[:PORT] (an IPv6 address as [ADDR]:PORT), pure: user ""
 * when none is given (the caller's default applies), port 0 when none.
 * -EINVAL for an empty user or host, a bad port or a host that is not a
 * name or address. */
int coord_ssh_parse_target(const char *s, char *user, size_t user_len, char *host, size_t host_len, unsigned *port,
			   struct vz_err *err);

struct coord_ssh_opts {
	const char *user;	 /* "root" if NULL */
	const char *host;	 /* as the admin named it: checked in known_hosts */
	const char *address;	 /* where to connect; NULL: host */
	unsigned port;		 /* 0: 22 */
	const char *identity;	 /* a private key; NULL: ~/.ssh/id_ed25519, else id_rsa */
	const char *known_hosts; /* NULL: ~/.ssh/known_hosts */
	unsigned timeout_ms;	 /* each step: connect, each exchange */
};

struct coord_ssh;

/* Connect, check the host key (one line, and nothing sent to the host
 * but the key exchange, when it is unknown or not the one known: -EPERM)
 * and log in with the key. */
int coord_ssh_open(const struct coord_ssh_opts *o, struct coord_ssh **out, struct vz_err *err);
void coord_ssh_close(struct coord_ssh *s);
/* The numeric address this end has on the connection: the host reaches
 * us there. */
const char *coord_ssh_local_addr(const struct coord_ssh *s);
/* The numeric address of the host connected to. */
const char *coord_ssh_peer_addr(const struct coord_ssh *s);

/* Run cmd by the host's shell, for at most timeout_ms; its stdout and
 * stderr together into *out (malloc'd, NUL-terminated, capped at 64 KiB,
 * may be NULL) and its exit status (128+N killed by signal N) returned. */
int coord_ssh_run(struct coord_ssh *s, const char *cmd, unsigned timeout_ms, char **out, struct vz_err *err);
/* A file of the host, whole (at most max bytes): -ENOENT if none. */
int coord_ssh_read(struct coord_ssh *s, const char *path, char **buf, size_t *len, size_t max, struct vz_err *err);
/* Replace the host's file path by buf, made anew with mode (the old one
 * removed first, so that a key never has an older, looser mode). */
int coord_ssh_write(struct coord_ssh *s, const char *path, const void *buf, size_t len, mode_t mode,
		    struct vz_err *err);
/* Overwrite path in place (its inode and mode kept), as an editor does. */
int coord_ssh_rewrite(struct coord_ssh *s, const char *path, const void *buf, size_t len, struct vz_err *err);
/* mkdir -p of the directory that holds path. */
int coord_ssh_mkdir_parent(struct coord_ssh *s, const char *path, mode_t mode, struct vz_err *err);

static inline void coord_ssh_closep(struct coord_ssh **s)
{
	if (*s)
		coord_ssh_close(*s);
	*s = NULL;
}
#define _cleanup_ssh_ __attribute__((cleanup(coord_ssh_closep)))

#endif
