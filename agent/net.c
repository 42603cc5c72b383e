/* VE networking with iproute2 by argv: the host's bridge, a veth pair per
 * VE (host end on the bridge, "eth0" in the VE's netns), addresses and a
 * default route inside, and OpenVZ's NETIF syntax. */
#define LOG_PREFIX "net: "
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "log.h"
#include "net.h"
#include "util.h"

/* Run `ip ...` in pid's network namespace (pid 0: ours). */
static int ip_in(pid_t pid, char *const argv[], char **out, struct vz_err *err)
{
	char path[64];
	int fd, pfd[2], status;
	pid_t child;

	if (pid <= 0) {
		int ret = vz_run(argv, out);

		if (ret < 0)
			return vz_error(err, -ret, "Run ip");
		return ret;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vz_error(err, errno, "Open %s", path);
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		close(fd);
		return vz_error(err, errno, "Create pipe");
	}
	child = fork();
	if (child == 0) {
		char *o = NULL;
		int ret;

		close(pfd[0]);
		if (setns(fd, CLONE_NEWNET) != 0)
			_exit(126);
		ret = vz_run(argv, &o);
		if (o && write(pfd[1], o, strlen(o)) < 0)
			_exit(126);
		_exit(ret < 0 ? 126 : ret);
	}
	close(fd);
	close(pfd[1]);
	if (child < 0) {
		close(pfd[0]);
		return vz_error(err, errno, "Fork");
	}
	{
		char buf[65536];
		size_t n = 0;
		ssize_t r;

		while ((r = read(pfd[0], buf + n, sizeof(buf) - 1 - n)) > 0)
			n += (size_t)r;
		buf[n] = '\0';
		close(pfd[0]);
		if (out)
			*out = strdup(buf);
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return vz_error(err, errno, "Wait");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ip_in, with a non-zero status turned into an error (exit code ecode). */
static int ip_checked(pid_t pid, char *const argv[], int ecode, struct vz_err *err)
{
	_cleanup_free_ char *out = NULL;
	char last[256], cmd[256] = "";
	int ret = ip_in(pid, argv, &out, err);

	if (ret == 0)
		return 0;
	if (ret > 0) {
		for (int i = 0; argv[i] && strlen(cmd) < 200; i++) {
			strcat(cmd, i ? " " : "");
			strncat(cmd, argv[i], sizeof(cmd) - strlen(cmd) - 1);
		}
		vz_error_msg(err, EIO, "%s: %s", cmd, vz_last_line(out ? out : "", last, sizeof(last)));
	}
	err->exit_code = ecode;
	return -err->errnum;
}

static bool valid_ifname(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 15)
		return false;
	for (; *s; s++)
		if (*s == '/' || *s == ':' || isspace((unsigned char)*s) || *s == ',' || *s == '=')
			return false;
	return true;
}

static bool valid_mac(const char *s)
{
	unsigned b[6];
	char tail;

	return strlen(s) == 17 &&
	       sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) == 6;
}

int vz_netif_parse(const char *s, struct vz_netif *nif, struct vz_err *err)
{
	char buf[512];

	memset(nif, 0, sizeof(*nif));
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '='), *v;
		struct {
			const char *key;
			char *dst;
			size_t len;
		} fields[] = {
			{ "ifname", nif->ifname, sizeof(nif->ifname) },
			{ "host_ifname", nif->host_ifname, sizeof(nif->host_ifname) },
			{ "mac", nif->mac, sizeof(nif->mac) },
			{ "host_mac", nif->host_mac, sizeof(nif->host_mac) },
			{ "bridge", nif->bridge, sizeof(nif->bridge) },
		};

		if (!eq)
			return vz_error_msg(err, EINVAL, "NETIF: '%s' is not key=value", kv);
		*eq = '\0';
		v = eq + 1;
		for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
			if (!strcmp(kv, fields[i].key)) {
				if (strlen(v) >= fields[i].len)
					return vz_error_msg(err, EINVAL, "NETIF: %s is too long", kv);
				strcpy(fields[i].dst, v);
			}
	}
	if (!valid_ifname(nif->ifname) || !valid_ifname(nif->host_ifname))
		return vz_error_msg(err, EINVAL, "NETIF needs valid ifname and host_ifname");
	if ((nif->mac[0] && !valid_mac(nif->mac)) || (nif->host_mac[0] && !valid_mac(nif->host_mac)))
		return vz_error_msg(err, EINVAL, "NETIF has a malformed MAC address");
	if (nif->bridge[0] && !valid_ifname(nif->bridge))
		return vz_error_msg(err, EINVAL, "NETIF has a malformed bridge name");
	return 0;
}

