/* The destination's copy of a VE's memory during pre-copy, and the page
 * server that hands it to CRIU's lazy-pages daemon.
 *
 * Pages arrive round after round as (pid in the VE, address, contents);
 * a page sent again replaces the old copy. They live in an unlinked file
 * (O_TMPFILE) under the dump directory, indexed by a hash table, so a VE
 * larger than the agent's memory still fits.
 *
 * vz_pstore_serve speaks the serving side of CRIU's page-server protocol
 * as `criu dump --lazy-pages` does: 32-byte requests {u32 cmd; u64
 * nr_pages; u64 vaddr; u64 dst_id} (cmd PS_IOV_GET = 7, dst_id the pid in
 * the VE), each answered with the same header (cmd PS_IOV_ADD_F with
 * PE_PRESENT, nr_pages possibly fewer than asked) and the pages;
 * PS_IOV_CLOSE is answered with a zero status. A page it does not hold is
 * an error, never zeros: the restore then fails and the source resumes. */
#ifndef VZ_CKPT_PAGESTORE_H
#define VZ_CKPT_PAGESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define VZ_PS_IOV_GET	      7
#define VZ_PS_IOV_ADD_F	      6
#define VZ_PS_IOV_CLOSE	      0x1023
#define VZ_PS_IOV_FORCE_CLOSE 0x1024
#define VZ_PE_PRESENT	      (1 << 2)

struct vz_ps_iov {
	uint32_t cmd;
	uint32_t pad;
	uint64_t nr_pages;
	uint64_t vaddr;
	uint64_t dst_id;
};

struct vz_pstore;

/* A store whose pages live in an unlinked file in directory dir. */
struct vz_pstore *vz_pstore_new(const char *dir, struct vz_err *err);
void vz_pstore_free(struct vz_pstore *s);

int vz_pstore_put(struct vz_pstore *s, int vpid, uint64_t vaddr, const void *data, size_t npages, struct vz_err *err);
/* Distinct pages held. */
uint64_t vz_pstore_pages(const struct vz_pstore *s);
/* Copy one page out; -ENOENT when not held. */
int vz_pstore_get(struct vz_pstore *s, int vpid, uint64_t vaddr, void *page);

/* Post-copy: called for a page not held, to bring at least that page
 * into the store (from the source); 0 or a negative errno. */
typedef int (*vz_pstore_fetch_fn)(void *arg, int vpid, uint64_t vaddr, uint64_t npages, struct vz_err *err);
void vz_pstore_set_fetch(struct vz_pstore *s, vz_pstore_fetch_fn fn, void *arg);

struct vz_pstore_stats {
	uint64_t requests, pages;
	uint64_t fetched; /* post-copy: pages brought from the source */
};

/* Serve one client on fd until it closes or says PS_IOV_CLOSE: 0, or a
 * negative errno (a request for a page not held, a bad request). */
int vz_pstore_serve(struct vz_pstore *s, int fd, struct vz_pstore_stats *st, struct vz_err *err);

#endif
