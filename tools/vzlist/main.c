/* vzlist: OpenVZ's table of VEs (VEID NPROC STATUS IP_ADDR HOSTNAME),
 * with -a, -S, -H, -o, -s, -j, -1, -L and -h, from the agent's list. */
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "control.h"
#include "log.h"
#include "util.h"

typedef Vz__Control__VeInfo ve_info;

static const char *conf_get(const ve_info *v, const char *key)
{
	for (size_t i = 0; i < v->n_conf; i++)
		if (!strcmp(v->conf[i]->name, key))
			return v->conf[i]->value;
	return NULL;
}

static const char *status_word(const ve_info *v)
{
	/* OpenVZ's vzlist says "suspended" for a VE with a dump waiting. */
	if (v->suspended && v->status != VZ__CONTROL__VE_STATUS__VE_RUNNING)
		return "suspended";
	switch (v->status) {
	case VZ__CONTROL__VE_STATUS__VE_RUNNING: return "running";
	case VZ__CONTROL__VE_STATUS__VE_MOUNTED: return "mounted";
	case VZ__CONTROL__VE_STATUS__VE_STOPPED: return "stopped";
	default: return "deleted";
	}
}

/* A field's text for the table ("-" when unknown); numeric fields also
 * give a number for sorting and JSON. */
struct field {
	const char *name, *header;
	int width; /* negative: left aligned */
	int (*get)(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num);
	const char *ubc; /* beancounter fields: the parameter */
	char suffix;	 /* '\0' held, 'm' maxheld, 'b' barrier, 'l' limit, 'f' failcnt */
};

static int get_veid(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)
{
	(void)f;
	*num = v->veid;
	snprintf(buf, len, "%u", v->veid);
	return 1;
}

static int get_nproc(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)
{
	(void)f;
	if (!v->has_nproc) {
		snprintf(buf, len, "-");
		return 0;
	}
	*num = v->nproc;
	snprintf(buf, len, "%u", v->nproc);
	return 1;
}

static int get_status(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)
{
	(void)f;
	(void)num;
	snprintf(buf, len, "%s", status_word(v));
	return 0;
}

static int get_ip(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)
{
	(void)f;
	(void)num;
	buf[0] = '\0';
	for (size_t i = 0; i < v->n_ip; i++) {
		if (i)
			strncat(buf, " ", len - strlen(buf) - 1);
		strncat(buf, v->ip[i], len - strlen(buf) - 1);
	}
	if (!*buf)
		snprintf(buf, len, "-");
	return 0;
}

static int get_conf(const ve_info *v, const char *key, char *buf, size_t len)
{
	const char *s = conf_get(v, key);

	snprintf(buf, len, "%s", s && *s ? s : "-");
	return 0;
}

#define CONF_GETTER(fn, key)                                                                                           \
	static int fn(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)                  \
	{                                                                                                              \
		(void)f;                                                                                               \
		(void)num;                                                                                             \
		return get_conf(v, key, buf, len);                                                                     \
	}
#define NUM_GETTER(fn, has, member)                                                                                    \
	static int fn(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)                  \
	{                                                                                                              \
		(void)f;                                                                                               \
		if (!v->has) {                                                                                         \
			snprintf(buf, len, "-");                                                                       \
			return 0;                                                                                      \
		}                                                                                                      \
		*num = (long long)v->member;                                                                           \
		snprintf(buf, len, "%llu", (unsigned long long)v->member);                                             \
		return 1;                                                                                              \
	}
NUM_GETTER(get_disk_used, has_diskspace_used, diskspace_used)
NUM_GETTER(get_disk_total, has_diskspace_total, diskspace_total)
NUM_GETTER(get_inodes_used, has_diskinodes_used, diskinodes_used)
CONF_GETTER(get_hostname, "HOSTNAME")
CONF_GETTER(get_ostemplate, "OSTEMPLATE")
CONF_GETTER(get_onboot, "ONBOOT")
CONF_GETTER(get_private, "VE_PRIVATE")
CONF_GETTER(get_root, "VE_ROOT")
CONF_GETTER(get_description, "DESCRIPTION")

static int get_userns(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)
{
	(void)f;
	(void)num;
	snprintf(buf, len, "%s", v->userns ? v->userns : "-");
	return 0;
}

