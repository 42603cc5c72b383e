/* vzctl: OpenVZ's container control tool, as a thin client of vzagent.
 * Every subcommand returns an exit status (OpenVZ's codes) or a negative
 * errno with err filled; only main prints the error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "util.h"
#include "vzctl.h"

static const struct vzctl_cmd cmds[] = {
	{ "create", cmd_create, "create VEID --ostemplate NAME [--hostname H] [--ipadd IP]...", NULL },
	{ "start", cmd_start, "start VEID", NULL },
	{ "stop", cmd_stop, "stop VEID [--fast]", NULL },
	{ "restart", cmd_restart, "restart VEID [--fast]", NULL },
	{ "status", cmd_status, "status VEID", NULL },
	{ "destroy", cmd_destroy, "destroy VEID", NULL },
	{ "delete", cmd_destroy, "delete VEID", NULL },
	{ "mount", cmd_mount, "mount VEID", NULL },
	{ "umount", cmd_umount, "umount VEID", NULL },
	{ "set", cmd_set,
	  "set VEID [--hostname H] [--ipadd IP] [--ipdel IP|all] [--nameserver IP] "
	  "[--onboot yes|no] [--disabled yes|no] [--userns yes|no] [--antispoof yes|no] "
	  "[--pin yes|no] [--anti-affinity LABEL] "
	  "[--cpuunits N] [--cpulimit PCT] [--cpus N] [--cpumask CPUS] [--ram SIZE] [--swap SIZE] "
	  "[--physpages [B:]L] [--swappages [B:]L] "
	  "[--numproc [B:]L] [--kmemsize [B:]L] [--tcpsndbuf [B:]L] [--tcprcvbuf [B:]L] "
	  "[--diskspace [SOFT:]HARD] [--diskinodes [SOFT:]HARD] [--quotaugidlimit N] [--save]",
	  "  --userns yes|no  (at the next start) yes, the default: the VE's root is an\n"
	  "                   unprivileged range of 65536 host ids (vzlist -o userns shows\n"
	  "                   it) and holds capabilities only over the VE's own namespaces.\n"
	  "                   no: the VE shares the host's user namespace and its root is\n"
	  "                   the host's root: it can remount /sys and /proc read-write\n"
	  "                   and write the host's sysfs and /proc/sys, make and open a\n"
	  "                   host block device, raise its own cgroup limits, and CRIU\n"
	  "                   cannot checkpoint or move a process of another user in it.\n"
	  "                   Only for trusted VEs.\n"
	  "  --antispoof yes|no  (at once) yes, the default: the host's bridge drops what\n"
	  "                   the VE sends as another: a source MAC not its own, ARP or IP\n"
	  "                   from an address not its own (IP_ADDRESS, and for IPv6 its\n"
	  "                   link-local one), router advertisements. no: a VE that\n"
	  "                   routes for others; its root can take a neighbour's addresses.\n" },
	{ "exec", cmd_exec, "exec VEID COMMAND [ARG...]", NULL },
	{ "exec2", cmd_exec, "exec2 VEID COMMAND [ARG...]", NULL },
	{ "enter", cmd_enter, "enter VEID [--exec COMMAND [ARG...]]", NULL },
	{ "ubc", cmd_ubc, "ubc VEID", NULL },
	{ "chkpnt", cmd_chkpnt, "chkpnt VEID [--dumpfile FILE]  |  chkpnt --check", NULL },
	{ "suspend", cmd_chkpnt, "suspend VEID [--dumpfile FILE]", NULL },
	{ "restore", cmd_restore, "restore VEID [--dumpfile FILE]", NULL },
	{ "resume", cmd_restore, "resume VEID [--dumpfile FILE]", NULL },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: vzctl COMMAND VEID [OPTIONS]\n");
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		fprintf(f, "  vzctl %s\n", cmds[i].usage);
}

int vzctl_request(vz_request *req, Vz__Control__Op op, int argc, char **argv, struct vz_err *err)
{
	unsigned veid;

	vz__control__request__init(req);
	req->magic = VZ_CONTROL_MAGIC;
	req->version = VZ_CONTROL_VERSION;
	req->op = op;
	if (argc < 2)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "VEID is not given: vzctl %s VEID", argv[0]);
	if (vz_parse_veid(argv[1], &veid) < 0)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Invalid VEID '%s': a number from 1 to 2147483647",
					 argv[1]);
	req->has_veid = 1;
	req->veid = veid;
	return 0;
}

/* Options of create and set that take a value. The agent checks values. */
static const char *const value_opts[] = {
	"ostemplate",	  "hostname", "ipadd",	   "ipdel",	"nameserver",	 "onboot",    "disabled",
	"cpuunits",	  "cpulimit", "cpus",	   "cpumask",	"ram",		 "swap",      "physpages",
	"swappages",	  "numproc",  "kmemsize",  "tcpsndbuf", "tcprcvbuf",	 "diskspace", "diskinodes",
	"quotaugidlimit", "userns",   "antispoof", "pin",	"anti-affinity", NULL,
};

