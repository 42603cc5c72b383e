/* vzctl status VEID: "VEID 101 exist mounted running", as OpenVZ. */
#include <errno.h>
#include <stdio.h>

#include "vzctl.h"

int cmd_status(int argc, char **argv, struct vz_err *err)
{
	static const char *const words[][3] = {
		[VZ__CONTROL__VE_STATUS__VE_DELETED] = { "deleted", "unmounted", "down" },
		[VZ__CONTROL__VE_STATUS__VE_STOPPED] = { "exist", "unmounted", "down" },
		[VZ__CONTROL__VE_STATUS__VE_MOUNTED] = { "exist", "mounted", "down" },
		[VZ__CONTROL__VE_STATUS__VE_RUNNING] = { "exist", "mounted", "running" },
	};
	vz_request req;
	vz_reply *r = NULL;
	int ret = vzctl_request(&req, VZ__CONTROL__OP__OP_STATUS, argc, argv, err);

	if (ret < 0)
		return ret;
	if (argc > 2)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Invalid option %s for vzctl status", argv[2]);
	ret = vz_ctl_call(&req, NULL, 0, NULL, NULL, &r, err);
	if (ret < 0)
		return ret;
	if (r->code || r->n_ves != 1 || r->ves[0]->status > VZ__CONTROL__VE_STATUS__VE_RUNNING) {
		vz_error_exit_msg(err, r->code ? r->code : VZ_EXIT_SYSTEM, EIO, "%s",
				  r->error ? r->error : "Bad status reply");
		vz__control__reply__free_unpacked(r, NULL);
		return -EIO;
	}
	const char *const *w = words[r->ves[0]->status];

	printf("VEID %u %s %s %s%s\n", r->ves[0]->veid, w[0], w[1], w[2], r->ves[0]->suspended ? " suspended" : "");
	vz__control__reply__free_unpacked(r, NULL);
	return 0;
}