static const struct field fields[] = {
	{ "veid", "VEID", 10, get_veid, NULL, 0 },
	{ "ctid", "CTID", 10, get_veid, NULL, 0 },
	{ "nproc", "NPROC", 10, get_nproc, NULL, 0 },
	{ "status", "STATUS", -9, get_status, NULL, 0 },
	{ "ip", "IP_ADDR", -15, get_ip, NULL, 0 },
	{ "hostname", "HOSTNAME", -20, get_hostname, NULL, 0 },
	{ "ostemplate", "OSTEMPLATE", -20, get_ostemplate, NULL, 0 },
	{ "onboot", "ONBOOT", -6, get_onboot, NULL, 0 },
	{ "private", "PRIVATE", -24, get_private, NULL, 0 },
	{ "root", "ROOT", -24, get_root, NULL, 0 },
	{ "description", "DESCRIPTION", -20, get_description, NULL, 0 },
	{ "userns", "USERNS", -8, get_userns, NULL, 0 },
	{ "diskspace", "DQBLOCKS", 10, get_disk_used, NULL, 0 },
	{ "diskspace.h", "DQBLOCKS.H", 10, get_disk_total, NULL, 0 },
	{ "diskinodes", "DQINODES", 10, get_inodes_used, NULL, 0 },
};

static const char *const ubc_names[] = {
	"kmemsize",	"lockedpages", "privvmpages",  "shmpages",   "numproc",	   "physpages", "vmguarpages",
	"oomguarpages", "numtcpsock",  "numflock",     "numpty",     "numsiginfo", "tcpsndbuf", "tcprcvbuf",
	"othersockbuf", "dgramrcvbuf", "numothersock", "dcachesize", "numfile",	   "numiptent", "swappages",
};

/* "physpages" held, "physpages.m" maxheld, .b barrier, .l limit, .f failcnt */
static int get_ubc(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)
{
	snprintf(buf, len, "-");
	for (size_t i = 0; i < v->n_ubc; i++) {
		const Vz__Control__Beancounter *b = v->ubc[i];
		uint64_t val;
		protobuf_c_boolean has;

		if (strcmp(b->name, f->ubc) || b->unsupported)
			continue;
		switch (f->suffix) {
		case 'm':
			has = b->has_maxheld;
			val = b->maxheld;
			break;
		case 'b':
			has = b->has_barrier;
			val = b->barrier;
			break;
		case 'l':
			has = b->has_limit;
			val = b->limit;
			break;
		case 'f':
			has = b->has_failcnt;
			val = b->failcnt;
			break;
		default:
			has = b->has_held;
			val = b->held;
			break;
		}
		if (!has)
			return 0;
		if (val == UINT64_MAX) {
			snprintf(buf, len, "unlimited");
			*num = LLONG_MAX;
		} else {
			snprintf(buf, len, "%llu", (unsigned long long)val);
			*num = (long long)val;
		}
		return 1;
	}
	return 0;
}

/* What the command line asked for. Beancounter fields named by -o or -s
 * are made on demand and live here too. */
struct listing {
	const struct field *cols[32];
	size_t ncols;
	int all, stopped, header, json, ids_only, explicit_cols;
	const char *host_glob;
	const struct field *sort_field;
	int sort_reverse;
	struct field ubc_fields[32];
	size_t n_ubc_fields;
	int want_ubc;
};

static const struct field *find_field(struct listing *l, const char *name)
{
	char base[32], *dot;

	if (!strcmp(name, "ip_addr"))
		name = "ip";
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (!strcmp(fields[i].name, name))
			return &fields[i];
	snprintf(base, sizeof(base), "%s", name);
	dot = strchr(base, '.');
	if (dot) {
		if (strlen(dot) != 2 || !strchr("mblf", dot[1]))
			return NULL;
		*dot = '\0';
	}
	for (size_t i = 0; i < ARRAY_SIZE(ubc_names); i++) {
		struct field *f;

		if (strcmp(ubc_names[i], base) || l->n_ubc_fields == ARRAY_SIZE(l->ubc_fields))
			continue;
		f = &l->ubc_fields[l->n_ubc_fields++];
		f->name = strdup(name);
		f->header = f->name;
		f->width = 12;
		f->get = get_ubc;
		f->ubc = ubc_names[i];
		f->suffix = dot ? dot[1] : '\0';
		l->want_ubc = 1;
		return f;
	}
	return NULL;
}

static int field_get(const struct field *f, const ve_info *v, char *buf, size_t len, long long *num)
{
	return f->get(f, v, buf, len, num);
}

