/* HELLO on both ends. The source describes the move (VE, config, CRIU,
 * kernel, CPU, size, mode) and learns whether the destination takes it
 * and can restore lazily; the destination checks that the VEID, its
 * interface name, the architecture, CRIU, the CPU and the disk space
 * allow it, and whether it can restore lazily. */
#define LOG_PREFIX "migrate: "
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "criu.h"
#include "dumpfile.h"
#include "log.h"
#include "migrate_int.h"
#include "net.h"
#include "orders.h"
#include "paths.h"
#include "util.h"

/* Source: this host's CPU as CRIU describes it (cpuinfo.img), for the
 * destination to check against its own. */
static int describe_cpu(struct mig_src *s, struct vz_criu_version *ver, char **cpuinfo, size_t *len, struct vz_err *err)
{
	struct vz_criu criu = { s->a->criu };
	char dir[PATH_MAX], path[PATH_MAX + 16];
	int img = VZ_FD_INIT, work = VZ_FD_INIT, ret;

	ret = vz_criu_version(&criu, ver, err);
	if (ret == 0)
		ret = ve_make_img_dir(s->ve->veid, "cpuinfo", dir, sizeof(dir), &img, &work, err);
	if (ret == 0) {
		ret = vz_criu_cpuinfo_dump(&criu, img, err);
		snprintf(path, sizeof(path), "%s/cpuinfo.img", dir);
		if (ret == 0)
			ret = vz_read_file(path, cpuinfo, len, 1 << 20);
		vz_rm_rf(dir);
		close(img);
		close(work);
	}
	if (ret < 0)
		return vz_error_wrap(err, "Describe this host's CPU for the destination");
	return 0;
}

/* The destination's HELLO_OK: what it says about itself. */
static void hello_ok(struct mig_src *s, const mig_msg *r)
{
	vz_say(s->progress, "Destination %s: VE %u can move there (%llu MiB free, CRIU %s)", s->conn.peer, s->ve->veid,
	       (unsigned long long)(r->free_bytes >> 20), r->criu_version ? r->criu_version : "-");
	if (s->lazy && !(r->has_lazy && r->lazy)) {
		vz_say(s->progress, "The destination cannot restore lazily: stop-and-copy");
		snprintf(s->pc.why, sizeof(s->pc.why), "the destination cannot restore lazily");
		s->precopy = s->postcopy = s->lazy = false;
	}
}

int mig_hello(struct mig_src *s, struct vz_err *err)
{
	Vz__Migrate__Hello h = VZ__MIGRATE__HELLO__INIT;
	mig_msg m = VZ__MIGRATE__MSG__INIT, *r = NULL;
	struct vz_criu_version ver = { 0 };
	_cleanup_free_ char *conf = NULL, *cpuinfo = NULL;
	size_t conf_len = 0, cpu_len = 0;
	struct utsname u;
	int ret;

	uname(&u);
	ret = vz_read_file(s->ve->conf_path, &conf, &conf_len, 1 << 20);
	if (ret < 0)
		return vz_error(err, -ret, "Read %s", s->ve->conf_path);
	if (s->online) {
		ret = describe_cpu(s, &ver, &cpuinfo, &cpu_len, err);
		if (ret < 0)
			return ret;
	}
	s->private_total = 0;
	vz_du(s->ve->private, &s->private_total);
	h.veid = s->ve->veid;
	h.migration_id = s->mid;
	h.has_online = h.has_dry_run = h.has_start_after = h.has_private_bytes = h.has_conf = true;
	h.online = s->online;
	h.dry_run = s->req->dry_run;
	h.start_after = s->was_running;
	h.criu_version = ver.text;
	h.kernel = u.release;
	h.machine = u.machine;
	h.conf.data = (uint8_t *)conf;
	h.conf.len = conf_len;
	h.private_bytes = s->private_total;
	if (cpuinfo) {
		h.has_cpuinfo = true;
		h.cpuinfo.data = (uint8_t *)cpuinfo;
		h.cpuinfo.len = cpu_len;
	}
	h.has_keep_dst = true;
	h.keep_dst = s->req->keep_dst;
	/* Lazy restore: pre-copy and post-copy alike. */
	h.has_lazy = h.has_verify_memory = h.has_postcopy = true;
	h.lazy = s->lazy;
	h.postcopy = s->postcopy;
	h.verify_memory = s->verify;
	h.has_userns_uid = s->online && s->userns_src != 0;
	h.userns_uid = s->userns_src;
	h.has_source_port = true;
	h.source_port = s->a->mig_port;
	h.source_host = s->a->host_name;
	m.type = VZ__MIGRATE__TYPE__T_HELLO;
	m.hello = &h;
	ret = vz_msg_send(&s->conn, &m.base, err);
	if (ret == 0)
		ret = mig_expect(&s->conn, VZ__MIGRATE__TYPE__T_HELLO_OK, &r, err);
	if (ret < 0)
		return ret;
	hello_ok(s, r);
	mig_msg_free(r);
	return 0;
}

/* Destination: the VE's host-side interface name must be free here. */
static int check_netif(struct mig_dst *d, struct vz_err *err)
{
	const Vz__Migrate__Hello *h = d->h;
	struct vz_conf conf = { 0 };
	struct vz_netif nif;
	const char *netif;
	int ret = 0;

	if (vz_conf_parse(&conf, (const char *)h->conf.data, h->conf.len, NULL) == 0 &&
	    (netif = vz_conf_get(&conf, "NETIF")) && vz_netif_parse(netif, &nif, NULL) == 0 &&
	    vz_net_link_exists(0, nif.host_ifname))
		ret = vz_error_exit_msg(err, VZ_EXIT_VETH, EEXIST, "Interface %s of VE %u is in use on %s",
					nif.host_ifname, h->veid, d->a->host_name);
	vz_conf_free(&conf);
	return ret;
}

