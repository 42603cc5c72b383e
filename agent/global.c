/* Host-wide settings from vz.conf, with OpenVZ-like defaults. A missing
 * vz.conf is written with the defaults so an operator can see them. */
#define LOG_PREFIX "global: "
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "util.h"
#include "agent.h"
#include "criu.h"
#include "pool.h"
#include "userns.h"

/* Loopback: the figures stay on this host unless an admin opens them up. */
#define AGENT_METRICS_DEFAULT "127.0.0.1:9720"

static const char default_conf[] = "# vzcluster host-wide settings (OpenVZ vz.conf names where they exist)\n"
				   "VE_BRIDGE=\"vzbr0\"\n"
				   "# Prefix length for --ipadd addresses given without one\n"
				   "VE_IP_PREFIX=\"24\"\n"
				   "# Default route inside VEs (empty: none)\n"
				   "VE_GATEWAY=\"\"\n"
				   "DEF_OSTEMPLATE=\"busybox\"\n"
				   "# Seconds a VE's init gets to shut down before it is killed\n"
				   "STOP_TIMEOUT=\"60\"\n"
				   "# Directory of this host's VEs in every cgroup hierarchy\n"
				   "CGROUP_BASE=\"vz\"\n"
				   "# criu executable; empty: the one deploy/install-deps recorded\n"
				   "CRIU=\"\"\n"
				   "# Seconds CRIU may go without answering (or exiting once done) before it is\n"
				   "# killed and the checkpoint, restore or move fails (the VE runs on)\n"
				   "CRIU_TIMEOUT=\"300\"\n"
				   "# Each VE in a user namespace of its own (a VE's USERNS overrides it); its\n"
				   "# root is one of the ranges of 65536 host ids from USERNS_BASE up\n"
				   "USERNS=\"yes\"\n"
				   "USERNS_BASE=\"1000000\"\n"
				   "# The host's bridge drops what a VE sends with a MAC or address not its\n"
				   "# own (a VE's ANTISPOOF overrides it)\n"
				   "ANTISPOOF=\"yes\"\n"
				   "LOG_LEVEL=\"info\"\n"
				   "# TCP port of migrations between agents (mutual TLS under the cluster CA)\n"
				   "MIGRATE_PORT=\"7799\"\n"
				   "# Seconds a migration waits for its peer before it fails (and is undone)\n"
				   "MIGRATE_TIMEOUT=\"30\"\n"
				   "# The pool's coordinator, host[:port] (port 7800 by default); empty: in no pool\n"
				   "COORDINATOR=\"\"\n"
				   "# Seconds between two heartbeats to the coordinator\n"
				   "HEARTBEAT_INTERVAL=\"2\"\n"
				   "# Prometheus metrics over plain HTTP (GET /metrics) on ADDRESS:PORT; empty: none.\n"
				   "# A loopback address keeps them on this host (the default when the key is absent)\n"
				   "METRICS_LISTEN=\"" AGENT_METRICS_DEFAULT "\"\n";

static int read_criu_path(char *buf, size_t len)
{
	_cleanup_free_ char *text = NULL;
	char line[PATH_MAX];

	if (vz_read_file("/etc/vz/criu.path", &text, NULL, PATH_MAX) < 0)
		return -ENOENT;
	vz_last_line(text, line, sizeof(line));
	if (!*line)
		return -ENOENT;
	snprintf(buf, len, "%s", line);
	return 0;
}

