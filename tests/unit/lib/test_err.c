/* The error contract: vz_error adds the errno's text, vz_error_msg does not,
 * vz_error_wrap adds context, and every maker returns -errnum. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "err.h"

Test(err, vz_error_appends_the_errno_text)
{
	struct vz_err e = { 0 };

	cr_assert_eq(vz_error(&e, ENOENT, "Open %s", "/x"), -ENOENT);
	cr_assert_str_eq(e.msg, "Open /x: No such file or directory");
	cr_assert_eq(e.errnum, ENOENT);
	cr_assert_eq(e.exit_code, VZ_EXIT_SYSTEM);
}

Test(err, a_negative_errnum_counts_as_its_absolute_value)
{
	struct vz_err e = { 0 };

	cr_assert_eq(vz_error(&e, -EACCES, "Read"), -EACCES);
	cr_assert_str_eq(e.msg, "Read: Permission denied");
}

Test(err, vz_error_msg_keeps_the_message_alone)
{
	struct vz_err e = { 0 };

	cr_assert_eq(vz_error_msg(&e, EBADMSG, "Malformed stream"), -EBADMSG);
	cr_assert_str_eq(e.msg, "Malformed stream");
	cr_assert_eq(vz_error_msg(&e, 0, "No errno"), -EINVAL);
}

Test(err, exit_codes_travel_with_both_forms)
{
	struct vz_err e = { 0 };

	cr_assert_eq(vz_error_exit(&e, VZ_EXIT_MOUNT, EBUSY, "Mount %s", "r"), -EBUSY);
	cr_assert_str_eq(e.msg, "Mount r: Device or resource busy");
	cr_assert_eq(e.exit_code, VZ_EXIT_MOUNT);
	cr_assert_eq(vz_error_exit_msg(&e, VZ_EXIT_BADVAL, EINVAL, "Bad value"), -EINVAL);
	cr_assert_str_eq(e.msg, "Bad value");
	cr_assert_eq(e.exit_code, VZ_EXIT_BADVAL);
}

Test(err, wrap_adds_context_and_keeps_the_errno)
{
	struct vz_err e = { 0 };

	vz_error(&e, EIO, "Write");
	cr_assert_eq(vz_error_wrap(&e, "Migrate VE %u", 101u), -EIO);
	cr_assert_str_eq(e.msg, "Migrate VE 101: Write: Input/output error");
}

Test(err, the_message_may_be_an_argument_of_its_own_replacement)
{
	struct vz_err e = { 0 };

	vz_error_msg(&e, EIO, "Inner");
	vz_error(&e, EIO, "Outer (%s)", e.msg);
	cr_assert_str_eq(e.msg, "Outer (Inner): Input/output error");
}
