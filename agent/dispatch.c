/* One control request in a worker: the table of operations, and the
 * read-only ones (status, list) and set. */
#define LOG_PREFIX "dispatch: "
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "resources.h"
#include "userns.h"
#include "util.h"
#include "ve_ops.h"

static int op_ping(struct vz_call *c, struct vz_err *err)
{
	(void)c;
	(void)err;
	return 0;
}

int op_set(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	_cleanup_ve_opts_ struct ve_opts opts = { 0 };
	struct vz_progress p = vz_ctl_progress_sink(c->conn);
	pid_t init;
	int ret;

	ret = ve_open(c->req->veid, true, &ve, err);
	if (ret == 0)
		ret = ve_lock(&ve, 2000, err);
	if (ret < 0)
		return ret;
	if (c->req->n_params == 0)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Nothing to set");
	ve_state(&ve, &init);
	ret = ve_opts_from_req(c->req, &opts, err);
	if (ret == 0)
		ret = ve_apply_params(c->agent, &ve, init, &opts, &p, err);
	if (ret < 0)
		return ret;
	if (c->req->save) {
		ret = ve_save(&ve, err);
		if (ret == 0)
			vz_say(&p, "Saved parameters for VE %u", ve.veid);
	} else if (init <= 0) {
		vz_say(&p, "WARNING: Settings were not saved and will be reset to original values "
			   "on next start (use --save flag)");
	}
	return ret;
}

/* VeInfo for one VE; strings point into conf, which must outlive it. */
struct info {
	Vz__Control__VeInfo vi;
	struct vz_conf conf;
	char *ips[64];
	char ipbuf[4096];
	char userns[16];
	Vz__Control__Param params[128], *pparams[128];
};

static void info_fill(struct vz_agent *a, unsigned veid, bool with_ubc, struct info *in)
{
	struct ve ve;
	pid_t init = 0;
	enum ve_state st;
	const char *list;

	vz__control__ve_info__init(&in->vi);
	in->vi.veid = veid;
	if (ve_open(veid, false, &ve, NULL) < 0) {
		in->vi.status = VZ__CONTROL__VE_STATUS__VE_DELETED;
		return;
	}
	st = ve_state(&ve, &init);
	in->vi.status = (Vz__Control__VeStatus)st;
	{
		char dump[PATH_MAX];

		in->vi.has_suspended = 1;
		in->vi.suspended =
		    st != VE_STATE_RUNNING && vz_exists(vz_path(dump, sizeof(dump), VZ_DUMP_DIR "/Dump.%u", veid));
	}
	{
		const char *id = vz_conf_get(&ve.conf, "USERNS_UID");
		bool own = st == VE_STATE_RUNNING ? ve_pid_has_userns(init) : ve_userns_enabled(a, &ve);

		snprintf(in->userns, sizeof(in->userns), "%s", !own ? "no" : id && *id ? id : "yes");
		in->vi.userns = in->userns;
	}
	if (st == VE_STATE_RUNNING) {
		pid_t *pids = NULL;
		size_t n = 0;

		in->vi.has_init_pid = 1;
		in->vi.init_pid = init;
		if (vz_cg_pids(&a->cg, veid, &pids, &n, NULL) == 0) {
			in->vi.has_nproc = 1;
			in->vi.nproc = (uint32_t)n;
		}
		free(pids);
		if (with_ubc && res_ubc(&a->cg, veid, &ve.conf, &in->vi.ubc, &in->vi.n_ubc, NULL) < 0) {
			in->vi.ubc = NULL;
			in->vi.n_ubc = 0;
		}
	}
	if ((st == VE_STATE_RUNNING || st == VE_STATE_MOUNTED) &&
	    ve_disk_usage(&ve, &in->vi.diskspace_used, &in->vi.diskspace_total, &in->vi.diskinodes_used) == 0)
		in->vi.has_diskspace_used = in->vi.has_diskspace_total = in->vi.has_diskinodes_used = 1;
	/* Hand the config over to the info (ve_close would free it). */
	in->conf = ve.conf;
	ve.conf = (struct vz_conf){ 0 };
	ve_close(&ve);
	in->vi.hostname = (char *)vz_conf_get(&in->conf, "HOSTNAME");
	list = vz_conf_get(&in->conf, "IP_ADDRESS");
	snprintf(in->ipbuf, sizeof(in->ipbuf), "%s", list ? list : "");
	for (char *save = NULL, *tok = strtok_r(in->ipbuf, " ", &save); tok && in->vi.n_ip < 64;
	     tok = strtok_r(NULL, " ", &save)) {
		char *slash = strchr(tok, '/');

		if (slash)
			*slash = '\0';
		in->ips[in->vi.n_ip++] = tok;
	}
	in->vi.ip = in->ips;
	for (size_t i = 0; i < in->conf.n && in->vi.n_conf < 128; i++) {
		Vz__Control__Param *p = &in->params[in->vi.n_conf];

		if (!in->conf.lines[i].key)
			continue;
		vz__control__param__init(p);
		p->name = in->conf.lines[i].key;
		p->value = in->conf.lines[i].value;
		in->pparams[in->vi.n_conf++] = p;
	}
	in->vi.conf = in->pparams;
}