/* qsort_r's comparator: by the listing's sort field, then by VEID. */
static int cmp_ve(const void *x, const void *y, void *arg)
{
	const struct listing *l = arg;
	const struct field *sort_field = l->sort_field;
	const ve_info *a = *(ve_info *const *)x, *b = *(ve_info *const *)y;
	char ba[512], bb[512];
	long long na = -1, nb = -1;
	int isnum = field_get(sort_field, a, ba, sizeof(ba), &na);
	int r;

	isnum |= field_get(sort_field, b, bb, sizeof(bb), &nb);
	if (isnum || sort_field->get == get_nproc || sort_field->get == get_ubc || sort_field->get == get_disk_used ||
	    sort_field->get == get_disk_total || sort_field->get == get_inodes_used)
		r = na < nb ? -1 : na > nb;
	else
		r = strcmp(ba, bb);
	if (r == 0)
		r = a->veid < b->veid ? -1 : a->veid > b->veid;
	return l->sort_reverse ? -r : r;
}

static void print_json(ve_info **ves, size_t n, const struct field **cols, size_t ncols)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		printf("%s\n  {", i ? "," : "");
		for (size_t c = 0; c < ncols; c++) {
			char buf[4096];
			long long num = 0;
			int isnum = field_get(cols[c], ves[i], buf, sizeof(buf), &num);

			printf("%s", c ? ", " : "");
			vz_json_str(cols[c]->name);
			printf(": ");
			if (cols[c]->get == get_ip) {
				printf("[");
				for (size_t k = 0; k < ves[i]->n_ip; k++) {
					printf("%s", k ? ", " : "");
					vz_json_str(ves[i]->ip[k]);
				}
				printf("]");
			} else if (isnum) {
				printf("%lld", num);
			} else if (!strcmp(buf, "-")) {
				printf("null");
			} else {
				vz_json_str(buf);
			}
		}
		printf("}");
	}
	printf("%s]\n", n ? "\n" : "");
}

static void print_table(ve_info **ves, size_t n, const struct field **cols, size_t ncols, int header)
{
	if (header) {
		for (size_t c = 0; c < ncols; c++) {
			int w = cols[c]->width, last = c + 1 == ncols;

			printf("%s%*s", c ? " " : "", last && w < 0 ? 0 : w, cols[c]->header);
		}
		printf("\n");
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t c = 0; c < ncols; c++) {
			char buf[4096];
			long long num;
			int w = cols[c]->width, last = c + 1 == ncols;

			field_get(cols[c], ves[i], buf, sizeof(buf), &num);
			printf("%s%*s", c ? " " : "", last && w < 0 ? 0 : w, buf);
		}
		printf("\n");
	}
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: vzlist [-a | -S] [-H] [-o FIELD,...] [-s [-]FIELD] [-j] [-1] [-L] [-h PATTERN] [VEID...]\n");
}

static void list_fields(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		printf("%-12s %s\n", fields[i].name, fields[i].header);
	for (size_t i = 0; i < ARRAY_SIZE(ubc_names); i++)
		printf("%-12s %s (held; .m maxheld, .b barrier, .l limit, .f failcnt)\n", ubc_names[i], ubc_names[i]);
}

/* -o f1,f2,...: the columns, in order. */
static int parse_columns(struct listing *l, const char *arg)
{
	char *list = strdupa(arg);

	l->ncols = 0;
	l->explicit_cols = 1;
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		const struct field *f = find_field(l, t);

		if (!f) {
			fprintf(stderr, "vzlist: Unknown field '%s'; vzlist -L lists them\n", t);
			return VZ_EXIT_INVAL;
		}
		if (l->ncols == ARRAY_SIZE(l->cols)) {
			fprintf(stderr, "vzlist: Too many fields\n");
			return VZ_EXIT_INVAL;
		}
		l->cols[l->ncols++] = f;
	}
	if (!l->ncols) {
		fprintf(stderr, "vzlist: -o needs at least one field\n");
		return VZ_EXIT_INVAL;
	}
	return 0;
}

/* The options into l; returns -1 to go on, or the exit status (0 after
 * --help or -L). VEIDs named after the options are checked here too. */
