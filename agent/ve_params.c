/* OpenVZ options of `vzctl create` and `vzctl set`: each is checked before
 * anything changes, then stored in the config and, for a running VE,
 * applied at once. Resource options join the table in their own file. */
#define LOG_PREFIX "params: "
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "disk.h"
#include "log.h"
#include "net.h"
#include "paths.h"
#include "resources.h"
#include "util.h"
#include "ve_ops.h"

int ve_opts_from_req(const vz_request *req, struct ve_opts *opts, struct vz_err *err)
{
	opts->n = 0;
	opts->v = calloc(req->n_params ? req->n_params : 1, sizeof(*opts->v));
	if (!opts->v)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (size_t i = 0; i < req->n_params; i++) {
		opts->v[i].name = req->params[i]->name ? req->params[i]->name : "";
		opts->v[i].value = req->params[i]->value ? req->params[i]->value : "";
	}
	opts->n = req->n_params;
	return 0;
}

void ve_opts_free(struct ve_opts *opts)
{
	if (!opts)
		return;
	free(opts->v);
	opts->v = NULL;
	opts->n = 0;
}

const char *ve_opt_get(const struct ve_opts *opts, const char *name)
{
	const char *v = NULL;

	for (size_t i = 0; i < opts->n; i++)
		if (!strcmp(opts->v[i].name, name))
			v = opts->v[i].value;
	return v;
}

const char *ve_req_param(const vz_request *req, const char *name)
{
	const char *v = NULL;

	for (size_t i = 0; i < req->n_params; i++)
		if (req->params[i]->name && !strcmp(req->params[i]->name, name))
			v = req->params[i]->value ? req->params[i]->value : "";
	return v;
}

static int check_hostname(const char *v, struct vz_err *err)
{
	size_t len = strlen(v);

	if (len == 0 || len > 64)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Invalid hostname '%s': 1 to 64 characters", v);
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL,
						 "Invalid hostname '%s': letters, digits, '-', '.' only", v);
	return 0;
}

static int check_yesno(const char *name, const char *v, struct vz_err *err)
{
	if (strcmp(v, "yes") && strcmp(v, "no"))
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Invalid value '%s' for --%s: yes or no", v,
					 name);
	return 0;
}

/* An anti-affinity label: 1 to 63 letters, digits, '.', '_' or '-', or
 * "" to clear it (the planner keeps VEs of one label on different hosts). */
static int check_label(const char *name, const char *v, struct vz_err *err)
{
	size_t n = strlen(v);

	if (n >= 64 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL,
					 "Invalid value '%s' for --%s: up to 63 letters, digits, '.', '_' or '-'", v,
					 name);
	return 0;
}

/* The address part of "addr[/N]". */
static void ip_addr_part(const char *ip, char *buf, size_t len)
{
	snprintf(buf, len, "%s", ip);
	char *slash = strchr(buf, '/');

	if (slash)
		*slash = '\0';
}

