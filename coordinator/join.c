/* vzcoord join and leave: a host enrolled into the pool, or let go, over
 * SSH (join.h). Nothing is changed on a host before its key is checked;
 * the host's files are read and written over SFTP, its agent restarted
 * by the command AGENT_RESTART names. */
#define LOG_PREFIX "join: "
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "config.h"
#include "coord.h"
#include "join.h"
#include "log.h"
#include "paths.h"
#include "ssh.h"
#include "util.h"

#define EXIT_USAGE	   2
#define JOIN_TIMEOUT_S	   30
#define RESTART_TIMEOUT_MS 60000
#define REMOTE_FILE_MAX	   (1u << 20)

struct target {
	char user[64], host[256], address[256], identity[PATH_MAX], known_hosts[PATH_MAX];
	unsigned port;
	struct coord_ssh_opts o;
};

/* The admin side's settings (join.h) and the coordinator's port. */
struct join_conf {
	char ca_dir[PATH_MAX], vz_certs[PATH_MAX], restart[1024];
	unsigned port, timeout_s;
};

/* The host's side: its VZ_ROOT as its sessions see it, and vz.conf. */
struct remote {
	char root[PATH_MAX], conf_path[PATH_MAX], name[64];
	char *conf_text;
	size_t conf_len;
	struct vz_conf conf;
};

static void remote_free(struct remote *r)
{
	free(r->conf_text);
	vz_conf_free(&r->conf);
}

static int conf_text(const struct vz_conf *c, char **out, struct vz_err *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return vz_error(err, errno, "Make a vz.conf");
	for (size_t i = 0; i < c->n; i++) {
		if (c->lines[i].key)
			fprintf(f, "%s=\"%s\"\n", c->lines[i].key, c->lines[i].value);
		else
			fprintf(f, "%s\n", c->lines[i].value);
	}
	if (fclose(f) != 0)
		return vz_error(err, errno, "Make a vz.conf");
	*out = steal_ptr(buf);
	return 0;
}

int coord_conf_edit(const char *text, size_t len, const char *key, const char *value, char **out, struct vz_err *err)
{
	_cleanup_conf_ struct vz_conf c = { 0 };
	int ret = vz_conf_parse(&c, text, len, err);

	if (ret == 0)
		ret = vz_conf_set(&c, key, value, err);
	if (ret == 0)
		ret = conf_text(&c, out, err);
	return ret;
}

static int usage_error(struct vz_err *err, const char *cmd, const char *what, const char *arg)
{
	return vz_error_exit_msg(err, EXIT_USAGE, EINVAL, "%s: %s '%s' (vzcoord --help)", cmd, what, arg);
}

static void conf_str(const struct vz_conf *f, const char *key, const char *def, char *buf, size_t len)
{
	const char *v = vz_conf_get(f, key);

	snprintf(buf, len, "%s", v && *v ? v : def);
}

static int join_conf_load(struct join_conf *jc, struct vz_err *err)
{
	_cleanup_conf_ struct vz_conf f = { 0 };
	struct coord_conf cc;
	char path[PATH_MAX], ca[PATH_MAX];
	const char *v;
	unsigned long n;
	int ret = coord_conf_load(&cc, err);

	if (ret < 0)
		return ret;
	jc->port = cc.port;
	vz_path(path, sizeof(path), COORD_CONF);
	if (vz_exists(path) && (ret = vz_conf_load(&f, path, err)) < 0)
		return ret;
	conf_str(&f, "CA_DIR", vz_path(ca, sizeof(ca), "/etc/vz/ca"), jc->ca_dir, sizeof(jc->ca_dir));
	conf_str(&f, "VZ_CERTS", "vz-certs", jc->vz_certs, sizeof(jc->vz_certs));
	conf_str(&f, "AGENT_RESTART", "systemctl restart vzagent", jc->restart, sizeof(jc->restart));
	jc->timeout_s = JOIN_TIMEOUT_S;
	v = vz_conf_get(&f, "JOIN_TIMEOUT");
	if (v && *v) {
		if (vz_parse_ulong(v, 1, 3600, &n) < 0)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: JOIN_TIMEOUT must be 1..3600", path);
		jc->timeout_s = (unsigned)n;
	}
	return 0;
}

