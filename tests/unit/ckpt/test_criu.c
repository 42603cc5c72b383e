/* ckpt/criu.c: every wait on CRIU is bounded. A "criu" that never
 * answers (a script that sleeps) is killed by its pid once the bound runs
 * out, and the call fails with one line naming the step. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "criu.h"
#include "util.h"

static char tmp[64], script[128], pidfile[128];

static void mk_fake_criu(void)
{
	FILE *f;

	snprintf(tmp, sizeof(tmp), "/tmp/vz-unit-criu.XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(script, sizeof(script), "%s/criu", tmp);
	snprintf(pidfile, sizeof(pidfile), "%s/pid", tmp);
	f = fopen(script, "w");
	cr_assert_not_null(f);
	/* It takes the request and never answers (as a SIGSTOPped CRIU). */
	fprintf(f, "#!/bin/sh\necho $$ >%s\nexec sleep 1000\n", pidfile);
	fclose(f);
	chmod(script, 0755);
}

static void rm_tmp(void)
{
	vz_rm_rf(tmp);
}

static pid_t fake_pid(void)
{
	FILE *f = fopen(pidfile, "r");
	int pid = 0;

	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

Test(criu, a_dump_criu_never_answers_times_out_and_criu_is_killed, .init = mk_fake_criu, .fini = rm_tmp)
{
	struct vz_criu c = { .path = script };
	struct vz_criu_opts o = { 0 };
	struct vz_err err = { 0 };
	uint64_t t0 = vz_now_ns();
	int dir, ret;
	pid_t pid;

	dir = open(tmp, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dir, 0);
	o.images_dir_fd = dir;
	o.work_dir_fd = -1;
	o.log_file = "dump.log";
	o.timeout_s = 1;
	ret = vz_criu_dump(&c, &o, &err);
	cr_assert_eq(ret, -ETIMEDOUT, "ret %d: %s", ret, err.msg);
	cr_assert_str_eq(err.msg, "CRIU dump timed out after 1 s");
	cr_assert_lt(vz_now_ns() - t0, 5000000000ull);
	/* Killed and reaped by its pid: nothing of it is left. */
	pid = fake_pid();
	cr_assert_gt(pid, 0);
	cr_assert_eq(kill(pid, 0), -1);
	cr_assert_eq(errno, ESRCH);
	close(dir);
}

Test(criu, the_bound_defaults_when_unset)
{
	cr_assert_eq(VZ_CRIU_TIMEOUT_DEFAULT, 300);
}
