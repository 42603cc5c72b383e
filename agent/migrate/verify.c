/* --verify-memory on both sides of a move: the source sends the digests of
 * the frozen VE (MEMHASH: the masked rseq areas, then vz_mem_digest's
 * lines); the destination digests the VE it restored, with the same
 * masks, and the verdict on both (memhash.c) lets the move go on to the
 * go or refuses it. */
#define LOG_PREFIX "migrate: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "migrate_int.h"
#include "paths.h"
#include "util.h"

/* The source: the digests of every mapping, the masked rseq areas first so
 * that the destination masks the same. */
int mig_send_digests(struct mig_src *s, struct vz_err *err)
{
	mig_msg m = VZ__MIGRATE__MSG__INIT;
	_cleanup_free_ pid_t *pids = NULL;
	_cleanup_free_ char *text = NULL, *all = NULL;
	size_t n = 0, len = 0, cap, k = 0;
	int ret;

	ret = vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, err);
	if (ret == 0)
		ret = vz_mem_digest(pids, n, s->mask, s->nmask, &text, &len, err);
	if (ret < 0)
		return vz_error_wrap(err, "Memory digests");
	cap = len + s->nmask * 64 + 1;
	all = malloc(cap);
	if (!all)
		return vz_error_msg(err, ENOMEM, "Memory digests: out of memory");
	for (size_t i = 0; i < s->nmask; i++)
		k += (size_t)snprintf(all + k, cap - k, "mask %d %llx %u\n", s->mask[i].vpid,
				      (unsigned long long)s->mask[i].addr, s->mask[i].len);
	memcpy(all + k, text, len + 1);
	m.type = VZ__MIGRATE__TYPE__T_MEMHASH;
	m.has_data = true;
	m.data.data = (uint8_t *)all;
	m.data.len = len + k;
	ret = vz_msg_send(&s->conn, &m.base, err);
	return ret < 0 ? vz_error_wrap(err, "Memory digests") : 0;
}

static int verify_here(struct mig_dst *d, size_t *ranges, struct vz_err *err)
{
	_cleanup_free_ pid_t *pids = NULL;
	_cleanup_free_ struct vz_mem_mask *mask = NULL;
	_cleanup_free_ char *mine = NULL;
	size_t n = 0, len = 0, nmask = 0;
	const char *digests = d->memhash;
	char path[PATH_MAX], why[sizeof(err->msg)];
	int ret = 0;

	if (!d->memhash)
		return vz_error_msg(err, EPROTO, "Memory not verified: the source sent no digests");
	if (d->lazy)
		ret = mig_lazy_wait(d->lazy, 120000, err);
	if (ret == 0)
		ret = vz_cg_pids(&d->a->cg, d->veid, &pids, &n, err);
	if (ret == 0)
		ret = mig_memhash_masks(d->memhash, &mask, &nmask, &digests, err);
	if (ret == 0)
		ret = vz_mem_digest(pids, n, mask, nmask, &mine, &len, err);
	if (ret < 0)
		return ret;
	ret = mig_memhash_verdict(digests, mine, ranges, err);
	if (ret == 0)
		return 0;
	vz_write_file(vz_path(path, sizeof(path), VZ_DUMP_DIR "/%u.memhash.dst", d->veid), mine, len, 0);
	vz_write_file(vz_path(path, sizeof(path), VZ_DUMP_DIR "/%u.memhash.src", d->veid), digests, strlen(digests), 0);
	snprintf(why, sizeof(why), "%s", err->msg);
	return vz_error_msg(err, -ret, "%s (digests in %s)", why, vz_path(path, sizeof(path), VZ_DUMP_DIR));
}

/* The destination: every page in place, then compare with the source's
 * digests. The HELLO asked for it: no digests is a refusal too. */
int mig_dst_verify_memory(struct mig_dst *d, struct vz_err *err)
{
	size_t ranges = 0;
	int ret = verify_here(d, &ranges, err);

	if (ret < 0) {
		d->failed_here = true;
		return ret;
	}
	pr_info("VE %u: memory verified: %zu mappings identical to the source's", d->veid, ranges);
	return 0;
}
