/* What a VE may send onto the host's bridge: an nftables table of the
 * bridge family per VE ("vz_ve_VEID"), whose chains see every frame that
 * enters the bridge from the VE's host-side veth and drop those that claim
 * to come from another host: an Ethernet source other than the VE's MAC,
 * ARP or IP with a sender or source address not the VE's, IPv6 router
 * advertisements and redirects, neighbour advertisements for another's
 * address, and every frame that is neither IPv4, ARP nor IPv6 (VLAN tags
 * among them). OpenVZ's venet gave the same by routing only a VE's own
 * addresses; this is what Incus does for security.mac_filtering and
 * ipv4/ipv6_filtering on a bridged NIC.
 *
 * The rules run at the bridge's prerouting hook, before the bridge learns
 * the frame's source MAC (a frame dropped later would still have moved a
 * neighbour's MAC onto the VE's port), and at its input hook, which the
 * link-local frames (01:80:c2:00:00:0X) reach without passing prerouting
 * and, again, before learning. The table lives in the host's network
 * namespace, where the bridge is: CRIU neither dumps it nor meets it (its
 * network lock is a table of the inet family in the VE's namespace), and
 * the agent makes it again after a restore. The nft command does the
 * work, from a script in a memfd, as the rest of the agent runs ip; each
 * script replaces the table in one transaction. */
#define LOG_PREFIX "net: "
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "net.h"
#include "util.h"

/* The allowed addresses of one family, as nft reads them in a set, and
 * (IPv6) the same as 128-bit numbers for a raw match on a neighbour
 * advertisement's target. */
struct addrs {
	char set[8192], raw[8192];
	size_t n;
};

static int addrs_add(struct addrs *s, const char *text, const unsigned char *bin, size_t blen)
{
	size_t l = strlen(s->set), r = strlen(s->raw);

	if (l + strlen(text) + 3 > sizeof(s->set) || r + 2 * blen + 5 > sizeof(s->raw))
		return -E2BIG;
	snprintf(s->set + l, sizeof(s->set) - l, "%s%s", s->n ? ", " : "", text);
	r += (size_t)snprintf(s->raw + r, sizeof(s->raw) - r, "%s0x", s->n ? ", " : "");
	for (size_t i = 0; i < blen; i++)
		r += (size_t)snprintf(s->raw + r, sizeof(s->raw) - r, "%02x", bin[i]);
	s->n++;
	return 0;
}

/* fe80::/64 with the modified EUI-64 of mac, the link-local address the
 * kernel gives eth0 (addr_gen_mode eui64, a new namespace's default). */
static void link_local(const unsigned char mac[6], unsigned char ll[16])
{
	memset(ll, 0, 16);
	ll[0] = 0xfe;
	ll[1] = 0x80;
	ll[8] = mac[0] ^ 0x02;
	ll[9] = mac[1];
	ll[10] = mac[2];
	ll[11] = 0xff;
	ll[12] = 0xfe;
	ll[13] = mac[3];
	ll[14] = mac[4];
	ll[15] = mac[5];
}

/* Sort IP_ADDRESS's "addr[/N]" words into v4 and v6. */
static int split_ips(const char *ips, struct addrs *v4, struct addrs *v6, struct vz_err *err)
{
	const char *p = ips ? ips : "";

	for (p += strspn(p, " "); *p; p += strspn(p, " ")) {
		size_t n = strcspn(p, " "), a = strcspn(p, " /");
		unsigned char bin[16];
		char addr[64], text[INET6_ADDRSTRLEN];
		int ret = -EINVAL;

		snprintf(addr, sizeof(addr), "%.*s", (int)(a < sizeof(addr) ? a : 0), p);
		if (inet_pton(AF_INET, addr, bin) == 1)
			ret = addrs_add(v4, addr, bin, 4);
		else if (inet_pton(AF_INET6, addr, bin) == 1 && inet_ntop(AF_INET6, bin, text, sizeof(text)))
			ret = addrs_add(v6, text, bin, 16);
		if (ret == -E2BIG)
			return vz_error_msg(err, E2BIG, "Too many IP addresses for the network filter");
		if (ret < 0)
			return vz_error_msg(err, EINVAL, "Invalid IP address '%.*s'", (int)n, p);
		p += n;
	}
	return 0;
}