void vz_netif_format(const struct vz_netif *nif, char *buf, size_t len)
{
	snprintf(buf, len, "ifname=%s,mac=%s,host_ifname=%s,host_mac=%s,bridge=%s", nif->ifname, nif->mac,
		 nif->host_ifname, nif->host_mac, nif->bridge);
}

static void random_mac(char *buf)
{
	unsigned char b[6] = { 0 };

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)rand();
	b[0] = (unsigned char)((b[0] & 0xfe) | 0x02); /* unicast, locally administered */
	sprintf(buf, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

void vz_netif_new(struct vz_netif *nif, unsigned veid, const char *bridge)
{
	memset(nif, 0, sizeof(*nif));
	strcpy(nif->ifname, "eth0");
	if (snprintf(nif->host_ifname, sizeof(nif->host_ifname), "veth%u.0", veid) >= (int)sizeof(nif->host_ifname))
		snprintf(nif->host_ifname, sizeof(nif->host_ifname), "veth%x", veid);
	random_mac(nif->mac);
	random_mac(nif->host_mac);
	snprintf(nif->bridge, sizeof(nif->bridge), "%s", bridge);
}

bool vz_netif_fill_mac(struct vz_netif *nif)
{
	if (nif->mac[0])
		return false;
	random_mac(nif->mac);
	return true;
}

int vz_net_parse_ip(const char *s, unsigned default_prefix4, char *out, size_t len, struct vz_err *err)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	unsigned char bin[16];
	unsigned long prefix;
	int v6;

	if (!*s || (slash ? (size_t)(slash - s) : strlen(s)) >= sizeof(addr))
		return vz_error_msg(err, EINVAL, "Invalid IP address '%s'", s);
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash ? slash - s : (long)strlen(s)), s);
	if (inet_pton(AF_INET, addr, bin) == 1)
		v6 = 0;
	else if (inet_pton(AF_INET6, addr, bin) == 1)
		v6 = 1;
	else
		return vz_error_msg(err, EINVAL, "Invalid IP address '%s'", s);
	prefix = v6 ? 128 : default_prefix4;
	if (slash && vz_parse_ulong(slash + 1, 0, v6 ? 128 : 32, &prefix) < 0)
		return vz_error_msg(err, EINVAL, "Invalid prefix length in '%s'", s);
	snprintf(out, len, "%s/%lu", addr, prefix);
	return 0;
}

int vz_net_bridge_ensure(const char *bridge, struct vz_err *err)
{
	char *show[] = { "ip", "link", "show", (char *)bridge, NULL };
	char *add[] = { "ip", "link", "add", (char *)bridge, "type", "bridge", NULL };
	char *up[] = { "ip", "link", "set", (char *)bridge, "up", NULL };
	char path[64], mac[32] = "";
	_cleanup_free_ char *cur = NULL;
	int ret;

	if (ip_in(0, show, NULL, err) != 0) {
		ret = ip_checked(0, add, VZ_EXIT_VETH, err);
		if (ret < 0)
			return ret;
		pr_info("Created bridge %s", bridge);
	}
	/* A bridge takes the lowest MAC of its ports unless given one: a VE's
	 * veth arriving by migration would change the host's own address
	 * under its peers' ARP caches. Pin the one it has. */
	snprintf(path, sizeof(path), "/sys/class/net/%s/addr_assign_type", bridge);
	if (vz_read_file(path, &cur, NULL, 16) == 0 && cur[0] != '3') {
		char *set[] = { "ip", "link", "set", (char *)bridge, "address", mac, NULL };
		_cleanup_free_ char *addr = NULL;

		snprintf(path, sizeof(path), "/sys/class/net/%s/address", bridge);
		if (vz_read_file(path, &addr, NULL, 64) == 0) {
			snprintf(mac, sizeof(mac), "%.17s", addr);
			ip_checked(0, set, VZ_EXIT_VETH, err);
			vz_err_clear(err);
		}
	}
	return ip_checked(0, up, VZ_EXIT_VETH, err);
}

