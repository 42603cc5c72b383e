/* agent/net_filter.c: the nft script of a VE's network filter names its
 * MAC, its addresses without their prefixes and the link-local address of
 * its MAC, refuses what it cannot read, and is accepted by this host's nft
 * and kernel (in a network namespace of the test's own). */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "util.h"

static struct vz_netif nif = {
	.ifname = "eth0",
	.host_ifname = "veth501.0",
	.mac = "02:00:c6:12:05:01",
	.bridge = "vzbr0",
};

static char *script_of(const struct vz_netif *n, const char *ips)
{
	struct vz_err err = { 0 };
	char *s = NULL;

	cr_assert_eq(vz_net_filter_script(501, n, ips, &s, &err), 0, "%s", err.msg);
	cr_assert(s);
	return s;
}

static void has(const char *s, const char *line)
{
	cr_expect(strstr(s, line), "no '%s' in:\n%s", line, s);
}

static void lacks(const char *s, const char *line)
{
	cr_expect(!strstr(s, line), "'%s' in:\n%s", line, s);
}

Test(net_filter, names_the_mac_addresses_and_link_local)
{
	char *s = script_of(&nif, " 198.18.5.1/24  198.18.5.9 2001:db8::0:1/64");

	has(s, "table bridge vz_ve_501 {}\ndelete table bridge vz_ve_501\ntable bridge vz_ve_501 {\n");
	has(s, "ether saddr != 02:00:c6:12:05:01 counter name spoof_mac drop");
	has(s, "arp saddr ether != 02:00:c6:12:05:01 counter name spoof_arp drop");
	has(s, "arp saddr ip != { 198.18.5.1, 198.18.5.9 } counter name spoof_arp drop");
	has(s, "ip saddr != { 198.18.5.1, 198.18.5.9 } counter name spoof_ipv4 drop");
	/* 02 with the universal/local bit flipped is 00. */
	has(s, "ip6 saddr != { fe80::c6ff:fe12:501, 2001:db8::1 } counter name spoof_ipv6 drop");
	has(s, "@th,64,128 != { 0xfe800000000000000000c6fffe120501, 0x20010db8000000000000000000000001 }");
	has(s, "@th,208,48 != 0x0200c6120501");
	has(s, "type filter hook prerouting priority -200; policy accept;\n\t\tiifname \"veth501.0\" jump ve");
	has(s, "type filter hook input priority -200; policy accept;\n\t\tiifname \"veth501.0\" jump ve");
	free(s);
}

Test(net_filter, no_address_drops_all_ipv4_and_arp)
{
	char *s = script_of(&nif, "");

	has(s, "ether type arp counter name spoof_arp drop");
	has(s, "ether type ip counter name spoof_ipv4 drop");
	has(s, "ip6 saddr != { fe80::c6ff:fe12:501 } counter name spoof_ipv6 drop");
	lacks(s, "arp saddr ip");
	free(s);
}

Test(net_filter, no_mac_checks_addresses_only)
{
	struct vz_netif n = nif;
	char *s;

	n.mac[0] = '\0';
	s = script_of(&n, "198.18.5.1");
	lacks(s, "ether saddr");
	lacks(s, "@th,208,48");
	has(s, "ip saddr != { 198.18.5.1 } counter name spoof_ipv4 drop");
	has(s, "ip6 saddr != fe80::/10 counter name spoof_ipv6 drop");
	free(s);
}

Test(net_filter, refuses_what_it_cannot_read)
{
	struct vz_netif n = nif;
	struct vz_err err = { 0 };
	char *s = (char *)1;

	cr_expect_eq(vz_net_filter_script(501, &nif, "198.18.5.1 nonsense", &s, &err), -EINVAL);
	cr_expect(strstr(err.msg, "nonsense"), "%s", err.msg);
	cr_expect_null(s);
	cr_expect_eq(vz_net_filter_script(501, &nif, "198.18.5.300", &s, &err), -EINVAL);
	snprintf(n.mac, sizeof(n.mac), "02:00:zz:12:05:01");
	cr_expect_eq(vz_net_filter_script(501, &n, "", &s, &err), -EINVAL);
}

/* What nft would do with it, checked against the kernel (nft -c), in a
 * network namespace that dies with the test's process. */
Test(net_filter, nft_accepts_it)
{
	char *s = script_of(&nif, "198.18.5.1/24 2001:db8::1");
	char path[] = "/tmp/vz-unit-nft.XXXXXX";
	char *argv[] = { "nft", "-c", "-f", path, NULL };
	char *out = NULL;
	int fd, ret;

	if (geteuid() != 0 || unshare(CLONE_NEWNET) != 0)
		cr_skip_test("needs root to make a network namespace");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
	ret = vz_run(argv, &out);
	unlink(path);
	if (ret == 127)
		cr_skip_test("no nft here");
	cr_expect_eq(ret, 0, "nft -c refused the script: %s\n%s", out ? out : "", s);
	free(out);
	free(s);
}