/* The rules of chain "ve" into f. */
static void ve_rules(FILE *f, const char *mac, const unsigned char *macb, const struct addrs *v4,
		     const struct addrs *v6)
{
	if (mac) {
		fprintf(f, "\t\tether saddr != %s counter name spoof_mac drop\n", mac);
		fprintf(f, "\t\tether type arp arp saddr ether != %s counter name spoof_arp drop\n", mac);
	}
	fprintf(f, "\t\tether type != { ip, arp, ip6 } counter name spoof_other drop\n");
	if (v4->n) {
		fprintf(f, "\t\tether type arp arp saddr ip != { %s } counter name spoof_arp drop\n", v4->set);
		fprintf(f, "\t\tether type ip ip saddr != { %s } counter name spoof_ipv4 drop\n", v4->set);
	} else {
		fprintf(f, "\t\tether type arp counter name spoof_arp drop\n");
		fprintf(f, "\t\tether type ip counter name spoof_ipv4 drop\n");
	}
	/* A VE is no router, and announces only its own addresses (the
	 * target and, first and only option, target link-layer address). */
	fprintf(f, "\t\ticmpv6 type { nd-router-advert, nd-redirect } counter name spoof_ipv6 drop\n");
	if (v6->n)
		fprintf(f, "\t\ticmpv6 type nd-neighbor-advert @th,64,128 != { %s } counter name spoof_ipv6 drop\n",
			v6->raw);
	if (macb)
		fprintf(f,
			"\t\ticmpv6 type nd-neighbor-advert @th,192,16 0x0201 @th,208,48 != 0x%02x%02x%02x%02x%02x%02x "
			"counter name spoof_ipv6 drop\n",
			macb[0], macb[1], macb[2], macb[3], macb[4], macb[5]);
	/* Duplicate address detection and MLD, before the VE has an address. */
	fprintf(f, "\t\tip6 saddr :: ip6 daddr ff02::/16 meta l4proto ipv6-icmp accept\n");
	if (v6->n)
		fprintf(f, "\t\tether type ip6 ip6 saddr != { %s } counter name spoof_ipv6 drop\n", v6->set);
	else
		fprintf(f, "\t\tether type ip6 ip6 saddr != fe80::/10 counter name spoof_ipv6 drop\n");
}