int agent_load_global(struct vz_agent *a, struct vz_err *err)
{
	char path[PATH_MAX], dir[PATH_MAX];
	const char *v;
	unsigned long n;
	int ret;

	vz_path(path, sizeof(path), VZ_GLOBAL_CONF);
	if (!vz_exists(path)) {
		vz_mkdir_p(vz_path(dir, sizeof(dir), "/etc/vz"), 0755);
		ret = vz_write_file(path, default_conf, strlen(default_conf), 0);
		if (ret < 0)
			return vz_error(err, -ret, "Write %s", path);
		pr_info("Wrote default settings to %s", path);
	}
	ret = vz_conf_load(&a->global, path, err);
	if (ret < 0)
		return ret;

	v = vz_conf_get(&a->global, "VE_BRIDGE");
	snprintf(a->bridge, sizeof(a->bridge), "%s", v && *v ? v : "vzbr0");
	v = vz_conf_get(&a->global, "VE_IP_PREFIX");
	a->ip_prefix = 24;
	if (v && *v) {
		if (vz_parse_ulong(v, 1, 32, &n) < 0)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: VE_IP_PREFIX must be 1..32", path);
		a->ip_prefix = (unsigned)n;
	}
	v = vz_conf_get(&a->global, "STOP_TIMEOUT");
	a->stop_timeout = 60;
	if (v && *v) {
		if (vz_parse_ulong(v, 0, 3600, &n) < 0)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: STOP_TIMEOUT must be 0..3600", path);
		a->stop_timeout = (unsigned)n;
	}
	v = vz_conf_get(&a->global, "USERNS_BASE");
	a->userns_base = VE_USERNS_BASE_DEFAULT;
	if (v && *v) {
		if (vz_parse_ulong(v, VE_USERNS_SIZE, UINT32_MAX - VE_USERNS_SIZE, &n) < 0)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: USERNS_BASE must be %u..%u", path,
						 VE_USERNS_SIZE, UINT32_MAX - VE_USERNS_SIZE);
		a->userns_base = (unsigned)n;
	}
	v = vz_conf_get(&a->global, "USERNS");
	if (v && *v && strcmp(v, "yes") && strcmp(v, "no"))
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: USERNS must be yes or no", path);
	v = vz_conf_get(&a->global, "CRIU");
	if (v && *v)
		snprintf(a->criu, sizeof(a->criu), "%s", v);
	else if (read_criu_path(a->criu, sizeof(a->criu)) < 0)
		snprintf(a->criu, sizeof(a->criu), "criu");
	v = vz_conf_get(&a->global, "CRIU_TIMEOUT");
	a->criu_timeout = VZ_CRIU_TIMEOUT_DEFAULT;
	if (v && *v) {
		if (vz_parse_ulong(v, 1, 86400, &n) < 0)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: CRIU_TIMEOUT must be 1..86400",
						 path);
		a->criu_timeout = (unsigned)n;
	}
	v = vz_conf_get(&a->global, "MIGRATE_PORT");
	a->mig_port = 7799;
	if (v && *v) {
		if (vz_parse_ulong(v, 1, 65535, &n) < 0)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: MIGRATE_PORT must be 1..65535",
						 path);
		a->mig_port = (unsigned)n;
	}
	v = vz_conf_get(&a->global, "MIGRATE_TIMEOUT");
	a->mig_timeout = 30;
	if (v && *v) {
		if (vz_parse_ulong(v, 1, 3600, &n) < 0)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: MIGRATE_TIMEOUT must be 1..3600",
						 path);
		a->mig_timeout = (unsigned)n;
	}
	v = vz_conf_get(&a->global, "HOST_NAME");
	if (v && *v)
		snprintf(a->host_name, sizeof(a->host_name), "%s", v);
	else
		gethostname(a->host_name, sizeof(a->host_name) - 1);
	/* This host's identity in the cluster: deploy/vz-certs makes these. */
	v = vz_conf_get(&a->global, "TLS_CA");
	snprintf(a->tls_ca, sizeof(a->tls_ca), "%s", v && *v ? v : vz_path(dir, sizeof(dir), "/etc/vz/tls/ca.crt"));
	v = vz_conf_get(&a->global, "TLS_CERT");
	snprintf(a->tls_cert, sizeof(a->tls_cert), "%s",
		 v && *v ? v : vz_path(dir, sizeof(dir), "/etc/vz/tls/host.crt"));
	v = vz_conf_get(&a->global, "TLS_KEY");
	snprintf(a->tls_key, sizeof(a->tls_key), "%s", v && *v ? v : vz_path(dir, sizeof(dir), "/etc/vz/tls/host.key"));
	ret =
	    vz_metrics_conf(&a->global, path, AGENT_METRICS_DEFAULT, a->metrics_listen, sizeof(a->metrics_listen), err);
	if (ret == 0)
		ret = agent_pool_conf(a, path, err);
	if (ret < 0)
		return ret;
	v = vz_conf_get(&a->global, "LOG_LEVEL");
	if (v && *v)
		vz_log_set_level(vz_log_level_from_string(v));
	return 0;
}
