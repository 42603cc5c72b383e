/* vzcoord simulate TRACE: the command line, what it prints, the TSV of
 * imbalance and host loads over time, and the plot gnuplot draws of it.
 * The simulation itself is simulate.c's. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "simulate.h"
#include "util.h"

#define EXIT_USAGE	2
#define TRACE_MAX_BYTES (16u << 20)

struct sim_opts {
	const char *trace, *tsv, *plot;
	int64_t hours, step;
	bool log;
	char tsv_buf[4096];
};

static const char *hms(int64_t t, char *buf, size_t len)
{
	snprintf(buf, len, "%02lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60),
		 (long long)(t % 60));
	return buf;
}

static int usage(struct vz_err *err, const char *fmt, const char *arg)
{
	char msg[512];

	memcpy(msg, "simulate: ", 10);
	snprintf(msg + 10, sizeof(msg) - 10, fmt, arg);
	return vz_error_exit_msg(err, EXIT_USAGE, EINVAL, "%s (vzcoord --help)", msg);
}

static int parse_args(int argc, char **argv, struct sim_opts *o, struct vz_err *err)
{
	static const struct option opts[] = {
		{ "hours", required_argument, NULL, 'H' }, { "step", required_argument, NULL, 's' },
		{ "log", no_argument, NULL, 'l' },	   { "tsv", required_argument, NULL, 't' },
		{ "plot", required_argument, NULL, 'p' },  { NULL, 0, NULL, 0 }
	};
	unsigned long v;
	int c;

	*o = (struct sim_opts){ .hours = 24, .step = 300 };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'H':
			if (vz_parse_ulong(optarg, 1, 24 * 366, &v) < 0)
				return usage(err, "--hours takes 1 to 8784, not '%s'", optarg);
			o->hours = (int64_t)v;
			break;
		case 's':
			if (vz_parse_ulong(optarg, 10, 86400, &v) < 0)
				return usage(err, "--step takes seconds, 10 to 86400, not '%s'", optarg);
			o->step = (int64_t)v;
			break;
		case 'l': o->log = true; break;
		case 't': o->tsv = optarg; break;
		case 'p': o->plot = optarg; break;
		default: return usage(err, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage(err, "%s", optind < argc ? "takes one TRACE" : "needs a TRACE");
	o->trace = argv[optind];
	if (o->plot && !o->tsv) {
		/* The plot's data beside it: x.png's in x.tsv. */
		size_t n = strlen(o->plot);

		if (n > 4 && !strcmp(o->plot + n - 4, ".png"))
			n -= 4;
		snprintf(o->tsv_buf, sizeof(o->tsv_buf), "%.*s.tsv", (int)n, o->plot);
		o->tsv = o->tsv_buf;
	}
	return 0;
}

static int print_line(void *arg, int64_t t, const char *line)
{
	const struct sim_opts *o = arg;
	char when[32];

	if (o->log || !strncmp(line, "move ", 5) || !strncmp(line, "event ", 6))
		printf("%s  %s\n", hms(t, when, sizeof(when)), line);
	return 0;
}

static int write_tsv(const char *path, const struct sim_trace *t, const struct sim_result *r, struct vz_err *err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "w");

	if (!f)
		return vz_error(err, errno, "Create %s", path);
	fprintf(f, "hours\tseconds\timbalance\tmoves");
	for (size_t i = 0; i < t->n_hosts; i++)
		fprintf(f, "\t%s", t->hosts[i].name);
	fprintf(f, "\n");
	for (size_t i = 0; i < r->n_samples; i++) {
		fprintf(f, "%.4f\t%lld\t%.4f\t%u", r->samples[i].t / 3600.0, (long long)r->samples[i].t,
			r->samples[i].imbalance, r->samples[i].moves);
		for (size_t h = 0; h < t->n_hosts; h++)
			fprintf(f, "\t%.4f", r->loads[i * t->n_hosts + h]);
		fprintf(f, "\n");
	}
	if (fflush(f) == EOF || ferror(f))
		return vz_error(err, errno ? errno : EIO, "Write %s", path);
	return 0;
}

