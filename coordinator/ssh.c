/* The SSH client of vzcoord join and leave (ssh.h), on libssh2 in its
 * blocking mode with a session timeout. The host key is checked against
 * known_hosts right after the key exchange, before the user's name or
 * key is sent, as OpenSSH's StrictHostKeyChecking=yes does. */
#define LOG_PREFIX "ssh: "
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <limits.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "ssh.h"
#include "util.h"

#define RUN_OUT_MAX	(64u << 10)
#define KNOWN_HOSTS_MAX (16u << 20)

struct coord_ssh {
	int fd;
	LIBSSH2_SESSION *session;
	LIBSSH2_SFTP *sftp;
	unsigned timeout_ms;
	char host[256];
	char local[INET6_ADDRSTRLEN], peer[INET6_ADDRSTRLEN];
};

static bool name_char(char c)
{
	return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_' || c == ':';
}

int coord_ssh_parse_target(const char *s, char *user, size_t user_len, char *host, size_t host_len, unsigned *port,
			   struct vz_err *err)
{
	const char *at = strrchr(s, '@'), *h = at ? at + 1 : s, *end, *colon = NULL;
	unsigned long n;
	size_t hl;

	*port = 0;
	if (at && (at == s || (size_t)(at - s) >= user_len))
		return vz_error_msg(err, EINVAL, "Bad user in '%s'", s);
	snprintf(user, user_len, "%.*s", at ? (int)(at - s) : 0, s);
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end || (end[1] && end[1] != ':'))
			return vz_error_msg(err, EINVAL, "Bad address in '%s': [ADDRESS]:PORT", s);
		colon = end[1] ? end + 1 : NULL;
		h++;
	} else {
		colon = strchr(h, ':');
		/* Two colons or more: an IPv6 address with no port. */
		if (colon && strchr(colon + 1, ':'))
			colon = NULL;
		end = colon ? colon : h + strlen(h);
	}
	hl = (size_t)(end - h);
	if (!hl || hl >= host_len)
		return vz_error_msg(err, EINVAL, "No host in '%s'", s);
	for (size_t i = 0; i < hl; i++)
		if (!name_char(h[i]))
			return vz_error_msg(err, EINVAL, "Bad host in '%s'", s);
	if (colon) {
		if (vz_parse_ulong(colon + 1, 1, 65535, &n) < 0)
			return vz_error_msg(err, EINVAL, "Bad port in '%s'", s);
		*port = (unsigned)n;
	}
	snprintf(host, host_len, "%.*s", (int)hl, h);
	return 0;
}

static const char *ssh_error(const struct coord_ssh *s)
{
	char *msg = NULL;
	int len = 0;

	libssh2_session_last_error(s->session, &msg, &len, 0);
	return msg && *msg ? msg : "no reason given";
}