/* Destination: CRIU here restores what CRIU there dumps, on this CPU. */
static int check_criu(struct mig_dst *d, char *criu_text, size_t len, struct vz_err *err)
{
	const Vz__Migrate__Hello *h = d->h;
	struct vz_criu criu = { d->a->criu };
	struct vz_criu_version ver;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	int img = VZ_FD_INIT, work = VZ_FD_INIT, ret;

	if (vz_criu_version(&criu, &ver, err) < 0)
		return vz_error_wrap(err, "CRIU on %s", d->a->host_name);
	snprintf(criu_text, len, "%s", ver.text);
	if (h->online && h->criu_version && *h->criu_version && vz_version_cmp(h->criu_version, ver.text) > 0)
		return vz_error_msg(err, EPROTONOSUPPORT, "CRIU %s on %s is older than CRIU %s on the source", ver.text,
				    d->a->host_name, h->criu_version);
	if (!h->online || !h->has_cpuinfo)
		return 0;
	ret = ve_make_img_dir(h->veid, "cpucheck", dir, sizeof(dir), &img, &work, err);
	if (ret < 0)
		return ret;
	snprintf(path, sizeof(path), "%s/cpuinfo.img", dir);
	ret = vz_write_file(path, (const char *)h->cpuinfo.data, h->cpuinfo.len, 0);
	if (ret == 0)
		ret = vz_criu_cpuinfo_check(&criu, img, err);
	vz_rm_rf(dir);
	close(img);
	close(work);
	if (ret < 0)
		return vz_error_msg(err, ENOTSUP, "The CPU of %s lacks features VE %u uses: %s", d->a->host_name,
				    h->veid, err->msg);
	return 0;
}

static int check_space(struct mig_dst *d, uint64_t *free_bytes, struct vz_err *err)
{
	const Vz__Migrate__Hello *h = d->h;
	char path[PATH_MAX];
	struct statvfs sv;

	if (statvfs(vz_path(path, sizeof(path), "/vz"), &sv) != 0 && statvfs(vz_root(), &sv) != 0)
		return vz_error(err, errno, "Free space on %s", path);
	*free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (*free_bytes < h->private_bytes + h->private_bytes / 20 + (64u << 20))
		return vz_error_exit_msg(err, VZ_EXIT_NOSPACE, ENOSPC,
					 "Not enough disk space on %s: VE %u needs %llu MiB, %llu MiB free",
					 d->a->host_name, h->veid, (unsigned long long)(h->private_bytes >> 20),
					 (unsigned long long)(*free_bytes >> 20));
	return 0;
}

int mig_check_hello(struct mig_dst *d, uint64_t *free_bytes, char *criu_text, size_t len, struct vz_err *err)
{
	const Vz__Migrate__Hello *h = d->h;
	char path[PATH_MAX];
	struct utsname u;
	int ret;

	if (!mig_names_ok(h->migration_id, h->veid))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Malformed migration request");
	/* Draining (ORDER_MAINTENANCE): the VEs go, none comes. */
	if (agent_maintenance())
		return vz_error_exit_msg(err, VZ_EXIT_PERM, EBUSY, "%s is in maintenance: it takes no incoming VE",
					 d->a->host_name);
	if (vz_exists(vz_path(path, sizeof(path), VZ_CONF_DIR "/%u.conf", h->veid)))
		return vz_error_exit_msg(err, VZ_EXIT_EXISTS, EEXIST, "VE %u already exists on %s", h->veid,
					 d->a->host_name);
	if (mig_incoming_pending(h->veid))
		return vz_error_exit_msg(err, VZ_EXIT_LOCKED, EBUSY, "VE %u is already migrating to %s", h->veid,
					 d->a->host_name);
	ret = check_netif(d, err);
	if (ret < 0)
		return ret;
	uname(&u);
	if (h->machine && strcmp(h->machine, u.machine))
		return vz_error_msg(err, EPROTONOSUPPORT, "Source is %s, %s is %s", h->machine, d->a->host_name,
				    u.machine);
	ret = check_criu(d, criu_text, len, err);
	if (ret == 0)
		ret = check_space(d, free_bytes, err);
	return ret;
}

/* Destination: a lazy restore (pre-copy or post-copy) needs userfaultfd
 * and CRIU's lazy pages; ok says whether this host has them. With them,
 * the page store for the rounds. */
int mig_accept_lazy(struct mig_dst *d, mig_msg *ok, struct vz_err *err)
{
	struct vz_criu criu = { d->a->criu };
	struct vz_criu_features f = { 0 };
	char dir[PATH_MAX];

	if (!d->h->online || !d->h->has_lazy || !d->h->lazy)
		return 0;
	d->postcopy = d->h->has_postcopy && d->h->postcopy;
	ok->has_lazy = true;
	ok->lazy = vz_criu_features(&criu, &f, err) == 0 && f.lazy_pages;
	if (!ok->lazy)
		pr_warn("VE %u: no lazy pages here (%s): stop-and-copy", d->veid,
			err->msg[0] ? err->msg : "CRIU says no");
	vz_err_clear(err);
	if (!ok->lazy || d->h->dry_run)
		return 0;
	d->ps = vz_pstore_new(vz_path(dir, sizeof(dir), VZ_DUMP_DIR), err);
	if (!d->ps)
		return -EIO;
	d->pz = vz_zdec_new(err);
	if (!d->pz)
		return -ENOMEM;
	d->pbuf = malloc(MIG_PAGES_MAX);
	if (!d->pbuf)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	d->precopy = true;
	return 0;
}
