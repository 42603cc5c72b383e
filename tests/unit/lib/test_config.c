/* lib/config.c: OpenVZ KEY="value" files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

static int parse(struct vz_conf *c, const char *text, struct vz_err *err)
{
	return vz_conf_parse(c, text, strlen(text), err);
}

Test(config, parses_quoted_bare_and_comments)
{
	struct vz_conf c = { 0 };
	struct vz_err err = { 0 };

	cr_assert_eq(parse(&c, "# comment\nA=\"x y\"\nB=bare\n\n  C='single' # tail\nA=\"last\"\n", &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(vz_conf_get(&c, "A"), "last");
	cr_assert_str_eq(vz_conf_get(&c, "B"), "bare");
	cr_assert_str_eq(vz_conf_get(&c, "C"), "single");
	cr_assert_null(vz_conf_get(&c, "D"));
	vz_conf_free(&c);
}

Test(config, rejects_malformed_lines_with_their_number)
{
	static const char *bad[] = { "A\n", "=x\n", "A=\"open\n", "A=x y\n", "1A=x\n", "A-B=x\n", "A=\"x\" y\n" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vz_conf c = { 0 };
		struct vz_err err = { 0 };

		cr_expect_lt(parse(&c, bad[i], &err), 0, "accepted %s", bad[i]);
		cr_expect(strstr(err.msg, "Line 1") != NULL, "message: %s", err.msg);
		vz_conf_free(&c);
	}
}

Test(config, set_replaces_adds_removes_and_keeps_comments)
{
	struct vz_conf c = { 0 };
	struct vz_err err = { 0 };
	char path[] = "/tmp/vzconf.XXXXXX";
	char *text = NULL;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(parse(&c, "# keep me\nA=\"1\"\nB=\"2\"\nA=\"3\"\n", &err), 0);
	cr_assert_eq(vz_conf_set(&c, "A", "new", &err), 0);
	cr_assert_eq(vz_conf_set(&c, "C", "added", &err), 0);
	cr_assert_eq(vz_conf_set(&c, "B", NULL, &err), 0);
	cr_assert_lt(vz_conf_set(&c, "D", "has\"quote", &err), 0);
	cr_assert_eq(vz_conf_save(&c, path, &err), 0, "%s", err.msg);
	cr_assert_eq(vz_read_file(path, &text, NULL, 4096), 0);
	cr_assert_str_eq(text, "# keep me\nA=\"new\"\nC=\"added\"\n");
	free(text);
	unlink(path);
	vz_conf_free(&c);
}

Test(config, load_of_a_missing_file_names_it)
{
	struct vz_conf c = { 0 };
	struct vz_err err = { 0 };

	cr_assert_eq(vz_conf_load(&c, "/nonexistent/vz.conf", &err), -ENOENT);
	cr_assert(strstr(err.msg, "/nonexistent/vz.conf") != NULL);
}
