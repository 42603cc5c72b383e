/* The guest's side of a VE: the files its init finds (/etc/hostname,
 * /etc/hosts, /etc/resolv.conf), the environment of its processes, and its
 * network as set up when it starts. Shared by the start (ve_start.c), the
 * options (ve_params.c) and the commands run inside (ve_exec.c). */
#define LOG_PREFIX "guest: "
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "util.h"
#include "ve_ops.h"

static char *const ve_env[] = {
	"container=vzcluster",
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"TERM=linux",
	NULL,
};

char *const *ve_default_env(void)
{
	return ve_env;
}

int ve_net_start(struct vz_agent *a, struct ve *ve, pid_t init, struct vz_err *err)
{
	const char *ips = vz_conf_get(&ve->conf, "IP_ADDRESS");
	const char *gw = vz_conf_get(&a->global, "VE_GATEWAY");
	struct vz_netif nif;
	const char *p;
	int ret;

	if (!ve_has_veth(ve))
		return 0;
	ret = ve_netif(ve, a, &nif, err);
	if (ret == 0 && vz_netif_fill_mac(&nif)) {
		char buf[256];

		/* The filter must know the MAC: one the VE keeps (saved). */
		vz_netif_format(&nif, buf, sizeof(buf));
		ret = vz_conf_set(&ve->conf, "NETIF", buf, err);
	}
	if (ret == 0)
		ret = ve_net_filter(a, ve, &nif, err);
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

int ve_net_filter(struct vz_agent *a, struct ve *ve, const struct vz_netif *nif, struct vz_err *err)
{
	if (a->netfilter_off[0])
		return 0;
	if (!ve_setting_yes(a, ve, "ANTISPOOF"))
		return vz_net_filter_del(ve->veid, err);
	/* A NETIF written without a MAC gets one at the VE's start; a VE
	 * restored from a start by an older agent has none recorded (its
	 * eth0 keeps the one the kernel chose). */
	if (!nif->mac[0])
		pr_warn("VE %u: NETIF has no MAC: its network filter checks its addresses only", ve->veid);
	return vz_net_filter_set(ve->veid, nif, vz_conf_get(&ve->conf, "IP_ADDRESS"), err);
}

void ve_net_filter_gone(struct vz_agent *a, const struct ve *ve)
{
	struct vz_err e = { 0 };

	if (!a->netfilter_off[0] && vz_net_filter_del(ve->veid, &e) < 0)
		pr_warn("VE %u: %s", ve->veid, e.msg);
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