static bool ip_list_has(const char *list, const char *ip)
{
	char want[64], tok[128], addr[128];
	const char *p = list;

	ip_addr_part(ip, want, sizeof(want));
	while (p && *p) {
		size_t n = strcspn(p, " ");

		snprintf(tok, sizeof(tok), "%.*s", (int)n, p);
		ip_addr_part(tok, addr, sizeof(addr));
		if (n && !strcmp(addr, want))
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

/* Is ip held by another VE on this host? */
static unsigned ip_owner(unsigned self, const char *ip)
{
	char dir[PATH_MAX];
	_cleanup_closedir_ DIR *d = opendir(vz_path(dir, sizeof(dir), VZ_CONF_DIR));
	struct dirent *de;

	while (d && (de = readdir(d))) {
		struct vz_conf conf = { 0 };
		char path[PATH_MAX];
		unsigned veid;
		char *dot = strstr(de->d_name, ".conf");

		if (!dot || strcmp(dot, ".conf") || sscanf(de->d_name, "%u.conf", &veid) != 1 || veid == self)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (vz_conf_load(&conf, path, NULL) == 0) {
			const char *list = vz_conf_get(&conf, "IP_ADDRESS");

			if (list && ip_list_has(list, ip)) {
				vz_conf_free(&conf);
				return veid;
			}
		}
		vz_conf_free(&conf);
	}
	return 0;
}

/* Remove ip (by address) from a space-separated list, in place. */
static void ip_list_del(char *list, const char *ip)
{
	char out[4096] = "", want[64], tok[128];
	const char *p = list;

	ip_addr_part(ip, want, sizeof(want));
	while (*p) {
		size_t n = strcspn(p, " ");
		char addr[128];

		snprintf(tok, sizeof(tok), "%.*s", (int)n, p);
		ip_addr_part(tok, addr, sizeof(addr));
		if (n && strcmp(addr, want)) {
			if (*out)
				strncat(out, " ", sizeof(out) - strlen(out) - 1);
			strncat(out, tok, sizeof(out) - strlen(out) - 1);
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	strcpy(list, out);
}

/* The plan of changes for the running VE, built while checking. */
struct net_change {
	char add[16][64];
	size_t nadd;
	char del[16][64];
	size_t ndel;
};

static int plan_ips(struct vz_agent *a, struct ve *ve, pid_t init, const struct ve_opts *opts, char *list, size_t len,
		    struct net_change *nc, struct vz_err *err)
{
	char live[4096] = "";

	/* A running VE may hold addresses added without --save. */
	if (init > 0) {
		struct vz_netif nif;
		const char *s = vz_conf_get(&ve->conf, "NETIF");

		if (s && vz_netif_parse(s, &nif, NULL) == 0)
			vz_net_ip_list(init, nif.ifname, live, sizeof(live), NULL);
	}

	for (size_t i = 0; i < opts->n; i++) {
		const char *name = opts->v[i].name, *v = opts->v[i].value;
		char cidr[64], addr[64];
		unsigned owner;
		int ret;

		if (!strcmp(name, "ipadd")) {
			ret = vz_net_parse_ip(v, a->ip_prefix, cidr, sizeof(cidr), err);
			if (ret < 0) {
				err->exit_code = VZ_EXIT_BADVAL;
				return vz_error_wrap(err, "--ipadd");
			}
			owner = ip_owner(ve->veid, v);
			if (owner)
				return vz_error_exit_msg(err, VZ_EXIT_IPINUSE, EADDRINUSE,
							 "IP address %s is already used by VE %u", v, owner);
			if (ip_list_has(list, v) && (init <= 0 || ip_list_has(live, v)))
				continue;
			if (nc->nadd == ARRAY_SIZE(nc->add) || strlen(list) + strlen(v) + 2 > len)
				return vz_error_exit_msg(err, VZ_EXIT_BADVAL, E2BIG, "Too many IP addresses");
			ip_addr_part(v, addr, sizeof(addr));
			/* Keep the user's form: a bare address, or one with a prefix. */
			if (!ip_list_has(list, v)) {
				if (*list)
					strcat(list, " ");
				strcat(list, strchr(v, '/') ? cidr : addr);
			}
			snprintf(nc->add[nc->nadd++], sizeof(nc->add[0]), "%s", cidr);
		} else if (!strcmp(name, "ipdel")) {
			if (!strcmp(v, "all")) {
				char *p = list;

				while (*p && nc->ndel < ARRAY_SIZE(nc->del)) {
					size_t n = strcspn(p, " ");

					snprintf(nc->del[nc->ndel++], sizeof(nc->del[0]), "%.*s", (int)n, p);
					p += n;
					while (*p == ' ')
						p++;
				}
				list[0] = '\0';
				continue;
			}
			ret = vz_net_parse_ip(v, a->ip_prefix, cidr, sizeof(cidr), err);
			if (ret < 0) {
				err->exit_code = VZ_EXIT_BADVAL;
				return vz_error_wrap(err, "--ipdel");
			}
			if (!ip_list_has(list, v) && !ip_list_has(live, v))
				return vz_error_exit_msg(err, VZ_EXIT_BADVAL, ENOENT, "VE %u has no IP address %s",
							 ve->veid, v);
			ip_list_del(list, v);
			if (init > 0 && !ip_list_has(live, v))
				continue; /* saved but not on the VE: nothing to remove there */
			snprintf(nc->del[nc->ndel++], sizeof(nc->del[0]), "%s", cidr);
		}
	}
	return 0;
}

/* Options that map to one config key, with their checks. */
static const struct {
	const char *name, *key;
	int (*check)(const char *name, const char *v, struct vz_err *err);
} simple_params[] = {
	{ "onboot", "ONBOOT", check_yesno },
	{ "disabled", "DISABLED", check_yesno },
	/* The network filter: applied at once to a running VE. */
	{ "antispoof", "ANTISPOOF", check_yesno },
	/* Read at the VE's next start (or restore from a dump made then). */
	{ "userns", "USERNS", check_yesno },
	/* Read by the pool's rebalancing planner through the heartbeat. */
	{ "pin", "PIN", check_yesno },
	{ "anti-affinity", "ANTI_AFFINITY", check_label },
};

static int check_nameserver(const char *v, struct vz_err *err)
{
	char cidr[64];

	if (vz_net_parse_ip(v, 32, cidr, sizeof(cidr), err) < 0 || strchr(v, '/')) {
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Invalid nameserver '%s'", v);
	}
	return 0;
}

static int apply_guest_files(void *arg)
{
	ve_write_guest_files(arg);
	return 0;
}

static int run_inside(struct vz_agent *a, struct ve *ve, pid_t init, struct vz_err *err)
{
	pid_t pid = ve_fork_inside(a, ve->veid, init, apply_guest_files, &ve->conf, err);
	int status;

	if (pid < 0)
		return (int)pid;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return vz_error_msg(err, errno, "Wait for VE %u helper", ve->veid);
	return 0;
}

/* One ve_apply_params: what the options ask for, and what changed. */
struct params_run {
	struct vz_agent *a;
	struct ve *ve;
	pid_t init;
	const struct ve_opts *opts;
	const struct vz_progress *p;
	char list[4096]; /* IP_ADDRESS as it will be */
	struct net_change nc;
	bool hostname_changed, ns_changed, net_changed, res_changed, disk_changed, filter_changed;
	char *old_disk;	       /* DISKSPACE before, to put back on failure */
	struct vz_conf before; /* the config before, to put back on failure */
};

/* Check one option; disk options are stored at once (nothing reads them
 * before every option has passed). */
static int check_one(struct params_run *r, const char *name, const char *v, struct vz_conf *scratch, struct vz_err *err)
{
	unsigned ncpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);

	if (!strcmp(name, "hostname"))
		return check_hostname(v, err);
	if (!strcmp(name, "nameserver"))
		return check_nameserver(v, err);
	if (!strcmp(name, "ipadd") || !strcmp(name, "ipdel") || !strcmp(name, "ostemplate"))
		return 0;
	if (res_is_option(name))
		return res_set_option(scratch, name, v, ncpus, r->a->cg.mode, err);
	if (disk_is_option(name)) {
		const char *old = vz_conf_get(&r->ve->conf, "DISKSPACE");

		if (!r->disk_changed && old) {
			r->old_disk = strdup(old);
			if (!r->old_disk)
				return vz_error_msg(err, ENOMEM, "Out of memory");
		}
		r->disk_changed = true;
		return disk_set_option(r->ve, name, v, err);
	}
	for (size_t k = 0; k < ARRAY_SIZE(simple_params); k++)
		if (!strcmp(name, simple_params[k].name))
			return simple_params[k].check(name, v, err);
	return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Unknown option --%s", name);
}

/* 1. Check everything, and plan the address changes. */
static int params_check(struct params_run *r, struct vz_err *err)
{
	_cleanup_conf_ struct vz_conf scratch = { 0 };
	const char *ips = vz_conf_get(&r->ve->conf, "IP_ADDRESS");

	for (size_t i = 0; i < r->opts->n; i++) {
		int ret = check_one(r, r->opts->v[i].name, r->opts->v[i].value, &scratch, err);

		if (ret < 0)
			return ret;
	}
	snprintf(r->list, sizeof(r->list), "%s", ips ? ips : "");
	return plan_ips(r->a, r->ve, r->init, r->opts, r->list, sizeof(r->list), &r->nc, err);
}

/* 2. Store in ve->conf (unsaved). */
static int params_store(struct params_run *r, struct vz_err *err)
{
	struct vz_conf *conf = &r->ve->conf;
	unsigned ncpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	int ret = vz_conf_copy(&r->before, conf, err);

	for (size_t i = 0; ret == 0 && i < r->opts->n; i++) {
		const char *name = r->opts->v[i].name, *v = r->opts->v[i].value;

		if (res_is_option(name)) {
			ret = res_set_option(conf, name, v, ncpus, r->a->cg.mode, err);
			r->res_changed = true;
		} else if (!strcmp(name, "hostname")) {
			ret = vz_conf_set(conf, "HOSTNAME", v, err);
			r->hostname_changed = true;
		} else if (!strcmp(name, "nameserver")) {
			ret = vz_conf_set(conf, "NAMESERVER", v, err);
			r->ns_changed = true;
		} else {
			r->filter_changed |= !strcmp(name, "antispoof");
			for (size_t k = 0; k < ARRAY_SIZE(simple_params); k++)
				if (!strcmp(name, simple_params[k].name))
					ret = vz_conf_set(conf, simple_params[k].key, v, err);
		}
	}
	if (ret < 0)
		return ret;
	r->net_changed = r->nc.nadd || r->nc.ndel;
	if (!r->net_changed)
		return 0;
	ret = vz_conf_set(conf, "IP_ADDRESS", r->list, err);
	if (ret == 0 && *r->list) {
		struct vz_netif nif;

		ret = ve_netif(r->ve, r->a, &nif, err);
	}
	return ret;
}

/* New limits the kernel refused: the VE keeps its old limits, disk and
 * config. */
static void params_undo_limits(struct params_run *r)
{
	struct ve *ve = r->ve;
	struct vz_err e2 = { 0 };

	if (res_apply(&r->a->cg, ve->veid, &r->before, &e2) < 0)
		pr_err("VE %u: restoring limits: %s", ve->veid, e2.msg);
	if (r->disk_changed) {
		vz_conf_set(&ve->conf, "DISKSPACE", r->old_disk, NULL);
		if (disk_conf_bytes(ve) && disk_resize(ve, disk_conf_bytes(ve), &e2) < 0)
			pr_err("VE %u: restoring disk size: %s", ve->veid, e2.msg);
	}
	vz_conf_free(&ve->conf);
	ve->conf = r->before;
	r->before = (struct vz_conf){ 0 };
}

/* The running VE's network filter, for its addresses as they will be: made
 * before they change, so that an interface made now for the first address
 * reaches the bridge filtered, and an address going away is refused at
 * once. */
static int params_apply_filter(struct params_run *r, struct vz_err *err)
{
	struct vz_netif nif;
	int ret;

	if (!ve_has_veth(r->ve))
		return 0;
	ret = ve_netif(r->ve, r->a, &nif, err);
	return ret < 0 ? ret : ve_net_filter(r->a, r->ve, &nif, err);
}

/* The address changes on the running VE's interface. */
static int params_apply_net(struct params_run *r, struct vz_err *err)
{
	struct net_change *nc = &r->nc;
	struct vz_netif nif;
	int ret = ve_netif(r->ve, r->a, &nif, err);

	for (size_t i = 0; ret == 0 && i < nc->ndel; i++) {
		char cidr[64];

		vz_net_parse_ip(nc->del[i], r->a->ip_prefix, cidr, sizeof(cidr), NULL);
		vz_say(r->p, "Deleting IP address(es): %s", nc->del[i]);
		ret = vz_net_ip_del(r->init, nif.ifname, cidr, err);
	}
	if (ret < 0)
		return ret;
	/* The VE may have started without any interface. */
	if (nc->nadd && !vz_net_link_exists(0, nif.host_ifname)) {
		ret = vz_net_bridge_ensure(nif.bridge, err);
		if (ret == 0)
			ret = vz_net_veth_setup(&nif, r->init, err);
	}
	for (size_t i = 0; ret == 0 && i < nc->nadd; i++) {
		vz_say(r->p, "Adding IP address(es): %s", nc->add[i]);
		ret = vz_net_ip_add(r->init, nif.ifname, nc->add[i], err);
	}
	return ret;
}

/* 3. Apply to the mounted disk and the running VE. The disk and limits go
 * first: the kernel may refuse them (a disk smaller than the VE's files, a
 * memory limit below what it holds), and then the VE keeps what it had. */
static int params_apply(struct params_run *r, struct vz_err *err)
{
	struct ve *ve = r->ve;
	int ret;

	if (r->disk_changed && ve_is_mounted(ve)) {
		ret = disk_resize(ve, disk_conf_bytes(ve), err);
		if (ret < 0) {
			vz_conf_set(&ve->conf, "DISKSPACE", r->old_disk, NULL);
			return ret;
		}
	}
	if (r->init <= 0)
		return 0;
	if (r->res_changed) {
		ret = res_apply(&r->a->cg, ve->veid, &ve->conf, err);
		if (ret < 0) {
			params_undo_limits(r);
			return ret;
		}
	}
	if (r->net_changed || r->filter_changed) {
		ret = params_apply_filter(r, err);
		if (ret < 0)
			return ret;
	}
	if (r->net_changed) {
		ret = params_apply_net(r, err);
		if (ret < 0)
			return ret;
	}
	if (!r->hostname_changed && !r->ns_changed)
		return 0;
	if (r->hostname_changed)
		vz_say(r->p, "Setting hostname: %s", vz_conf_get(&ve->conf, "HOSTNAME"));
	return run_inside(r->a, ve, r->init, err);
}

int ve_apply_params(struct vz_agent *a, struct ve *ve, pid_t init, const struct ve_opts *opts,
		    const struct vz_progress *p, struct vz_err *err)
{
	struct params_run r = { .a = a, .ve = ve, .init = init, .opts = opts, .p = p };
	int ret = params_check(&r, err);

	if (ret == 0)
		ret = params_store(&r, err);
	if (ret == 0 && (init > 0 || r.disk_changed))
		ret = params_apply(&r, err);
	free(r.old_disk);
	vz_conf_free(&r.before);
	return ret;
}
