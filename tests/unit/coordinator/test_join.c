/* The pure parts of vzcoord join and leave: [USER@]HOST[:PORT] as the
 * admin writes it, a host's vz.conf edited with its other lines kept, and
 * a host forgotten by the pool (coordinator/ssh.c, join.c, leave.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "join.h"
#include "log.h"
#include "ssh.h"

struct target_case {
	const char *in, *user, *host;
	unsigned port;
};

Test(join, targets_as_ssh_takes_them)
{
	static const struct target_case ok[] = {
		{ "h3", "", "h3", 0 },
		{ "root@h3", "root", "h3", 0 },
		{ "admin@host.example.org:2222", "admin", "host.example.org", 2222 },
		{ "198.18.0.3:22", "", "198.18.0.3", 22 },
		{ "root@[fd00::3]:2200", "root", "fd00::3", 2200 },
		{ "fd00::3", "", "fd00::3", 0 },
		{ "a@b@h1", "a@b", "h1", 0 },
	};

	vz_log_init("test", VZ_LOG_ERR, 0);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char user[64], host[256];
		unsigned port = 99;
		struct vz_err err = { 0 };

		cr_assert_eq(coord_ssh_parse_target(ok[i].in, user, sizeof(user), host, sizeof(host), &port, &err), 0,
			     "%s: %s", ok[i].in, err.msg);
		cr_assert_str_eq(user, ok[i].user, "%s", ok[i].in);
		cr_assert_str_eq(host, ok[i].host, "%s", ok[i].in);
		cr_assert_eq(port, ok[i].port, "%s", ok[i].in);
	}
}

Test(join, bad_targets_are_refused)
{
	static const char *const bad[] = { "",		"@h3",	    "root@",	"h3:",	      "h3:0",
					   "h3:65536",	"h3:22x",   "[fd00::3", "[fd00::3]x", "h 3",
					   "h3;reboot", "root@:22", "h3/x" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char user[64], host[256];
		unsigned port;
		struct vz_err err = { 0 };

		cr_assert_lt(coord_ssh_parse_target(bad[i], user, sizeof(user), host, sizeof(host), &port, &err), 0,
			     "'%s' taken", bad[i]);
		cr_assert(err.msg[0], "'%s': no message", bad[i]);
	}
}

Test(join, a_long_user_or_host_is_refused)
{
	char in[600], user[8], host[16];
	unsigned port;
	struct vz_err err = { 0 };

	snprintf(in, sizeof(in), "someone-long@h3");
	cr_assert_lt(coord_ssh_parse_target(in, user, sizeof(user), host, sizeof(host), &port, &err), 0);
	snprintf(in, sizeof(in), "root@a-host-name-too-long");
	cr_assert_lt(coord_ssh_parse_target(in, user, sizeof(user), host, sizeof(host), &port, &err), 0);
}

Test(join, conf_edit_sets_a_key_and_keeps_the_rest)
{
	const char *text = "# settings\nVE_BRIDGE=\"vzbr0\"\nCOORDINATOR=\"10.0.0.1:7800\"\n\nHOST_NAME='h3' # me\n";
	char *out = NULL;
	struct vz_err err = { 0 };

	cr_assert_eq(coord_conf_edit(text, strlen(text), "COORDINATOR", "198.18.0.240:7800", &out, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(out,
			 "# settings\nVE_BRIDGE=\"vzbr0\"\nCOORDINATOR=\"198.18.0.240:7800\"\n\nHOST_NAME=\"h3\"\n");
	free(out);
	cr_assert_eq(coord_conf_edit(text, strlen(text), "COORDINATOR", "", &out, &err), 0, "%s", err.msg);
	cr_assert_not_null(strstr(out, "COORDINATOR=\"\"\n"));
	free(out);
	cr_assert_eq(coord_conf_edit("", 0, "COORDINATOR", "[fd00::1]:7800", &out, &err), 0, "%s", err.msg);
	cr_assert_str_eq(out, "COORDINATOR=\"[fd00::1]:7800\"\n");
	free(out);
}

Test(join, conf_edit_refuses_a_bad_file_or_value)
{
	char *out = NULL;
	struct vz_err err = { 0 };

	cr_assert_lt(coord_conf_edit("not a setting\n", 14, "COORDINATOR", "x", &out, &err), 0);
	cr_assert_null(out);
	cr_assert_lt(coord_conf_edit("A=\"1\"\n", 6, "COORDINATOR", "x\"; reboot", &out, &err), 0);
	cr_assert_null(out);
}

static void add_host(struct pool *p, const char *name, uint64_t now)
{
	Vz__Pool__Register r = VZ__POOL__REGISTER__INIT;
	struct vz_err err = { 0 };

	r.host = (char *)name;
	r.address = "198.18.0.9";
	cr_assert_eq(pool_register(p, &r, now, &err), 0, "%s", err.msg);
}

Test(join, a_host_forgotten_leaves_the_others)
{
	struct pool p = { .suspect_after = 3, .offline_after_ns = 20000000000ull };
	struct vz_err err = { 0 };

	vz_log_init("test", VZ_LOG_ERR, 0);
	add_host(&p, "h1", 1);
	add_host(&p, "h2", 1);
	add_host(&p, "h3", 1);
	cr_assert_eq(pool_forget(&p, "h2", 2, &err), 0, "%s", err.msg);
	cr_assert_eq(p.n_hosts, 2);
	cr_assert_str_eq(p.hosts[0]->name, "h1");
	cr_assert_str_eq(p.hosts[1]->name, "h3");
	cr_assert_eq(pool_forget(&p, "h2", 3, &err), -ENOENT);
	cr_assert_eq(pool_forget(&p, "h3", 3, &err), 0, "%s", err.msg);
	cr_assert_eq(p.n_hosts, 1);
	pool_free(&p);
}