int vzctl_parse_params(vz_request *req, int argc, char **argv, int from, const char *const *flags, unsigned *flag_seen,
		       struct vz_err *err)
{
	for (int i = from; i < argc; i++) {
		const char *a = argv[i], *name;
		bool known = false;

		if (strncmp(a, "--", 2) != 0)
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Unexpected argument '%s'", a);
		name = a + 2;
		for (unsigned k = 0; flags && flags[k]; k++)
			if (!strcmp(name, flags[k])) {
				*flag_seen |= 1u << k;
				known = true;
			}
		if (known)
			continue;
		for (unsigned k = 0; value_opts[k]; k++)
			known |= !strcmp(name, value_opts[k]);
		if (!known)
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Invalid option %s", a);
		if (i + 1 >= argc)
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Option %s needs a value", a);
		Vz__Control__Param *p = calloc(1, sizeof(*p));
		Vz__Control__Param **np = realloc(req->params, (req->n_params + 1) * sizeof(*np));

		if (!p || !np) {
			free(p);
			return vz_error_msg(err, ENOMEM, "Out of memory");
		}
		vz__control__param__init(p);
		p->name = (char *)name;
		p->value = argv[++i];
		req->params = np;
		req->params[req->n_params++] = p;
	}
	return 0;
}

void vzctl_free_params(vz_request *req)
{
	for (size_t i = 0; i < req->n_params; i++)
		free(req->params[i]);
	free(req->params);
	req->params = NULL;
	req->n_params = 0;
}

int vzctl_run(const vz_request *req, struct vz_err *err)
{
	vz_reply *r = NULL;
	int ret = vz_ctl_call(req, NULL, 0, NULL, NULL, &r, err);

	if (ret < 0)
		return ret;
	ret = r->code;
	if (ret != 0)
		vz_error_exit_msg(err, r->code, EIO, "%s", r->error ? r->error : "Failed");
	vz__control__reply__free_unpacked(r, NULL);
	return ret ? -EIO : 0;
}

int main(int argc, char **argv)
{
	struct vz_err err = { 0 };
	int ret;

	vz_log_init("vzctl", VZ_LOG_WARN, 1);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? VZ_EXIT_INVAL : 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		if (argc > 2 && !strcmp(argv[2], "--help")) {
			printf("Usage: vzctl %s\n%s", cmds[i].usage, cmds[i].notes ? cmds[i].notes : "");
			return 0;
		}
		ret = cmds[i].fn(argc - 1, argv + 1, &err);
		if (ret < 0) {
			fprintf(stderr, "vzctl: %s\n", err.msg);
			return err.exit_code ? err.exit_code : VZ_EXIT_SYSTEM;
		}
		return ret;
	}
	fprintf(stderr, "vzctl: Unknown command '%s'; see vzctl --help\n", argv[1]);
	return VZ_EXIT_INVAL;
}
