/* The admin socket, VZ_ROOT/run/vz/vzcoord.sock: one AdminRequest and one
 * AdminReply per connection, root peers only (peer credentials, as the
 * agent's control socket). Both sides are here. */
#define LOG_PREFIX "admin: "
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cleanup.h"
#include "control.h"
#include "coord.h"
#include "join.h"
#include "log.h"
#include "paths.h"
#include "util.h"

#define ADMIN_TIMEOUT_MS 5000
/* A request is small but for exec's command and VE list. */
#define ADMIN_REQUEST_MAX (1u << 20)

static void set_timeout(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* true: conn was kept by what the admin waits for. */
static bool answer(struct coord *c, struct vz_conn *conn, const Vz__Pool__AdminRequest *req)
{
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	struct vz_err err = { 0 };
	uint64_t now = vz_now_ns();

	/* A change of state is logged before anyone is shown it. */
	pool_tick(&c->pool, now);
	if (req->magic == POOL_MAGIC && req->version == POOL_VERSION &&
	    (req->op == VZ__POOL__ADMIN_OP__ADMIN_MIGRATE || req->op == VZ__POOL__ADMIN_OP__ADMIN_DRAIN ||
	     req->op == VZ__POOL__ADMIN_OP__ADMIN_UNDRAIN))
		return coord_admin_moves(c, conn, req);
	if (req->magic == POOL_MAGIC && req->version == POOL_VERSION && req->op == VZ__POOL__ADMIN_OP__ADMIN_REBALANCE)
		return coord_rebalance_admin(c, conn, req);
	if (req->magic != POOL_MAGIC || req->version != POOL_VERSION) {
		vz_error_msg(&err, EPROTO, "Not an admin request of version %u", POOL_VERSION);
	} else if (req->op == VZ__POOL__ADMIN_OP__ADMIN_EXEC) {
		coord_exec_start(c, conn, req);
		return false;
	} else if (req->op == VZ__POOL__ADMIN_OP__ADMIN_LEAVE) {
		pool_forget(&c->pool, req->host ? req->host : "", now, &err);
	} else if (req->op != VZ__POOL__ADMIN_OP__ADMIN_STATUS && req->op != VZ__POOL__ADMIN_OP__ADMIN_LIST) {
		vz_error_msg(&err, EOPNOTSUPP, "Unknown admin operation %d", (int)req->op);
	} else {
		pool_report(&c->pool, now, &r, &err);
	}
	if (err.msg[0])
		r.error = err.msg;
	if (vz_msg_send(conn, &r.base, &err) < 0)
		pr_warn("Answer an admin: %s", err.msg);
	pool_report_free(&r);
	return false;
}

void coord_admin_accept(struct coord *c)
{
	Vz__Pool__AdminRequest *req = NULL;
	struct vz_err err = { 0 };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct vz_conn conn;
	bool kept = false;
	int fd = accept4(c->admin_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	vz_conn_plain(&conn, fd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != 0) {
		Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;

		pr_warn("Refused an admin with uid %d: root only", (int)cred.uid);
		r.error = "Permission denied: vzcoord serves root only";
		vz_msg_send(&conn, &r.base, &err);
		vz_conn_close(&conn);
		return;
	}
	set_timeout(fd, ADMIN_TIMEOUT_MS);
	if (vz_msg_recv(&conn, &vz__pool__admin_request__descriptor, ADMIN_REQUEST_MAX, (ProtobufCMessage **)&req,
			&err) < 0)
		pr_warn("Bad admin request: %s", err.msg);
	else if (answer(c, &conn, req))
		kept = true;
	if (req)
		vz__pool__admin_request__free_unpacked(req, NULL);
	if (!kept)
		vz_conn_close(&conn);
}

/* Connect to vzcoord serve and send req (its magic and version set). */
static int admin_send(Vz__Pool__AdminRequest *req, int *fd, struct vz_conn *conn, struct vz_err *err)
{
	char path[PATH_MAX];
	int ret;

	ret = vz_unix_connect(vz_path(path, sizeof(path), COORD_SOCK), "vzcoord serve", fd, err);
	if (ret < 0)
		return ret;
	set_timeout(*fd, ADMIN_TIMEOUT_MS);
	vz_conn_plain(conn, *fd);
	snprintf(conn->peer, sizeof(conn->peer), "vzcoord");
	req->magic = POOL_MAGIC;
	req->version = POOL_VERSION;
	return vz_msg_send(conn, &req->base, err);
}

static int said_error(const char *error, struct vz_err *err)
{
	return vz_error_exit_msg(err, strstr(error, "Permission denied") ? VZ_EXIT_PERM : VZ_EXIT_SYSTEM, EIO,
				 "The coordinator says: %s", error);
}

int coord_admin_call(Vz__Pool__AdminOp op, Vz__Pool__AdminReply **reply, struct vz_err *err)
{
	Vz__Pool__AdminRequest req = VZ__POOL__ADMIN_REQUEST__INIT;

	req.op = op;
	return coord_admin_request(&req, reply, err);
}

int coord_admin_request(Vz__Pool__AdminRequest *req, Vz__Pool__AdminReply **reply, struct vz_err *err)
{
	_cleanup_close_ int fd = VZ_FD_INIT;
	struct vz_conn conn;
	int ret;

	ret = admin_send(req, &fd, &conn, err);
	if (ret == 0)
		ret = vz_msg_recv(&conn, &vz__pool__admin_reply__descriptor, POOL_MSG_MAX * 2,
				  (ProtobufCMessage **)reply, err);
	if (ret < 0)
		return ret;
	if ((*reply)->error) {
		ret = said_error((*reply)->error, err);
		vz__pool__admin_reply__free_unpacked(*reply, NULL);
		*reply = NULL;
	}
	return ret;
}

int coord_admin_stream(Vz__Pool__AdminRequest *req, void (*on_reply)(void *arg, const Vz__Pool__AdminReply *r),
		       void *arg, struct vz_err *err)
{
	_cleanup_close_ int fd = VZ_FD_INIT;
	struct vz_conn conn;
	int ret = admin_send(req, &fd, &conn, err);

	/* A move may say nothing for a while: no timeout, the end of the
	 * coordinator's socket is the end. */
	if (ret == 0)
		set_timeout(fd, 0);
	while (ret == 0) {
		Vz__Pool__AdminReply *r = NULL;

		ret =
		    vz_msg_recv(&conn, &vz__pool__admin_reply__descriptor, POOL_MSG_MAX, (ProtobufCMessage **)&r, err);
		if (ret < 0)
			return ret;
		on_reply(arg, r);
		if (r->done || (r->error && !r->has_done)) {
			ret = r->error ? said_error(r->error, err) : 0;
			if (ret < 0 && r->has_exit_code && r->exit_code > 0)
				err->exit_code = r->exit_code;
			vz__pool__admin_reply__free_unpacked(r, NULL);
			return ret;
		}
		vz__pool__admin_reply__free_unpacked(r, NULL);
	}
	return ret;
}
