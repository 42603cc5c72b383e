/* Prometheus' text exposition format (expo.h). */
#include <math.h>
#include <string.h>

#include "expo.h"

void vz_expo_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	/* HELP text escapes backslash and newline (not quotes). */
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

static void label_value(FILE *f, const char *v)
{
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
	fputc('"', f);
}

/* name{a="x",b="y"[,le="..."]} with a space after. */
static void series(FILE *f, const char *name, const char *suffix, const char *const *labels, const char *le)
{
	size_t n = 0;

	fprintf(f, "%s%s", name, suffix);
	for (; labels && labels[0] && labels[1]; labels += 2, n++) {
		fprintf(f, "%s%s=", n ? "," : "{", labels[0]);
		label_value(f, labels[1]);
	}
	if (le) {
		fprintf(f, "%sle=", n ? "," : "{");
		label_value(f, le);
		n++;
	}
	fputs(n ? "} " : " ", f);
}

static void value(FILE *f, double v)
{
	if (isnan(v))
		fputs("NaN\n", f);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf\n" : "-Inf\n", f);
	else
		fprintf(f, "%.15g\n", v); /* exact for integers below 10^15 */
}

void vz_expo_double(FILE *f, const char *name, const char *const *labels, double v)
{
	series(f, name, "", labels, NULL);
	value(f, v);
}

void vz_expo_u64(FILE *f, const char *name, const char *const *labels, uint64_t v)
{
	series(f, name, "", labels, NULL);
	if (v == UINT64_MAX)
		fputs("+Inf\n", f);
	else
		fprintf(f, "%llu\n", (unsigned long long)v);
}

struct vz_hist vz_hist_make(const double *bounds, size_t n)
{
	return (struct vz_hist){ .bounds = bounds, .n = n < VZ_HIST_MAX ? n : VZ_HIST_MAX };
}

void vz_hist_observe(struct vz_hist *h, double v)
{
	for (size_t i = 0; i < h->n; i++)
		if (v <= h->bounds[i]) {
			h->buckets[i]++;
			break;
		}
	h->count++;
	h->sum += v;
}

void vz_expo_hist(FILE *f, const char *name, const char *const *labels, const struct vz_hist *h)
{
	uint64_t cum = 0;
	char le[32];

	for (size_t i = 0; i < h->n; i++) {
		cum += h->buckets[i];
		snprintf(le, sizeof(le), "%g", h->bounds[i]);
		series(f, name, "_bucket", labels, le);
		fprintf(f, "%llu\n", (unsigned long long)cum);
	}
	series(f, name, "_bucket", labels, "+Inf");
	fprintf(f, "%llu\n", (unsigned long long)h->count);
	series(f, name, "_sum", labels, NULL);
	value(f, h->sum);
	series(f, name, "_count", labels, NULL);
	fprintf(f, "%llu\n", (unsigned long long)h->count);
}