static int send_infos(struct vz_call *c, unsigned *veids, size_t n, struct vz_err *err)
{
	vz_reply r = VZ__CONTROL__REPLY__INIT;
	struct info *infos = calloc(n ? n : 1, sizeof(*infos));
	Vz__Control__VeInfo **vis = calloc(n ? n : 1, sizeof(*vis));
	int ret;

	if (!infos || !vis) {
		free(infos);
		free(vis);
		return vz_error_msg(err, ENOMEM, "Out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		info_fill(c->agent, veids[i], c->req->with_ubc, &infos[i]);
		vis[i] = &infos[i].vi;
	}
	r.done = 1;
	r.has_code = 1;
	r.n_ves = n;
	r.ves = vis;
	ret = vz_ctl_send_reply(c->conn, &r, NULL, 0, err);
	for (size_t i = 0; i < n; i++) {
		vz_conf_free(&infos[i].conf);
		res_ubc_free(infos[i].vi.ubc, infos[i].vi.n_ubc);
	}
	free(infos);
	free(vis);
	return ret;
}

static int op_ubc(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	int ret = ve_open(c->req->veid, true, &ve, err);

	if (ret < 0)
		return ret;
	if (ve_state(&ve, NULL) != VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_NOTRUNNING, EINVAL, "VE %u is not running", ve.veid);
	c->req->has_with_ubc = 1;
	c->req->with_ubc = 1;
	return op_status(c, err);
}

int op_status(struct vz_call *c, struct vz_err *err)
{
	unsigned veid = c->req->veid;

	return send_infos(c, &veid, 1, err);
}

int op_list(struct vz_call *c, struct vz_err *err)
{
	_cleanup_free_ unsigned *veids = NULL;
	size_t n = 0;
	int ret = ve_list(&veids, &n, err);

	if (ret < 0)
		return ret;
	return send_infos(c, veids, n, err);
}

static const struct {
	Vz__Control__Op op;
	int (*fn)(struct vz_call *, struct vz_err *);
	bool needs_veid;
	bool replies; /* sends its own final reply on success */
} ops[] = {
	{ VZ__CONTROL__OP__OP_PING, op_ping, false, false },
	{ VZ__CONTROL__OP__OP_CREATE, op_create, true, false },
	{ VZ__CONTROL__OP__OP_START, op_start, true, false },
	{ VZ__CONTROL__OP__OP_STOP, op_stop, true, false },
	{ VZ__CONTROL__OP__OP_RESTART, op_restart, true, false },
	{ VZ__CONTROL__OP__OP_STATUS, op_status, true, true },
	{ VZ__CONTROL__OP__OP_DESTROY, op_destroy, true, false },
	{ VZ__CONTROL__OP__OP_SET, op_set, true, false },
	{ VZ__CONTROL__OP__OP_EXEC, op_exec, true, true },
	{ VZ__CONTROL__OP__OP_ENTER, op_enter, true, true },
	{ VZ__CONTROL__OP__OP_LIST, op_list, false, true },
	{ VZ__CONTROL__OP__OP_MOUNT, op_mount, true, false },
	{ VZ__CONTROL__OP__OP_UMOUNT, op_umount, true, false },
	{ VZ__CONTROL__OP__OP_UBC, op_ubc, true, true },
	{ VZ__CONTROL__OP__OP_CHKPNT, op_chkpnt, true, false },
	{ VZ__CONTROL__OP__OP_RESTORE, op_restore, true, false },
	{ VZ__CONTROL__OP__OP_CKPT_CHECK, op_ckpt_check, false, false },
	{ VZ__CONTROL__OP__OP_MIGRATE, op_migrate, true, false },
};

int agent_dispatch(struct vz_call *c)
{
	struct vz_err err = { 0 };
	int ret = -EOPNOTSUPP;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(ops); i++)
		if (ops[i].op == c->req->op)
			break;
	if (i == ARRAY_SIZE(ops)) {
		vz_error_exit_msg(&err, VZ_EXIT_INVAL, EOPNOTSUPP, "Unknown operation %d", (int)c->req->op);
	} else if (ops[i].needs_veid && (!c->req->has_veid || c->req->veid == 0 || c->req->veid > INT32_MAX)) {
		vz_error_exit_msg(&err, VZ_EXIT_INVAL, EINVAL, "Missing or invalid VEID");
		ret = -EINVAL;
	} else {
		pr_debug("Op %d for VE %u", (int)c->req->op, c->req->veid);
		ret = ops[i].fn(c, &err);
		if (ret < 0)
			pr_info("VE %u: op %d failed: %s", c->req->veid, (int)c->req->op, err.msg);
		if (ret == 0 && ops[i].replies)
			return 0;
	}
	vz_ctl_finish(c->conn, ret, &err);
	return ret;
}
