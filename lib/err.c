/* The error object: a message, an errno and an OpenVZ exit code. */
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

static int record(struct vz_err *err, int exit_code, int errnum, bool with_text, const char *fmt, va_list ap)
{
	if (errnum < 0)
		errnum = -errnum;
	if (errnum == 0)
		errnum = EINVAL;
	if (!err)
		return -errnum;
	/* Through a copy: callers may pass err->msg itself as an argument. */
	char msg[sizeof(err->msg)];

	int n = vsnprintf(msg, sizeof(msg), fmt, ap);

	if (with_text && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(errnum));
	memcpy(err->msg, msg, sizeof(msg));
	err->errnum = errnum;
	err->exit_code = exit_code;
	return -errnum;
}

int vz_error(struct vz_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = record(err, VZ_EXIT_SYSTEM, errnum, true, fmt, ap);
	va_end(ap);
	return ret;
}

int vz_error_msg(struct vz_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = record(err, VZ_EXIT_SYSTEM, errnum, false, fmt, ap);
	va_end(ap);
	return ret;
}

int vz_error_exit(struct vz_err *err, int exit_code, int errnum, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = record(err, exit_code, errnum, true, fmt, ap);
	va_end(ap);
	return ret;
}

int vz_error_exit_msg(struct vz_err *err, int exit_code, int errnum, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = record(err, exit_code, errnum, false, fmt, ap);
	va_end(ap);
	return ret;
}

int vz_error_wrap(struct vz_err *err, const char *fmt, ...)
{
	char prefix[512], old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return -EINVAL;
	if (err->errnum == 0)
		err->errnum = EINVAL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
	return -err->errnum;
}

void vz_err_clear(struct vz_err *err)
{
	if (!err)
		return;
	err->errnum = 0;
	err->exit_code = 0;
	err->msg[0] = '\0';
}
