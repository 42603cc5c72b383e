/* VE networking: a veth pair per VE, "eth0" inside with the VE's
 * addresses, the host end ("veth<VEID>.0") enslaved to the host's bridge
 * (default "vzbr0"). Uses iproute2 through argv (never a shell); commands
 * for the VE's side run in its network namespace (setns on
 * /proc/PID/ns/net in a child). All return 0 or a negative errno. */
#ifndef VZ_NET_H
#define VZ_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct vz_netif {
	char ifname[16];      /* inside: "eth0" */
	char host_ifname[16]; /* host end: "veth101.0" */
	char mac[18];	      /* inside MAC, "aa:bb:cc:dd:ee:ff" */
	char host_mac[18];
	char bridge[16]; /* "vzbr0" */
};

/* OpenVZ NETIF="ifname=eth0,mac=..,host_ifname=..,host_mac=..,bridge=.."
 * parsing and formatting (pure; unit-tested). */
int vz_netif_parse(const char *s, struct vz_netif *nif, struct vz_err *err);
void vz_netif_format(const struct vz_netif *nif, char *buf, size_t len);
/* Fill a fresh netif for veid: eth0, veth<veid>.0 (shortened to fit
 * IFNAMSIZ), random locally administered unicast MACs, bridge. */
void vz_netif_new(struct vz_netif *nif, unsigned veid, const char *bridge);
/* Give a netif without an inside MAC a random one (the network filter
 * needs to know the VE's MAC); true when it did. */
bool vz_netif_fill_mac(struct vz_netif *nif);

/* Validate "A.B.C.D", "A.B.C.D/N" or an IPv6 address with optional /N and
 * write it with a prefix (default_prefix4 for IPv4 without one, 128 for
 * IPv6) as "addr/N" into out. -EINVAL with a message on bad input. */
int vz_net_parse_ip(const char *s, unsigned default_prefix4, char *out, size_t len, struct vz_err *err);

/* Create the bridge if missing and bring it up. */
int vz_net_bridge_ensure(const char *bridge, struct vz_err *err);
/* Create the pair, put the host end on the bridge and up, move the other
 * end into pid's network namespace, rename it to nif->ifname, set MACs,
 * bring lo and it up. Removes the pair again on failure. */
int vz_net_veth_setup(const struct vz_netif *nif, pid_t pid, struct vz_err *err);
/* Give the host end its recorded MAC (a restore recreates the pair). */
int vz_net_host_mac(const struct vz_netif *nif, struct vz_err *err);
/* Announce the VE's IPv4 addresses on ifname with gratuitous ARP, from
 * inside pid's namespace, so switches learn where its MAC now lives. */
/* Attach a host interface to a bridge or detach it. */
int vz_net_bridge_port(const char *bridge, const char *ifname, bool attach, struct vz_err *err);
int vz_net_garp(pid_t pid, const char *ifname, struct vz_err *err);
/* Delete the host end if it exists (the peer goes with it). */
int vz_net_veth_del(const struct vz_netif *nif, struct vz_err *err);
/* Add / remove "addr/N" on ifname inside pid's namespace. Adding an
 * address present already succeeds. */
int vz_net_ip_add(pid_t pid, const char *ifname, const char *cidr, struct vz_err *err);
int vz_net_ip_del(pid_t pid, const char *ifname, const char *cidr, struct vz_err *err);
/* Does a link of this name exist in pid's namespace (0: ours)? */
bool vz_net_link_exists(pid_t pid, const char *ifname);
/* Global addresses on ifname inside pid's namespace, "addr/N" separated
 * by spaces, into buf. */
int vz_net_ip_list(pid_t pid, const char *ifname, char *buf, size_t len, struct vz_err *err);
/* Set a default route via gw inside pid's namespace (when gw is non-empty). */
int vz_net_route_default(pid_t pid, const char *ifname, const char *gw, struct vz_err *err);

/* The network filter of a VE (net_filter.c): table "bridge vz_ve_VEID" in
 * our network namespace, dropping what enters the bridge from
 * nif->host_ifname with a source MAC other than nif->mac, ARP or IP with a
 * sender or source other than the addresses of ips (IP_ADDRESS: "addr[/N]"
 * words; none: all IPv4 and ARP) or, for IPv6, the link-local address of
 * the MAC, router advertisements, redirects, neighbour advertisements of
 * another's address, and all but IPv4, ARP and IPv6. Drops are counted by
 * the table's counters spoof_mac, spoof_arp, spoof_ipv4, spoof_ipv6 and
 * spoof_other. An empty nif->mac leaves the MAC unchecked.
 *
 * vz_net_filter_script writes the nft script that replaces the table into
 * *out (malloc'd, the caller's; pure, unit-tested); vz_net_filter_set runs
 * it: the table is replaced in one transaction, whatever was there, and
 * may be made before the interface exists. vz_net_filter_del removes it if
 * it is there. vz_net_filter_probe: 0 when this host can have such tables,
 * else -ENOTSUP with the reason in why. */
int vz_net_filter_script(unsigned veid, const struct vz_netif *nif, const char *ips, char **out, struct vz_err *err);
int vz_net_filter_set(unsigned veid, const struct vz_netif *nif, const char *ips, struct vz_err *err);
int vz_net_filter_del(unsigned veid, struct vz_err *err);
int vz_net_filter_probe(char *why, size_t len);

#endif
