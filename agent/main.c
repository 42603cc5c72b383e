/* vzagent: wires the daemon together. See agent.h for how it works. */
#define LOG_PREFIX ""
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "ckpt.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "paths.h"
#include "sysctl.h"
#include "util.h"
#include "ve_ops.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vzagent [--debug] [--log FILE]\n"
		"Serves vzctl, vzlist and vzmigrate on $VZ_ROOT/run/vz/agent.sock (VZ_ROOT: %s)\n",
		vz_root()[0] ? vz_root() : "/");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "debug", no_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vz_agent a = { .listen_fd = VZ_FD_INIT, .mig_fd = VZ_FD_INIT, .metrics_srv.fd = VZ_FD_INIT };
	struct vz_err err = { 0 };
	char logpath[PATH_MAX] = "";
	const char *cgbase;
	int c, debug = 0;

	while ((c = getopt_long(argc, argv, "dl:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': debug = 1; break;
		case 'l': snprintf(logpath, sizeof(logpath), "%s", optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return VZ_EXIT_INVAL;
		}
	}
	vz_log_init("vzagent", debug ? VZ_LOG_DEBUG : VZ_LOG_INFO, 1);
	if (geteuid() != 0) {
		fprintf(stderr, "vzagent: Must run as root\n");
		return VZ_EXIT_PERM;
	}
	if (!*logpath) {
		char dir[PATH_MAX];

		vz_mkdir_p(vz_path(dir, sizeof(dir), "/var/log"), 0755);
		vz_path(logpath, sizeof(logpath), "/var/log/vzagent.log");
	}
	if (vz_log_open(logpath) < 0)
		fprintf(stderr, "vzagent: Cannot open log %s: %s\n", logpath, strerror(errno));
	if (agent_load_global(&a, &err) < 0)
		goto fail;
	if (debug)
		vz_log_set_level(VZ_LOG_DEBUG);
	cgbase = vz_conf_get(&a.global, "CGROUP_BASE");
	if (vz_cg_init(&a.cg, NULL, cgbase && *cgbase ? cgbase : "vz", 0, &err) < 0)
		goto fail;
	{
		/* CRIU's lazy pages splice through pipes larger than the
		 * default 1 MiB, which only this sysctl allows without
		 * CAP_SYS_RESOURCE. */
		unsigned long was = 0;
		bool raised = false;

		if (vz_sysctl_ensure_min(VZ_SYSCTL_PIPE_MAX, 4u << 20, &was, &raised, &err) < 0)
			pr_warn("%s: lazy-pages migration will fail", err.msg);
		else if (raised)
			pr_info("Raised fs.pipe-max-size from %lu to 4194304 for CRIU's lazy pages", was);
		vz_err_clear(&err);
	}
	ve_uffd_sysctl_recover();
	/* Said once here; VEs then start without their network filter. */
	if (vz_net_filter_probe(a.netfilter_off, sizeof(a.netfilter_off)) < 0)
		pr_warn("VE network filter: unsupported: %s: a VE can take a neighbour's addresses", a.netfilter_off);
	/* VE inits outlive the workers that start them: become their parent. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	a.loop = ev_default_loop(EVFLAG_AUTO);
	if (agent_listen(&a, &err) < 0)
		goto fail;
	if (agent_listen_migrate(&a, &err) < 0)
		goto fail;
	/* Metrics are an aid: a port taken is said, and the agent serves on. */
	if (agent_metrics_start(&a, &err) < 0) {
		pr_err("%s: no metrics", err.msg);
		vz_err_clear(&err);
	}
	pr_info("vzagent started (VZ_ROOT %s, cgroup v%d, criu %s)", vz_root()[0] ? vz_root() : "/",
		a.cg.mode == VZ_CG_V2 ? 2 : 1, a.criu);
	agent_run(&a);
	vz_conf_free(&a.global);
	return 0;
fail:
	pr_err("%s", err.msg);
	return err.exit_code ? err.exit_code : 1;
}