int vz_net_veth_del(const struct vz_netif *nif, struct vz_err *err)
{
	char *show[] = { "ip", "link", "show", (char *)nif->host_ifname, NULL };
	char *del[] = { "ip", "link", "del", (char *)nif->host_ifname, NULL };

	if (ip_in(0, show, NULL, err) != 0)
		return 0;
	return ip_checked(0, del, VZ_EXIT_VETH, err);
}

int vz_net_veth_setup(const struct vz_netif *nif, pid_t pid, struct vz_err *err)
{
	static unsigned seq;
	char tmp[16], pidbuf[16];
	int ret;

	snprintf(tmp, sizeof(tmp), "vzp%d_%u", (int)getpid() % 100000, seq++ % 100);
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	/* A host end left over by a VE whose namespace is still dying. */
	vz_net_veth_del(nif, err);
	{
		char *argv[] = { "ip",	 "link", "add", (char *)nif->host_ifname, "type", "veth", "peer",
				 "name", tmp,	 NULL };

		ret = ip_checked(0, argv, VZ_EXIT_VETH, err);
		if (ret < 0)
			return ret;
	}
	char *host_steps[][8] = {
		{ "ip", "link", "set", (char *)nif->host_ifname, "address", (char *)nif->host_mac, NULL },
		{ "ip", "link", "set", (char *)nif->host_ifname, "master", (char *)nif->bridge, NULL },
		{ "ip", "link", "set", (char *)nif->host_ifname, "up", NULL },
		{ "ip", "link", "set", tmp, "netns", pidbuf, NULL },
	};
	char *ve_steps[][8] = {
		{ "ip", "link", "set", tmp, "name", (char *)nif->ifname, NULL },
		{ "ip", "link", "set", (char *)nif->ifname, "address", (char *)nif->mac, NULL },
		{ "ip", "link", "set", "lo", "up", NULL },
		{ "ip", "link", "set", (char *)nif->ifname, "up", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(host_steps); i++) {
		if (i == 0 && !nif->host_mac[0])
			continue;
		ret = ip_checked(0, host_steps[i], VZ_EXIT_VETH, err);
		if (ret < 0)
			goto on_error;
	}
	for (size_t i = 0; i < ARRAY_SIZE(ve_steps); i++) {
		if (i == 1 && !nif->mac[0])
			continue;
		ret = ip_checked(pid, ve_steps[i], VZ_EXIT_VETH, err);
		if (ret < 0)
			goto on_error;
	}
	pr_info("veth %s on %s for pid %d", nif->host_ifname, nif->bridge, (int)pid);
	return 0;
on_error : {
	struct vz_err e2 = { 0 };

	vz_net_veth_del(nif, &e2);
}
	return vz_error_wrap(err, "Set up veth %s", nif->host_ifname);
}

int vz_net_ip_add(pid_t pid, const char *ifname, const char *cidr, struct vz_err *err)
{
	char *show[] = { "ip", "-o", "addr", "show", "dev", (char *)ifname, NULL };
	char *add[] = { "ip", "addr", "add", (char *)cidr, "dev", (char *)ifname, NULL };
	_cleanup_free_ char *out = NULL;
	char needle[80];

	snprintf(needle, sizeof(needle), " %s ", cidr);
	if (ip_in(pid, show, &out, err) == 0 && out && strstr(out, needle))
		return 0;
	return ip_checked(pid, add, VZ_EXIT_IPADD, err);
}

int vz_net_ip_del(pid_t pid, const char *ifname, const char *cidr, struct vz_err *err)
{
	char *del[] = { "ip", "addr", "del", (char *)cidr, "dev", (char *)ifname, NULL };

	return ip_checked(pid, del, VZ_EXIT_IPADD, err);
}

int vz_net_route_default(pid_t pid, const char *ifname, const char *gw, struct vz_err *err)
{
	char *argv[] = { "ip", "route", "replace", "default", "via", (char *)gw, "dev", (char *)ifname, NULL };

	if (!gw || !*gw)
		return 0;
	return ip_checked(pid, argv, VZ_EXIT_IPADD, err);
}

bool vz_net_link_exists(pid_t pid, const char *ifname)
{
	char *show[] = { "ip", "link", "show", (char *)ifname, NULL };

	return ip_in(pid, show, NULL, NULL) == 0;
}

int vz_net_ip_list(pid_t pid, const char *ifname, char *buf, size_t len, struct vz_err *err)
{
	char *show[] = { "ip", "-o", "addr", "show", "dev", (char *)ifname, "scope", "global", NULL };
	_cleanup_free_ char *out = NULL;
	int ret = ip_in(pid, show, &out, err);

	buf[0] = '\0';
	if (ret != 0)
		return ret < 0 ? ret : vz_error_msg(err, EIO, "List addresses of %s", ifname);
	for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char fam[16], addr[64];

		/* "3: eth0    inet 198.18.0.1/24 scope global eth0 ..." */
		if (sscanf(line, "%*s %*s %15s %63s", fam, addr) != 2 || strncmp(fam, "inet", 4))
			continue;
		if (*buf)
			strncat(buf, " ", len - strlen(buf) - 1);
		strncat(buf, addr, len - strlen(buf) - 1);
	}
	return 0;
}

