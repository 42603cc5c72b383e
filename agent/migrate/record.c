/* The durable records of the two-phase commit, under VZ_ROOT/vz/migrate
 * (the list is in migrate.h): one typed struct mig_record, a pure parser
 * of file names and of contents with its inverse (unit-tested in
 * tests/unit/migrate, fuzzed by tests/fuzz/fuzz_mig_record.c), and the
 * reads, writes and the exclusive decision built on them. Each record is
 * one short line of text, so that an operator can read it. */
#define LOG_PREFIX "migrate: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "migrate_int.h"
#include "paths.h"
#include "util.h"

#define MIG_DIR	   "/vz/migrate"
#define RECORD_MAX 512

static const char *const suffix[] = {
	[MIG_REC_DECISION] = "decision",
	[MIG_REC_OUTGOING] = "outgoing",
	[MIG_REC_INCOMING] = "incoming",
	[MIG_REC_CAPPED] = "capped",
};

static bool has_mid(enum mig_record_kind k)
{
	return k == MIG_REC_DECISION || k == MIG_REC_OUTGOING;
}

bool mig_id_ok(const char *mid)
{
	size_t n = mid ? strlen(mid) : 0;

	if (n == 0 || n > MIG_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((mid[i] >= '0' && mid[i] <= '9') || (mid[i] >= 'a' && mid[i] <= 'f')))
			return false;
	return true;
}

bool mig_names_ok(const char *mid, uint64_t veid)
{
	return veid != 0 && veid <= INT32_MAX && mig_id_ok(mid);
}

/* A VEID as the records write it: decimal, 1..INT32_MAX, no sign. */
static int parse_veid(const char *s, size_t n, unsigned *veid)
{
	unsigned long v = 0;

	if (n == 0 || n > 10 || s[0] == '0')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > INT32_MAX)
		return -EINVAL;
	*veid = (unsigned)v;
	return 0;
}

int mig_record_name_parse(const char *name, struct mig_record *r)
{
	const char *dot = strchr(name, '.'), *last = strrchr(name, '.');
	struct mig_record t = { 0 };
	size_t k;

	if (!dot || parse_veid(name, (size_t)(dot - name), &t.veid) < 0)
		return -EINVAL;
	for (k = 0; k < sizeof(suffix) / sizeof(suffix[0]); k++)
		if (!strcmp(last + 1, suffix[k]))
			break;
	if (k == sizeof(suffix) / sizeof(suffix[0]))
		return -EINVAL;
	t.kind = (enum mig_record_kind)k;
	if (has_mid(t.kind)) {
		size_t n = (size_t)(last - dot - 1);

		if (last == dot || n > MIG_ID_MAX)
			return -EINVAL;
		memcpy(t.mid, dot + 1, n);
		t.mid[n] = '\0';
		if (!mig_id_ok(t.mid))
			return -EINVAL;
	} else if (last != dot) {
		return -EINVAL;
	}
	*r = t;
	return 0;
}

/* The next space-separated word of text[*at..len) into buf; 0 or -EINVAL. */
static int next_word(const char *text, size_t len, size_t *at, char *buf, size_t size)
{
	size_t i = *at, n = 0;

	if (i < len && text[i] == ' ')
		i++;
	while (i < len && text[i] != ' ' && text[i] != '\n') {
		if (n + 1 >= size || text[i] == '\0')
			return -EINVAL;
		buf[n++] = text[i++];
	}
	buf[n] = '\0';
	*at = i;
	return n ? 0 : -EINVAL;
}

