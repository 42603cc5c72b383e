/* vzctl start, stop, restart, destroy, mount, umount: one request each. */
#include <errno.h>
#include <string.h>

#include "vzctl.h"

static int simple(Vz__Control__Op op, int argc, char **argv, bool takes_fast, struct vz_err *err)
{
	vz_request req;
	int ret = vzctl_request(&req, op, argc, argv, err);

	if (ret < 0)
		return ret;
	for (int i = 2; i < argc; i++) {
		if (takes_fast && !strcmp(argv[i], "--fast")) {
			req.has_fast = 1;
			req.fast = 1;
		} else if (!strcmp(argv[i], "--wait") || !strcmp(argv[i], "--quiet")) {
			/* accepted, as OpenVZ's */
		} else {
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Invalid option %s for vzctl %s", argv[i],
						 argv[0]);
		}
	}
	return vzctl_run(&req, err);
}

int cmd_start(int argc, char **argv, struct vz_err *err)
{
	return simple(VZ__CONTROL__OP__OP_START, argc, argv, false, err);
}

int cmd_stop(int argc, char **argv, struct vz_err *err)
{
	return simple(VZ__CONTROL__OP__OP_STOP, argc, argv, true, err);
}

int cmd_restart(int argc, char **argv, struct vz_err *err)
{
	return simple(VZ__CONTROL__OP__OP_RESTART, argc, argv, true, err);
}

int cmd_destroy(int argc, char **argv, struct vz_err *err)
{
	return simple(VZ__CONTROL__OP__OP_DESTROY, argc, argv, false, err);
}

int cmd_mount(int argc, char **argv, struct vz_err *err)
{
	return simple(VZ__CONTROL__OP__OP_MOUNT, argc, argv, false, err);
}

int cmd_umount(int argc, char **argv, struct vz_err *err)
{
	return simple(VZ__CONTROL__OP__OP_UMOUNT, argc, argv, false, err);
}