/* A name from VZ_ROOT/etc/vz/hosts ("name address" lines), as vzmigrate
 * takes its destination; else the name itself. */
static void resolve(const char *name, char *out, size_t len)
{
	char path[PATH_MAX], line[512], n[128], a[128];
	_cleanup_fclose_ FILE *f = fopen(vz_path(path, sizeof(path), "/etc/vz/hosts"), "re");

	snprintf(out, len, "%s", name);
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %127s", n, a) == 2 && *n != '#' && !strcmp(n, name)) {
			snprintf(out, len, "%s", a);
			break;
		}
}

/* [USER@]HOST [--port N] [--identity KEY] [--known-hosts FILE]. */
static int parse_target(int argc, char **argv, struct target *t, struct vz_err *err)
{
	static const struct option opts[] = { { "port", required_argument, NULL, 'p' },
					      { "identity", required_argument, NULL, 'i' },
					      { "known-hosts", required_argument, NULL, 'k' },
					      { NULL, 0, NULL, 0 } };
	unsigned long n;
	unsigned tport;
	int c, ret;

	*t = (struct target){ 0 };
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "p:i:", opts, NULL)) != -1) {
		if (c == 'p' && vz_parse_ulong(optarg, 1, 65535, &n) == 0)
			t->port = (unsigned)n;
		else if (c == 'p')
			return usage_error(err, argv[0], "--port takes 1..65535, not", optarg);
		else if (c == 'i')
			snprintf(t->identity, sizeof(t->identity), "%s", optarg);
		else if (c == 'k')
			snprintf(t->known_hosts, sizeof(t->known_hosts), "%s", optarg);
		else
			return usage_error(err, argv[0], "unknown option", argv[optind - 1]);
	}
	if (optind == argc)
		return vz_error_exit_msg(err, EXIT_USAGE, EINVAL, "%s needs a [USER@]HOST (vzcoord --help)", argv[0]);
	if (optind != argc - 1)
		return usage_error(err, argv[0], "takes one [USER@]HOST, not", argv[argc - 1]);
	ret = coord_ssh_parse_target(argv[optind], t->user, sizeof(t->user), t->host, sizeof(t->host), &tport, err);
	if (ret < 0) {
		char msg[sizeof(err->msg)];

		snprintf(msg, sizeof(msg), "%s", err->msg);
		return vz_error_exit_msg(err, EXIT_USAGE, EINVAL, "%s: %s (vzcoord --help)", argv[0], msg);
	}
	if (!t->port)
		t->port = tport;
	resolve(t->host, t->address, sizeof(t->address));
	t->o = (struct coord_ssh_opts){ .user = t->user[0] ? t->user : "root",
					.host = t->host,
					.address = t->address,
					.port = t->port,
					.identity = t->identity[0] ? t->identity : NULL,
					.known_hosts = t->known_hosts[0] ? t->known_hosts : NULL };
	return 0;
}

/* The host's VZ_ROOT as its sessions have it ("" for /), its vz.conf
 * (none yet: empty) and its name in the pool (HOST_NAME, else its
 * hostname), as its agent takes them. */