static int parse_uint(const char *w, unsigned long max, unsigned long *out)
{
	char *end;

	if (w[0] < '0' || w[0] > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(w, &end, 10);
	return *end || errno || *out > max ? -EINVAL : 0;
}

static int parse_outgoing(struct mig_record *r, const char *text, size_t len, size_t *at)
{
	char w[16];
	unsigned long port;

	if (next_word(text, len, at, w, sizeof(w)) < 0 || parse_uint(w, 65535, &port) < 0)
		return -EINVAL;
	r->port = (int)port;
	if (*at < len && text[*at] == ' ') {
		if (next_word(text, len, at, w, sizeof(w)) < 0 || strcmp(w, "postcopy"))
			return -EINVAL;
		r->postcopy = true;
	}
	if (*at < len && text[*at] == ' ') {
		if (next_word(text, len, at, w, sizeof(w)) < 0 || strcmp(w, "recovered"))
			return -EINVAL;
		r->recovered = true;
	}
	return 0;
}

static int parse_incoming(struct mig_record *r, const char *text, size_t len, size_t *at)
{
	char w[128];
	unsigned long v;

	if (next_word(text, len, at, r->mid, sizeof(r->mid)) < 0 || !mig_id_ok(r->mid) ||
	    next_word(text, len, at, r->host, sizeof(r->host)) < 0)
		return -EINVAL;
	if (next_word(text, len, at, w, sizeof(w)) < 0 || parse_uint(w, 65535, &v) < 0)
		return -EINVAL;
	r->port = (int)v;
	if (next_word(text, len, at, w, sizeof(w)) < 0 || parse_uint(w, 1, &v) < 0)
		return -EINVAL;
	r->online = v;
	return 0;
}

int mig_record_parse(struct mig_record *r, const char *text, size_t len)
{
	struct mig_record t = { .kind = r->kind, .veid = r->veid };
	size_t at = 0;
	char w[16];
	int ret = -EINVAL;

	memcpy(t.mid, r->mid, sizeof(t.mid));
	t.mid[MIG_ID_MAX] = '\0';
	switch (r->kind) {
	case MIG_REC_DECISION:
		ret = next_word(text, len, &at, w, sizeof(w));
		if (ret == 0 && !strcmp(w, "go"))
			t.go = true;
		else if (ret == 0 && strcmp(w, "abort"))
			ret = -EINVAL;
		break;
	case MIG_REC_OUTGOING: ret = parse_outgoing(&t, text, len, &at); break;
	case MIG_REC_INCOMING: ret = parse_incoming(&t, text, len, &at); break;
	case MIG_REC_CAPPED:
		/* The id alone, without a newline (as it always was). */
		ret = next_word(text, len, &at, t.mid, sizeof(t.mid));
		if (ret == 0 && !mig_id_ok(t.mid))
			ret = -EINVAL;
		break;
	}
	if (ret < 0)
		return -EINVAL;
	/* One line: a newline at the end at the most. */
	if (at < len && text[at] == '\n')
		at++;
	if (at != len)
		return -EINVAL;
	*r = t;
	return 0;
}

int mig_record_format(const struct mig_record *r, char *buf, size_t len)
{
	int n = -1;

	switch (r->kind) {
	case MIG_REC_DECISION: n = snprintf(buf, len, "%s\n", r->go ? "go" : "abort"); break;
	case MIG_REC_OUTGOING:
		n = snprintf(buf, len, "%d%s%s\n", r->port, r->postcopy ? " postcopy" : "",
			     r->recovered ? " recovered" : "");
		break;
	case MIG_REC_INCOMING:
		n = snprintf(buf, len, "%s %s %d %d\n", r->mid, r->host[0] ? r->host : "-", r->port, r->online ? 1 : 0);
		break;
	case MIG_REC_CAPPED: n = snprintf(buf, len, "%s", r->mid); break;
	}
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

char *mig_record_path(const struct mig_record *r, char *buf, size_t len)
{
	char dir[PATH_MAX];

	vz_mkdir_p(vz_path(dir, sizeof(dir), MIG_DIR), 0700);
	if (has_mid(r->kind))
		return vz_path(buf, len, MIG_DIR "/%u.%s.%s", r->veid, r->mid, suffix[r->kind]);
	return vz_path(buf, len, MIG_DIR "/%u.%s", r->veid, suffix[r->kind]);
}

bool mig_incoming_pending(unsigned veid)
{
	char path[PATH_MAX];

	/* mig_record_path's name, without making the directory. */
	return vz_exists(vz_path(path, sizeof(path), MIG_DIR "/%u.%s", veid, suffix[MIG_REC_INCOMING]));
}

struct mig_record mig_record_of(enum mig_record_kind kind, unsigned veid, const char *mid)
{
	struct mig_record r = { .kind = kind, .veid = veid };

	if (mid)
		snprintf(r.mid, sizeof(r.mid), "%s", mid);
	return r;
}

int mig_record_write(const struct mig_record *r, struct vz_err *err)
{
	char path[PATH_MAX], text[RECORD_MAX];
	int n = mig_record_format(r, text, sizeof(text)), ret;

	mig_record_path(r, path, sizeof(path));
	if (n < 0)
		return vz_error(err, -n, "Write %s", path);
	/* Whole: a reader never finds half a record. */
	ret = vz_write_file_replace(path, text, (size_t)n, 0644, false);
	if (ret < 0)
		return vz_error(err, -ret, "Write %s", path);
	return 0;
}

int mig_record_read(struct mig_record *r, struct vz_err *err)
{
	char path[PATH_MAX];
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int ret;

	mig_record_path(r, path, sizeof(path));
	ret = vz_read_file(path, &text, &len, RECORD_MAX);
	if (ret < 0)
		return vz_error(err, -ret, "Read %s", path);
	if (mig_record_parse(r, text, len) < 0)
		return vz_error_msg(err, EINVAL, "Malformed migration record %s", path);
	return 0;
}

void mig_record_remove(const struct mig_record *r)
{
	char path[PATH_MAX];

	unlink(mig_record_path(r, path, sizeof(path)));
}

int mig_decide(unsigned veid, const char *mid, bool want_go, bool *go, struct vz_err *err)
{
	struct mig_record r = mig_record_of(MIG_REC_DECISION, veid, mid);
	char path[PATH_MAX], text[16];
	int ret;

	r.go = want_go;
	mig_record_path(&r, path, sizeof(path));
	mig_record_format(&r, text, sizeof(text));
	/* Whole or not at all: the page stream and a restarted agent act on
	 * the decision the moment its file is there (an O_EXCL file read
	 * before its line was written once read as "no go"). */
	ret = vz_write_file_excl(path, text, strlen(text), 0600);
	if (ret == -EEXIST) {
		/* One exists: it stands, whatever we wanted. */
		ret = mig_record_read(&r, err);
		if (ret < 0)
			return ret;
		*go = r.go;
		return 0;
	}
	if (ret < 0)
		return vz_error(err, -ret, "Write the decision %s", path);
	*go = want_go;
	return 0;
}

bool mig_decision_exists(unsigned veid, const char *mid)
{
	struct mig_record r = mig_record_of(MIG_REC_DECISION, veid, mid);
	char path[PATH_MAX];

	return vz_exists(mig_record_path(&r, path, sizeof(path)));
}

bool mig_decided_go(unsigned veid, const char *mid)
{
	struct mig_record r = mig_record_of(MIG_REC_DECISION, veid, mid);

	return mig_record_read(&r, NULL) == 0 && r.go;
}

void mig_record_scan(enum mig_record_kind kind, void (*fn)(void *arg, const struct mig_record *r, const char *path),
		     void *arg)
{
	char dir[PATH_MAX];
	_cleanup_closedir_ DIR *dd = opendir(vz_path(dir, sizeof(dir), MIG_DIR));
	struct dirent *de;

	while (dd && (de = readdir(dd))) {
		struct mig_record r;
		char path[PATH_MAX + 256];

		if (mig_record_name_parse(de->d_name, &r) < 0 || r.kind != kind)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fn(arg, &r, path);
	}
}

struct pending_scan {
	unsigned veid;
	bool found;
};

static void pending_seen(void *arg, const struct mig_record *r, const char *path)
{
	struct pending_scan *s = arg;

	(void)path;
	if (r->veid == s->veid)
		s->found = true;
}

bool mig_outgoing_pending(unsigned veid)
{
	struct pending_scan s = { veid, false };

	mig_record_scan(MIG_REC_DECISION, pending_seen, &s);
	mig_record_scan(MIG_REC_OUTGOING, pending_seen, &s);
	return s.found;
}