static void addr_text(const struct sockaddr_storage *sa, char *buf, size_t len)
{
	const void *a = sa->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
						  : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;

	if (!inet_ntop(sa->ss_family, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

/* A TCP connection within the timeout, to the first address that answers. */
static int tcp_connect(struct coord_ssh *s, const char *addr, unsigned port, struct vz_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char service[16];
	int ret, e = EHOSTUNREACH;

	snprintf(service, sizeof(service), "%u", port);
	ret = getaddrinfo(addr, service, &hints, &res);
	if (ret != 0)
		return vz_error_msg(err, EHOSTUNREACH, "Cannot resolve %s: %s", addr, gai_strerror(ret));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		struct pollfd p = { .events = POLLOUT };
		socklen_t elen = sizeof(e);
		struct sockaddr_storage sa;
		socklen_t salen = sizeof(sa);

		p.fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (p.fd < 0) {
			e = errno;
			continue;
		}
		if (connect(p.fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
			e = errno;
		else if (poll(&p, 1, (int)s->timeout_ms) != 1)
			e = ETIMEDOUT;
		else if (getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &e, &elen) == 0 && e == 0) {
			fcntl(p.fd, F_SETFL, fcntl(p.fd, F_GETFL) & ~O_NONBLOCK);
			s->fd = p.fd;
			if (getsockname(p.fd, (struct sockaddr *)&sa, &salen) == 0)
				addr_text(&sa, s->local, sizeof(s->local));
			addr_text((const struct sockaddr_storage *)ai->ai_addr, s->peer, sizeof(s->peer));
			freeaddrinfo(res);
			return 0;
		}
		close(p.fd);
	}
	freeaddrinfo(res);
	return vz_error(err, e, "Cannot reach %s port %u", addr, port);
}

static int knownhost_key_type(int hostkey_type)
{
	switch (hostkey_type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
	default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
	}
}

/* The key's SHA256 fingerprint as ssh-keygen -l prints it. */
static void fingerprint(struct coord_ssh *s, char *buf, size_t len)
{
	const unsigned char *h = (const unsigned char *)libssh2_hostkey_hash(s->session, LIBSSH2_HOSTKEY_HASH_SHA256);
	unsigned char b64[64];
	int n;

	if (!h) {
		snprintf(buf, len, "unknown");
		return;
	}
	n = EVP_EncodeBlock(b64, h, 32);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	snprintf(buf, len, "SHA256:%.*s", n, b64);
}

/* known_hosts line by line: a line libssh2 cannot take (a key type it
 * does not know, a @cert-authority marker) is passed over, as OpenSSH
 * passes over what it does not know, rather than refusing every host. A
 * missing file knows no host. */
static int read_known_hosts(LIBSSH2_KNOWNHOSTS *kh, const char *file, struct vz_err *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0, skipped = 0;
	int ret = vz_read_file(file, &text, &len, KNOWN_HOSTS_MAX);

	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return vz_error(err, -ret, "Read %s", file);
	for (char *line = text, *nl; line < text + len; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(text + len - line));
		if (!nl)
			nl = text + len;
		/* libssh2 takes the key to the line's NUL, whatever its length. */
		*nl = '\0';
		if (nl > line && *line != '#' &&
		    libssh2_knownhost_readline(kh, line, (size_t)(nl - line), LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
			skipped++;
	}
	if (skipped)
		pr_debug("%s: %zu lines passed over", file, skipped);
	return 0;
}

/* The host key against known_hosts, under the name the admin gave and
 * then under its address: a match under either lets us in, a key that
 * differs under either refuses. */
static int check_host_key(struct coord_ssh *s, const struct coord_ssh_opts *o, const char *file, struct vz_err *err)
{
	LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s->session);
	const char *names[2] = { o->host, s->peer }, *key;
	int type, mask, r = LIBSSH2_KNOWNHOST_CHECK_NOTFOUND, ret = 0;
	unsigned port = o->port ? o->port : COORD_SSH_PORT;
	char fp[80];
	size_t len;

	if (!kh)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	key = libssh2_session_hostkey(s->session, &len, &type);
	mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | knownhost_key_type(type);
	if (!key)
		ret = vz_error_msg(err, EPROTO, "%s sent no host key", o->host);
	else
		ret = read_known_hosts(kh, file, err);
	for (size_t i = 0; ret == 0 && i < 2 && r != LIBSSH2_KNOWNHOST_CHECK_MISMATCH; i++) {
		int ri = libssh2_knownhost_checkp(kh, names[i], (int)port, key, len, mask, NULL);

		if (ri == LIBSSH2_KNOWNHOST_CHECK_MATCH && r == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND)
			r = ri;
		else if (ri == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
			r = ri;
	}
	libssh2_knownhost_free(kh);
	if (ret < 0 || r == LIBSSH2_KNOWNHOST_CHECK_MATCH)
		return ret;
	fingerprint(s, fp, sizeof(fp));
	if (r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
		return vz_error_msg(
		    err, EPERM, "Host key of %s (%s) is not the one %s holds: refused, nothing done (its key is %s)",
		    o->host, s->peer, file, fp);
	return vz_error_msg(err, EPERM,
			    "Host key of %s (%s) is unknown: refused, nothing done (add it to %s once %s is checked)",
			    o->host, s->peer, file, fp);
}

static int home_file(const char *name, char *buf, size_t len)
{
	const char *home = getenv("HOME");

	if (!home || !*home)
		home = "/root";
	snprintf(buf, len, "%s/.ssh/%s", home, name);
	return vz_exists(buf);
}

static int login(struct coord_ssh *s, const struct coord_ssh_opts *o, struct vz_err *err)
{
	const char *user = o->user && *o->user ? o->user : "root";
	char key[PATH_MAX];

	if (o->identity)
		snprintf(key, sizeof(key), "%s", o->identity);
	else if (!home_file("id_ed25519", key, sizeof(key)) && !home_file("id_rsa", key, sizeof(key)))
		return vz_error_msg(
		    err, ENOENT, "No key to log in to %s with: no ~/.ssh/id_ed25519 or id_rsa (--identity)", o->host);
	if (!vz_exists(key))
		return vz_error_msg(err, ENOENT, "No key %s", key);
	if (libssh2_userauth_publickey_fromfile_ex(s->session, user, (unsigned)strlen(user), NULL, key, NULL) != 0)
		return vz_error_msg(err, EACCES, "%s@%s refused the key %s: %s", user, o->host, key, ssh_error(s));
	return 0;
}

int coord_ssh_open(const struct coord_ssh_opts *o, struct coord_ssh **out, struct vz_err *err)
{
	_cleanup_ssh_ struct coord_ssh *s = calloc(1, sizeof(*s));
	char kh[PATH_MAX];
	int ret;

	if (!s)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	s->fd = VZ_FD_INIT;
	s->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
	snprintf(s->host, sizeof(s->host), "%s", o->host);
	if (libssh2_init(0) != 0)
		return vz_error_msg(err, EIO, "Cannot start libssh2");
	ret = tcp_connect(s, o->address ? o->address : o->host, o->port ? o->port : COORD_SSH_PORT, err);
	if (ret < 0)
		return ret;
	s->session = libssh2_session_init();
	if (!s->session)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	libssh2_session_set_blocking(s->session, 1);
	libssh2_session_set_timeout(s->session, (long)s->timeout_ms);
	if (libssh2_session_handshake(s->session, s->fd) != 0)
		return vz_error_msg(err, EPROTO, "SSH handshake with %s (%s) failed: %s", o->host, s->peer,
				    ssh_error(s));
	if (o->known_hosts)
		snprintf(kh, sizeof(kh), "%s", o->known_hosts);
	else
		home_file("known_hosts", kh, sizeof(kh));
	ret = check_host_key(s, o, kh, err);
	if (ret == 0)
		ret = login(s, o, err);
	if (ret < 0)
		return ret;
	*out = steal_ptr(s);
	return 0;
}

void coord_ssh_close(struct coord_ssh *s)
{
	if (!s)
		return;
	if (s->sftp)
		libssh2_sftp_shutdown(s->sftp);
	if (s->session) {
		libssh2_session_disconnect(s->session, "vzcoord is done");
		libssh2_session_free(s->session);
	}
	vz_closep(&s->fd);
	free(s);
}

const char *coord_ssh_local_addr(const struct coord_ssh *s)
{
	return s->local;
}

const char *coord_ssh_peer_addr(const struct coord_ssh *s)
{
	return s->peer;
}

static int append(char **buf, size_t *n, const char *data, size_t len, size_t max)
{
	size_t take = len < max - *n ? len : max - *n;
	char *p;

	if (!take)
		return 0;
	p = realloc(*buf, *n + take + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p + *n, data, take);
	*n += take;
	p[*n] = '\0';
	*buf = p;
	return 0;
}

int coord_ssh_run(struct coord_ssh *s, const char *cmd, unsigned timeout_ms, char **out, struct vz_err *err)
{
	_cleanup_free_ char *text = NULL;
	LIBSSH2_CHANNEL *ch;
	char *sig = NULL;
	size_t n = 0;
	ssize_t r;
	int status;

	libssh2_session_set_timeout(s->session, (long)timeout_ms);
	ch = libssh2_channel_open_session(s->session);
	if (!ch)
		return vz_error_msg(err, EIO, "Open a session on %s: %s", s->host, ssh_error(s));
	libssh2_channel_handle_extended_data2(ch, LIBSSH2_CHANNEL_EXTENDED_DATA_MERGE);
	if (libssh2_channel_exec(ch, cmd) != 0) {
		libssh2_channel_free(ch);
		return vz_error_msg(err, EIO, "Run a command on %s: %s", s->host, ssh_error(s));
	}
	for (;;) {
		char tmp[4096];

		r = libssh2_channel_read(ch, tmp, sizeof(tmp));
		if (r <= 0)
			break;
		if (append(&text, &n, tmp, (size_t)r, RUN_OUT_MAX) < 0)
			r = LIBSSH2_ERROR_ALLOC;
	}
	if (r < 0) {
		libssh2_channel_free(ch);
		libssh2_session_set_timeout(s->session, (long)s->timeout_ms);
		return vz_error_msg(err, r == LIBSSH2_ERROR_TIMEOUT ? ETIMEDOUT : EIO, "A command on %s: %s", s->host,
				    r == LIBSSH2_ERROR_TIMEOUT ? "no end within its time" : ssh_error(s));
	}
	libssh2_channel_close(ch);
	libssh2_channel_wait_closed(ch);
	status = libssh2_channel_get_exit_status(ch);
	libssh2_channel_get_exit_signal(ch, &sig, NULL, NULL, NULL, NULL, NULL);
	if (sig) {
		status = 128 + 15;
		libssh2_free(s->session, sig);
	}
	libssh2_channel_free(ch);
	libssh2_session_set_timeout(s->session, (long)s->timeout_ms);
	if (out)
		*out = text ? steal_ptr(text) : strdup("");
	return status;
}

static int sftp(struct coord_ssh *s, struct vz_err *err)
{
	if (s->sftp)
		return 0;
	s->sftp = libssh2_sftp_init(s->session);
	if (!s->sftp)
		return vz_error_msg(err, EIO, "No SFTP on %s: %s", s->host, ssh_error(s));
	return 0;
}

/* The errno of the last SFTP failure. */
static int sftp_errno(struct coord_ssh *s)
{
	switch (libssh2_sftp_last_error(s->sftp)) {
	case LIBSSH2_FX_NO_SUCH_FILE:
	case LIBSSH2_FX_NO_SUCH_PATH: return ENOENT;
	case LIBSSH2_FX_PERMISSION_DENIED: return EACCES;
	case LIBSSH2_FX_FILE_ALREADY_EXISTS: return EEXIST;
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return ENOSPC;
	default: return EIO;
	}
}

int coord_ssh_read(struct coord_ssh *s, const char *path, char **buf, size_t *len, size_t max, struct vz_err *err)
{
	_cleanup_free_ char *text = NULL;
	LIBSSH2_SFTP_HANDLE *f;
	size_t n = 0;
	ssize_t r;
	int ret = sftp(s, err);

	if (ret < 0)
		return ret;
	f = libssh2_sftp_open(s->sftp, path, LIBSSH2_FXF_READ, 0);
	if (!f)
		return vz_error(err, sftp_errno(s), "Read %s on %s", path, s->host);
	text = strdup("");
	for (;;) {
		char tmp[4096];

		r = libssh2_sftp_read(f, tmp, sizeof(tmp));
		if (r <= 0)
			break;
		if (n + (size_t)r > max) {
			libssh2_sftp_close(f);
			return vz_error_msg(err, EFBIG, "%s on %s is over %zu bytes", path, s->host, max);
		}
		if (append(&text, &n, tmp, (size_t)r, max) < 0)
			r = LIBSSH2_ERROR_ALLOC;
	}
	libssh2_sftp_close(f);
	if (r < 0 || !text)
		return vz_error_msg(err, EIO, "Read %s on %s: %s", path, s->host, ssh_error(s));
	*len = n;
	*buf = steal_ptr(text);
	return 0;
}

static int put(struct coord_ssh *s, const char *path, const void *buf, size_t len, unsigned long flags, mode_t mode,
	       struct vz_err *err)
{
	LIBSSH2_SFTP_HANDLE *f = libssh2_sftp_open(s->sftp, path, flags, (long)mode);
	size_t done = 0;

	if (!f)
		return vz_error(err, sftp_errno(s), "Write %s on %s", path, s->host);
	while (done < len) {
		ssize_t w = libssh2_sftp_write(f, (const char *)buf + done, len - done);

		if (w <= 0) {
			libssh2_sftp_close(f);
			return vz_error_msg(err, EIO, "Write %s on %s: %s", path, s->host, ssh_error(s));
		}
		done += (size_t)w;
	}
	if (libssh2_sftp_close(f) != 0)
		return vz_error_msg(err, EIO, "Write %s on %s: %s", path, s->host, ssh_error(s));
	return 0;
}

int coord_ssh_write(struct coord_ssh *s, const char *path, const void *buf, size_t len, mode_t mode, struct vz_err *err)
{
	int ret = sftp(s, err);

	if (ret < 0)
		return ret;
	if (libssh2_sftp_unlink(s->sftp, path) != 0 && sftp_errno(s) != ENOENT)
		return vz_error(err, sftp_errno(s), "Replace %s on %s", path, s->host);
	return put(s, path, buf, len, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, mode, err);
}

int coord_ssh_rewrite(struct coord_ssh *s, const char *path, const void *buf, size_t len, struct vz_err *err)
{
	int ret = sftp(s, err);

	if (ret < 0)
		return ret;
	return put(s, path, buf, len, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC, 0644, err);
}

int coord_ssh_mkdir_parent(struct coord_ssh *s, const char *path, mode_t mode, struct vz_err *err)
{
	char dir[PATH_MAX];
	LIBSSH2_SFTP_ATTRIBUTES st;
	int ret = sftp(s, err);

	if (ret < 0)
		return ret;
	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (libssh2_sftp_stat(s->sftp, dir, &st) != 0 && libssh2_sftp_mkdir(s->sftp, dir, (long)mode) != 0)
			return vz_error(err, sftp_errno(s), "Create %s on %s", dir, s->host);
		*p = '/';
	}
	return 0;
}