static int remote_open(struct coord_ssh *s, const char *host, struct remote *r, struct vz_err *err)
{
	_cleanup_free_ char *out = NULL;
	const char *v;
	int ret = coord_ssh_run(s, "printf '%s' \"${VZ_ROOT:-}\"", 10000, &out, err);

	if (ret > 0)
		return vz_error_msg(err, EIO, "%s: its shell cannot say its VZ_ROOT (status %d)", host, ret);
	if (ret < 0)
		return ret;
	if (*out && (*out != '/' || strchr(out, '\n') || strlen(out) > PATH_MAX / 2))
		return vz_error_msg(err, EINVAL, "%s: VZ_ROOT is not an absolute path: '%.64s'", host, out);
	snprintf(r->root, sizeof(r->root), "%s", strcmp(out, "/") ? out : "");
	snprintf(r->conf_path, sizeof(r->conf_path), "%s%s", r->root, VZ_GLOBAL_CONF);
	ret = coord_ssh_read(s, r->conf_path, &r->conf_text, &r->conf_len, REMOTE_FILE_MAX, err);
	if (ret == -ENOENT) {
		r->conf_text = strdup("");
		r->conf_len = 0;
		ret = r->conf_text ? 0 : vz_error_msg(err, ENOMEM, "Out of memory");
	}
	if (ret == 0 && (ret = vz_conf_parse(&r->conf, r->conf_text, r->conf_len, err)) < 0)
		return vz_error_wrap(err, "%s on %s", r->conf_path, host);
	if (ret < 0)
		return ret;
	v = vz_conf_get(&r->conf, "HOST_NAME");
	if (v && *v) {
		snprintf(r->name, sizeof(r->name), "%s", v);
		return 0;
	}
	free(steal_ptr(out));
	ret = coord_ssh_run(s, "hostname", 10000, &out, err);
	if (ret > 0)
		return vz_error_msg(err, EIO, "%s: hostname failed (status %d)", host, ret);
	if (ret < 0)
		return ret;
	out[strcspn(out, "\n")] = '\0';
	snprintf(r->name, sizeof(r->name), "%s", out);
	return 0;
}

/* Where the host's agent reads a file of its identity (agent/global.c). */
static void tls_path(const struct remote *r, const char *key, const char *file, char *buf, size_t len)
{
	const char *v = vz_conf_get(&r->conf, key);

	if (v && *v)
		snprintf(buf, len, "%s", v);
	else
		snprintf(buf, len, "%s/etc/vz/tls/%s", r->root, file);
}

/* The host's certificate from the cluster CA into a directory of ours,
 * then its three files copied where its agent reads them. */
static int install_certs(struct coord_ssh *s, const struct join_conf *jc, const struct remote *r, struct vz_err *err)
{
	static const struct {
		const char *key, *file;
		mode_t mode;
	} files[] = { { "TLS_CA", "ca.crt", 0644 }, { "TLS_CERT", "host.crt", 0644 }, { "TLS_KEY", "host.key", 0600 } };
	char tmp[] = "/tmp/vzcoord-join.XXXXXX";
	char *argv[] = { (char *)jc->vz_certs,		 "host", (char *)jc->ca_dir, tmp, (char *)r->name,
			 (char *)coord_ssh_peer_addr(s), NULL };
	int ret;

	if (!mkdtemp(tmp))
		return vz_error(err, errno, "Create %s", tmp);
	ret = vz_run_checked(argv, err);
	for (size_t i = 0; ret == 0 && i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *buf = NULL;
		char local[PATH_MAX], remote[PATH_MAX];
		size_t len = 0;

		snprintf(local, sizeof(local), "%s/%s", tmp, files[i].file);
		tls_path(r, files[i].key, files[i].file, remote, sizeof(remote));
		ret = vz_read_file(local, &buf, &len, REMOTE_FILE_MAX);
		if (ret < 0)
			ret = vz_error(err, -ret, "Read %s", local);
		if (ret == 0)
			ret = coord_ssh_mkdir_parent(s, remote, 0755, err);
		if (ret == 0)
			ret = coord_ssh_write(s, remote, buf, len, files[i].mode, err);
	}
	vz_rm_rf(tmp);
	return ret;
}

/* COORDINATOR set to value (or cleared: ""), then the agent restarted
 * by AGENT_RESTART so that it reads it. */
static int point_agent(struct coord_ssh *s, const struct join_conf *jc, const struct remote *r, const char *value,
		       struct vz_err *err)
{
	_cleanup_free_ char *text = NULL, *out = NULL;
	char last[256];
	int ret = coord_conf_edit(r->conf_text, r->conf_len, "COORDINATOR", value, &text, err);

	if (ret == 0)
		ret = coord_ssh_mkdir_parent(s, r->conf_path, 0755, err);
	if (ret == 0)
		ret = coord_ssh_rewrite(s, r->conf_path, text, strlen(text), err);
	if (ret == 0)
		ret = coord_ssh_run(s, jc->restart, RESTART_TIMEOUT_MS, &out, err);
	if (ret > 0)
		return vz_error_msg(err, EIO, "The agent of %s did not restart: '%s' exited with status %d: %s",
				    r->name, jc->restart, ret, vz_last_line(out, last, sizeof(last)));
	return ret;
}

