/* vzctl ubc VEID: the VE's user beancounters in the layout of OpenVZ's
 * /proc/user_beancounters; parameters this kernel cannot count are
 * marked and explained below the table. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "vzctl.h"

static void col(protobuf_c_boolean has, uint64_t v)
{
	if (!has)
		printf(" %20s", "-");
	else if (v == UINT64_MAX)
		printf(" %20s", "9223372036854775807");
	else
		printf(" %20" PRIu64, v);
}

int cmd_ubc(int argc, char **argv, struct vz_err *err)
{
	vz_request req;
	vz_reply *r = NULL;
	int ret = vzctl_request(&req, VZ__CONTROL__OP__OP_UBC, argc, argv, err);

	if (ret < 0)
		return ret;
	if (argc > 2)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Invalid option %s for vzctl ubc", argv[2]);
	ret = vz_ctl_call(&req, NULL, 0, NULL, NULL, &r, err);
	if (ret < 0)
		return ret;
	if (r->code || r->n_ves != 1) {
		vz_error_exit_msg(err, r->code ? r->code : VZ_EXIT_SYSTEM, EIO, "%s",
				  r->error ? r->error : "Bad reply");
		vz__control__reply__free_unpacked(r, NULL);
		return -EIO;
	}
	const Vz__Control__VeInfo *v = r->ves[0];

	printf("Version: 2.5\n");
	printf("       uid  resource           %20s %20s %20s %20s %20s\n", "held", "maxheld", "barrier", "limit",
	       "failcnt");
	for (size_t i = 0; i < v->n_ubc; i++) {
		const Vz__Control__Beancounter *b = v->ubc[i];

		if (i == 0)
			printf("%10u:", v->veid);
		else
			printf("           ");
		printf(" %-18s", b->name);
		if (b->unsupported) {
			printf(" %20s %20s %20s %20s %20s\n", "n/a", "n/a", "n/a", "n/a", "n/a");
			continue;
		}
		col(b->has_held, b->held);
		col(b->has_maxheld, b->maxheld);
		col(b->has_barrier, b->barrier);
		col(b->has_limit, b->limit);
		col(b->has_failcnt, b->failcnt);
		printf("\n");
	}
	printf("\nn/a: not counted by this kernel:\n");
	for (size_t i = 0; i < v->n_ubc; i++)
		if (v->ubc[i]->unsupported)
			printf("  %-14s %s\n", v->ubc[i]->name, v->ubc[i]->reason ? v->ubc[i]->reason : "");
	vz__control__reply__free_unpacked(r, NULL);
	return 0;
}
