/* vzmigrate [--online] [--keep-dst] [-r yes|no] [--times] [--dry-run] [pre-copy
 * and post-copy options] DEST VEID: move a VE to another host, with OpenVZ's options. The local
 * agent does the work (it talks to DEST's agent over mutual TLS); this
 * shows its progress and summary and exits with its status. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "err.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(
	    f, "Usage: vzmigrate [--online|--live] [--keep-dst] [-r yes|no] [-t|--times] [--dry-run]\n"
	       "                 [--downtime-ms N] [--max-rounds N] [--auto-converge] [--stop-copy] [--verify-memory]\n"
	       "                 [--postcopy] [--json] DEST VEID\n"
	       "  --online      move the VE while it runs (checkpoint, copy, restore)\n"
	       "  --keep-dst    keep the synced private area on DEST if the move fails\n"
	       "  -r yes|no     remove the VE here after the move (default yes)\n"
	       "  -t, --times   print the time of each phase\n"
	       "  --dry-run     only check that DEST can take the VE\n"
	       "  --downtime-ms N  pre-copy: freeze once what is left can be sent in N ms (default 300)\n"
	       "  --max-rounds N   pre-copy: at most N rounds while the VE runs (default 10, at most 64)\n"
	       "  --auto-converge  pre-copy: cap the VE's CPU, more each round, while it writes memory faster\n"
	       "                   than the link carries it (lifted when it freezes)\n"
	       "  --stop-copy      no pre-copy: all memory is copied while the VE is frozen\n"
	       "  --verify-memory  compare digests of the VE's memory on both hosts before it resumes\n"
	       "  --postcopy       no pre-copy: the VE resumes on DEST at once and fetches its memory\n"
	       "                   from here afterwards (it depends on this host until then)\n"
	       "  --json        no progress; the summary as one JSON object on stdout (on failure too)\n");
}

/* --json when the agent sent no summary: a dry run, or a failure. */
static void print_json_outcome(const vz_request *req, const char *error)
{
	printf("{\"veid\": %u, \"ok\": %s, \"dest\": ", req->veid, error ? "false" : "true");
	vz_json_str(req->dest);
	if (req->dry_run)
		printf(", \"dry_run\": true");
	if (error) {
		printf(", \"error\": ");
		vz_json_str(error);
	}
	printf("}\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "online", no_argument, NULL, 'o' },
		{ "live", no_argument, NULL, 'o' },
		{ "keep-dst", no_argument, NULL, 'k' },
		{ "times", no_argument, NULL, 't' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "remove-area", required_argument, NULL, 'r' },
		{ "downtime-ms", required_argument, NULL, 'D' },
		{ "max-rounds", required_argument, NULL, 'R' },
		{ "stop-copy", no_argument, NULL, 'S' },
		{ "verify-memory", no_argument, NULL, 'V' },
		{ "postcopy", no_argument, NULL, 'P' },
		{ "auto-converge", no_argument, NULL, 'A' },
		{ "json", no_argument, NULL, 'J' },
		{ NULL, 0, NULL, 0 },
	};
	struct vz_err err = { 0 };
	vz_request req;
	vz_reply *r = NULL;
	unsigned veid;
	int c, ret;

	vz__control__request__init(&req);
	req.magic = VZ_CONTROL_MAGIC;
	req.version = VZ_CONTROL_VERSION;
	req.op = VZ__CONTROL__OP__OP_MIGRATE;
	while ((c = getopt_long(argc, argv, "tr:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': req.has_online = req.online = 1; break;
		case 'k': req.has_keep_dst = req.keep_dst = 1; break;
		case 't': req.has_times = req.times = 1; break;
		case 'n': req.has_dry_run = req.dry_run = 1; break;
		case 'r':
			if (strcmp(optarg, "yes") && strcmp(optarg, "no")) {
				fprintf(stderr, "vzmigrate: -r takes yes or no, not '%s'\n", optarg);
				return VZ_EXIT_INVAL;
			}
			req.has_keep_src = 1;
			req.keep_src = !strcmp(optarg, "no");
			break;
		case 'D':
		case 'R': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);
			unsigned long max = c == 'D' ? 60000 : 64;

			if (!*optarg || *end || v < 1 || v > max || optarg[0] == '-') {
				fprintf(stderr, "vzmigrate: --%s takes a number from 1 to %lu, not '%s'\n",
					c == 'D' ? "downtime-ms" : "max-rounds", max, optarg);
				return VZ_EXIT_INVAL;
			}
			if (c == 'D') {
				req.has_downtime_ms = 1;
				req.downtime_ms = (uint32_t)v;
			} else {
				req.has_max_rounds = 1;
				req.max_rounds = (uint32_t)v;
			}
			break;
		}
		case 'S': req.has_stop_copy = req.stop_copy = 1; break;
		case 'V': req.has_verify_memory = req.verify_memory = 1; break;
		case 'P': req.has_postcopy = req.postcopy = 1; break;
		case 'A': req.has_auto_converge = req.auto_converge = 1; break;
		case 'J': req.has_json = req.json = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return VZ_EXIT_INVAL;
		}
	}
	if (req.postcopy && (req.stop_copy || req.verify_memory)) {
		fprintf(stderr, "vzmigrate: --postcopy cannot go with %s\n",
			req.stop_copy ? "--stop-copy" : "--verify-memory (the memory arrives after the VE resumes)");
		return VZ_EXIT_INVAL;
	}
	if (req.auto_converge && (req.postcopy || req.stop_copy || !req.online)) {
		fprintf(stderr, "vzmigrate: --auto-converge throttles the VE during an online pre-copy: not with %s\n",
			req.postcopy	? "--postcopy"
			: req.stop_copy ? "--stop-copy"
					: "an offline move (add --online)");
		return VZ_EXIT_INVAL;
	}
	if (req.verify_memory && !req.online) {
		fprintf(stderr, "vzmigrate: --verify-memory compares the memory of a live move: not with an offline "
				"move (add --online)\n");
		return VZ_EXIT_INVAL;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "vzmigrate: need DEST and VEID\n");
		usage(stderr);
		return VZ_EXIT_INVAL;
	}
	if (vz_parse_veid(argv[optind + 1], &veid) < 0) {
		fprintf(stderr, "vzmigrate: Invalid VEID '%s': a number from 1 to 2147483647\n", argv[optind + 1]);
		return VZ_EXIT_INVAL;
	}
	req.dest = argv[optind];
	req.has_veid = 1;
	req.veid = veid;
	/* --json: the agent's one progress line is the summary's object. */
	ret = vz_ctl_call(&req, NULL, 0, NULL, NULL, &r, &err);
	if (ret < 0) {
		fprintf(stderr, "vzmigrate: %s\n", err.msg);
		if (req.json)
			print_json_outcome(&req, err.msg);
		return err.exit_code ? err.exit_code : VZ_EXIT_SYSTEM;
	}
	ret = r->code;
	if (ret)
		fprintf(stderr, "vzmigrate: %s\n", r->error ? r->error : "Failed");
	if (req.json && (ret || req.dry_run))
		print_json_outcome(&req, ret ? (r->error ? r->error : "Failed") : NULL);
	vz__control__reply__free_unpacked(r, NULL);
	return ret;
}
