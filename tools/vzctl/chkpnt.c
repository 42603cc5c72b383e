/* vzctl chkpnt|suspend VEID [--dumpfile FILE], restore|resume VEID
 * [--dumpfile FILE], and chkpnt --check (can this host checkpoint?). */
#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vzctl.h"

/* The agent runs elsewhere: a relative name is made absolute here. */
static int absolute(const char *f, char *out, size_t len, struct vz_err *err)
{
	char cwd[PATH_MAX];

	if (!*f)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Empty --dumpfile");
	if (f[0] == '/') {
		snprintf(out, len, "%s", f);
		return 0;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return vz_error(err, errno, "Current directory");
	snprintf(out, len, "%s/%s", cwd, f);
	return 0;
}

static int ckpt_cmd(Vz__Control__Op op, int argc, char **argv, struct vz_err *err)
{
	char path[PATH_MAX];
	vz_request req;
	int ret;

	ret = vzctl_request(&req, op, argc, argv, err);
	if (ret < 0)
		return ret;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--dumpfile") && i + 1 < argc) {
			ret = absolute(argv[++i], path, sizeof(path), err);
			if (ret < 0)
				return ret;
			req.dumpfile = path;
		} else if (!strncmp(argv[i], "--dumpfile=", 11)) {
			ret = absolute(argv[i] + 11, path, sizeof(path), err);
			if (ret < 0)
				return ret;
			req.dumpfile = path;
		} else if (!strcmp(argv[i], "--dumpfile")) {
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Option --dumpfile needs a file name");
		} else {
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Invalid option %s for vzctl %s", argv[i],
						 argv[0]);
		}
	}
	return vzctl_run(&req, err);
}

int cmd_chkpnt(int argc, char **argv, struct vz_err *err)
{
	if (argc == 2 && !strcmp(argv[1], "--check")) {
		vz_request req;

		vz__control__request__init(&req);
		req.magic = VZ_CONTROL_MAGIC;
		req.version = VZ_CONTROL_VERSION;
		req.op = VZ__CONTROL__OP__OP_CKPT_CHECK;
		return vzctl_run(&req, err);
	}
	return ckpt_cmd(VZ__CONTROL__OP__OP_CHKPNT, argc, argv, err);
}

int cmd_restore(int argc, char **argv, struct vz_err *err)
{
	return ckpt_cmd(VZ__CONTROL__OP__OP_RESTORE, argc, argv, err);
}
