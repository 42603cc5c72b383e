/* lib/sysctl.c on a plain file standing in for the sysctl: a floor raised
 * once; a value held while anyone holds it, by overlapping holders in one
 * process and in several, put back by the last release; a holder that
 * dies is no longer counted, and the next hold or a recovery puts the
 * value it found back. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "sysctl.h"
#include "util.h"

static char dir[] = "/tmp/vz-sysctl-XXXXXX", knob[PATH_MAX], lockdir[PATH_MAX], orig_file[PATH_MAX];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(knob, sizeof(knob), "%s/unprivileged_userfaultfd", dir);
	snprintf(lockdir, sizeof(lockdir), "%s/run/vz", dir);
	snprintf(orig_file, sizeof(orig_file), "%s/sysctl-unprivileged_userfaultfd.orig", lockdir);
	cr_assert_eq(vz_write_file(knob, "0\n", 2, 0), 0);
}

static void teardown(void)
{
	vz_rm_rf(dir);
}

/* The knob's content, without its newline. */
static const char *knob_value(void)
{
	static char v[64];
	_cleanup_free_ char *text = NULL;

	cr_assert_eq(vz_read_file(knob, &text, NULL, 64), 0);
	snprintf(v, sizeof(v), "%.*s", (int)strcspn(text, "\n"), text);
	return v;
}

static void hold(struct vz_sysctl_hold *h)
{
	struct vz_err err = { 0 };

	cr_assert_eq(vz_sysctl_hold(knob, "1", lockdir, h, &err), 0, "%s", err.msg);
}

static bool release(struct vz_sysctl_hold *h)
{
	struct vz_err err = { 0 };
	bool restored = true;

	cr_assert_eq(vz_sysctl_release(h, &restored, &err), 0, "%s", err.msg);
	return restored;
}

/* A child that holds the knob until told (a byte on *go) or killed. */
static pid_t holder(int *go)
{
	int ready[2], cmd[2];
	pid_t pid;
	char c;

	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(cmd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct vz_sysctl_hold h;
		struct vz_err err = { 0 };

		if (vz_sysctl_hold(knob, "1", lockdir, &h, &err) < 0 || write(ready[1], "h", 1) != 1)
			_exit(1);
		if (read(cmd[0], &c, 1) != 1)
			_exit(1);
		_exit(vz_sysctl_release(&h, NULL, &err) < 0);
	}
	close(ready[1]);
	close(cmd[0]);
	cr_assert_eq(read(ready[0], &c, 1), 1, "the holder did not hold");
	close(ready[0]);
	*go = cmd[1];
	return pid;
}

static void reap(pid_t pid, int want_status)
{
	int st;

	cr_assert_eq(waitpid(pid, &st, 0), pid);
	if (want_status >= 0)
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == want_status, "holder status %d", st);
}

/* A holder that was killed while it held the knob. */
static void dead_holder(void)
{
	int go;
	pid_t p = holder(&go);

	kill(p, SIGKILL);
	reap(p, -1);
	close(go);
}

TestSuite(sysctl, .init = setup, .fini = teardown);

Test(sysctl, ensure_min_raises_a_lower_value_only)
{
	struct vz_err err = { 0 };
	unsigned long was = 0;
	bool raised = false;

	cr_assert_eq(vz_write_file(knob, "1048576\n", 8, 0), 0);
	cr_assert_eq(vz_sysctl_ensure_min(knob, 4u << 20, &was, &raised, &err), 0, "%s", err.msg);
	cr_assert(raised);
	cr_assert_eq(was, 1048576);
	cr_assert_str_eq(knob_value(), "4194304");
	cr_assert_eq(vz_sysctl_ensure_min(knob, 1u << 20, &was, &raised, &err), 0);
	cr_assert_not(raised);
	cr_assert_str_eq(knob_value(), "4194304");
}

