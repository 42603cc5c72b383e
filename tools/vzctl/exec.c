/* vzctl exec / exec2 VEID COMMAND...: the command runs inside with this
 * process's stdin, stdout and stderr; vzctl exits with its status. */
#include <errno.h>

#include "vzctl.h"

int cmd_exec(int argc, char **argv, struct vz_err *err)
{
	static const int fds[3] = { 0, 1, 2 };
	vz_request req;
	vz_reply *r = NULL;
	int ret = vzctl_request(&req, VZ__CONTROL__OP__OP_EXEC, argc, argv, err);

	if (ret < 0)
		return ret;
	if (argc < 3)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "No command given: vzctl %s VEID COMMAND",
					 argv[0]);
	req.n_argv = (size_t)argc - 2;
	req.argv = argv + 2;
	ret = vz_ctl_call(&req, fds, 3, NULL, NULL, &r, err);
	if (ret < 0)
		return ret;
	if (r->code) {
		vz_error_exit_msg(err, r->code, EIO, "%s", r->error ? r->error : "Exec failed");
		vz__control__reply__free_unpacked(r, NULL);
		return -EIO;
	}
	ret = r->has_exit_status ? r->exit_status : VZ_EXIT_SYSTEM;
	vz__control__reply__free_unpacked(r, NULL);
	return ret;
}
