/* migrate.proto on a connection, for both sides: send a type, an error or
 * a message naming a migration; receive and expect; PAGES out and their
 * validation in (pure); TLS and loopback connections; the peer's address.
 * Nothing here knows which side it serves. */
#define LOG_PREFIX "migrate: "
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "log.h"
#include "migrate_int.h"
#include "paths.h"
#include "util.h"

double mig_ms_since(uint64_t t0)
{
	return (double)(vz_now_ns() - t0) / 1e6;
}

int mig_send_type(struct vz_conn *c, Vz__Migrate__Type t, struct vz_err *err)
{
	mig_msg m = VZ__MIGRATE__MSG__INIT;

	m.type = t;
	return vz_msg_send(c, &m.base, err);
}

void mig_send_error(struct vz_conn *c, int code, const char *text)
{
	mig_msg m = VZ__MIGRATE__MSG__INIT;
	struct vz_err e = { 0 };

	m.type = VZ__MIGRATE__TYPE__T_ERROR;
	m.error = (char *)text;
	m.has_exit_code = true;
	m.exit_code = (uint32_t)(code ? code : VZ_EXIT_SYSTEM);
	vz_msg_send(c, &m.base, &e);
}

int mig_recv(struct vz_conn *c, mig_msg **m, struct vz_err *err)
{
	return vz_msg_recv(c, &vz__migrate__msg__descriptor, VZ_MSG_MAX, (ProtobufCMessage **)m, err);
}

void mig_msg_free(mig_msg *m)
{
	if (m)
		vz__migrate__msg__free_unpacked(m, NULL);
}

int mig_expect(struct vz_conn *c, Vz__Migrate__Type want, mig_msg **out, struct vz_err *err)
{
	mig_msg *m = NULL;
	int ret = mig_recv(c, &m, err);

	if (ret < 0)
		return ret;
	if (m->type == VZ__MIGRATE__TYPE__T_ERROR) {
		ret = vz_error_exit_msg(err, m->has_exit_code ? (int)m->exit_code : VZ_EXIT_SYSTEM, EREMOTEIO, "%s: %s",
					c->peer, m->error ? m->error : "unknown error");
		mig_msg_free(m);
		return ret;
	}
	if (m->type != want) {
		ret =
		    vz_error_msg(err, EPROTO, "%s sent message %d where %d was due", c->peer, (int)m->type, (int)want);
		mig_msg_free(m);
		return ret;
	}
	if (out)
		*out = m;
	else
		mig_msg_free(m);
	return 0;
}

/* The VEID travels in Msg.veid, and in Msg.offset too for a peer from
 * before veid existed. */
int mig_send_named(struct vz_conn *c, Vz__Migrate__Type type, const char *mid, unsigned veid, struct vz_err *err)
{
	mig_msg q = VZ__MIGRATE__MSG__INIT;

	q.type = type;
	q.migration_id = (char *)mid;
	q.has_veid = true;
	q.veid = veid;
	q.has_offset = true;
	q.offset = veid;
	return vz_msg_send(c, &q.base, err);
}

bool mig_named_ok(const mig_msg *m, unsigned *veid)
{
	uint64_t v = m->has_veid ? m->veid : m->has_offset ? m->offset : 0;

	if (!mig_names_ok(m->migration_id, v))
		return false;
	*veid = (unsigned)v;
	return true;
}

int mig_send_pages(struct vz_conn *c, struct vz_zenc *z, uint32_t vpid, uint64_t vaddr, const void *data, size_t len,
		   struct vz_err *err)
{
	mig_msg m = VZ__MIGRATE__MSG__INIT;
	const void *out;
	size_t olen;
	int ret = vz_zenc_chunk(z, data, len, &out, &olen, err);

	if (ret < 0)
		return ret;
	m.type = VZ__MIGRATE__TYPE__T_PAGES;
	m.has_vpid = m.has_vaddr = m.has_raw_len = m.has_data = true;
	m.vpid = vpid;
	m.vaddr = vaddr;
	m.raw_len = len;
	m.data.data = (uint8_t *)out;
	m.data.len = olen;
	return vz_msg_send(c, &m.base, err);
}

bool mig_pages_ok(const mig_msg *m)
{
	size_t raw = m->has_raw_len ? (size_t)m->raw_len : 0;

	return m->has_vpid && m->has_vaddr && m->has_data && raw != 0 && raw % 4096 == 0 && raw <= MIG_PAGES_MAX &&
	       m->vpid != 0 && m->vpid <= INT32_MAX;
}

struct vz_tls *mig_tls(struct vz_agent *a, bool server, struct vz_err *err)
{
	struct vz_tls *t = NULL;

	if (vz_tls_new(&t, a->tls_ca, a->tls_cert, a->tls_key, server, err) < 0)
		return NULL;
	return t;
}

int mig_connect(struct vz_agent *a, const char *host, unsigned port, int io_timeout_ms, struct vz_conn *c,
		struct vz_err *err)
{
	struct vz_tls *tls = mig_tls(a, false, err);
	int ret;

	if (!tls)
		return err->errnum ? -err->errnum : -EIO;
	ret = vz_tls_connect(tls, host, port, MIG_CONNECT_TIMEOUT_MS, io_timeout_ms, c, err);
	vz_tls_free(tls);
	return ret;
}

void mig_resolve_dest(const char *dest, char *out, size_t len)
{
	char path[PATH_MAX], line[512];
	_cleanup_fclose_ FILE *f = fopen(vz_path(path, sizeof(path), "/etc/vz/hosts"), "re");

	snprintf(out, len, "%s", dest);
	while (f && fgets(line, sizeof(line), f)) {
		char name[128], addr[128];

		if (sscanf(line, "%127s %127s", name, addr) == 2 && name[0] != '#' && !strcmp(name, dest)) {
			snprintf(out, len, "%s", addr);
			return;
		}
	}
}

int mig_loopback_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ret;

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

void mig_kill_all(struct vz_agent *a, unsigned veid)
{
	_cleanup_free_ pid_t *pids = NULL;
	size_t n = 0;

	if (vz_cg_pids(&a->cg, veid, &pids, &n, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
}