Test(sysctl, hold_sets_and_release_puts_back)
{
	struct vz_sysctl_hold h;

	hold(&h);
	cr_assert(h.first);
	cr_assert_not(h.recovered);
	cr_assert_str_eq(h.orig, "0");
	cr_assert_str_eq(knob_value(), "1");
	cr_assert(vz_exists(orig_file), "the value found is recorded while held");
	cr_assert(release(&h));
	cr_assert_str_eq(knob_value(), "0");
	cr_assert_not(vz_exists(orig_file));
	cr_assert_not(release(&h), "a second release does nothing");
	cr_assert_str_eq(knob_value(), "0");
}

Test(sysctl, overlapping_holds_in_one_process_end_with_the_last)
{
	struct vz_sysctl_hold a, b;

	hold(&a);
	hold(&b);
	cr_assert(a.first);
	cr_assert_not(b.first);
	cr_assert_str_eq(b.orig, "0", "a later holder knows what will be put back");
	cr_assert_not(release(&a), "the first holder's release left it to the other");
	cr_assert_str_eq(knob_value(), "1");
	cr_assert(release(&b));
	cr_assert_str_eq(knob_value(), "0");
}

Test(sysctl, overlapping_holds_of_processes_end_with_the_last)
{
	struct vz_sysctl_hold h;
	int go;
	pid_t p = holder(&go);

	cr_assert_str_eq(knob_value(), "1");
	hold(&h);
	cr_assert_not(h.first);
	/* The first holder goes: still held by us. */
	cr_assert_eq(write(go, "x", 1), 1);
	reap(p, 0);
	cr_assert_str_eq(knob_value(), "1");
	cr_assert(release(&h));
	cr_assert_str_eq(knob_value(), "0");
	close(go);
}

Test(sysctl, a_dead_holder_is_not_counted_and_recovery_puts_the_value_back)
{
	struct vz_err err = { 0 };
	char orig[32] = "";
	bool restored = false;
	dead_holder();
	cr_assert_str_eq(knob_value(), "1", "nobody put it back");
	cr_assert_eq(vz_sysctl_recover(knob, lockdir, &restored, orig, sizeof(orig), &err), 0, "%s", err.msg);
	cr_assert(restored);
	cr_assert_str_eq(orig, "0");
	cr_assert_str_eq(knob_value(), "0");
	cr_assert_not(vz_exists(orig_file));
	/* Nothing recorded: nothing to do. */
	cr_assert_eq(vz_sysctl_recover(knob, lockdir, &restored, orig, sizeof(orig), &err), 0);
	cr_assert_not(restored);
}

Test(sysctl, the_next_hold_after_a_dead_holder_keeps_the_value_it_had_found)
{
	struct vz_sysctl_hold h;
	dead_holder();
	hold(&h);
	cr_assert(h.first);
	cr_assert(h.recovered);
	cr_assert_str_eq(h.orig, "0", "the raised value was taken for the original");
	cr_assert(release(&h));
	cr_assert_str_eq(knob_value(), "0");
}

Test(sysctl, recovery_leaves_a_live_holders_value)
{
	struct vz_err err = { 0 };
	char orig[32] = "";
	bool restored = true;
	int go;
	pid_t p = holder(&go);

	cr_assert_eq(vz_sysctl_recover(knob, lockdir, &restored, orig, sizeof(orig), &err), 0, "%s", err.msg);
	cr_assert_not(restored);
	cr_assert_str_eq(knob_value(), "1");
	cr_assert_eq(write(go, "x", 1), 1);
	reap(p, 0);
	cr_assert_str_eq(knob_value(), "0");
	close(go);
}

Test(sysctl, a_failed_hold_holds_nothing)
{
	struct vz_sysctl_hold h;
	struct vz_err err = { 0 };
	char missing[PATH_MAX + 8];

	snprintf(missing, sizeof(missing), "%s/nonexistent", dir);
	cr_assert_lt(vz_sysctl_hold(missing, "1", lockdir, &h, &err), 0);
	cr_assert(strstr(err.msg, "nonexistent"), "%s", err.msg);
	cr_assert_eq(h.fd, -1);
	cr_assert_not(release(&h));
	/* The knob itself is held and released as if nothing happened. */
	hold(&h);
	cr_assert(h.first);
	cr_assert(release(&h));
	cr_assert_str_eq(knob_value(), "0");
}
