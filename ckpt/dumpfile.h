/* A VE's dump file: a fixed header, then the image stream (imgstream.h).
 *
 * Header, 256 bytes, integers big-endian:
 *   0   magic "VZDUMP\r\n"        8   u16 version (1)   10  u16 header size
 *   12  u32 veid                  16  u64 created (unix seconds)
 *   24  u64 payload bytes         32  u64 image bytes (uncompressed)
 *   40  u32 image files           44  u32 flags (0)
 *   48  criu version[16]          64  kernel release[64]
 *   128 machine[16]               144 sha256[32]    176 zero[80]
 * The SHA-256 covers the whole file: the payload, then the header with
 * its own field zeroed (so the writer hashes in one pass). A restore reads and checks all of it before
 * anything is unpacked or run. */
#ifndef VZ_CKPT_DUMPFILE_H
#define VZ_CKPT_DUMPFILE_H

#include <stdint.h>

#include "criu.h"
#include "err.h"
#include "imgstream.h"

#define VZ_DUMP_HDR_SIZE 256
#define VZ_DUMP_VERSION	 1

struct vz_dump_hdr {
	unsigned version;
	unsigned veid;
	uint64_t created;
	uint64_t payload_bytes;
	uint64_t image_bytes;
	uint32_t nfiles;
	char criu_version[16];
	char kernel[64];
	char machine[16];
	uint8_t sha256[32];
};

/* Pure: check magic, version, size and string fields of buf. */
int vz_dump_hdr_parse(const uint8_t *buf, size_t len, struct vz_dump_hdr *h, struct vz_err *err);
void vz_dump_hdr_format(const struct vz_dump_hdr *h, uint8_t *buf);

/* Pack images_fd into path (written to a temporary name, synced, then
 * renamed, so a failure leaves no partial file). h gives veid and criu
 * version; the rest is filled in. */
int vz_dumpfile_write(const char *path, int images_fd, struct vz_dump_hdr *h, struct vz_img_stats *st,
		      struct vz_err *err);

/* Refuse a file that is not a whole, intact dump of veid made by a CRIU
 * no newer than ours: one clear message each. Fills *h. */
int vz_dumpfile_verify(const char *path, unsigned veid, const struct vz_criu_version *ours, struct vz_dump_hdr *h,
		       struct vz_err *err);

/* Unpack a verified dump file's images into the empty directory dir_fd. */
int vz_dumpfile_unpack(const char *path, int dir_fd, struct vz_img_stats *st, struct vz_err *err);

/* "4.1.1" > "4.1"? Compares up to three numeric parts. */
int vz_version_cmp(const char *a, const char *b);

#endif
