/* Creating and destroying VEs, mounting and unmounting their root. */
#define LOG_PREFIX "create: "
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "disk.h"
#include "log.h"
#include "orders.h"
#include "paths.h"
#include "util.h"
#include "ve_ops.h"

static int valid_template_name(const char *s)
{
	if (!*s || strlen(s) > 128 || strstr(s, ".."))
		return 0;
	for (const char *p = s; *p; p++)
		if (*p == '/' || *p <= ' ')
			return 0;
	return 1;
}

static int unpack_template(const char *cache, const char *dir, struct vz_err *err)
{
	char *argv[] = { "tar",		"--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf",
			 (char *)cache, "-C",	  (char *)dir,	     NULL };
	int ret = vz_run_checked(argv, err);

	if (ret < 0)
		return vz_error_wrap(err, "Unpack template %s", cache);
	return 0;
}

int op_create(struct vz_call *c, struct vz_err *err)
{
	const char *tmpl = ve_req_param(c->req, "ostemplate");
	_cleanup_ve_ struct ve ve;
	_cleanup_ve_opts_ struct ve_opts opts = { 0 };
	char cache[PATH_MAX], buf[PATH_MAX];
	const char *layout;
	bool image;
	int ret;

	ret = ve_open(c->req->veid, false, &ve, err);
	if (ret == 0)
		ret = agent_maintenance_check_create(c->agent, err);
	if (ret < 0)
		return ret;
	if (vz_exists(ve.conf_path))
		return vz_error_exit_msg(err, VZ_EXIT_EXISTS, EEXIST, "VE %u already exists", ve.veid);
	if (!tmpl)
		tmpl = vz_conf_get(&c->agent->global, "DEF_OSTEMPLATE");
	if (!tmpl || !*tmpl)
		return vz_error_exit_msg(err, VZ_EXIT_NOTEMPLATE_ARG, EINVAL,
					 "OS template is not specified: use --ostemplate NAME");
	if (!valid_template_name(tmpl))
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "Invalid OS template name '%s'", tmpl);
	vz_path_template_cache(cache, sizeof(cache), tmpl);
	if (!vz_exists(cache))
		return vz_error_exit_msg(err, VZ_EXIT_NOTEMPLATE, ENOENT,
					 "OS template %s not found: no cache %s (make one with vzpkg create cache %s)",
					 tmpl, cache, tmpl);
	/* Check every other option before anything is made. */
	ret = ve_opts_from_req(c->req, &opts, err);
	if (ret == 0)
		ret = ve_apply_params(c->agent, &ve, 0, &opts, NULL, err);
	if (ret < 0)
		return ret;
	ret = ve_lock(&ve, 0, err);
	if (ret < 0)
		return ret;
	if (vz_exists(ve.private))
		return vz_error_exit_msg(err, VZ_EXIT_EXISTS, EEXIST, "Private area %s already exists", ve.private);

	/* An image when a disk size is asked for here or by vz.conf. */
	layout = vz_conf_get(&c->agent->global, "VE_LAYOUT");
	image = vz_conf_get(&ve.conf, "DISKSPACE") || (layout && !strcmp(layout, "ploop"));
	if (image && !vz_conf_get(&ve.conf, "DISKSPACE")) {
		const char *def = vz_conf_get(&c->agent->global, "DISKSPACE");

		ret = disk_set_option(&ve, "diskspace", def && *def ? def : "10G", err);
		if (ret < 0)
			return vz_error_wrap(err, "DISKSPACE in vz.conf");
	}
	ret = vz_conf_set(&ve.conf, "VE_LAYOUT", image ? "ploop" : "simfs", err);
	if (ret < 0)
		return ret;
	vz_ctl_progress(c->conn, "Creating VE private area (%s)", tmpl);
	ret = disk_create(&ve, image, disk_conf_bytes(&ve), err);
	if (ret < 0)
		goto on_error;
	ret = ve_mount(&ve, err);
	if (ret < 0) {
		err->exit_code = VZ_EXIT_CREATE;
		goto on_error;
	}
	ret = unpack_template(cache, ve.root, err);
	if (ret < 0) {
		err->exit_code = VZ_EXIT_CREATE;
		goto on_umount;
	}
	snprintf(buf, sizeof(buf), "%s/sbin/init", ve.root);
	if (!vz_exists(buf)) {
		ret = vz_error_exit_msg(err, VZ_EXIT_BROKEN, ENOENT, "Template %s has no /sbin/init", tmpl);
		goto on_umount;
	}
	ret = ve_umount(&ve, err);
	if (ret < 0)
		goto on_error;
	rmdir(ve.root);
	ret = vz_conf_set(&ve.conf, "VE_ROOT", VZ_ROOT_DIR "/$VEID", err);
	if (ret == 0)
		ret = vz_conf_set(&ve.conf, "VE_PRIVATE", VZ_PRIVATE_DIR "/$VEID", err);
	if (ret == 0)
		ret = vz_conf_set(&ve.conf, "OSTEMPLATE", tmpl, err);
	if (ret < 0)
		goto on_error;
	ret = vz_mkdir_p(vz_path(buf, sizeof(buf), VZ_CONF_DIR), 0755);
	if (ret < 0) {
		vz_error(err, -ret, "Create %s", buf);
		goto on_error;
	}
	/* The config is written last: a VE exists once it is there. */
	ret = ve_save(&ve, err);
	if (ret < 0)
		goto on_error;
	pr_info("VE %u: created from %s", ve.veid, tmpl);
	vz_ctl_progress(c->conn, "VE private area was created");
	return 0;

