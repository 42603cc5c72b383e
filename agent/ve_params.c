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
#include "ve.h"

const char *ve_req_param(const vz_request *req, const char *name)
{
	const char *v = NULL;

	for (size_t i = 0; i < req->n_params; i++)
		if (!strcmp(req->params[i]->name, name))
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

static int plan_ips(struct vz_call *c, struct ve *ve, pid_t init, char *list, size_t len,
		    struct net_change *nc, struct vz_err *err)
{
	const vz_request *req = c->req;
	char live[4096] = "";

	/* A running VE may hold addresses added without --save. */
	if (init > 0) {
		struct vz_netif nif;
		const char *s = vz_conf_get(&ve->conf, "NETIF");

		if (s && vz_netif_parse(s, &nif, NULL) == 0)
			vz_net_ip_list(init, nif.ifname, live, sizeof(live), NULL);
	}

	for (size_t i = 0; i < req->n_params; i++) {
		const char *name = req->params[i]->name, *v = req->params[i]->value ? req->params[i]->value : "";
		char cidr[64], addr[64];
		unsigned owner;
		int ret;

		if (!strcmp(name, "ipadd")) {
			ret = vz_net_parse_ip(v, c->agent->ip_prefix, cidr, sizeof(cidr), err);
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
			ret = vz_net_parse_ip(v, c->agent->ip_prefix, cidr, sizeof(cidr), err);
			if (ret < 0) {
				err->exit_code = VZ_EXIT_BADVAL;
				return vz_error_wrap(err, "--ipdel");
			}
			if (!ip_list_has(list, v) && !ip_list_has(live, v))
				return vz_error_exit_msg(err, VZ_EXIT_BADVAL, ENOENT, "VE %u has no IP address %s", ve->veid, v);
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

static int run_inside(struct vz_call *c, struct ve *ve, pid_t init, struct vz_err *err)
{
	pid_t pid = ve_fork_inside(c->agent, ve->veid, init, apply_guest_files, &ve->conf, err);
	int status;

	if (pid < 0)
		return (int)pid;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return vz_error_msg(err, errno, "Wait for VE %u helper", ve->veid);
	return 0;
}

int ve_apply_params(struct vz_call *c, struct ve *ve, pid_t init, struct vz_err *err)
{
	const vz_request *req = c->req;
	const char *ips = vz_conf_get(&ve->conf, "IP_ADDRESS");
	char list[4096];
	struct net_change nc = { 0 };
	bool hostname_changed = false, ns_changed = false, net_changed, res_changed = false, disk_changed = false;
	_cleanup_free_ char *old_disk = NULL;
	_cleanup_conf_ struct vz_conf scratch = { 0 }, before = { 0 };
	unsigned ncpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	int ret;

	/* 1. Check everything. */
	for (size_t i = 0; i < req->n_params; i++) {
		const char *name = req->params[i]->name, *v = req->params[i]->value ? req->params[i]->value : "";
		bool known = false;

		if (!strcmp(name, "hostname")) {
			ret = check_hostname(v, err);
			known = true;
		} else if (!strcmp(name, "nameserver")) {
			ret = check_nameserver(v, err);
			known = true;
		} else if (!strcmp(name, "ipadd") || !strcmp(name, "ipdel") || !strcmp(name, "ostemplate")) {
			ret = 0;
			known = true;
		} else if (res_is_option(name)) {
			ret = res_set_option(&scratch, name, v, ncpus, c->agent->cg.mode, err);
			known = true;
		} else if (disk_is_option(name)) {
			/* Checked and stored in one go: nothing else reads it before
			 * every option has passed. */
			if (!disk_changed && vz_conf_get(&ve->conf, "DISKSPACE"))
				old_disk = strdup(vz_conf_get(&ve->conf, "DISKSPACE"));
			ret = disk_set_option(ve, name, v, err);
			disk_changed = true;
			known = true;
		} else {
			ret = 0;
			for (size_t k = 0; k < ARRAY_SIZE(simple_params); k++)
				if (!strcmp(name, simple_params[k].name)) {
					ret = simple_params[k].check(name, v, err);
					known = true;
				}
		}
		if (!known)
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Unknown option --%s", name);
		if (ret < 0)
			return ret;
	}
	snprintf(list, sizeof(list), "%s", ips ? ips : "");
	ret = plan_ips(c, ve, init, list, sizeof(list), &nc, err);
	if (ret < 0)
		return ret;

	/* 2. Store. */
	ret = vz_conf_copy(&before, &ve->conf, err);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < req->n_params; i++) {
		const char *name = req->params[i]->name, *v = req->params[i]->value ? req->params[i]->value : "";

		if (res_is_option(name)) {
			ret = res_set_option(&ve->conf, name, v, ncpus, c->agent->cg.mode, err);
			res_changed = true;
		} else if (!strcmp(name, "hostname")) {
			ret = vz_conf_set(&ve->conf, "HOSTNAME", v, err);
			hostname_changed = true;
		} else if (!strcmp(name, "nameserver")) {
			ret = vz_conf_set(&ve->conf, "NAMESERVER", v, err);
			ns_changed = true;
		} else {
			for (size_t k = 0; k < ARRAY_SIZE(simple_params); k++)
				if (!strcmp(name, simple_params[k].name))
					ret = vz_conf_set(&ve->conf, simple_params[k].key, v, err);
		}
		if (ret < 0)
			return ret;
	}
	net_changed = nc.nadd || nc.ndel;
	if (net_changed) {
		ret = vz_conf_set(&ve->conf, "IP_ADDRESS", list, err);
		if (ret < 0)
			return ret;
		if (*list) {
			struct vz_netif nif;

			ret = ve_netif(ve, c->agent, &nif, err);
			if (ret < 0)
				return ret;
		}
	}
	if (init <= 0 && !disk_changed)
		return 0;

	/* 3. Apply to the running VE. The disk and limits go first: the
	 * kernel may refuse them (a disk smaller than the VE's files, a memory
	 * limit below what it holds), and then the VE keeps what it had. */
	if (disk_changed && ve_is_mounted(ve)) {
		ret = disk_resize(ve, disk_conf_bytes(ve), err);
		if (ret < 0) {
			vz_conf_set(&ve->conf, "DISKSPACE", old_disk, NULL);
			return ret;
		}
	}
	if (init <= 0)
		return 0;
	if (res_changed) {
		ret = res_apply(&c->agent->cg, ve->veid, &ve->conf, err);
		if (ret < 0) {
			struct vz_err e2 = { 0 };

			if (res_apply(&c->agent->cg, ve->veid, &before, &e2) < 0)
				pr_err("VE %u: restoring limits: %s", ve->veid, e2.msg);
			if (disk_changed) {
				vz_conf_set(&ve->conf, "DISKSPACE", old_disk, NULL);
				if (disk_conf_bytes(ve) && disk_resize(ve, disk_conf_bytes(ve), &e2) < 0)
					pr_err("VE %u: restoring disk size: %s", ve->veid, e2.msg);
			}
			vz_conf_free(&ve->conf);
			ve->conf = before;
			before = (struct vz_conf){ 0 };
			return ret;
		}
	}
	if (net_changed) {
		struct vz_netif nif;

		ret = ve_netif(ve, c->agent, &nif, err);
		if (ret < 0)
			return ret;
		for (size_t i = 0; i < nc.ndel; i++) {
			char cidr[64];

			vz_net_parse_ip(nc.del[i], c->agent->ip_prefix, cidr, sizeof(cidr), NULL);
			vz_ctl_progress(c->conn, "Deleting IP address(es): %s", nc.del[i]);
			ret = vz_net_ip_del(init, nif.ifname, cidr, err);
			if (ret < 0)
				return ret;
		}
		if (nc.nadd) {
			/* The VE may have started without any interface. */
			if (!vz_net_link_exists(0, nif.host_ifname)) {
				ret = vz_net_bridge_ensure(nif.bridge, err);
				if (ret == 0)
					ret = vz_net_veth_setup(&nif, init, err);
				if (ret < 0)
					return ret;
			}
		}
		for (size_t i = 0; i < nc.nadd; i++) {
			vz_ctl_progress(c->conn, "Adding IP address(es): %s", nc.add[i]);
			ret = vz_net_ip_add(init, nif.ifname, nc.add[i], err);
			if (ret < 0)
				return ret;
		}
	}
	if (hostname_changed || ns_changed) {
		if (hostname_changed)
			vz_ctl_progress(c->conn, "Setting hostname: %s", vz_conf_get(&ve->conf, "HOSTNAME"));
		ret = run_inside(c, ve, init, err);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int ve_net_start(struct vz_agent *a, struct ve *ve, pid_t init, struct vz_err *err)
{
	const char *ips = vz_conf_get(&ve->conf, "IP_ADDRESS");
	const char *gw = vz_conf_get(&a->global, "VE_GATEWAY");
	struct vz_netif nif;
	const char *p;
	int ret;

	if (!vz_conf_get(&ve->conf, "NETIF") && !(ips && *ips))
		return 0;
	ret = ve_netif(ve, a, &nif, err);
	if (ret == 0)
		ret = vz_net_bridge_ensure(nif.bridge, err);
	if (ret == 0)
		ret = vz_net_veth_setup(&nif, init, err);
	if (ret < 0)
		return ret;
	for (p = ips ? ips : ""; *p;) {
		size_t n = strcspn(p, " ");
		char ip[128], cidr[64];

		snprintf(ip, sizeof(ip), "%.*s", (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
		if (!n)
			continue;
		ret = vz_net_parse_ip(ip, a->ip_prefix, cidr, sizeof(cidr), err);
		if (ret == 0)
			ret = vz_net_ip_add(init, nif.ifname, cidr, err);
		if (ret < 0)
			return ret;
	}
	if (gw && *gw && ips && *ips)
		return vz_net_route_default(init, nif.ifname, gw, err);
	return 0;
}

void ve_write_guest_files(const struct vz_conf *conf)
{
	const char *hn = vz_conf_get(conf, "HOSTNAME"), *ns = vz_conf_get(conf, "NAMESERVER");
	char buf[512];
	int ret;

	if (hn && *hn) {
		if (sethostname(hn, strlen(hn)) != 0)
			pr_perror("Set hostname %s", hn);
		snprintf(buf, sizeof(buf), "%s\n", hn);
		ret = vz_write_file("/etc/hostname", buf, strlen(buf), 0);
		if (ret < 0)
			pr_warn("Write /etc/hostname: %s", strerror(-ret));
		snprintf(buf, sizeof(buf), "127.0.0.1 localhost\n::1 localhost\n127.0.1.1 %s\n", hn);
		ret = vz_write_file("/etc/hosts", buf, strlen(buf), 0);
		if (ret < 0)
			pr_warn("Write /etc/hosts: %s", strerror(-ret));
	}
	if (ns && *ns) {
		snprintf(buf, sizeof(buf), "nameserver %s\n", ns);
		ret = vz_write_file("/etc/resolv.conf", buf, strlen(buf), 0);
		if (ret < 0)
			pr_warn("Write /etc/resolv.conf: %s", strerror(-ret));
	}
}
