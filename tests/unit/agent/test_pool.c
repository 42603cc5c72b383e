/* agent/pool.c: COORDINATOR's value, host[:port] with brackets around an
 * IPv6 address, is read strictly (a bad one is refused, never half used). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

static void parses(const char *s, const char *host, unsigned port)
{
	char h[64] = "";
	unsigned p = 0;

	cr_assert_eq(agent_pool_parse_coordinator(s, h, sizeof(h), &p), 0, "'%s' refused", s);
	cr_expect_str_eq(h, host, "'%s': host '%s'", s, h);
	cr_expect_eq(p, port, "'%s': port %u", s, p);
}

static void refused(const char *s)
{
	char h[64] = "";
	unsigned p = 0;

	cr_expect_eq(agent_pool_parse_coordinator(s, h, sizeof(h), &p), -EINVAL, "'%s' taken as %s:%u", s, h, p);
}

Test(pool, coordinator_host_and_port)
{
	parses("198.18.0.240", "198.18.0.240", POOL_COORD_PORT);
	parses("198.18.0.240:7801", "198.18.0.240", 7801);
	parses("vzcoord.example", "vzcoord.example", 7800);
	parses("[2001:db8::1]", "2001:db8::1", 7800);
	parses("[2001:db8::1]:9000", "2001:db8::1", 9000);
}

Test(pool, bad_coordinator_refused)
{
	refused("");
	refused(":7800");
	refused("host:");
	refused("host:0");
	refused("host:65536");
	refused("host:78x");
	refused("2001:db8::1");
	refused("[2001:db8::1");
	refused("[2001:db8::1]x");
	refused("[]:7800");
	refused("a-name-longer-than-the-sixty-four-bytes-of-the-buffer-it-is-read-into.example");
}

static void addresses(const char *conf, const char *want)
{
	char *got = agent_pool_addresses(conf);

	if (!want)
		cr_expect_null(got, "'%s' gave '%s'", conf, got);
	else
		cr_expect_str_eq(got ? got : "(null)", want, "'%s'", conf);
	free(got);
}

Test(pool, heartbeat_addresses_as_vzlist_shows_them)
{
	addresses("198.18.1.1", "198.18.1.1");
	addresses("198.18.1.1/24 fd00::5/64", "198.18.1.1 fd00::5");
	addresses("  198.18.1.1/16\t 198.18.1.2  ", "198.18.1.1 198.18.1.2");
	addresses("", NULL);
	addresses("   ", NULL);
	addresses(NULL, NULL);
}