static const Vz__Pool__HostStatus *find_status(const Vz__Pool__AdminReply *st, const char *name)
{
	for (size_t i = 0; i < st->n_hosts; i++)
		if (!strcmp(st->hosts[i]->name, name))
			return st->hosts[i];
	return NULL;
}

/* Until host name is online in the coordinator's view, heard of since
 * its agent restarted (now: the agent it had before was a member too, if
 * it joins again): its VE count. */
static int wait_online(const char *name, unsigned timeout_s, unsigned *ves, struct vz_err *err)
{
	uint64_t start = vz_now_ns(), end = start + (uint64_t)timeout_s * 1000000000ull;

	for (;;) {
		Vz__Pool__AdminReply *st = NULL;
		const Vz__Pool__HostStatus *h;
		bool online;
		int ret = coord_admin_call(VZ__POOL__ADMIN_OP__ADMIN_STATUS, &st, err);

		if (ret < 0)
			return ret;
		h = find_status(st, name);
		online = h && !strcmp(h->state, "online") && h->seen_ms_ago * 1000000ull < vz_now_ns() - start;
		*ves = h ? h->ves : 0;
		vz__pool__admin_reply__free_unpacked(st, NULL);
		if (online)
			return 0;
		if (vz_now_ns() > end)
			return vz_error_msg(
			    err, ETIMEDOUT,
			    "%s did not register with the coordinator within %u s (its agent's log says why)", name,
			    timeout_s);
		nanosleep(&(struct timespec){ 0, 100000000 }, NULL);
	}
}

/* The coordinator runs, and the CA is here: else nothing is tried. */
static int preflight(const struct join_conf *jc, bool need_ca, struct vz_err *err)
{
	Vz__Pool__AdminReply *st = NULL;
	char path[PATH_MAX];
	int ret;

	if (geteuid() != 0)
		return vz_error_exit_msg(err, VZ_EXIT_PERM, EPERM, "Must run as root");
	snprintf(path, sizeof(path), "%s/ca.key", jc->ca_dir);
	if (need_ca && !vz_exists(path))
		return vz_error_msg(
		    err, ENOENT, "No cluster CA in %s (CA_DIR in vzcoord.conf; vz-certs ca DIR makes one)", jc->ca_dir);
	ret = coord_admin_call(VZ__POOL__ADMIN_OP__ADMIN_STATUS, &st, err);
	if (ret == 0)
		vz__pool__admin_reply__free_unpacked(st, NULL);
	return ret;
}