static int parse_options(struct listing *l, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },	  { "stopped", no_argument, NULL, 'S' },
		{ "no-header", no_argument, NULL, 'H' },  { "output", required_argument, NULL, 'o' },
		{ "sort", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
		{ "list", no_argument, NULL, 'L' },	  { "hostname", required_argument, NULL, 'h' },
		{ "help", no_argument, NULL, 'x' },	  { NULL, 0, NULL, 0 },
	};
	const char *deflt[] = { "veid", "nproc", "status", "ip", "hostname" };
	int c, ret;

	for (size_t i = 0; i < ARRAY_SIZE(deflt); i++)
		l->cols[l->ncols++] = find_field(l, deflt[i]);
	l->header = 1;
	while ((c = getopt_long(argc, argv, "aSHo:s:jL1h:", opts, NULL)) != -1) {
		switch (c) {
		case 'a': l->all = 1; break;
		case 'S': l->stopped = 1; break;
		case 'H': l->header = 0; break;
		case 'j': l->json = 1; break;
		case '1': l->ids_only = 1; break;
		case 'h': l->host_glob = optarg; break;
		case 'L': list_fields(); return 0;
		case 'o':
			ret = parse_columns(l, optarg);
			if (ret)
				return ret;
			break;
		case 's':
			l->sort_reverse = optarg[0] == '-';
			l->sort_field = find_field(l, optarg + l->sort_reverse);
			if (!l->sort_field) {
				fprintf(stderr, "vzlist: Unknown sort field '%s'; vzlist -L lists them\n",
					optarg + l->sort_reverse);
				return VZ_EXIT_INVAL;
			}
			break;
		case 'x': usage(stdout); return 0;
		default: usage(stderr); return VZ_EXIT_INVAL;
		}
	}
	if (l->json && !l->explicit_cols) {
		l->ncols = 0;
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			if (strcmp(fields[i].name, "ctid"))
				l->cols[l->ncols++] = &fields[i];
	}
	for (int i = optind; i < argc; i++) {
		unsigned v;

		if (vz_parse_veid(argv[i], &v) < 0) {
			fprintf(stderr, "vzlist: Invalid VEID '%s'\n", argv[i]);
			return VZ_EXIT_INVAL;
		}
	}
	return -1;
}

/* Whether v is to be listed: named on the command line, or (when none is
 * named) in the state -a/-S ask for; and its hostname matches -h. */
static bool wanted(const struct listing *l, const ve_info *v, char **names, int nnames)
{
	int running = v->status == VZ__CONTROL__VE_STATUS__VE_RUNNING, named = nnames == 0;

	for (int k = 0; k < nnames; k++)
		named |= strtoul(names[k], NULL, 10) == v->veid;
	if (!named)
		return false;
	/* Named VEs are shown whatever their state, as OpenVZ does. */
	if (nnames == 0 && ((l->stopped && running) || (!l->all && !l->stopped && !running)))
		return false;
	if (l->host_glob) {
		const char *h = conf_get(v, "HOSTNAME");

		if (!h || fnmatch(l->host_glob, h, 0) != 0)
			return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	struct listing l = { 0 };
	struct vz_err err = { 0 };
	vz_request req;
	vz_reply *r = NULL;
	_cleanup_free_ ve_info **ves = NULL;
	size_t n = 0;
	int ret;

	vz_log_init("vzlist", VZ_LOG_WARN, 1);
	ret = parse_options(&l, argc, argv);
	if (ret >= 0)
		return ret;

	vz__control__request__init(&req);
	req.magic = VZ_CONTROL_MAGIC;
	req.version = VZ_CONTROL_VERSION;
	req.op = VZ__CONTROL__OP__OP_LIST;
	req.has_with_ubc = l.want_ubc;
	req.with_ubc = l.want_ubc;
	if (vz_ctl_call(&req, NULL, 0, NULL, NULL, &r, &err) < 0) {
		fprintf(stderr, "vzlist: %s\n", err.msg);
		return VZ_EXIT_SYSTEM;
	}
	if (r->code) {
		fprintf(stderr, "vzlist: %s\n", r->error ? r->error : "List failed");
		return r->code;
	}
	ves = calloc(r->n_ves + 1, sizeof(*ves));
	for (size_t i = 0; ves && i < r->n_ves; i++)
		if (wanted(&l, r->ves[i], argv + optind, argc - optind))
			ves[n++] = r->ves[i];
	if (optind < argc && n == 0) {
		fprintf(stderr, "vzlist: VE not found\n");
		return 1;
	}
	if (l.sort_field)
		qsort_r(ves, n, sizeof(*ves), cmp_ve, &l);
	if (l.ids_only) {
		for (size_t i = 0; i < n; i++)
			printf("%10u\n", ves[i]->veid);
	} else if (l.json) {
		print_json(ves, n, l.cols, l.ncols);
	} else {
		print_table(ves, n, l.cols, l.ncols, l.header);
	}
	vz__control__reply__free_unpacked(r, NULL);
	return 0;
}