/* gnuplot, given the script as an argument (no shell): host loads above,
 * the imbalance with its threshold and the moves below. */
static int plot(const struct sim_opts *o, const struct sim_trace *t, struct vz_err *err)
{
	_cleanup_free_ char *script = NULL;
	_cleanup_free_ char *out = NULL;
	char *argv[] = { "gnuplot", "-e", NULL, NULL };
	int ret;

	if (strchr(o->plot, '\'') || strchr(o->tsv, '\''))
		return vz_error_msg(err, EINVAL, "A plot's file name with a quote: not drawn");
	if (asprintf(&script,
		     "set terminal pngcairo size 960,640 font 'sans,10'; set output '%s';"
		     "set datafile separator '\\t'; set key outside right; set lmargin 10; set rmargin 20;"
		     "set xrange [0:%lld]; set multiplot layout 2,1;"
		     "set title 'vzcoord simulate %s'; set ylabel 'host load'; set grid;"
		     "plot for [i=5:%zu] '%s' using 1:i with steps title columnheader(i), %g with lines dt 2 lc "
		     "'red' title 'hot';"
		     "unset title; set xlabel 'hours'; set ylabel 'imbalance (CV)';"
		     "plot '%s' using 1:3 with steps lw 2 title 'imbalance', %g with lines dt 2 lc 'red' title "
		     "'threshold', '%s' using 1:($4 > 0 ? $3 : 1/0) with points pt 7 ps 1.2 lc 'black' title 'move';"
		     "unset multiplot",
		     o->plot, (long long)o->hours, o->trace, 4 + t->n_hosts, o->tsv, t->set.hot_threshold, o->tsv,
		     t->set.imbalance_threshold, o->tsv) < 0)
		return vz_error(err, ENOMEM, "Plot");
	argv[2] = script;
	ret = vz_run(argv, &out);
	if (ret == 127)
		return vz_error_msg(err, ENOENT, "No plot: gnuplot is not installed (the TSV is %s)", o->tsv);
	if (ret != 0) {
		char last[256];

		return vz_error_msg(err, EIO, "Cannot plot, gnuplot says: %s",
				    vz_last_line(out ? out : "", last, sizeof(last)));
	}
	return 0;
}

static void print_summary(const struct sim_opts *o, const struct sim_result *r)
{
	printf("summary: %zu move%s in %lld h, imbalance start %.2f end %.2f max %.2f\n", r->n_moves,
	       r->n_moves == 1 ? "" : "s", (long long)o->hours, r->start, r->end, r->max);
}

int sim_cmd(int argc, char **argv, struct vz_err *err)
{
	struct sim_trace t;
	struct sim_result r;
	struct sim_opts o;
	_cleanup_free_ char *text = NULL;
	size_t len;
	int ret = parse_args(argc, argv, &o, err);

	if (ret < 0)
		return ret;
	ret = vz_read_file(o.trace, &text, &len, TRACE_MAX_BYTES);
	if (ret < 0)
		return vz_error_exit(err, VZ_EXIT_BADVAL, ret, "Read trace %s", o.trace);
	if (strlen(text) != len)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Trace %s is not text", o.trace);
	ret = sim_trace_parse(text, o.trace, &t, err);
	if (ret < 0)
		return ret;
	printf("trace %s: %zu hosts, %zu VEs, %lld h in steps of %lld s\n", o.trace, t.n_hosts, t.n_ves,
	       (long long)o.hours, (long long)o.step);
	ret = sim_run(&t, o.hours * 3600, o.step, print_line, &o, &r, err);
	if (ret == 0) {
		print_summary(&o, &r);
		if (o.tsv)
			ret = write_tsv(o.tsv, &t, &r, err);
		if (ret == 0 && o.plot)
			ret = plot(&o, &t, err);
		sim_result_free(&r);
	}
	sim_trace_free(&t);
	return ret;
}
