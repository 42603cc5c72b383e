/* vzctl create VEID --ostemplate NAME [--hostname H] [--ipadd IP]... */
#include "vzctl.h"

int cmd_create(int argc, char **argv, struct vz_err *err)
{
	vz_request req;
	unsigned flags = 0;
	int ret = vzctl_request(&req, VZ__CONTROL__OP__OP_CREATE, argc, argv, err);

	if (ret == 0)
		ret = vzctl_parse_params(&req, argc, argv, 2, NULL, &flags, err);
	if (ret == 0)
		ret = vzctl_run(&req, err);
	vzctl_free_params(&req);
	return ret;
}