int vz_net_filter_script(unsigned veid, const struct vz_netif *nif, const char *ips, char **out, struct vz_err *err)
{
	static const char *const counters[] = { "spoof_mac", "spoof_arp", "spoof_ipv4", "spoof_ipv6", "spoof_other" };
	static const char *const hooks[] = { "prerouting", "input" };
	struct addrs v4 = { 0 }, v6 = { 0 };
	unsigned char macb[6];
	bool have_mac = false;
	size_t len = 0;
	FILE *f;
	int ret;

	*out = NULL;
	if (nif->mac[0]) {
		unsigned b[6];

		if (sscanf(nif->mac, "%2x:%2x:%2x:%2x:%2x:%2x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
			return vz_error_msg(err, EINVAL, "NETIF has a malformed MAC address");
		for (int i = 0; i < 6; i++)
			macb[i] = (unsigned char)b[i];
		have_mac = true;
	}
	if (have_mac) {
		unsigned char ll[16];
		char text[INET6_ADDRSTRLEN];

		link_local(macb, ll);
		inet_ntop(AF_INET6, ll, text, sizeof(text));
		addrs_add(&v6, text, ll, 16);
	}
	ret = split_ips(ips, &v4, &v6, err);
	if (ret < 0)
		return ret;
	f = open_memstream(out, &len);
	if (!f)
		return vz_error(err, errno, "Write the network filter of VE %u", veid);
	/* Made if missing, so that the delete finds it, and made anew: one
	 * transaction, whatever a crashed agent left behind. */
	fprintf(f, "table bridge vz_ve_%u {}\ndelete table bridge vz_ve_%u\ntable bridge vz_ve_%u {\n", veid, veid,
		veid);
	for (size_t i = 0; i < ARRAY_SIZE(counters); i++)
		fprintf(f, "\tcounter %s {}\n", counters[i]);
	fprintf(f, "\tchain ve {\n");
	ve_rules(f, have_mac ? nif->mac : NULL, have_mac ? macb : NULL, &v4, &v6);
	fprintf(f, "\t}\n");
	for (size_t i = 0; i < ARRAY_SIZE(hooks); i++)
		fprintf(f,
			"\tchain %s {\n\t\ttype filter hook %s priority -200; policy accept;\n"
			"\t\tiifname \"%s\" jump ve\n\t}\n",
			hooks[i], hooks[i], nif->host_ifname);
	fprintf(f, "}\n");
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		return vz_error(err, errno, "Write the network filter of VE %u", veid);
	}
	return 0;
}

/* Run nft on script, in our network namespace. */
static int nft_script(const char *script, struct vz_err *err)
{
	_cleanup_close_ int fd = memfd_create("vz-nft", MFD_CLOEXEC);
	_cleanup_free_ char *out = NULL;
	char path[64];
	char *argv[] = { "nft", "-f", path, NULL };
	size_t len = strlen(script);
	const char *e;
	int ret;

	if (fd < 0)
		return vz_error(err, errno, "Create a memfd for nft");
	if (write(fd, script, len) != (ssize_t)len)
		return vz_error(err, errno, "Write the nft script");
	/* nft opens our descriptor by its /proc name: nothing leaks to it. */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), fd);
	ret = vz_run(argv, &out);
	if (ret < 0)
		return vz_error(err, -ret, "Run nft");
	if (ret == 0)
		return 0;
	/* nft prints "file:line:col: Error: ...", the line, a caret line. */
	e = out ? strstr(out, "Error: ") : NULL;
	if (!e) {
		char last[256];

		return vz_error_msg(err, EIO, "The nft command failed (status %d): %s", ret,
				    vz_last_line(out ? out : "", last, sizeof(last)));
	}
	return vz_error_msg(err, EIO, "The nft command refused the rules: %.*s", (int)strcspn(e + 7, "\n"), e + 7);
}

int vz_net_filter_set(unsigned veid, const struct vz_netif *nif, const char *ips, struct vz_err *err)
{
	_cleanup_free_ char *script = NULL;
	int ret = vz_net_filter_script(veid, nif, ips, &script, err);

	if (ret == 0)
		ret = nft_script(script, err);
	if (ret < 0)
		return vz_error_wrap(err, "Filter what VE %u sends on %s", veid, nif->host_ifname);
	pr_debug("VE %u: %s sends only as %s, %s", veid, nif->host_ifname, nif->mac[0] ? nif->mac : "any MAC",
		 ips && *ips ? ips : "no IP address");
	return 0;
}

int vz_net_filter_del(unsigned veid, struct vz_err *err)
{
	char script[128];

	snprintf(script, sizeof(script), "table bridge vz_ve_%u {}\ndelete table bridge vz_ve_%u\n", veid, veid);
	if (nft_script(script, err) < 0)
		return vz_error_wrap(err, "Remove the network filter of VE %u", veid);
	return 0;
}

int vz_net_filter_probe(char *why, size_t len)
{
	struct vz_err err = { 0 };
	char script[256];
	unsigned id = (unsigned)getpid();

	/* A base chain, as the VEs' tables have: the family alone may be
	 * there without the bridge's hooks (CONFIG_NF_TABLES_BRIDGE). */
	snprintf(script, sizeof(script),
		 "table bridge vz_probe_%u {\n\tchain c {\n\t\ttype filter hook prerouting priority -200;\n\t}\n}\n",
		 id);
	why[0] = '\0';
	if (nft_script(script, &err) < 0) {
		snprintf(why, len, "%s", err.msg);
		return -ENOTSUP;
	}
	snprintf(script, sizeof(script), "delete table bridge vz_probe_%u\n", id);
	if (nft_script(script, &err) < 0)
		pr_warn("%s", err.msg);
	return 0;
}