int vz_net_host_mac(const struct vz_netif *nif, struct vz_err *err)
{
	char *argv[] = { "ip", "link", "set", "dev", (char *)nif->host_ifname, "address", (char *)nif->host_mac, NULL };

	if (!nif->host_mac[0])
		return 0;
	return vz_run_checked(argv, err);
}

int vz_net_bridge_port(const char *bridge, const char *ifname, bool attach, struct vz_err *err)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	/* The bridge ioctls act at once (no link-state change to propagate). */
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
	ifr.ifr_ifindex = (int)if_nametoindex(ifname);
	if (fd < 0 || !ifr.ifr_ifindex || ioctl(fd, attach ? SIOCBRADDIF : SIOCBRDELIF, &ifr) != 0)
		ret = vz_error(err, errno ? errno : ENODEV, "%s %s %s bridge %s", attach ? "Attach" : "Detach", ifname,
			       attach ? "to" : "from", bridge);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* In the VE's namespace: one gratuitous ARP per IPv4 address of ifname. */
static int garp_here(const char *ifname)
{
	struct ifaddrs *ifa = NULL;
	struct ifreq ifr = { 0 };
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_halen = 6 };
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP)), sent = 0;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr) != 0 || getifaddrs(&ifa) != 0)
		return 1;
	ll.sll_ifindex = (int)if_nametoindex(ifname);
	memset(ll.sll_addr, 0xff, 6);
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		uint8_t f[42];
		const uint8_t *mac = (const uint8_t *)ifr.ifr_hwaddr.sa_data, *ip;

		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || strcmp(i->ifa_name, ifname))
			continue;
		ip = (const uint8_t *)&((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		memset(f, 0xff, 6); /* to everyone */
		memcpy(f + 6, mac, 6);
		f[12] = 0x08, f[13] = 0x06; /* ARP */
		f[14] = 0, f[15] = 1, f[16] = 0x08, f[17] = 0, f[18] = 6, f[19] = 4;
		f[20] = 0, f[21] = 1; /* request: who has my IP */
		memcpy(f + 22, mac, 6);
		memcpy(f + 28, ip, 4);
		memset(f + 32, 0, 6);
		memcpy(f + 38, ip, 4);
		sent += sendto(fd, f, sizeof(f), 0, (struct sockaddr *)&ll, sizeof(ll)) == (ssize_t)sizeof(f);
	}
	freeifaddrs(ifa);
	close(fd);
	return sent ? 0 : 1;
}

int vz_net_garp(pid_t pid, const char *ifname, struct vz_err *err)
{
	char path[64];
	int fd, status;
	pid_t child;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return vz_error(err, errno, "Open %s", path);
	child = fork();
	if (child == 0) {
		if (setns(fd, CLONE_NEWNET) != 0)
			_exit(2);
		/* Neighbours it failed to reach while held off the network
		 * would be retried only on the next 1 s timer: forget them, so
		 * that its next packet asks at once. */
		{
			pid_t f = fork();

			if (f == 0) {
				int dn = open("/dev/null", O_WRONLY);

				dup2(dn, 1);
				dup2(dn, 2);
				execlp("ip", "ip", "neigh", "flush", "dev", ifname, "nud", "incomplete", "nud",
				       "failed", (char *)NULL);
				_exit(127);
			}
			if (f > 0)
				waitpid(f, NULL, 0);
		}
		_exit(garp_here(ifname));
	}
	close(fd);
	if (child < 0)
		return vz_error(err, errno, "Fork");
	waitpid(child, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return vz_error_msg(err, EIO, "Announce the addresses of %s: no gratuitous ARP sent", ifname);
	return 0;
}
