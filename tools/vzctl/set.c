/* vzctl set VEID OPTIONS... [--save] */
#include "vzctl.h"

int cmd_set(int argc, char **argv, struct vz_err *err)
{
	static const char *const flags[] = { "save", "setmode", NULL };
	vz_request req;
	unsigned seen = 0;
	int ret = vzctl_request(&req, VZ__CONTROL__OP__OP_SET, argc, argv, err);

	if (ret == 0)
		ret = vzctl_parse_params(&req, argc, argv, 2, flags, &seen, err);
	if (ret == 0) {
		req.has_save = 1;
		req.save = seen & 1;
		ret = vzctl_run(&req, err);
	}
	vzctl_free_params(&req);
	return ret;
}