on_umount : {
	struct vz_err e2 = { 0 };

	ve_umount(&ve, &e2);
}
on_error:
	rmdir(ve.root);
	vz_rm_rf(ve.private);
	return ret;
}

int ve_destroy_files(struct ve *ve, struct vz_err *err)
{
	int ret = ve_umount(ve, err);

	if (ret < 0)
		return ret;
	ret = vz_rm_rf(ve->private);
	if (ret < 0)
		return vz_error_exit(err, VZ_EXIT_DESTROY, -ret, "Remove %s", ve->private);
	rmdir(ve->root);
	if (unlink(ve->conf_path) != 0 && errno != ENOENT)
		return vz_error_exit(err, VZ_EXIT_DESTROY, errno, "Remove %s", ve->conf_path);
	return 0;
}

int op_destroy(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	char path[PATH_MAX];
	int ret;

	ret = ve_open(c->req->veid, true, &ve, err);
	if (ret < 0)
		return ret;
	ret = ve_lock(&ve, 2000, err);
	if (ret < 0)
		return ret;
	if (ve_state(&ve, NULL) == VE_STATE_RUNNING)
		return vz_error_exit_msg(err, VZ_EXIT_RUNNING, EBUSY, "VE %u is running: stop it first", ve.veid);
	vz_ctl_progress(c->conn, "Destroying VE private area: %s", ve.private);
	ret = ve_destroy_files(&ve, err);
	if (ret < 0)
		return ret;
	unlink(vz_path(path, sizeof(path), VZ_LOCK_DIR "/%u.lck", ve.veid));
	pr_info("VE %u: destroyed", ve.veid);
	vz_ctl_progress(c->conn, "VE private area was destroyed");
	return 0;
}

int op_mount(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	int ret;

	ret = ve_open(c->req->veid, true, &ve, err);
	if (ret == 0)
		ret = ve_lock(&ve, 2000, err);
	if (ret < 0)
		return ret;
	if (ve_is_mounted(&ve))
		return vz_error_exit_msg(err, VZ_EXIT_MOUNTED, EBUSY, "VE %u is already mounted", ve.veid);
	ret = ve_mount(&ve, err);
	if (ret == 0)
		vz_ctl_progress(c->conn, "VE is mounted");
	return ret;
}

int op_umount(struct vz_call *c, struct vz_err *err)
{
	_cleanup_ve_ struct ve ve;
	int ret;

	ret = ve_open(c->req->veid, true, &ve, err);
	if (ret == 0)
		ret = ve_lock(&ve, 2000, err);
	if (ret < 0)
		return ret;
	switch (ve_state(&ve, NULL)) {
	case VE_STATE_RUNNING:
		return vz_error_exit_msg(err, VZ_EXIT_RUNNING, EBUSY, "VE %u is running: stop it first", ve.veid);
	case VE_STATE_MOUNTED: break;
	default: return vz_error_exit_msg(err, VZ_EXIT_NOTMOUNTED, EINVAL, "VE %u is not mounted", ve.veid);
	}
	ret = ve_umount(&ve, err);
	if (ret == 0)
		vz_ctl_progress(c->conn, "VE is unmounted");
	return ret;
}
