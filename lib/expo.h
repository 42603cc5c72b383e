/* Prometheus' text exposition format, version 0.0.4: what vzagent and
 * vzcoord serve on /metrics (lib/metrics_http.h). Writes to a FILE (an
 * open_memstream for a page being built). A family is its HELP and TYPE
 * lines, then its samples; every family of a page appears once, with all
 * its samples together, as the format wants.
 *
 * Labels are a NULL-terminated array of name, value pairs ({ "ctid",
 * "101", NULL }); values are escaped (backslash, quote, newline), names
 * must be [a-z_]+ already. Values: integers are written exactly, and
 * UINT64_MAX ("unlimited") as +Inf. */
#ifndef VZ_EXPO_H
#define VZ_EXPO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* HELP and TYPE ("gauge", "counter", "histogram") of family name. */
void vz_expo_family(FILE *f, const char *name, const char *type, const char *help);
/* One sample: name{labels} value. */
void vz_expo_double(FILE *f, const char *name, const char *const *labels, double v);
void vz_expo_u64(FILE *f, const char *name, const char *const *labels, uint64_t v);

/* A histogram's state: counts per bucket of upper bounds bounds[0..n-1]
 * (ascending; +Inf is implicit), their sum and count. */
#define VZ_HIST_MAX 16
struct vz_hist {
	const double *bounds;
	size_t n;
	uint64_t buckets[VZ_HIST_MAX]; /* not cumulative: observations in (bounds[i-1], bounds[i]] */
	uint64_t count;
	double sum;
};

/* An empty histogram over bounds (n at most VZ_HIST_MAX). */
struct vz_hist vz_hist_make(const double *bounds, size_t n);
void vz_hist_observe(struct vz_hist *h, double v);
/* name_bucket{labels,le="..."} (cumulative), name_sum and name_count. */
void vz_expo_hist(FILE *f, const char *name, const char *const *labels, const struct vz_hist *h);

#endif
