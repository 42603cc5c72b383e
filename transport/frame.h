/* Length-prefixed frames on a stream socket: a big-endian u32 length, then
 * that many bytes. File descriptors may ride with a frame (unix sockets,
 * SCM_RIGHTS). Every length is checked against the caller's cap before any
 * allocation. Blocking I/O; EINTR is retried. */
#ifndef VZ_FRAME_H
#define VZ_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define VZ_FRAME_HDR	 4
#define VZ_FRAME_MAX_FDS 4

/* Validate a 4-byte header against max; pure, fuzzed. 0 or -EMSGSIZE. */
int vz_frame_parse_header(const uint8_t hdr[VZ_FRAME_HDR], size_t max, uint32_t *len);

/* Send one frame, with nfds descriptors attached to its first byte. */
int vz_frame_send(int fd, const void *buf, size_t len, const int *fds, size_t nfds, struct vz_err *err);

/* Receive one frame of at most max bytes into a malloc'd *buf. Descriptors
 * that came with it are stored in fds (up to VZ_FRAME_MAX_FDS, extra ones
 * closed) and counted in *nfds (fds may be NULL to refuse any). Returns 0,
 * -ECONNRESET (with a message) on EOF before a whole frame, or -errno. */
int vz_frame_recv(int fd, uint8_t **buf, size_t *len, size_t max, int *fds, size_t *nfds, struct vz_err *err);

#endif