int coord_cmd_join(int argc, char **argv, struct vz_err *err)
{
	_cleanup_ssh_ struct coord_ssh *s = NULL;
	__attribute__((cleanup(remote_free))) struct remote r = { 0 };
	struct join_conf jc;
	struct target t;
	char coord[320];
	const char *local;
	unsigned ves = 0;
	int ret;

	if ((ret = parse_target(argc, argv, &t, err)) < 0 || (ret = join_conf_load(&jc, err)) < 0 ||
	    (ret = preflight(&jc, true, err)) < 0)
		return ret;
	if ((ret = coord_ssh_open(&t.o, &s, err)) < 0 || (ret = remote_open(s, t.host, &r, err)) < 0)
		return ret;
	if (!r.name[0] ||
	    strspn(r.name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(r.name) ||
	    !strcmp(r.name, COORD_CN))
		return vz_error_msg(err, EINVAL, "%s calls itself '%s': not a name a host of the pool can have", t.host,
				    r.name);
	local = coord_ssh_local_addr(s);
	snprintf(coord, sizeof(coord), strchr(local, ':') ? "[%s]:%u" : "%s:%u", local, jc.port);
	if ((ret = install_certs(s, &jc, &r, err)) < 0 || (ret = point_agent(s, &jc, &r, coord, err)) < 0 ||
	    (ret = wait_online(r.name, jc.timeout_s, &ves, err)) < 0)
		return ret;
	printf("%s joined the pool: online with %u VEs, its agent a member of %s (%s)\n", r.name, ves, coord,
	       coord_ssh_peer_addr(s));
	return 0;
}

/* The VEs the coordinator sees on host that are not stopped, as a list
 * of VEIDs into buf: their number. */
static size_t live_ves(const Vz__Pool__AdminReply *ls, const char *host, char *buf, size_t len)
{
	size_t n = 0, off = 0;

	*buf = '\0';
	for (size_t i = 0; i < ls->n_ves; i++) {
		if (strcmp(ls->ves[i]->host, host) || ls->ves[i]->state == VZ__POOL__VE_STATE__VE_STOPPED)
			continue;
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%u", n ? " " : "", ls->ves[i]->veid);
		n++;
	}
	return n;
}

/* The host as the coordinator sees it: in the pool, heard of, and no VE
 * of it running, mounted or unknown (a drained host has none). */
static int may_leave(struct target *t, struct vz_err *err)
{
	Vz__Pool__AdminReply *st = NULL, *ls = NULL;
	const Vz__Pool__HostStatus *h;
	char ves[256];
	size_t n = 0;
	int ret = coord_admin_call(VZ__POOL__ADMIN_OP__ADMIN_STATUS, &st, err);

	if (ret == 0)
		ret = coord_admin_call(VZ__POOL__ADMIN_OP__ADMIN_LIST, &ls, err);
	if (ret < 0)
		goto out;
	h = find_status(st, t->host);
	if (!h) {
		ret = vz_error_msg(err, ENOENT, "No host %s in the pool", t->host);
		goto out;
	}
	/* Not in VZ_ROOT/etc/vz/hosts: where its agent said it is. */
	if (!strcmp(t->address, t->host) && h->address && *h->address)
		snprintf(t->address, sizeof(t->address), "%s", h->address);
	/* A silent host's VEs are unknown, and after a restart of the
	 * coordinator it has no inventory at all: none may be said to run. */
	if (!strcmp(h->state, "suspect") || !strcmp(h->state, "offline")) {
		ret = vz_error_msg(err, EAGAIN, "%s is %s: its VEs are unknown, refused (leave needs its agent back)",
				   t->host, h->state);
		goto out;
	}
	n = live_ves(ls, t->host, ves, sizeof(ves));
	if (n)
		ret =
		    vz_error_msg(err, EBUSY, "%s has %zu VEs running or unknown (%s): refused (vzcoord drain %s first)",
				 t->host, n, ves, t->host);
out:
	if (st)
		vz__pool__admin_reply__free_unpacked(st, NULL);
	if (ls)
		vz__pool__admin_reply__free_unpacked(ls, NULL);
	return ret;
}

int coord_cmd_leave(int argc, char **argv, struct vz_err *err)
{
	_cleanup_ssh_ struct coord_ssh *s = NULL;
	__attribute__((cleanup(remote_free))) struct remote r = { 0 };
	Vz__Pool__AdminRequest req = VZ__POOL__ADMIN_REQUEST__INIT;
	Vz__Pool__AdminReply *rep = NULL;
	struct join_conf jc;
	struct target t;
	int ret;

	if ((ret = parse_target(argc, argv, &t, err)) < 0 || (ret = join_conf_load(&jc, err)) < 0 ||
	    (ret = preflight(&jc, false, err)) < 0 || (ret = may_leave(&t, err)) < 0)
		return ret;
	if ((ret = coord_ssh_open(&t.o, &s, err)) < 0 || (ret = remote_open(s, t.host, &r, err)) < 0 ||
	    (ret = point_agent(s, &jc, &r, "", err)) < 0)
		return ret;
	req.op = VZ__POOL__ADMIN_OP__ADMIN_LEAVE;
	req.host = t.host;
	ret = coord_admin_request(&req, &rep, err);
	if (ret < 0)
		return ret;
	vz__pool__admin_reply__free_unpacked(rep, NULL);
	printf("%s left the pool: its agent restarted with no coordinator\n", t.host);
	return 0;
}
