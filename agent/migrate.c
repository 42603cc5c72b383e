/* Live migration between two agents (migrate.proto), both sides.
 *
 * Source (op_migrate, a worker serving vzmigrate): negotiate, first file
 * pass while the VE runs, then either stop-copy-start (offline) or a CRIU
 * dump whose post-dump call, with the VE frozen, runs the final file
 * pass, sends the images, waits for the destination's "restored", writes
 * the decision and says go. Only when the decision is written does it let
 * CRIU end the source copy; any failure before makes CRIU resume it.
 *
 * Destination (agent_migrate_serve, a worker per accepted connection):
 * checks the VEID, CRIU, CPU and disk; receives files and images;
 * restores the VE frozen; thaws it on go. Without a go it never thaws:
 * it asks the source for the decision until it gets one. Before that
 * point any failure removes everything it made.
 *
 * The decision is one file per migration (vz/migrate/VEID.ID.decision)
 * created with O_EXCL: the source's "go" and an "abort" written on behalf
 * of a destination that asks first cannot both exist. */
#define LOG_PREFIX "migrate: "
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "conn.h"
#include "criu.h"
#include "dumpfile.h"
#include "imgstream.h"
#include "log.h"
#include "mig_files.h"
#include "mig_lazy.h"
#include "pagestore.h"
#include "resources.h"
#include "track.h"
#include "migrate.pb-c.h"
#include "paths.h"
#include "util.h"
#include "ve.h"

typedef Vz__Migrate__Msg msg_t;

#define CONNECT_TIMEOUT_MS 5000
/* How long a destination holding a frozen VE asks for the decision. */
#define DECISION_WAIT_S 300
/* Pages in one PAGES message at most (the tracker sends 1 MiB). */
#define MIG_PAGES_MAX (1u << 20)

static double ms_since(uint64_t t0)
{
	return (double)(vz_now_ns() - t0) / 1e6;
}

/* ---- decision records ---- */

static char *decision_path(char *buf, size_t len, unsigned veid, const char *mid)
{
	char dir[PATH_MAX];

	vz_mkdir_p(vz_path(dir, sizeof(dir), "/vz/migrate"), 0700);
	return vz_path(buf, len, "/vz/migrate/%u.%s.decision", veid, mid);
}

static bool mid_ok(const char *mid)
{
	size_t n = strlen(mid);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((mid[i] >= '0' && mid[i] <= '9') || (mid[i] >= 'a' && mid[i] <= 'f')))
			return false;
	return true;
}

/* Record go or abort unless a decision exists; *go gets the one that
 * stands. Durable before it returns. */
static int decide(unsigned veid, const char *mid, bool want_go, bool *go, struct vz_err *err)
{
	char path[PATH_MAX];
	int fd;

	decision_path(path, sizeof(path), veid, mid);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		const char *text = want_go ? "go\n" : "abort\n";
		char dir[PATH_MAX];
		int dfd, ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text) && fsync(fd) == 0;

		close(fd);
		dfd = open(vz_path(dir, sizeof(dir), "/vz/migrate"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		if (!ok) {
			unlink(path);
			return vz_error(err, EIO, "Write the decision %s", path);
		}
		*go = want_go;
		return 0;
	}
	if (errno != EEXIST)
		return vz_error(err, errno, "Write the decision %s", path);
	{
		_cleanup_free_ char *text = NULL;

		if (vz_read_file(path, &text, NULL, 64) < 0)
			return vz_error(err, errno, "Read the decision %s", path);
		*go = !strncmp(text, "go", 2);
	}
	return 0;
}

/* ---- messages ---- */

static int send_type(struct vz_conn *c, Vz__Migrate__Type t, struct vz_err *err)
{
	msg_t m = VZ__MIGRATE__MSG__INIT;

	m.type = t;
	return vz_msg_send(c, &m.base, err);
}

static int send_error(struct vz_conn *c, int code, const char *text)
{
	msg_t m = VZ__MIGRATE__MSG__INIT;
	struct vz_err e = { 0 };

	m.type = VZ__MIGRATE__TYPE__T_ERROR;
	m.error = (char *)text;
	m.has_exit_code = true;
	m.exit_code = (uint32_t)(code ? code : VZ_EXIT_SYSTEM);
	return vz_msg_send(c, &m.base, &e);
}

static int recv_msg(struct vz_conn *c, msg_t **m, struct vz_err *err)
{
	return vz_msg_recv(c, &vz__migrate__msg__descriptor, VZ_MSG_MAX, (ProtobufCMessage **)m, err);
}

static void msg_free(msg_t *m)
{
	if (m)
		vz__migrate__msg__free_unpacked(m, NULL);
}

/* Wait for one of the wanted types; T_ERROR becomes our error. */
static int expect(struct vz_conn *c, Vz__Migrate__Type want, msg_t **out, struct vz_err *err)
{
	msg_t *m = NULL;
	int ret = recv_msg(c, &m, err);

	if (ret < 0)
		return ret;
	if (m->type == VZ__MIGRATE__TYPE__T_ERROR) {
		ret = vz_error_exit_msg(err, m->has_exit_code ? (int)m->exit_code : VZ_EXIT_SYSTEM, EREMOTEIO, "%s: %s",
				    c->peer, m->error ? m->error : "unknown error");
		msg_free(m);
		return ret;
	}
	if (m->type != want) {
		ret = vz_error_msg(err, EPROTO, "%s sent message %d where %d was due", c->peer, (int)m->type, (int)want);
		msg_free(m);
		return ret;
	}
	if (out)
		*out = m;
	else
		msg_free(m);
	return 0;
}

static struct vz_tls *host_tls(struct vz_agent *a, bool server, struct vz_err *err)
{
	struct vz_tls *t = NULL;

	if (vz_tls_new(&t, a->tls_ca, a->tls_cert, a->tls_key, server, err) < 0)
		return NULL;
	return t;
}

/* DEST as a name from VZ_ROOT/etc/vz/hosts ("name address" lines), else
 * as given (an address, or a name the resolver knows). */
static void resolve_dest(const char *dest, char *out, size_t len)
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

/* ---- source ---- */

#define MAX_ROUNDS 64

/* Ends CRIU's lazy-dump page-server session the moment it listens, when
 * the destination has no use for it (pre-copy: it serves pages itself;
 * any failure before the go). Whether CRIU then kills or resumes the VE
 * follows from the post-dump answer, not from this session. Post-copy
 * leaves the session to the destination's page stream after a go. */
enum { CLOSER_WAIT, CLOSER_CLOSE, CLOSER_LEAVE };
struct closer {
	int port;
	volatile int stop, mode;
	bool running;
	pthread_t th;
};

/* A connection to 127.0.0.1:port (CRIU's lazy-dump page server), or -1. */
static int loopback_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* One PAGES message: len bytes of pid vpid's memory at vaddr, as a chunk
 * of the stream z compresses for this connection. */
static int send_pages(struct vz_conn *c, struct vz_zenc *z, uint32_t vpid, uint64_t vaddr, const void *data,
		      size_t len, struct vz_err *err)
{
	msg_t m = VZ__MIGRATE__MSG__INIT;
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

struct src {
	struct vz_call *call;
	struct vz_agent *a;
	struct ve *ve;
	struct vz_conn conn;
	struct mig_fstate *fs;
	char mid[40];
	bool committed, go_sent, done_seen;
	int images_fd;
	/* times, ms */
	double t_pass1, t_dump, t_pass2, t_copy, t_undump, t_frozen, t_total;
	uint64_t raw_bytes, freeze_ns;
	struct vz_err err;
	/* the phase being shown: name, expected bytes, start, bytes so far */
	const char *phase;
	uint64_t phase_total, phase_t0, phase_done, last_shown;
	uint64_t images_total, private_total;
	const char *images_dir;
	/* pre-copy; post-copy; either restores lazily */
	bool precopy, postcopy, lazy, verify, converged;
	struct closer *cl;
	uint64_t go_ns;
	double t_postcopy;
	enum vz_track_kind tkind;
	struct vz_track *trk;
	struct vz_zenc *pz;
	unsigned downtime_ms, max_rounds, nrounds;
	struct {
		uint64_t pages, wire;
		double ms, cap;
	} rounds[MAX_ROUNDS + 1];
	/* --auto-converge: CPUs the VE may use (0: as configured), and its
	 * CPU time when the round began */
	bool autoconv;
	double cap;
	uint64_t cpu_ns, cpu_t;
	char conv_why[256];
	struct vz_mem_mask *mask; /* --verify-memory: rseq areas */
	size_t nmask;
	double t_final;
	uint64_t final_pages;
};

static void phase_start(struct src *s, const char *name, uint64_t total)
{
	s->phase = name;
	s->phase_total = total;
	s->phase_t0 = vz_now_ns();
	s->phase_done = s->last_shown = 0;
}

/* A progress line: bytes, rate and time left (a bar on a terminal). */
static void phase_show(struct src *s, uint64_t done)
{
	double secs = (double)(vz_now_ns() - s->phase_t0) / 1e9, rate = secs > 0 ? (double)done / secs : 0;
	char left[32] = "";

	s->phase_done = done;
	if (done - s->last_shown < (8u << 20) && (done < s->phase_total || !s->phase_total))
		return;
	s->last_shown = done;
	if (s->phase_total > done && rate > 0)
		snprintf(left, sizeof(left), ", %.0f s left", (double)(s->phase_total - done) / rate);
	if (s->phase_total) {
		int pct = (int)(done * 100 / (s->phase_total ? s->phase_total : 1)), bar = pct > 100 ? 20 : pct / 5;

		vz_ctl_progress(s->call->conn, "[progress] %-18s [%.*s%*s] %3d%% %llu/%llu MiB, %.0f MiB/s%s", s->phase,
				bar, "####################", 20 - bar, "", pct > 100 ? 100 : pct,
				(unsigned long long)(done >> 20), (unsigned long long)(s->phase_total >> 20),
				rate / 1048576, left);
	} else {
		vz_ctl_progress(s->call->conn, "[progress] %-18s %llu MiB, %.0f MiB/s", s->phase,
				(unsigned long long)(done >> 20), rate / 1048576);
	}
}

static void pass_progress(void *arg, uint64_t raw)
{
	phase_show(arg, raw);
}

static int pass(struct src *s, const char *what, double *t, struct vz_err *err)
{
	struct mig_pass_stats ps;
	uint64_t t0 = vz_now_ns();
	int ret;

	phase_start(s, what, s->fs ? 0 : s->private_total);
	ret = mig_files_send(&s->conn, s->ve->private, &s->fs, &ps, pass_progress, s, err);

	*t = ms_since(t0);
	if (ret < 0)
		return vz_error_wrap(err, "%s", what);
	s->raw_bytes += ps.raw_bytes;
	vz_ctl_progress(s->call->conn, "%s: %llu entries, %llu bytes (%llu on the wire), %llu deleted, %.0f ms", what,
			(unsigned long long)ps.files, (unsigned long long)ps.raw_bytes,
			(unsigned long long)ps.wire_bytes, (unsigned long long)ps.deleted, *t);
	return 0;
}

static int images_sink(void *arg, const void *buf, size_t len, struct vz_err *err)
{
	struct src *s = arg;
	msg_t m = VZ__MIGRATE__MSG__INIT;

	/* The image stream is compressed already: DATA carries it as is. */
	m.type = VZ__MIGRATE__TYPE__T_DATA;
	m.has_data = true;
	m.data.data = (uint8_t *)buf;
	m.data.len = len;
	phase_show(s, s->phase_done + len);
	return vz_msg_send(&s->conn, &m.base, err);
}

static uint64_t du_total;

/* A tracker's pages go out as PAGES, one zstd stream for the migration. */
static int page_emit(void *arg, int vpid, uint64_t vaddr, const void *data, size_t npages, struct vz_err *err)
{
	struct src *s = arg;

	s->raw_bytes += npages * 4096;
	phase_show(s, s->phase_done + npages * 4096);
	return send_pages(&s->conn, s->pz, (uint32_t)vpid, vaddr, data, npages * 4096, err);
}

/* Soft-dirty rounds hold the VE still while its bits are read. */
static int hold_ve(void *arg, bool hold, struct vz_err *err)
{
	struct src *s = arg;

	return hold ? vz_cg_freeze(&s->a->cg, s->ve->veid, 5000, err) : vz_cg_thaw(&s->a->cg, s->ve->veid, err);
}

/* Auto-converge. A VE that writes memory faster than the link carries it
 * gets less CPU, round after round, until it writes slowly enough (QEMU's
 * auto-converge throttles vCPUs the same way). The cap is a CPU quota on
 * the VE's group, derived from what the VE used during the last round; it
 * ends the moment the VE is frozen, and on any failure before. A marker
 * (vz/migrate/VEID.capped) lets a restarted agent end a cap its dead
 * worker left. */
static const char *cap_path(unsigned veid, char *buf, size_t len)
{
	return vz_path(buf, len, "/vz/migrate/%u.capped", veid);
}

/* CPUs the VE used since the last call (or since the round began). */
static double used_cpus(struct src *s)
{
	uint64_t ns = 0, t = vz_now_ns();
	double cpus = -1;

	if (res_cpu_usage(&s->a->cg, s->ve->veid, &ns, NULL) < 0)
		return -1;
	if (s->cpu_t && t > s->cpu_t)
		cpus = (double)(ns - s->cpu_ns) / (double)(t - s->cpu_t);
	s->cpu_ns = ns;
	s->cpu_t = t;
	return cpus;
}

/* After a round that left `left` of `sent` pages written: cap the VE so
 * that it writes about half as fast as the round sent. A VE that
 * rewrote about everything the round sent writes faster than that shows
 * (a page written twice counts once): a quarter then. */
static void cap_more(struct src *s, double used, uint64_t left, uint64_t sent)
{
	char path[PATH_MAX];
	double base = s->cap > 0 && s->cap < used ? s->cap : used, f = left ? 0.5 * (double)sent / (double)left : 1;
	struct vz_err e = { 0 };

	if (used < 0)
		return;
	if (10 * left >= 9 * sent)
		f = 0.25;
	f = f > 0.5 ? 0.5 : f < 0.05 ? 0.05 : f;
	base *= f;
	if (base < 0.001)
		base = 0.001;
	if (vz_write_file(cap_path(s->ve->veid, path, sizeof(path)), s->mid, strlen(s->mid), 0) < 0 || res_cpu_cap(&s->a->cg, s->ve->veid, base, &e) < 0) {
		pr_warn("VE %u: auto-converge: %s", s->ve->veid, e.msg[0] ? e.msg : "cannot record the cap");
		return;
	}
	s->cap = base;
	pr_info("VE %u: auto-converge: capped at %.3f CPUs (used %.3f)", s->ve->veid, base, used);
}

static void uncap(struct src *s)
{
	char path[PATH_MAX];
	struct vz_err e = { 0 };

	if (s->cap <= 0)
		return;
	if (res_apply_cpu(&s->a->cg, s->ve->veid, &s->ve->conf, &e) < 0)
		pr_warn("VE %u: auto-converge: restore the CPU limits: %s", s->ve->veid, e.msg);
	else
		unlink(cap_path(s->ve->veid, path, sizeof(path)));
	s->cap = 0;
}

/* One round: what the tracker finds, then ROUND_END. */
static int send_round(struct src *s, unsigned r, struct vz_track_stats *st, struct vz_err *err)
{
	msg_t m = VZ__MIGRATE__MSG__INIT;
	uint64_t t0 = vz_now_ns(), w0 = s->conn.bytes_out, t1, t2;
	pid_t *pids = NULL;
	size_t n = 0;
	int ret = vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, err);

	t1 = vz_now_ns();
	if (ret == 0)
		ret = vz_track_round(s->trk, pids, n, page_emit, s, st, err);
	t2 = vz_now_ns();
	free(pids);
	pr_debug("VE %u: round %u: %zu processes listed in %.1f ms, tracked in %.1f ms", s->ve->veid, r, n,
		 (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
	if (ret < 0)
		return vz_error_wrap(err, "Memory round %u", r);
	m.type = VZ__MIGRATE__TYPE__T_ROUND_END;
	m.has_round = true;
	m.round = r;
	ret = vz_msg_send(&s->conn, &m.base, err);
	if (ret < 0)
		return ret;
	if (r <= MAX_ROUNDS) {
		s->rounds[r].pages = st->pages;
		s->rounds[r].wire = s->conn.bytes_out - w0;
		s->rounds[r].ms = ms_since(t0);
		s->rounds[r].cap = s->cap;
	}
	return 0;
}

/* Rounds while the VE runs, until what is left fits the downtime budget
 * at the rate the link has shown, or stops shrinking, or the round limit. */
static int precopy_rounds(struct src *s, struct vz_err *err)
{
	s->trk = vz_track_new(s->tkind, hold_ve, s, err);
	s->pz = vz_zenc_new(1);
	if (!s->trk || !s->pz)
		return vz_error_msg(err, ENOMEM, "Memory tracker: %s", err->msg);
	bool polished = false;

	if (s->autoconv)
		used_cpus(s);
	for (unsigned r = 0;; r++) {
		struct vz_track_stats st;
		char name[40];
		uint64_t left = 0;
		double rate, est, used;
		int ret;

		snprintf(name, sizeof(name), "Memory round %u", r);
		phase_start(s, name, 0);
		ret = send_round(s, r, &st, err);
		if (ret < 0)
			return ret;
		s->nrounds = r + 1;
		if (s->tkind == VZ_TRACK_SOFT_DIRTY)
			left = r ? st.pages : UINT64_MAX / 8192; /* known only by the next round */
		else {
			pid_t *pids = NULL;
			size_t n = 0;

			vz_err_clear(err);
			if (vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, err) == 0)
				vz_track_peek(s->trk, pids, n, &left, err);
			free(pids);
			vz_err_clear(err);
		}
		used = s->autoconv ? used_cpus(s) : -1;
		/* bytes per ms the round achieved, reading and sending */
		rate = s->rounds[r].ms > 1 ? (double)st.pages * 4096 / s->rounds[r].ms : 1e9;
		est = (double)left * 4096 / (rate > 0 ? rate : 1);
		vz_ctl_progress(s->call->conn,
				"Memory round %u: %llu pages (%llu MiB, %llu MiB on the wire) in %.0f ms%s; "
				"%llu pages written meanwhile, ~%.0f ms to send",
				r, (unsigned long long)st.pages, (unsigned long long)(st.pages >> 8),
				(unsigned long long)(s->rounds[r].wire >> 20), s->rounds[r].ms,
				st.new_procs && r ? ", new processes" : "", (unsigned long long)left, est);
		/* Within budget: one more round, while the VE runs, when what is
		 * left still takes a noticeable time to send (it then takes about
		 * that long and leaves a fraction for the frozen moment). */
		if (est <= s->downtime_ms && est > 20 && !polished && r + 1 < s->max_rounds && r + 1 < MAX_ROUNDS) {
			polished = true;
			continue;
		}
		if (est <= s->downtime_ms) {
			s->converged = true;
			snprintf(s->conv_why, sizeof(s->conv_why),
				 "converged after %u rounds: %llu pages left, ~%.0f ms at %.0f MiB/s, budget %u ms",
				 r + 1, (unsigned long long)left, est, rate * 1000 / 1048576, s->downtime_ms);
			break;
		}
		if (r + 1 >= s->max_rounds || r + 1 >= MAX_ROUNDS) {
			snprintf(s->conv_why, sizeof(s->conv_why),
				 "did not converge: round limit (%u) reached with %llu pages (%llu MiB) still written, "
				 "~%.0f ms to send against a budget of %u ms",
				 s->max_rounds, (unsigned long long)left, (unsigned long long)(left >> 8), est,
				 s->downtime_ms);
			break;
		}
		if (s->autoconv && r >= 1 && 2 * left >= st.pages && used >= 0 && !(s->cap > 0 && s->cap <= 0.001)) {
			cap_more(s, used, left, st.pages);
			if (s->cap > 0) {
				vz_ctl_progress(s->call->conn,
						"Auto-converge: VE %u may use %.3f CPUs from now (it used %.3f)",
						s->ve->veid, s->cap, used);
				continue;
			}
		}
		if (r >= 1 && left >= st.pages) {
			snprintf(s->conv_why, sizeof(s->conv_why),
				 "did not converge: the VE writes memory as fast as it is sent (%llu pages written during "
				 "a round of %llu); the last %llu MiB go while it is frozen",
				 (unsigned long long)left, (unsigned long long)st.pages,
				 (unsigned long long)(left >> 8));
			break;
		}
	}
	if (s->cap > 0) {
		size_t k = strlen(s->conv_why);

		snprintf(s->conv_why + k, sizeof(s->conv_why) - k, "; auto-converge capped the VE at %.3f CPUs",
			 s->cap);
	}
	vz_ctl_progress(s->call->conn, "Pre-copy %s", s->conv_why);
	{
		/* What the rounds sent may still sit in the socket and the link's
		 * queue: let it reach the destination while the VE still runs,
		 * not while it is frozen. */
		uint64_t end = vz_now_ns() + 5000000000ull;
		int q = 0;

		while (vz_now_ns() < end && ioctl(s->conn.fd, SIOCOUTQ, &q) == 0 && q > 65536)
			usleep(1000);
	}
	return 0;
}

/* Frozen: the last round, then the tracker goes; digests if asked. */
static int precopy_final(struct src *s, struct vz_err *err)
{
	struct vz_track_stats st;
	uint64_t t0 = vz_now_ns();
	int ret;

	phase_start(s, "Memory, last round", 0);
	vz_track_last(s->trk);
	ret = send_round(s, s->nrounds, &st, err);
	/* The tracker stays until CRIU is done: closing a userfaultfd walks
	 * every page it protects (tens of ms per GiB), which is no work for
	 * the frozen moment; once the source copy is gone it costs nothing. */
	if (ret < 0)
		return ret;
	s->final_pages = st.pages;
	if (s->verify) {
		msg_t m = VZ__MIGRATE__MSG__INIT;
		pid_t *pids = NULL;
		size_t n = 0, len = 0;
		char *text = NULL;

		ret = vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, err);
		if (ret == 0)
			ret = vz_mem_digest(pids, n, s->mask, s->nmask, &text, &len, err);
		free(pids);
		if (ret == 0) {
			/* The masked areas first, so that the destination masks the same. */
			size_t cap = len + s->nmask * 64 + 1, k = 0;
			char *all = malloc(cap);

			for (size_t i = 0; all && i < s->nmask; i++)
				k += (size_t)snprintf(all + k, cap - k, "mask %d %llx %u\n", s->mask[i].vpid,
						      (unsigned long long)s->mask[i].addr, s->mask[i].len);
			if (all)
				memcpy(all + k, text, len + 1);
			free(text);
			text = all;
			len += k;
		}
		if (ret == 0 && text) {
			m.type = VZ__MIGRATE__TYPE__T_MEMHASH;
			m.has_data = true;
			m.data.data = (uint8_t *)text;
			m.data.len = len;
			ret = vz_msg_send(&s->conn, &m.base, err);
		}
		free(text);
		if (ret < 0)
			return vz_error_wrap(err, "Memory digests");
	}
	s->t_final = ms_since(t0);
	vz_ctl_progress(s->call->conn, "Memory, last round (frozen): %llu pages in %.0f ms",
			(unsigned long long)st.pages, s->t_final);
	return 0;
}

static int du_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)p;
	(void)flag;
	(void)f;
	du_total += (uint64_t)sb->st_blocks * 512;
	return 0;
}

/* With the source copy frozen and dumped: the rest of the migration up
 * to the decision. A failure here resumes the source copy. */
static int commit_phase(struct src *s, struct vz_err *err)
{
	struct vz_img_stats st;
	uint64_t t0;
	bool go = false;
	int ret, rfd;

	s->t_dump = ms_since(s->freeze_ns);
	if (s->precopy) {
		ret = precopy_final(s, err);
		if (ret < 0)
			return ret;
	}
	/* A VE whose root is a file system of its own (a disk image on a
	 * loop device) has what it wrote reach the image first. A root that
	 * is a directory of the host's file system needs nothing: the page
	 * cache is the file's contents, and syncing the whole host file
	 * system would cost as much as its dirty data, the VE's or not. */
	rfd = open(s->ve->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd >= 0) {
		struct stat rs, ps;

		if (fstat(rfd, &rs) == 0 && stat(s->ve->private, &ps) == 0 && rs.st_dev != ps.st_dev) {
			uint64_t t1 = vz_now_ns();

			syncfs(rfd);
			pr_debug("VE %u: synced its file system in %.0f ms", s->ve->veid, ms_since(t1));
		}
		close(rfd);
	}
	ret = pass(s, "Second file pass", &s->t_pass2, err);
	if (ret < 0)
		return ret;
	t0 = vz_now_ns();
	{
		/* What the images hold, for the progress bar (compressed, so
		 * the bar ends early on compressible memory). */
		du_total = 0;
		nftw(s->images_dir, du_cb, 16, FTW_PHYS);
		phase_start(s, "Copying the dump", du_total);
	}
	ret = send_type(&s->conn, VZ__MIGRATE__TYPE__T_IMAGES, err);
	if (ret == 0)
		ret = vz_img_pack(s->images_fd, 1, images_sink, s, &st, err);
	if (ret == 0)
		ret = send_type(&s->conn, VZ__MIGRATE__TYPE__T_IMAGES_END, err);
	if (ret < 0)
		return vz_error_wrap(err, "Send the dump");
	s->raw_bytes += st.raw_bytes;
	s->t_copy = ms_since(t0);
	vz_ctl_progress(s->call->conn, "Dump sent: %u images, %llu bytes (%llu compressed), %.0f ms", st.nfiles,
			(unsigned long long)st.raw_bytes, (unsigned long long)st.wire_bytes, s->t_copy);
	t0 = vz_now_ns();
	ret = expect(&s->conn, VZ__MIGRATE__TYPE__T_RESTORED, NULL, err);
	if (ret < 0)
		return vz_error_wrap(err, "Restore on the destination");
	s->t_undump = ms_since(t0);
	ret = decide(s->ve->veid, s->mid, true, &go, err);
	if (ret < 0)
		return ret;
	if (!go)
		return vz_error_msg(err, ECANCELED, "The destination lost us and the migration was aborted");
	s->committed = true;
	pr_info("VE %u: migration %s committed", s->ve->veid, s->mid);
	{
		/* The source copy is doomed from here, whatever becomes of this
		 * worker: if it died now CRIU would let the tasks go, and the
		 * pending SIGKILL ends them before they run again. */
		pid_t *pids = NULL;
		size_t n = 0;

		if (s->postcopy) {
			/* Post-copy reads the source copy's memory after the go:
			 * freeze it instead, so that it never runs again (CRIU
			 * leaves the cgroup as it finds it). */
			struct vz_err e = { 0 };

			if (vz_cg_freeze_start(&s->a->cg, s->ve->veid, &e) < 0)
				pr_warn("VE %u: %s", s->ve->veid, e.msg);
		} else if (vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, NULL) == 0) {
			for (size_t i = 0; i < n; i++)
				kill(pids[i], SIGKILL);
		}
		free(pids);
	}
	/* From here the destination owns the VE: failures only delay it. */
	t0 = vz_now_ns();
	s->go_ns = vz_now_ns();
	if (send_type(&s->conn, VZ__MIGRATE__TYPE__T_GO, err) == 0) {
		s->go_sent = true;
		if (s->postcopy)
			vz_ctl_progress(s->call->conn,
					"VE %u runs on %s now; its memory follows from this host (post-copy): it depends on "
					"this host until the last page has arrived",
					s->ve->veid, s->conn.peer);
		s->done_seen = expect(&s->conn, VZ__MIGRATE__TYPE__T_DONE, NULL, err) == 0;
	}
	s->t_undump += ms_since(t0);
	s->t_frozen = ms_since(s->freeze_ns);
	if (!s->done_seen)
		pr_warn("VE %u: no confirmation from the destination (%s); it will ask for the decision", s->ve->veid,
			err->msg);
	vz_err_clear(err);
	return 0;
}

static int dump_notify(const char *script, pid_t pid, void *arg)
{
	struct src *s = arg;

	(void)pid;
	if (strcmp(script, "post-dump"))
		return 0;
	if (commit_phase(s, &s->err) < 0) {
		struct vz_err e = { 0 };

		pr_err("VE %u: %s", s->ve->veid, s->err.msg);
		send_type(&s->conn, VZ__MIGRATE__TYPE__T_ABORT, &e);
		if (s->cl)
			s->cl->mode = CLOSER_CLOSE;
		return -1;
	}
	if (s->cl && s->postcopy)
		s->cl->mode = CLOSER_LEAVE; /* the destination's page stream takes it */
	return 0;
}

/* Freezes the VE for the dump. Ourselves: CRIU polls the freezer every
 * 100 ms, we every millisecond or so; CRIU then finds it frozen, seizes
 * it, and leaves the cgroup frozen whatever happens (a failure thaws it).
 * With --verify-memory the rseq areas the digests leave out are read with
 * ptrace the moment before; a thread started in between would go
 * unmasked, so then the VE thaws and both steps are done again. An
 * auto-converge cap ends first. */
static int freeze_for_dump(struct src *s, struct vz_err *err)
{
	/* A capped VE would take its time to stop for ptrace and the freezer
	 * (a second per stop at the least cap); what it writes meanwhile goes
	 * in the last round. */
	uncap(s);
	for (int tries = 1;; tries++) {
		pid_t *pids = NULL, *seen = NULL;
		size_t n = 0, nseen = 0;
		bool all = true;
		int ret;

		if (s->verify) {
			free(s->mask);
			s->mask = NULL;
			s->nmask = 0;
			if (vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, err) == 0)
				vz_rseq_areas(pids, n, &s->mask, &s->nmask, &seen, &nseen, err);
			free(pids);
			pids = NULL;
			vz_err_clear(err);
		}
		s->freeze_ns = vz_now_ns();
		ret = vz_cg_freeze(&s->a->cg, s->ve->veid, 5000, err);
		if (ret == 0 && s->verify && vz_cg_pids(&s->a->cg, s->ve->veid, &pids, &n, NULL) == 0)
			all = vz_threads_seen(pids, n, seen, nseen);
		free(pids);
		free(seen);
		if (ret < 0 || all)
			return ret;
		if (tries == 3) {
			pr_warn("VE %u: threads keep starting; a digest mismatch may be a thread's rseq area",
				s->ve->veid);
			return 0;
		}
		pr_debug("VE %u: a thread started while its rseq areas were read; again", s->ve->veid);
		ret = vz_cg_thaw(&s->a->cg, s->ve->veid, err);
		if (ret < 0)
			return ret;
	}
}

static int hello(struct src *s, bool online, bool dry_run, bool start_after, struct vz_err *err)
{
	Vz__Migrate__Hello h = VZ__MIGRATE__HELLO__INIT;
	msg_t m = VZ__MIGRATE__MSG__INIT, *r = NULL;
	struct vz_criu criu = { s->a->criu };
	struct vz_criu_version ver = { 0 };
	_cleanup_free_ char *conf = NULL, *cpuinfo = NULL;
	size_t conf_len = 0, cpu_len = 0;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	struct utsname u;
	int img = -1, work = -1, ret;

	uname(&u);
	ret = vz_read_file(s->ve->conf_path, &conf, &conf_len, 1 << 20);
	if (ret < 0)
		return vz_error(err, -ret, "Read %s", s->ve->conf_path);
	if (online) {
		ret = vz_criu_version(&criu, &ver, err);
		if (ret == 0)
			ret = make_img_dir(s->ve->veid, "cpuinfo", dir, sizeof(dir), &img, &work, err);
		if (ret == 0) {
			ret = vz_criu_cpuinfo_dump(&criu, img, err);
			snprintf(path, sizeof(path), "%s/cpuinfo.img", dir);
			if (ret == 0)
				ret = vz_read_file(path, &cpuinfo, &cpu_len, 1 << 20);
			vz_rm_rf(dir);
			close(img);
			close(work);
		}
		if (ret < 0)
			return vz_error_wrap(err, "Describe this host's CPU for the destination");
	}
	du_total = 0;
	nftw(s->ve->private, du_cb, 16, FTW_PHYS);
	s->private_total = du_total;
	h.veid = s->ve->veid;
	h.migration_id = s->mid;
	h.has_online = h.has_dry_run = h.has_start_after = h.has_private_bytes = h.has_conf = true;
	h.online = online;
	h.dry_run = dry_run;
	h.start_after = start_after;
	h.criu_version = ver.text;
	h.kernel = u.release;
	h.machine = u.machine;
	h.conf.data = (uint8_t *)conf;
	h.conf.len = conf_len;
	h.private_bytes = du_total;
	if (cpuinfo) {
		h.has_cpuinfo = true;
		h.cpuinfo.data = (uint8_t *)cpuinfo;
		h.cpuinfo.len = cpu_len;
	}
	h.has_keep_dst = true;
	h.keep_dst = s->call->req->keep_dst;
	h.has_precopy = h.has_verify_memory = h.has_postcopy = true;
	h.precopy = s->lazy;
	h.postcopy = s->postcopy;
	h.verify_memory = s->verify;
	h.has_source_port = true;
	h.source_port = s->a->mig_port;
	h.source_host = s->a->host_name;
	m.type = VZ__MIGRATE__TYPE__T_HELLO;
	m.hello = &h;
	ret = vz_msg_send(&s->conn, &m.base, err);
	if (ret == 0)
		ret = expect(&s->conn, VZ__MIGRATE__TYPE__T_HELLO_OK, &r, err);
	if (ret < 0)
		return ret;
	vz_ctl_progress(s->call->conn, "Destination %s: VE %u can move there (%llu MiB free, CRIU %s)", s->conn.peer,
			s->ve->veid, (unsigned long long)(r->free_bytes >> 20), r->criu_version ? r->criu_version : "-");
	if (s->lazy && !(r->has_precopy && r->precopy)) {
		vz_ctl_progress(s->call->conn, "The destination cannot restore lazily: stop-and-copy");
		snprintf(s->conv_why, sizeof(s->conv_why), "the destination cannot restore lazily");
		s->precopy = s->postcopy = s->lazy = false;
	}
	msg_free(r);
	return 0;
}

static void summary(struct src *s, bool online, double total)
{
	int fd = s->call->conn;

	vz_ctl_progress(fd, "Migration summary for VE %u to %s (%s):", s->ve->veid, s->conn.peer,
			online ? "online" : "offline");
	vz_ctl_progress(fd, "  first file pass      %8.0f ms", s->t_pass1);
	if (online && s->precopy) {
		vz_ctl_progress(fd, "  memory (%s tracker), rounds while running:", vz_track_name(s->tkind));
		for (unsigned r = 0; r < s->nrounds && r <= MAX_ROUNDS; r++)
		{
			char cap[48] = "";

			if (s->rounds[r].cap > 0)
				snprintf(cap, sizeof(cap), "  (CPU capped at %.3f)", s->rounds[r].cap);
			vz_ctl_progress(fd, "    round %-3u %10llu pages %8llu KiB on the wire %8.0f ms%s", r,
					(unsigned long long)s->rounds[r].pages,
					(unsigned long long)(s->rounds[r].wire >> 10), s->rounds[r].ms, cap);
		}
		vz_ctl_progress(fd, "    frozen    %10llu pages %8llu KiB on the wire %8.0f ms",
				(unsigned long long)s->final_pages,
				(unsigned long long)(s->nrounds <= MAX_ROUNDS ? s->rounds[s->nrounds].wire >> 10 : 0),
				s->t_final);
		vz_ctl_progress(fd, "    %s", s->conv_why);
	} else if (online && s->postcopy) {
		vz_ctl_progress(fd, "  memory: post-copy: fetched by %s from this host for %.0f ms after the go;", s->conn.peer,
				s->t_postcopy);
		vz_ctl_progress(fd, "          until then the VE depended on this host");
	} else if (online) {
		vz_ctl_progress(fd, "  memory: stop-and-copy (%s)", s->conv_why[0] ? s->conv_why : "all of it while frozen");
	}
	if (online) {
		vz_ctl_progress(fd, "  suspend + dump       %8.0f ms", s->t_dump);
		vz_ctl_progress(fd, "  second file pass     %8.0f ms", s->t_pass2);
		vz_ctl_progress(fd, "  copy dump            %8.0f ms", s->t_copy);
		vz_ctl_progress(fd, "  undump + resume      %8.0f ms", s->t_undump);
		vz_ctl_progress(fd, "  total suspended      %8.0f ms  (downtime)", s->t_frozen);
	}
	vz_ctl_progress(fd, "  total                %8.0f ms", total);
	vz_ctl_progress(fd, "  bytes: %llu before compression, %llu on the wire", (unsigned long long)s->raw_bytes,
			(unsigned long long)s->conn.bytes_out);
	if (s->call->req->times) {
		/* OpenVZ vzmigrate -t's own lines. */
		vz_ctl_progress(fd, "Times:");
		if (online) {
			vz_ctl_progress(fd, "  Suspend + Dump:         %.3f", s->t_dump / 1000);
			vz_ctl_progress(fd, "  Copy dump file:         %.3f", s->t_copy / 1000);
			vz_ctl_progress(fd, "  Second rsync:           %.3f", s->t_pass2 / 1000);
			vz_ctl_progress(fd, "  Undump + Resume:        %.3f", s->t_undump / 1000);
			vz_ctl_progress(fd, "  Total time suspended:   %.3f", s->t_frozen / 1000);
		}
		vz_ctl_progress(fd, "  Total time:             %.3f", total / 1000);
	}
}

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	while (!c->stop && c->mode != CLOSER_LEAVE) {
		int fd;

		if (c->mode == CLOSER_WAIT) {
			usleep(2000);
			continue;
		}
		fd = loopback_connect(c->port);
		if (fd >= 0) {
			close(fd);
			pr_debug("Ended CRIU's lazy-dump page server session");
			return NULL;
		}
		usleep(2000);
	}
	return NULL;
}

static int closer_start(struct closer *c, struct vz_err *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* A free loopback port for CRIU to listen on. */
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
		if (fd >= 0)
			close(fd);
		return vz_error(err, errno, "A port for CRIU's page server");
	}
	close(fd);
	c->port = ntohs(sa.sin_port);
	c->stop = 0;
	if (pthread_create(&c->th, NULL, closer_main, c) != 0)
		return vz_error_msg(err, EAGAIN, "Cannot start a thread");
	c->running = true;
	return 0;
}

static void closer_stop(struct closer *c)
{
	if (!c->running)
		return;
	c->stop = 1;
	pthread_join(c->th, NULL);
	c->running = false;
}

int op_migrate(struct vz_call *c, struct vz_err *err)
{
	struct vz_agent *a = c->agent;
	const vz_request *req = c->req;
	_cleanup_ve_ struct ve ve;
	struct src s = { .call = c, .a = a, .ve = &ve, .images_fd = -1 };
	struct vz_tls *tls = NULL;
	char addr[256], dir[PATH_MAX], logname[64];
	uint64_t t0 = vz_now_ns();
	bool online = req->online, was_running;
	uint8_t rnd[8];
	pid_t init = 0;
	int ret, work = -1;

	if (!req->dest || !*req->dest)
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "No destination host given");
	ret = ve_open(req->veid, true, &ve, err);
	if (ret == 0)
		ret = ve_lock(&ve, 2000, err);
	if (ret < 0)
		return ret;
	was_running = ve_state(&ve, &init) == VE_STATE_RUNNING;
	if (online && !was_running) {
		vz_ctl_progress(c->conn, "VE %u is not running: migrating it offline", ve.veid);
		online = false;
	}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return vz_error(err, errno, "Random migration id");
	for (int i = 0; i < 8; i++)
		snprintf(s.mid + 2 * i, 3, "%02x", rnd[i]);
	s.downtime_ms = req->has_downtime_ms ? req->downtime_ms : 300;
	s.max_rounds = req->has_max_rounds && req->max_rounds ? req->max_rounds : 10;
	s.verify = req->verify_memory;
	s.autoconv = req->auto_converge;
	if (s.autoconv && (req->postcopy || req->stop_copy))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "--auto-converge throttles the VE during pre-copy: not with %s",
				     req->postcopy ? "--postcopy" : "--stop-copy");
	if (online && req->postcopy) {
		s.postcopy = s.lazy = true;
		if (s.verify)
			return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL,
					     "--verify-memory needs the memory on the destination before the go: not with --postcopy");
	} else if (online && !req->stop_copy) {
		char why[600];

		s.tkind = vz_track_detect(why, sizeof(why));
		s.precopy = s.lazy = s.tkind != VZ_TRACK_NONE;
		if (!s.precopy) {
			snprintf(s.conv_why, sizeof(s.conv_why), "no memory tracker here: %s", why);
			vz_ctl_progress(c->conn, "Memory pre-copy is not possible on this host (%s): stop-and-copy", why);
		}
	} else if (online) {
		snprintf(s.conv_why, sizeof(s.conv_why), "--stop-copy");
	}
	tls = host_tls(a, false, err);
	if (!tls)
		return vz_error_wrap(err, "This host cannot migrate");
	resolve_dest(req->dest, addr, sizeof(addr));
	vz_ctl_progress(c->conn, "Connecting to %s (%s:%u)", req->dest, addr, a->mig_port);
	ret = vz_tls_connect(tls, addr, a->mig_port, CONNECT_TIMEOUT_MS, (int)(a->mig_timeout * 1000), &s.conn, err);
	vz_tls_free(tls);
	if (ret < 0)
		return vz_error_exit_msg(err, VZ_EXIT_SYSTEM, -ret, "Cannot reach %s: %s", req->dest, err->msg);
	pr_info("VE %u: migration %s to %s (%s), %s", ve.veid, s.mid, req->dest, s.conn.peer,
		online ? "online" : "offline");
	ret = hello(&s, online, req->dry_run, was_running, err);
	if (ret < 0)
		goto fail;
	if (req->dry_run) {
		send_type(&s.conn, VZ__MIGRATE__TYPE__T_ABORT, err);
		vz_err_clear(err);
		vz_ctl_progress(c->conn, "Dry run: VE %u can be migrated to %s", ve.veid, req->dest);
		goto out;
	}
	if (!online && was_running) {
		ret = ve_do_stop(a, &ve, init, c->req->fast, (const struct vz_progress[]){ vz_ctl_progress_sink(c->conn) }, err);
		if (ret < 0)
			goto fail;
	}
	vz_ctl_progress(c->conn, "Syncing the private area of VE %u", ve.veid);
	ret = pass(&s, "First file pass", &s.t_pass1, err);
	if (ret < 0)
		goto fail;
	if (!online) {
		bool go = false;

		ret = expect(&s.conn, VZ__MIGRATE__TYPE__T_RESTORED, NULL, err);
		if (ret == 0)
			ret = decide(ve.veid, s.mid, true, &go, err);
		if (ret == 0 && !go)
			ret = vz_error_msg(err, ECANCELED, "The destination lost us and the migration was aborted");
		if (ret < 0)
			goto fail;
		s.committed = true;
		if (send_type(&s.conn, VZ__MIGRATE__TYPE__T_GO, err) == 0)
			s.done_seen = expect(&s.conn, VZ__MIGRATE__TYPE__T_DONE, NULL, err) == 0;
		vz_err_clear(err);
	} else {
		struct vz_criu criu = { a->criu };
		struct vz_criu_opts o = { 0 };
		char freezer[PATH_MAX];

		struct closer cl = { 0 };
		char conf[PATH_MAX + 16], outgoing[PATH_MAX];

		if (s.precopy) {
			vz_ctl_progress(c->conn, "Copying the memory of VE %u while it runs (%s tracker)", ve.veid,
					vz_track_name(s.tkind));
			ret = precopy_rounds(&s, err);
			if (ret < 0)
				goto fail;
		}
		ret = vz_cg_path(&a->cg, ve.veid, "freezer", freezer, sizeof(freezer), err);
		if (ret == 0)
			ret = make_img_dir(ve.veid, "mig", dir, sizeof(dir), &s.images_fd, &work, err);
		if (ret < 0)
			goto fail;
		if (s.lazy) {
			/* CRIU's lazy dump serves pages on loopback only: pre-copy
			 * ends its session as soon as it opens (the destination has
			 * the pages); post-copy leaves it to the destination's page
			 * stream after the go. */
			snprintf(conf, sizeof(conf), "%s.conf", dir);
			ret = vz_write_file(conf, "address 127.0.0.1\n", 18, 0);
			cl.mode = s.precopy ? CLOSER_CLOSE : CLOSER_WAIT;
			if (ret == 0)
				ret = closer_start(&cl, err);
			s.cl = &cl;
			if (ret < 0) {
				vz_rm_rf(dir);
				goto fail;
			}
			o.lazy_pages = true;
			o.ps_address = "127.0.0.1";
			o.ps_port = cl.port;
			o.config_file = conf;
		}
		snprintf(logname, sizeof(logname), "%u.migrate.log", ve.veid);
		s.images_dir = dir;
		o.images_dir_fd = s.images_fd;
		o.work_dir_fd = work;
		o.log_file = logname;
		o.pid = init;
		o.freeze_cgroup = freezer;
		o.tcp_established = true;
		o.nftables_lock = true;
		o.notify = dump_notify;
		o.notify_arg = &s;
		vz_ctl_progress(c->conn, "Suspending and dumping VE %u", ve.veid);
		{
			/* Should this worker die from here, a restarted agent finds
			 * this: it ends CRIU's lazy session through the port, then
			 * thaws the VE or, after a go, ends it
			 * (agent_migrate_recover). */
			char txt[32];

			vz_mkdir_p(vz_path(outgoing, sizeof(outgoing), "/vz/migrate"), 0700);
			vz_path(outgoing, sizeof(outgoing), "/vz/migrate/%u.%s.outgoing", ve.veid, s.mid);
			snprintf(txt, sizeof(txt), "%d%s\n", s.lazy ? cl.port : 0, s.postcopy ? " postcopy" : "");
			ret = vz_write_file(outgoing, txt, strlen(txt), 0);
			if (ret < 0) {
				vz_error(err, -ret, "Write %s", outgoing);
				if (s.lazy)
					closer_stop(&cl);
				vz_rm_rf(dir);
				goto fail;
			}
		}
		ret = freeze_for_dump(&s, err);
		if (ret == 0)
			ret = vz_criu_dump(&criu, &o, err);
		if (s.lazy) {
			closer_stop(&cl);
			unlink(conf);
			s.cl = NULL;
		}
		if (s.postcopy && s.committed)
			s.t_postcopy = ms_since(s.go_ns);
		vz_track_free(s.trk);
		s.trk = NULL;
		vz_rm_rf(dir);
		close(s.images_fd);
		close(work);
		if (!s.committed) {
			struct vz_err e2 = { 0 };

			if (s.err.msg[0])
				snprintf(err->msg, sizeof(err->msg), "%s", s.err.msg);
			if (ret == 0)
				ret = -EIO;
			/* CRIU resumed the VE; make sure it is not left frozen. */
			if (ve_state(&ve, NULL) == VE_STATE_RUNNING)
				vz_cg_thaw(&a->cg, ve.veid, &e2);
			unlink(outgoing);
			goto fail;
		}
		if (ret < 0)
			pr_warn("VE %u: CRIU after the commit: %s", ve.veid, err->msg);
		vz_err_clear(err);
		ve_kill(a, ve.veid, 0);
		if (ve_teardown(a, &ve, err) < 0)
			pr_warn("VE %u: %s", ve.veid, err->msg);
		vz_err_clear(err);
		unlink(outgoing);
	}
	if (!req->keep_src) {
		if (ve_destroy_files(&ve, err) < 0)
			pr_warn("VE %u: remove the source copy: %s", ve.veid, err->msg);
		vz_err_clear(err);
	} else {
		vz_ctl_progress(c->conn, "Keeping the stopped source copy of VE %u (-r no)", ve.veid);
	}
	if (s.done_seen) {
		char path[PATH_MAX];

		/* Confirmed and the source copy gone: nobody needs the decision
		 * (a restarted agent would otherwise remove a copy by it). */
		unlink(decision_path(path, sizeof(path), ve.veid, s.mid));
	}
	summary(&s, online, ms_since(t0));
	vz_ctl_progress(c->conn, "VE %u migrated to %s", ve.veid, req->dest);
	pr_info("VE %u: migrated to %s", ve.veid, req->dest);
out:
	mig_fstate_free(s.fs);
	vz_zenc_free(s.pz);
	free(s.mask);
	vz_conn_close(&s.conn);
	return 0;

fail:
	{
		struct vz_err e2 = { 0 };
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		send_type(&s.conn, VZ__MIGRATE__TYPE__T_ABORT, &e2);
		uncap(&s);
		vz_track_free(s.trk);
		vz_zenc_free(s.pz);
		free(s.mask);
		mig_fstate_free(s.fs);
		vz_conn_close(&s.conn);
		/* Offline: the VE was stopped for the move; it runs again here. */
		if (!online && was_running && !req->dry_run && ve_state(&ve, NULL) != VE_STATE_RUNNING &&
		    ve_do_start(a, &ve, (const struct vz_progress[]){ vz_ctl_progress_sink(c->conn) }, &e2) < 0)
			pr_err("VE %u: restart after a failed migration: %s", ve.veid, e2.msg);
		pr_err("VE %u: migration to %s failed: %s", ve.veid, req->dest, why);
		return vz_error_exit_msg(err, err->exit_code ? err->exit_code : VZ_EXIT_SYSTEM, EIO,
				     "Migration of VE %u to %s failed: %s", ve.veid, req->dest, why);
	}
}

/* ---- destination ---- */

struct dst {
	struct vz_agent *a;
	struct vz_conn conn;
	Vz__Migrate__Hello *h;
	char mid[80];
	unsigned veid;
	char private[PATH_MAX], conf_path[PATH_MAX], marker[PATH_MAX], imgdir[PATH_MAX];
	bool made_private, made_conf, restored, keep;
	int img_fd;
	pid_t pid;
	struct ve ve;
	bool ve_open;
	char src_host[128]; /* recovery: where the source is */
	/* pre-copy: the pages of every round, and the lazy restore from them */
	bool precopy;
	struct vz_pstore *ps;
	struct vz_zdec *pz;
	uint8_t *pbuf;
	struct mig_lazy *lazy;
	char workdir[PATH_MAX];
	char *memhash; /* --verify-memory: the source's digests */
	bool failed_here; /* a failure of ours, not a lost source */
	/* post-copy: pages the store lacks come from the source */
	bool postcopy, fopen, popen, pthread_on;
	struct vz_conn fconn, pconn; /* requests; background push */
	/* fconn and released: the page server's fetches and the push thread */
	pthread_mutex_t flock;
	bool released;  /* every page is here and the source was told so */
	bool lost;      /* pages did not come: the source keeps its copy */
	volatile bool stopping; /* post-copy is over: the push thread ends */
	pthread_t pth;
	struct vz_zdec *pushz;
	uint8_t *pushbuf;
	uint64_t pushed;
	struct vz_zdec *fz;
	uint8_t *fbuf;
};

static int check_hello(struct dst *d, uint64_t *free_bytes, char *criu_text, size_t len, struct vz_err *err)
{
	const Vz__Migrate__Hello *h = d->h;
	struct vz_criu criu = { d->a->criu };
	struct vz_criu_version ver;
	struct statvfs sv;
	struct utsname u;
	char path[PATH_MAX];

	if (!h->veid || h->veid > INT32_MAX || !mid_ok(h->migration_id))
		return vz_error_exit_msg(err, VZ_EXIT_INVAL, EINVAL, "Malformed migration request");
	if (vz_exists(vz_path(path, sizeof(path), VZ_CONF_DIR "/%u.conf", h->veid)))
		return vz_error_exit_msg(err, VZ_EXIT_EXISTS, EEXIST, "VE %u already exists on %s", h->veid,
				     d->a->host_name);
	if (vz_exists(vz_path(path, sizeof(path), "/vz/migrate/%u.incoming", h->veid)))
		return vz_error_exit_msg(err, VZ_EXIT_LOCKED, EBUSY, "VE %u is already migrating to %s", h->veid,
				     d->a->host_name);
	{
		/* The VE's host-side interface name must be free here. */
		struct vz_conf conf = { 0 };
		struct vz_netif nif;
		const char *netif;

		if (vz_conf_parse(&conf, (const char *)h->conf.data, h->conf.len, NULL) == 0 &&
		    (netif = vz_conf_get(&conf, "NETIF")) && vz_netif_parse(netif, &nif, NULL) == 0 &&
		    vz_net_link_exists(0, nif.host_ifname)) {
			vz_conf_free(&conf);
			return vz_error_exit_msg(err, VZ_EXIT_VETH, EEXIST, "Interface %s of VE %u is in use on %s",
					     nif.host_ifname, h->veid, d->a->host_name);
		}
		vz_conf_free(&conf);
	}
	uname(&u);
	if (h->machine && strcmp(h->machine, u.machine))
		return vz_error_msg(err, EPROTONOSUPPORT, "Source is %s, %s is %s", h->machine, d->a->host_name,
				u.machine);
	if (vz_criu_version(&criu, &ver, err) < 0)
		return vz_error_wrap(err, "CRIU on %s", d->a->host_name);
	snprintf(criu_text, len, "%s", ver.text);
	if (h->online && h->criu_version && *h->criu_version && vz_version_cmp(h->criu_version, ver.text) > 0)
		return vz_error_msg(err, EPROTONOSUPPORT, "CRIU %s on %s is older than CRIU %s on the source",
				ver.text, d->a->host_name, h->criu_version);
	if (h->online && h->has_cpuinfo) {
		char dir[PATH_MAX];
		int img = -1, work = -1, ret;

		ret = make_img_dir(h->veid, "cpucheck", dir, sizeof(dir), &img, &work, err);
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
	}
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

static void postcopy_close(struct dst *d);

/* Remove everything this migration made here. */
static void dst_cleanup(struct dst *d)
{
	struct vz_err e = { 0 };

	if (d->restored || d->pid > 0) {
		/* Frozen tasks die only once thawed. */
		vz_cg_thaw(&d->a->cg, d->veid, &e);
		ve_kill(d->a, d->veid, d->pid);
		if (d->pid > 0)
			waitpid(d->pid, NULL, WNOHANG);
		if (d->ve_open && ve_teardown(d->a, &d->ve, &e) < 0)
			pr_warn("VE %u: %s", d->veid, e.msg);
		if (d->ve_open) {
			/* The pair goes with the VE's namespace, but only once the
			 * kernel gets round to it: remove it now, so that a retry
			 * does not find the name taken. */
			struct vz_netif nif;

			if (ve_netif(&d->ve, d->a, &nif, &e) == 0 && if_nametoindex(nif.host_ifname))
				vz_net_veth_del(&nif, &e);
		}
	}
	if (d->ve_open) {
		ve_umount(&d->ve, &e);
		rmdir(d->ve.root);
	}
	mig_lazy_free(d->lazy);
	d->lazy = NULL;
	postcopy_close(d);
	if (d->imgdir[0])
		vz_rm_rf(d->imgdir);
	if (d->workdir[0])
		vz_rm_rf(d->workdir);
	if (d->made_conf)
		unlink(d->conf_path);
	if (d->made_private && !d->keep)
		vz_rm_rf(d->private);
	if (d->marker[0])
		unlink(d->marker);
	pr_info("VE %u: incoming migration %s undone", d->veid, d->mid);
}

static int write_conf(struct dst *d, struct vz_err *err)
{
	char tmp[PATH_MAX + 8];
	int ret;

	snprintf(tmp, sizeof(tmp), "%s.tmp", d->conf_path);
	ret = vz_write_file(tmp, (const char *)d->h->conf.data, d->h->conf.len, 0);
	if (ret == 0 && rename(tmp, d->conf_path) != 0)
		ret = -errno;
	if (ret < 0)
		return vz_error(err, -ret, "Write %s", d->conf_path);
	d->made_conf = true;
	ret = ve_open(d->veid, true, &d->ve, err);
	if (ret == 0)
		d->ve_open = true;
	return ret;
}

static int post_fetch(void *arg, int vpid, uint64_t vaddr, uint64_t npages, struct vz_err *err);
static int pages_into(struct dst *d, const msg_t *m, struct vz_zdec *z, uint8_t *buf, struct vz_err *err);

/* Post-copy: a connection of its own to the source, opened with its
 * first message (PAGE_STREAM or PAGE_PUSH) naming this migration. */
static int open_source_stream(struct dst *d, Vz__Migrate__Type type, struct vz_conn *c, struct vz_err *err)
{
	struct vz_tls *tls = host_tls(d->a, false, err);
	msg_t q = VZ__MIGRATE__MSG__INIT;
	int ret;

	if (!tls)
		return -EIO;
	ret = vz_tls_connect(tls, d->src_host, d->h->source_port, CONNECT_TIMEOUT_MS, (int)(d->a->mig_timeout * 1000),
			     c, err);
	vz_tls_free(tls);
	if (ret < 0)
		return vz_error_wrap(err, "Post-copy: reach the source");
	q.type = type;
	q.migration_id = d->mid;
	q.has_offset = true;
	q.offset = d->veid;
	ret = vz_msg_send(c, &q.base, err);
	if (ret < 0)
		vz_conn_close(c);
	return ret;
}

/* Post-copy: DONE on the fault stream tells the source that nothing more
 * is wanted from it: it ends its copy then (once the move is decided).
 * A stream that merely breaks does not: the source keeps its frozen copy
 * for the destination to come back to. Called with flock held. */
static void release_source(struct dst *d)
{
	struct vz_err e = { 0 };

	if (!d->fopen && open_source_stream(d, VZ__MIGRATE__TYPE__T_PAGE_STREAM, &d->fconn, &e) == 0)
		d->fopen = true;
	if (!d->fopen || send_type(&d->fconn, VZ__MIGRATE__TYPE__T_DONE, &e) < 0)
		pr_warn("VE %u: post-copy: cannot tell the source it is released: %s", d->veid, e.msg);
	if (d->fopen)
		vz_conn_close(&d->fconn);
	d->fopen = false;
	d->released = true;
}

static void fault_stream_close(struct dst *d)
{
	pthread_mutex_lock(&d->flock);
	if (!d->released && !d->lost) {
		release_source(d);
	} else if (d->fopen) {
		vz_conn_close(&d->fconn);
		d->fopen = false;
	}
	pthread_mutex_unlock(&d->flock);
}

/* Post-copy lost the source: how long to try again before giving up. */
static uint64_t postcopy_deadline(const struct dst *d)
{
	return vz_now_ns() + 4ull * d->a->mig_timeout * 1000000000ull;
}

/* A failure to retry: the link or the peer went, not the source's refusal
 * (a TLS stream cut mid-record reads as EPROTO: retried too). */
static bool transient(int ret)
{
	return ret != -EREMOTEIO && ret != -ENOMEM;
}

/* Post-copy: the source sends every page in the background on a
 * connection of its own, then ROUND_END; this thread puts them in the
 * store. Once all are there the source is needed no more: only then is
 * the fault stream closed (a fetch in flight is answered first). */
static void *push_main(void *arg)
{
	struct dst *d = arg;
	struct vz_err err = { 0 };
	uint64_t deadline = 0;

	for (;;) {
		msg_t *m = NULL;
		int ret = recv_msg(&d->pconn, &m, &err);

		if (ret < 0 && transient(ret) && !d->stopping) {
			/* The push starts over on a new stream (the store keeps
			 * what came), while the source copy is there to read. */
			if (!deadline) {
				deadline = postcopy_deadline(d);
				pr_warn("VE %u: post-copy: the push from the source broke (%s); trying again", d->veid,
					err.msg);
			}
			vz_conn_close(&d->pconn);
			d->popen = false;
			vz_zdec_reset(d->pushz); /* a new stream, a new zstd frame */
			while (!d->stopping && vz_now_ns() < deadline) {
				vz_err_clear(&err);
				if (open_source_stream(d, VZ__MIGRATE__TYPE__T_PAGE_PUSH, &d->pconn, &err) == 0) {
					d->popen = true;
					break;
				}
				usleep(500000);
			}
			if (d->popen)
				continue;
			pr_err("VE %u: post-copy: no push from the source: %s", d->veid, err.msg);
			break;
		}
		if (ret < 0)
			break;
		deadline = 0;
		if (m->type == VZ__MIGRATE__TYPE__T_ROUND_END) {
			msg_free(m);
			fault_stream_close(d);
			pr_info("VE %u: post-copy: all %llu pages of the source copy are here; it is released",
				d->veid, (unsigned long long)d->pushed);
			break;
		}
		if (m->type != VZ__MIGRATE__TYPE__T_PAGES || pages_into(d, m, d->pushz, d->pushbuf, &err) < 0) {
			msg_free(m);
			break;
		}
		d->pushed += m->raw_len / 4096;
		msg_free(m);
	}
	return NULL;
}

/* Post-copy: both streams to the source, the one for faults first. The
 * source copy lives as long as that one is open. */
static void push_start(struct dst *d)
{
	struct vz_err err = { 0 };

	pthread_mutex_lock(&d->flock);
	if (!d->fopen && open_source_stream(d, VZ__MIGRATE__TYPE__T_PAGE_STREAM, &d->fconn, &err) == 0)
		d->fopen = true;
	pthread_mutex_unlock(&d->flock);
	if (!d->fopen)
		pr_warn("VE %u: post-copy: %s (a fault retries)", d->veid, err.msg);
	vz_err_clear(&err);
	d->pushz = vz_zdec_new();
	d->pushbuf = malloc(MIG_PAGES_MAX);
	if (!d->pushz || !d->pushbuf || open_source_stream(d, VZ__MIGRATE__TYPE__T_PAGE_PUSH, &d->pconn, &err) < 0) {
		/* Faults alone still bring every page. */
		pr_warn("VE %u: post-copy without a background push: %s", d->veid, err.msg[0] ? err.msg : "no memory");
		return;
	}
	d->popen = true;
	if (pthread_create(&d->pth, NULL, push_main, d) == 0)
		d->pthread_on = true;
}

static void push_stop(struct dst *d)
{
	d->stopping = true;
	if (d->popen && d->pconn.fd >= 0)
		shutdown(d->pconn.fd, SHUT_RDWR);
	if (d->pthread_on) {
		pthread_join(d->pth, NULL);
		d->pthread_on = false;
	}
	if (d->popen) {
		vz_conn_close(&d->pconn);
		d->popen = false;
		pr_info("VE %u: post-copy: %llu pages pushed by the source", d->veid, (unsigned long long)d->pushed);
	}
}

/* Post-copy's streams to the source: the background push, then the one
 * for faults, whose closing lets the source end CRIU's session. */
static void postcopy_close(struct dst *d)
{
	push_stop(d);
	fault_stream_close(d);
}

/* A lazy restore that cannot bring every page: the VE must not run on
 * with some of its memory missing (it would read zeros there). It stays
 * frozen, as QEMU pauses a guest whose post-copy broke; before the go it
 * is frozen anyway and the move is undone. */
static void lazy_failed(void *arg)
{
	struct dst *d = arg;
	struct vz_err e = { 0 };

	d->lost = true;
	if (vz_cg_freeze_start(&d->a->cg, d->veid, &e) < 0)
		pr_err("VE %u: freeze after a failed lazy restore: %s", d->veid, e.msg);
	else
		pr_err("VE %u: its memory cannot be brought in full: the VE is frozen so that it never runs on "
		       "missing pages",
		       d->veid);
}

static int restore_here(struct dst *d, struct vz_img_unpacker *u, struct vz_err *err)
{
	_cleanup_close_ int img = -1, work = -1;
	char logname[64];
	int ret;

	(void)u;
	img = open(d->imgdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	work = open(vz_path(logname, sizeof(logname), VZ_DUMP_DIR), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (img < 0 || work < 0)
		return vz_error(err, errno, "Open the images");
	ret = write_conf(d, err);
	if (ret < 0)
		return ret;
	snprintf(logname, sizeof(logname), "%u.migrate-restore.log", d->veid);
	if (d->precopy) {
		char lazylog[64];

		/* The daemon's socket lives in the work dir the restore uses:
		 * one per migration. */
		vz_path(d->workdir, sizeof(d->workdir), VZ_DUMP_DIR "/%u.lazy.%d", d->veid, (int)getpid());
		vz_rm_rf(d->workdir);
		close(work);
		work = -1;
		if (mkdir(d->workdir, 0700) != 0 ||
		    (work = open(d->workdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return vz_error(err, errno, "Create %s", d->workdir);
		snprintf(lazylog, sizeof(lazylog), "%u.migrate-lazy.log", d->veid);
		if (d->postcopy) {
			d->fz = vz_zdec_new();
			d->fbuf = malloc(MIG_PAGES_MAX);
			if (!d->fz || !d->fbuf)
				return vz_error_msg(err, ENOMEM, "Out of memory");
			vz_pstore_set_fetch(d->ps, post_fetch, d);
			push_start(d);
		}
		{
			uint64_t t0 = vz_now_ns();

			ret = mig_lazy_start(&d->lazy, d->a->criu, d->ps, d->imgdir, d->workdir, lazylog, lazy_failed, d,
					     err);
			if (ret < 0)
				return vz_error_wrap(err, "Lazy restore");
			pr_debug("VE %u: lazy-pages daemon ready in %.0f ms", d->veid, ms_since(t0));
		}
	}
	ret = ve_restore_images(d->a, &d->ve, img, work, logname, true, d->precopy, &d->pid, err);
	if (ret < 0)
		return ret;
	d->restored = true;
	if (d->memhash) {
		/* Every page in place, then compare with the source's digests. */
		pid_t *pids = NULL;
		size_t n = 0, len = 0;
		char *mine = NULL;

		if (d->lazy)
			ret = mig_lazy_wait(d->lazy, 120000, err);
		if (ret == 0)
			ret = vz_cg_pids(&d->a->cg, d->veid, &pids, &n, err);
		struct vz_mem_mask *mask = NULL;
		size_t nmask = 0;
		char *digests = d->memhash;

		while (ret == 0 && !strncmp(digests, "mask ", 5)) {
			struct vz_mem_mask mk;
			unsigned long long addr;
			struct vz_mem_mask *nm;

			if (sscanf(digests, "mask %d %llx %u", &mk.vpid, &addr, &mk.len) != 3 ||
			    !(nm = realloc(mask, (nmask + 1) * sizeof(*mask)))) {
				ret = vz_error_msg(err, EPROTO, "Malformed MEMHASH");
				break;
			}
			mk.addr = addr;
			mask = nm;
			mask[nmask++] = mk;
			digests = strchr(digests, '\n');
			digests = digests ? digests + 1 : (char *)"";
		}
		if (ret == 0)
			ret = vz_mem_digest(pids, n, mask, nmask, &mine, &len, err);
		free(mask);
		if (ret < 0)
			d->failed_here = true;
		if (ret == 0 && strcmp(mine, digests)) {
			char path[PATH_MAX];

			vz_write_file(vz_path(path, sizeof(path), VZ_DUMP_DIR "/%u.memhash.dst", d->veid), mine, len,
				      0);
			vz_write_file(vz_path(path, sizeof(path), VZ_DUMP_DIR "/%u.memhash.src", d->veid),
				      digests, strlen(digests), 0);
			ret = vz_error_msg(err, EIO, "Restored memory differs from the source's (digests in %s)",
				       VZ_DUMP_DIR);
			d->failed_here = true;
		} else if (ret == 0) {
			size_t lines = 0;

			for (const char *q = mine; *q; q++)
				lines += *q == '\n';
			pr_info("VE %u: memory verified: %zu mappings identical to the source's", d->veid, lines);
		}
		free(mine);
		free(pids);
	}
	return ret;
}

/* Finish on go: thaw (online) or start (offline), announce, done. */
static int finish(struct dst *d, struct vz_err *err)
{
	struct vz_netif nif;
	int ret = 0;

	if (d->h->online) {
		bool have_nif = ve_netif(&d->ve, d->a, &nif, err) == 0;

		/* The restore left it off the bridge until now. */
		if (have_nif && vz_net_bridge_port(nif.bridge, nif.host_ifname, true, err) < 0)
			pr_warn("VE %u: %s", d->veid, err->msg);
		vz_err_clear(err);
		ret = vz_cg_thaw(&d->a->cg, d->veid, err);
		if (ret == 0 && have_nif && vz_net_garp(d->pid, nif.ifname, err) < 0)
			pr_warn("VE %u: %s", d->veid, err->msg);
		vz_err_clear(err);
	} else if (d->h->start_after) {
		ret = ve_do_start(d->a, &d->ve, NULL, err);
	}
	unlink(d->marker);
	d->marker[0] = '\0';
	if (d->imgdir[0] && !d->lazy)
		vz_rm_rf(d->imgdir);
	pr_info("VE %u: migration %s from %s completed", d->veid, d->mid, d->conn.peer);
	return ret;
}

/* After the go and DONE: the lazy-pages daemon copies what remains, all
 * of it from the local store; then the logs go beside the others. */
static void finish_lazy(struct dst *d)
{
	if (d->lazy) {
		struct vz_err e = { 0 };
		uint64_t t0 = vz_now_ns();

		if (mig_lazy_wait(d->lazy, 600000, &e) < 0) {
			pr_err("VE %u: %s", d->veid, e.msg);
			lazy_failed(d);
		} else
			pr_info("VE %u: every page in place %.0f ms after the go", d->veid, ms_since(t0));
		mig_lazy_free(d->lazy);
		d->lazy = NULL;
	}
	postcopy_close(d);
	if (d->workdir[0]) {
		char from[PATH_MAX + 64], to[PATH_MAX];

		/* Keep CRIU's logs where the other logs are. */
		for (int i = 0; i < 2; i++) {
			const char *n = i ? "migrate-lazy" : "migrate-restore";

			snprintf(from, sizeof(from), "%s/%u.%s.log", d->workdir, d->veid, n);
			rename(from, vz_path(to, sizeof(to), VZ_DUMP_DIR "/%u.%s.log", d->veid, n));
		}
		vz_rm_rf(d->workdir);
		d->workdir[0] = '\0';
	}
	if (d->imgdir[0])
		vz_rm_rf(d->imgdir);
}

/* Connection lost with the VE restored and frozen: only the source's
 * decision may free it. Ask until it answers. */
static void ask_decision(struct dst *d)
{
	struct vz_err err = { 0 };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[128] = "";
	uint64_t end = vz_now_ns() + (uint64_t)DECISION_WAIT_S * 1000000000ULL;

	if (d->src_host[0])
		snprintf(host, sizeof(host), "%s", d->src_host);
	else if (d->conn.fd < 0 || getpeername(d->conn.fd, (struct sockaddr *)&ss, &sl) != 0 ||
		 getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0)
		snprintf(host, sizeof(host), "%s", d->h->source_host ? d->h->source_host : "");
	vz_conn_close(&d->conn);
	while (vz_now_ns() < end) {
		struct vz_tls *tls = host_tls(d->a, false, &err);
		struct vz_conn c;
		msg_t q = VZ__MIGRATE__MSG__INIT, *r = NULL;

		if (tls && vz_tls_connect(tls, host, d->h->source_port, CONNECT_TIMEOUT_MS, 10000, &c, &err) == 0) {
			q.type = VZ__MIGRATE__TYPE__T_ASK_DECISION;
			q.migration_id = d->mid;
			q.has_offset = true;
			q.offset = d->veid;
			if (vz_msg_send(&c, &q.base, &err) == 0 && expect(&c, VZ__MIGRATE__TYPE__T_DECISION, &r, &err) == 0) {
				bool go = r->has_go && r->go;

				msg_free(r);
				vz_conn_close(&c);
				vz_tls_free(tls);
				pr_info("VE %u: the source decided %s for migration %s", d->veid, go ? "go" : "abort",
					d->mid);
				if (go && finish(d, &err) == 0) {
					finish_lazy(d);
					return;
				}
				dst_cleanup(d);
				return;
			}
			vz_conn_close(&c);
		}
		vz_tls_free(tls);
		pr_warn("VE %u: waiting for the decision on migration %s from %s: %s", d->veid, d->mid, host, err.msg);
		vz_err_clear(&err);
		sleep(2);
	}
	pr_err("VE %u: no decision from the source in %d s; the VE stays frozen here (migration %s)", d->veid,
	       DECISION_WAIT_S, d->mid);
}

/* A destination asks what was decided (we are its source). */
static void answer_decision(struct dst *d, const msg_t *q)
{
	msg_t r = VZ__MIGRATE__MSG__INIT;
	struct vz_err err = { 0 };
	bool go = false;

	if (!q->migration_id || !mid_ok(q->migration_id) || !q->has_offset || q->offset == 0 ||
	    q->offset > INT32_MAX) {
		send_error(&d->conn, VZ_EXIT_INVAL, "Malformed question");
		return;
	}
	/* No decision yet means the source gave up: record abort, first. */
	if (decide((unsigned)q->offset, q->migration_id, false, &go, &err) < 0) {
		send_error(&d->conn, VZ_EXIT_SYSTEM, err.msg);
		return;
	}
	pr_info("VE %u: told %s the decision on migration %s: %s", (unsigned)q->offset, d->conn.peer,
		q->migration_id, go ? "go" : "abort");
	r.type = VZ__MIGRATE__TYPE__T_DECISION;
	r.has_go = true;
	r.go = go;
	vz_msg_send(&d->conn, &r.base, &err);
}

struct sink {
	uint8_t *buf;
	size_t len;
};

static int pages_sink(void *arg, const void *buf, size_t len, struct vz_err *err)
{
	struct sink *k = arg;

	(void)err;
	memcpy(k->buf + k->len, buf, len);
	k->len += len;
	return 0;
}

/* PAGES: one process's pages, zstd; into the store. */
static int pages_into(struct dst *d, const msg_t *m, struct vz_zdec *z, uint8_t *buf, struct vz_err *err)
{
	size_t raw = m->has_raw_len ? (size_t)m->raw_len : 0;
	struct sink k = { buf, 0 };
	int ret;

	if (!d->ps || !m->has_vpid || !m->has_vaddr || !m->has_data || raw == 0 || raw % 4096 ||
	    raw > MIG_PAGES_MAX || m->vpid == 0 || m->vpid > INT32_MAX)
		return vz_error_msg(err, EPROTO, "Malformed PAGES");
	ret = vz_zdec_chunk(z, m->data.data, m->data.len, raw, pages_sink, &k, err);
	if (ret == 0 && k.len != raw)
		ret = vz_error_msg(err, EPROTO, "PAGES holds %zu bytes, not %zu", k.len, raw);
	if (ret == 0)
		ret = vz_pstore_put(d->ps, (int)m->vpid, m->vaddr, buf, raw / 4096, err);
	return ret;
}

static int pages_in(struct dst *d, const msg_t *m, struct vz_err *err)
{
	return pages_into(d, m, d->pz, d->pbuf, err);
}

/* Post-copy, in the page server's thread: ask the source for pages the
 * store lacks, on a connection of their own. */
static int post_fetch(void *arg, int vpid, uint64_t vaddr, uint64_t npages, struct vz_err *err)
{
	struct dst *d = arg;
	msg_t q = VZ__MIGRATE__MSG__INIT, *r = NULL;
	uint64_t deadline = 0;
	int ret = 0;

	pthread_mutex_lock(&d->flock);
	for (;;) {
		if (d->released) {
			ret = vz_error_msg(err, ENOENT, "Not among the pages the source copy has");
			break;
		}
		vz_err_clear(err);
		ret = 0;
		if (!d->fopen && (ret = open_source_stream(d, VZ__MIGRATE__TYPE__T_PAGE_STREAM, &d->fconn, err)) == 0)
			d->fopen = true;
		if (ret == 0) {
			q.type = VZ__MIGRATE__TYPE__T_PAGE_REQ;
			q.has_vpid = q.has_vaddr = q.has_raw_len = true;
			q.vpid = (uint32_t)vpid;
			q.vaddr = vaddr;
			q.raw_len = npages * 4096;
			ret = vz_msg_send(&d->fconn, &q.base, err);
			if (ret == 0)
				ret = expect(&d->fconn, VZ__MIGRATE__TYPE__T_PAGES, &r, err);
			if (ret == 0 && (r->vpid != (uint32_t)vpid || r->vaddr != vaddr))
				ret = vz_error_msg(err, EPROTO, "Post-copy: the source answered for other pages");
			if (ret == 0)
				ret = pages_into(d, r, d->fz, d->fbuf, err);
			msg_free(r);
			r = NULL;
		}
		if (ret == 0 || !transient(ret))
			break;
		/* The source went away: the faulting threads wait while we try
		 * again; its frozen copy waits for us. */
		if (d->fopen)
			vz_conn_close(&d->fconn);
		d->fopen = false;
		vz_zdec_reset(d->fz);
		if (!deadline) {
			deadline = postcopy_deadline(d);
			pr_warn("VE %u: post-copy: lost the source (%s); trying again", d->veid, err->msg);
		} else if (vz_now_ns() > deadline) {
			break;
		}
		usleep(500000);
	}
	if (ret == 0 && deadline)
		pr_info("VE %u: post-copy: the source is back", d->veid);
	pthread_mutex_unlock(&d->flock);
	if (ret < 0)
		return vz_error_wrap(err, "Post-copy: pid %d's page at %#llx", vpid, (unsigned long long)vaddr);
	return 0;
}

static int dst_loop(struct dst *d, struct vz_err *err)
{
	struct vz_img_unpacker *u = NULL;
	struct mig_recv *rcv = mig_recv_new(d->private, err);
	int ret = rcv ? 0 : -EIO;

	while (ret == 0) {
		msg_t *m = NULL;

		ret = recv_msg(&d->conn, &m, err);
		if (ret < 0)
			break;
		switch (m->type) {
		case VZ__MIGRATE__TYPE__T_FILE:
		case VZ__MIGRATE__TYPE__T_FILE_END:
		case VZ__MIGRATE__TYPE__T_DELETE:
			ret = mig_recv_msg(rcv, m, err);
			break;
		case VZ__MIGRATE__TYPE__T_DATA:
			ret = u ? vz_img_unpacker_feed(u, m->data.data, m->data.len, err) : mig_recv_msg(rcv, m, err);
			break;
		case VZ__MIGRATE__TYPE__T_PAGES:
			ret = pages_in(d, m, err);
			break;
		case VZ__MIGRATE__TYPE__T_ROUND_END:
			pr_info("VE %u: pre-copy round %u received, %llu pages held", d->veid, m->round,
				(unsigned long long)(d->ps ? vz_pstore_pages(d->ps) : 0));
			break;
		case VZ__MIGRATE__TYPE__T_MEMHASH:
			free(d->memhash);
			d->memhash = strndup((const char *)m->data.data, m->data.len);
			break;
		case VZ__MIGRATE__TYPE__T_PASS_END:
			mig_recv_pass_end(rcv);
			if (!d->h->online) {
				ret = write_conf(d, err);
				if (ret == 0)
					ret = send_type(&d->conn, VZ__MIGRATE__TYPE__T_RESTORED, err);
			}
			break;
		case VZ__MIGRATE__TYPE__T_IMAGES: {
			int work = -1;

			if (u || d->img_fd >= 0) {
				ret = vz_error_msg(err, EPROTO, "A second IMAGES");
				break;
			}
			ret = make_img_dir(d->veid, "incoming", d->imgdir, sizeof(d->imgdir), &d->img_fd, &work, err);
			if (ret == 0) {
				close(work);
				/* Images hold memory: cap at what a host may hold. */
				u = vz_img_unpacker_new(d->img_fd, 64ull << 30, err);
				if (!u)
					ret = -ENOMEM;
			}
			break;
		}
		case VZ__MIGRATE__TYPE__T_IMAGES_END: {
			uint64_t t0 = vz_now_ns();

			ret = u ? vz_img_unpacker_finish(u, NULL, err) : vz_error_msg(err, EPROTO, "IMAGES_END without IMAGES");
			if (ret == 0)
				ret = restore_here(d, u, err);
			if (ret == 0)
				ret = send_type(&d->conn, VZ__MIGRATE__TYPE__T_RESTORED, err);
			if (ret == 0)
				pr_info("VE %u: restored (frozen) %.0f ms after the images", d->veid, ms_since(t0));
			break;
		}
		case VZ__MIGRATE__TYPE__T_GO: {
			uint64_t t0 = vz_now_ns();

			ret = finish(d, err);
			send_type(&d->conn, VZ__MIGRATE__TYPE__T_DONE, err);
			pr_info("VE %u: running here %.0f ms after the go", d->veid, ms_since(t0));
			finish_lazy(d);
			msg_free(m);
			mig_recv_free(rcv);
			vz_img_unpacker_free(u);
			return ret < 0 ? ret : 1;
		}
		case VZ__MIGRATE__TYPE__T_ABORT:
			ret = vz_error_msg(err, ECANCELED, "The source aborted the migration");
			break;
		default:
			ret = vz_error_msg(err, EPROTO, "Unexpected message %d", (int)m->type);
		}
		msg_free(m);
	}
	mig_recv_free(rcv);
	vz_img_unpacker_free(u);
	return ret;
}

/* Post-copy, on the source: end CRIU's lazy-dump session, which holds
 * the frozen source copy. Decided go: that copy dies as soon as it is
 * thawed, never to run again. CRIU listens once its post-dump call is
 * answered, which may come after the last page. */
static bool ve_traced(struct vz_agent *a, unsigned veid);

/* Does the outgoing marker at path carry this word ("postcopy", "recovered")? */
static bool marker_says(const char *path, const char *word)
{
	_cleanup_free_ char *txt = NULL;

	return vz_read_file(path, &txt, NULL, 64) == 0 && strstr(txt, word);
}

static void end_lazy_session(struct vz_agent *a, unsigned veid, const char *mid, int port)
{
	struct vz_err err = { 0 };
	char path[PATH_MAX], dp[PATH_MAX];
	_cleanup_free_ char *dec = NULL;
	uint64_t end = vz_now_ns() + 120ull * 1000000000ull;
	bool go, recovered;
	int sk = -1;

	vz_path(path, sizeof(path), "/vz/migrate/%u.%s.outgoing", veid, mid);
	/* Kept by a restarted agent: CRIU may have gone with its worker. */
	recovered = marker_says(path, "recovered");
	if (recovered)
		sk = loopback_connect(port); /* before the tasks go: CRIU ends then */
	go = vz_read_file(decision_path(dp, sizeof(dp), veid, mid), &dec, NULL, 64) == 0 && !strncmp(dec, "go", 2);
	if (go) {
		pid_t *pids = NULL;
		size_t n = 0;

		if (vz_cg_pids(&a->cg, veid, &pids, &n, NULL) == 0)
			for (size_t i = 0; i < n; i++)
				kill(pids[i], SIGKILL);
		free(pids);
	}
	while (sk < 0 && vz_now_ns() < end && vz_exists(path) && (!recovered || ve_traced(a, veid)))
		if ((sk = loopback_connect(port)) < 0)
			usleep(2000);
	if (sk >= 0)
		close(sk);
	if (go && vz_cg_thaw(&a->cg, veid, &err) < 0)
		pr_warn("VE %u: %s", veid, err.msg);
}

/* Post-copy, on the source, after the destination released a copy whose
 * migration worker died (an agent restart kept it for the destination,
 * agent_migrate_recover): what that worker would have done. */
static void finish_recovered(struct vz_agent *a, unsigned veid, const char *mid, const char *marker)
{
	char dp[PATH_MAX];
	struct vz_err e = { 0 };
	struct ve ve;

	if (!marker_says(marker, "recovered"))
		return;
	if (ve_open(veid, true, &ve, &e) == 0) {
		pr_info("VE %u: post-copy migration %s is over; removing the source copy", veid, mid);
		ve_kill(a, veid, 0);
		if (ve_teardown(a, &ve, &e) < 0 || ve_destroy_files(&ve, &e) < 0)
			pr_warn("VE %u: %s", veid, e.msg);
		ve_close(&ve);
	}
	unlink(marker);
	unlink(decision_path(dp, sizeof(dp), veid, mid));
}

/* Post-copy, on the source: the VE and CRIU's page-server port of the
 * migration a PAGE_STREAM or PAGE_PUSH names (marker in path), or -1
 * after telling the peer why not. */
static int outgoing_port(struct dst *d, const msg_t *m, const char *what, unsigned *veid, char *path, size_t len)
{
	_cleanup_free_ char *txt = NULL;
	int port;

	if (!m->migration_id || !mid_ok(m->migration_id) || !m->has_offset || !m->offset || m->offset > INT32_MAX) {
		char msg[64];

		snprintf(msg, sizeof(msg), "Malformed %s", what);
		send_error(&d->conn, VZ_EXIT_INVAL, msg);
		return -1;
	}
	*veid = (unsigned)m->offset;
	vz_path(path, len, "/vz/migrate/%u.%s.outgoing", *veid, m->migration_id);
	if (vz_read_file(path, &txt, NULL, 32) < 0 || (port = atoi(txt)) <= 0 || port > 65535) {
		send_error(&d->conn, VZ_EXIT_INVAL, "No post-copy migration of that id here");
		return -1;
	}
	return port;
}

struct push {
	struct vz_conn *conn;
	struct vz_zenc *z;
	uint64_t pages;
};

static int push_emit(void *arg, int vpid, uint64_t vaddr, const void *data, size_t npages, struct vz_err *err)
{
	struct push *p = arg;

	p->pages += npages;
	return send_pages(p->conn, p->z, (uint32_t)vpid, vaddr, data, npages * 4096, err);
}

/* Post-copy, on the source: every present page of the frozen source copy
 * to the destination, in the background, until done or it hangs up. */
static void serve_page_push(struct dst *d, const msg_t *m)
{
	struct vz_err err = { 0 };
	char path[PATH_MAX];
	struct push p = { .conn = &d->conn };
	struct vz_track *t = NULL;
	struct vz_track_stats st;
	pid_t *pids = NULL;
	size_t n = 0;
	unsigned veid;
	int ret = -1;

	if (outgoing_port(d, m, "PAGE_PUSH", &veid, path, sizeof(path)) < 0)
		return;
	/* The tracker with no back-end finds every present private page. */
	p.z = vz_zenc_new(1);
	t = vz_track_new(VZ_TRACK_NONE, NULL, NULL, &err);
	if (p.z && t && vz_cg_pids(&d->a->cg, veid, &pids, &n, &err) == 0)
		ret = vz_track_round(t, pids, n, push_emit, &p, &st, &err);
	free(pids);
	vz_track_free(t);
	vz_zenc_free(p.z);
	/* The end. The destination, once it has stored all of it, says DONE
	 * on its fault stream, and that ends the source copy; not this:
	 * pages sent are not yet pages held. */
	if (ret == 0)
		ret = send_type(&d->conn, VZ__MIGRATE__TYPE__T_ROUND_END, &err);
	pr_info("VE %u: post-copy: %llu pages pushed to %s%s%s", veid, (unsigned long long)p.pages, d->conn.peer,
		err.msg[0] ? ": " : "", err.msg);
}

/* Post-copy, on the source: a destination fetches the pages of a VE it
 * runs now (or is restoring) from the frozen source copy, read through
 * /proc/PID/mem, until it closes this stream. The source copy is held by
 * CRIU's lazy-dump session meanwhile; ending that session ends it. */
static void serve_page_stream(struct dst *d, const msg_t *m)
{
	struct vz_err err = { 0 };
	char path[PATH_MAX];
	struct vz_zenc *z = NULL;
	uint8_t *buf = NULL;
	uint64_t pages = 0;
	unsigned veid;
	int port = outgoing_port(d, m, "PAGE_STREAM", &veid, path, sizeof(path));
	struct {
		int vpid, mem;
	} map[256];
	size_t nmap = 0;
	bool released = false;

	if (port < 0)
		return;
	{
		/* Faults come when they come: no read timeout (keepalive and
		 * the user timeout still end it if the destination goes). */
		struct timeval tv = { 0, 0 };

		setsockopt(d->conn.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	{
		pid_t *pids = NULL;
		size_t n = 0;

		if (vz_cg_pids(&d->a->cg, veid, &pids, &n, &err) == 0)
			for (size_t i = 0; i < n && nmap < 256; i++) {
				char mp[64];
				int vpid = vz_proc_vpid(pids[i]), fd;

				snprintf(mp, sizeof(mp), "/proc/%d/mem", (int)pids[i]);
				if (vpid > 0 && (fd = open(mp, O_RDONLY | O_CLOEXEC)) >= 0) {
					map[nmap].vpid = vpid;
					map[nmap++].mem = fd;
				}
			}
		free(pids);
	}
	pr_info("VE %u: post-copy: serving migration %s's pages to %s (%zu processes)", veid, m->migration_id,
		d->conn.peer, nmap);
	z = vz_zenc_new(1);
	buf = malloc(MIG_PAGES_MAX);
	while (z && buf) {
		msg_t *q = NULL;
		uint32_t vpid;
		uint64_t vaddr;
		ssize_t got = -1;
		int ret = recv_msg(&d->conn, &q, &err);

		if (ret < 0)
			break; /* gone, without a word */
		if (q->type == VZ__MIGRATE__TYPE__T_DONE) {
			msg_free(q);
			released = true; /* it has all it wants */
			break;
		}
		if (q->type != VZ__MIGRATE__TYPE__T_PAGE_REQ || !q->has_vpid || !q->has_vaddr || !q->has_raw_len ||
		    !q->vpid || q->vpid > INT32_MAX || q->vaddr % 4096 || !q->raw_len || q->raw_len % 4096 ||
		    q->raw_len > MIG_PAGES_MAX) {
			msg_free(q);
			send_error(&d->conn, VZ_EXIT_INVAL, "Malformed PAGE_REQ");
			break;
		}
		for (size_t i = 0; i < nmap; i++)
			if (map[i].vpid == (int)q->vpid)
				got = pread(map[i].mem, buf, (size_t)q->raw_len, (off_t)q->vaddr);
		vpid = q->vpid;
		vaddr = q->vaddr;
		msg_free(q);
		if (got < 4096) {
			pr_err("VE %u: post-copy: cannot read pid %u's page at %#llx", veid, vpid,
			       (unsigned long long)vaddr);
			send_error(&d->conn, VZ_EXIT_SYSTEM, "The source cannot read that page");
			break;
		}
		got -= got % 4096;
		if (send_pages(&d->conn, z, vpid, vaddr, buf, (size_t)got, &err) < 0)
			break;
		pages += (uint64_t)got / 4096;
	}
	for (size_t i = 0; i < nmap; i++)
		close(map[i].mem);
	vz_zenc_free(z);
	free(buf);
	pr_info("VE %u: post-copy: %llu pages served to %s", veid, (unsigned long long)pages, d->conn.peer);
	/* The destination wants nothing more: the source copy ends with the
	 * session, as the decision says once there is one. Gone without a
	 * word after a go: the copy holds pages the VE may still lack, so it
	 * stays, frozen, for the destination to come back for. */
	{
		char dp[PATH_MAX];
		_cleanup_free_ char *dec = NULL;

		decision_path(dp, sizeof(dp), veid, m->migration_id);
		while (vz_exists(path) && !vz_exists(dp))
			usleep(10000);
		if (!released && vz_read_file(dp, &dec, NULL, 64) == 0 && !strncmp(dec, "go", 2)) {
			pr_warn("VE %u: post-copy: %s went away before it had every page; the frozen copy stays here "
				"for it (migration %s)",
				veid, d->conn.peer, m->migration_id);
			return;
		}
	}
	end_lazy_session(d->a, veid, m->migration_id, port);
	finish_recovered(d->a, veid, m->migration_id, path);
}

void agent_migrate_serve(struct vz_agent *a, int fd)
{
	struct dst d = { .a = a, .img_fd = -1, .flock = PTHREAD_MUTEX_INITIALIZER };
	struct vz_err err = { 0 };
	struct vz_tls *tls = host_tls(a, true, &err);
	msg_t *m = NULL, ok = VZ__MIGRATE__MSG__INIT;
	char criu_text[32] = "", marker_text[256];
	uint64_t free_bytes = 0;
	int ret;

	if (!tls) {
		pr_err("Migration refused: %s", err.msg);
		close(fd);
		return;
	}
	ret = vz_tls_accept(tls, fd, (int)(a->mig_timeout * 1000), &d.conn, &err);
	vz_tls_free(tls);
	if (ret < 0) {
		pr_err("Refused a migration peer: %s", err.msg);
		return;
	}
	if (recv_msg(&d.conn, &m, &err) < 0) {
		pr_warn("%s: %s", d.conn.peer, err.msg);
		vz_conn_close(&d.conn);
		return;
	}
	if (m->type == VZ__MIGRATE__TYPE__T_ASK_DECISION) {
		answer_decision(&d, m);
		goto out;
	}
	if (m->type == VZ__MIGRATE__TYPE__T_PAGE_STREAM) {
		serve_page_stream(&d, m);
		goto out;
	}
	if (m->type == VZ__MIGRATE__TYPE__T_PAGE_PUSH) {
		serve_page_push(&d, m);
		goto out;
	}
	if (m->type != VZ__MIGRATE__TYPE__T_HELLO || !m->hello) {
		send_error(&d.conn, VZ_EXIT_INVAL, "Expected HELLO");
		goto out;
	}
	d.h = m->hello;
	d.veid = d.h->veid;
	d.keep = d.h->has_keep_dst && d.h->keep_dst;
	snprintf(d.mid, sizeof(d.mid), "%s", d.h->migration_id);
	if (check_hello(&d, &free_bytes, criu_text, sizeof(criu_text), &err) < 0) {
		pr_info("Refused migration of VE %u from %s: %s", d.veid, d.conn.peer, err.msg);
		send_error(&d.conn, err.exit_code, err.msg);
		goto out;
	}
	ok.type = VZ__MIGRATE__TYPE__T_HELLO_OK;
	ok.has_free_bytes = true;
	ok.free_bytes = free_bytes;
	ok.criu_version = criu_text;
	if (d.h->online && d.h->has_precopy && d.h->precopy) {
		d.postcopy = d.h->has_postcopy && d.h->postcopy;
		/* Lazy restore needs userfaultfd and CRIU's lazy pages. */
		struct vz_criu criu = { a->criu };
		struct vz_criu_features f = { 0 };
		char dir[PATH_MAX];

		ok.has_precopy = true;
		ok.precopy = vz_criu_features(&criu, &f, &err) == 0 && f.lazy_pages;
		if (!ok.precopy)
			pr_warn("VE %u: no lazy pages here (%s): stop-and-copy", d.veid,
				err.msg[0] ? err.msg : "CRIU says no");
		vz_err_clear(&err);
		if (ok.precopy && !d.h->dry_run) {
			d.ps = vz_pstore_new(vz_path(dir, sizeof(dir), VZ_DUMP_DIR), &err);
			d.pz = vz_zdec_new();
			d.pbuf = malloc(MIG_PAGES_MAX);
			if (!d.ps || !d.pz || !d.pbuf) {
				send_error(&d.conn, VZ_EXIT_SYSTEM, err.msg[0] ? err.msg : "Out of memory");
				goto out;
			}
			d.precopy = true;
		}
	}
	if (d.h->dry_run) {
		vz_msg_send(&d.conn, &ok.base, &err);
		goto out;
	}
	vz_path(d.marker, sizeof(d.marker), "/vz/migrate/%u.incoming", d.veid);
	vz_path(d.private, sizeof(d.private), VZ_PRIVATE_DIR "/%u", d.veid);
	vz_path(d.conf_path, sizeof(d.conf_path), VZ_CONF_DIR "/%u.conf", d.veid);
	{
		char dir[PATH_MAX];

		vz_mkdir_p(vz_path(dir, sizeof(dir), "/vz/migrate"), 0700);
		vz_mkdir_p(vz_path(dir, sizeof(dir), VZ_CONF_DIR), 0755);
		vz_mkdir_p(vz_path(dir, sizeof(dir), VZ_PRIVATE_DIR), 0755);
	}
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char host[128] = "-";

		if (getpeername(d.conn.fd, (struct sockaddr *)&ss, &sl) == 0)
			getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST);
		snprintf(marker_text, sizeof(marker_text), "%s %s %u %d\n", d.mid, host, d.h->source_port,
			 d.h->online ? 1 : 0);
		snprintf(d.src_host, sizeof(d.src_host), "%s", host);
	}
	if (vz_write_file(d.marker, marker_text, strlen(marker_text), 0) < 0 || mkdir(d.private, 0755) != 0) {
		send_error(&d.conn, VZ_EXIT_CREATE, "Cannot make the VE's private area");
		d.marker[0] = '\0';
		goto out;
	}
	d.made_private = true;
	pr_info("VE %u: incoming migration %s from %s (%s)", d.veid, d.mid, d.conn.peer,
		d.h->online ? "online" : "offline");
	ret = vz_msg_send(&d.conn, &ok.base, &err);
	if (ret == 0)
		ret = dst_loop(&d, &err);
	if (ret > 0)
		goto out; /* done */
	if (d.restored && d.h->online && err.errnum != ECANCELED && !d.failed_here) {
		/* Lost the source after restoring: the VE stays frozen until the
		 * source's decision is known. */
		pr_warn("VE %u: lost the source (%s) after the restore; asking for the decision", d.veid, err.msg);
		ask_decision(&d);
		goto out;
	}
	pr_info("VE %u: incoming migration failed: %s", d.veid, err.msg);
	send_error(&d.conn, err.exit_code, err.msg);
	dst_cleanup(&d);
out:
	mig_lazy_free(d.lazy);
	postcopy_close(&d);
	vz_zdec_free(d.pushz);
	free(d.pushbuf);
	vz_zdec_free(d.fz);
	free(d.fbuf);
	vz_pstore_free(d.ps);
	vz_zdec_free(d.pz);
	free(d.pbuf);
	free(d.memhash);
	if (d.ve_open)
		ve_close(&d.ve);
	if (d.img_fd >= 0)
		close(d.img_fd);
	msg_free(m);
	vz_conn_close(&d.conn);
}

/* Whether CRIU (or anyone) still holds a task of the VE with ptrace. */
static bool ve_traced(struct vz_agent *a, unsigned veid)
{
	pid_t *pids = NULL;
	size_t n = 0;
	bool traced = false;

	if (vz_cg_pids(&a->cg, veid, &pids, &n, NULL) < 0)
		return false;
	for (size_t i = 0; i < n && !traced; i++) {
		char path[64];
		_cleanup_free_ char *st = NULL;
		const char *t;

		snprintf(path, sizeof(path), "/proc/%d/status", (int)pids[i]);
		if (vz_read_file(path, &st, NULL, 8192) == 0 && (t = strstr(st, "TracerPid:")) && atoi(t + 10) != 0)
			traced = true;
	}
	free(pids);
	return traced;
}

/* The source side of a move whose worker died during the dump. */
static void recover_outgoing(struct vz_agent *a, unsigned veid, const char *mid)
{
	uint64_t end = vz_now_ns() + 15ull * 1000000000ull;
	struct vz_err e = { 0 };
	bool go = false;

	while (ve_traced(a, veid) && vz_now_ns() < end)
		usleep(20000);
	/* No decision yet means none will be "go": record the abort first. */
	if (decide(veid, mid, false, &go, &e) < 0) {
		pr_err("VE %u: migration %s: %s", veid, mid, e.msg);
		return;
	}
	if (go) {
		pr_info("VE %u: migration %s was decided go; ending the source copy", veid, mid);
		ve_kill(a, veid, 0);
	} else if (vz_cg_thaw(&a->cg, veid, &e) == 0) {
		pr_info("VE %u: migration %s was not decided; the VE runs here again", veid, mid);
	} else {
		pr_err("VE %u: thaw after migration %s: %s", veid, mid, e.msg);
	}
}

/* At agent start: incoming migrations a previous agent left half done.
 * A VE restored and frozen here waits for the source's decision; anything
 * less is removed. Each runs in a worker of its own. */
void agent_migrate_recover(struct vz_agent *a)
{
	char dir[PATH_MAX];
	_cleanup_closedir_ DIR *dd = opendir(vz_path(dir, sizeof(dir), "/vz/migrate"));
	struct dirent *de;

	/* A worker that died during an online move's dump left CRIU with the
	 * VE seized (and, with pre-copy, waiting on its lazy page server):
	 * end that session; once CRIU has let go of the VE, thaw it, unless
	 * the move was decided "go" (then the VE is ended below). */
	while (dd && (de = readdir(dd))) {
		char p[PATH_MAX + 256], omid[80];
		_cleanup_free_ char *txt = NULL;
		unsigned ov;
		int port = 0;

		if (sscanf(de->d_name, "%u.%79[0-9a-f].outgoing", &ov, omid) != 2 || !strstr(de->d_name, ".outgoing"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (vz_read_file(p, &txt, NULL, 64) == 0)
			port = atoi(txt);
		if (txt && strstr(txt, "postcopy")) {
			char dp[PATH_MAX];
			_cleanup_free_ char *dec = NULL;

			/* Post-copy after the go: the frozen copy holds pages the
			 * destination may still lack. It stays until the
			 * destination says it has them all (serve_page_stream). */
			if (vz_read_file(decision_path(dp, sizeof(dp), ov, omid), &dec, NULL, 64) == 0 &&
			    !strncmp(dec, "go", 2)) {
				char kept[64];

				snprintf(kept, sizeof(kept), "%d postcopy recovered\n", port);
				vz_write_file(p, kept, strlen(kept), 0);
				pr_info("VE %u: migration %s is in post-copy: the frozen source copy stays until %s",
					ov, omid, "the destination has every page");
				continue;
			}
		}
		if (port > 0 && port < 65536) {
			int fd = loopback_connect(port);

			if (fd >= 0) {
				pr_info("VE %u: ended the lazy-dump session of migration %s", ov, omid);
				close(fd);
			}
		}
		recover_outgoing(a, ov, omid);
		unlink(p);
	}
	if (dd)
		rewinddir(dd);
	/* An auto-converge cap a dead worker left on a VE: its configured
	 * CPU limits again. */
	while (dd && (de = readdir(dd))) {
		char p[PATH_MAX + 256];
		struct ve ve;
		struct vz_err e = { 0 };
		unsigned ov;
		int n = 0;

		if (sscanf(de->d_name, "%u.capped%n", &ov, &n) != 1 || de->d_name[n])
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (ve_open(ov, true, &ve, &e) == 0) {
			if (vz_cg_exists(&a->cg, ov) && res_apply_cpu(&a->cg, ov, &ve.conf, &e) < 0)
				pr_warn("VE %u: restore the CPU limits after auto-converge: %s", ov, e.msg);
			else
				pr_info("VE %u: CPU limits restored after an unfinished migration's auto-converge", ov);
			ve_close(&ve);
		}
		unlink(p);
	}
	if (dd)
		rewinddir(dd);
	while (dd && (de = readdir(dd))) {
		unsigned ov;
		char omid[80];

		/* An outgoing move decided "go" whose source copy is still here
		 * (the worker died after the decision): it ran for the last time
		 * when the decision was written; remove it. A VE that came back
		 * later has a newer config than the decision. */
		if (sscanf(de->d_name, "%u.%79[0-9a-f].decision", &ov, omid) == 2) {
			char dpath[PATH_MAX + 256];
			_cleanup_free_ char *dec = NULL;
			struct stat ds, cs;
			struct ve ve;

			snprintf(dpath, sizeof(dpath), "%s/%s", dir, de->d_name);
			if (vz_read_file(dpath, &dec, NULL, 64) == 0 && !strncmp(dec, "go", 2) &&
			    stat(dpath, &ds) == 0 && ve_open(ov, true, &ve, NULL) == 0) {
				if (stat(ve.conf_path, &cs) == 0 && cs.st_mtime <= ds.st_mtime &&
				    ve_state(&ve, NULL) != VE_STATE_RUNNING && ve_lock(&ve, 10000, NULL) == 0) {
					struct vz_err e = { 0 };

					pr_info("VE %u: moved away by migration %s; removing the source copy", ov, omid);
					ve_kill(a, ov, 0);
					ve_teardown(a, &ve, &e);
					ve_destroy_files(&ve, &e);
				}
				ve_close(&ve);
			}
			continue;
		}
		Vz__Migrate__Hello h = VZ__MIGRATE__HELLO__INIT;
		struct dst d = { .a = a, .img_fd = -1, .flock = PTHREAD_MUTEX_INITIALIZER };
		_cleanup_free_ char *text = NULL;
		char path[PATH_MAX + 256], mid[80], host[128];
		unsigned veid, port;
		int online;
		pid_t pid;

		if (sscanf(de->d_name, "%u.incoming", &veid) != 1 || !strstr(de->d_name, ".incoming"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (vz_read_file(path, &text, NULL, 512) < 0 ||
		    sscanf(text, "%79s %127s %u %d", mid, host, &port, &online) != 4)
			continue;
		pid = fork();
		if (pid != 0)
			continue;
		close(a->listen_fd);
		if (a->mig_fd >= 0)
			close(a->mig_fd);
		d.conn.fd = -1;
		d.h = &h;
		h.veid = veid;
		h.online = online;
		h.source_port = port;
		d.veid = veid;
		snprintf(d.mid, sizeof(d.mid), "%s", mid);
		snprintf(d.src_host, sizeof(d.src_host), "%s", host);
		snprintf(d.marker, sizeof(d.marker), "%s", path);
		vz_path(d.private, sizeof(d.private), VZ_PRIVATE_DIR "/%u", veid);
		vz_path(d.conf_path, sizeof(d.conf_path), VZ_CONF_DIR "/%u.conf", veid);
		d.made_private = d.made_conf = true;
		if (ve_open(veid, true, &d.ve, NULL) == 0)
			d.ve_open = true;
		if (d.ve_open && ve_state(&d.ve, &d.pid) == VE_STATE_RUNNING && online) {
			d.restored = true;
			pr_info("VE %u: found restored by migration %s, waiting for its decision", veid, mid);
			ask_decision(&d);
		} else {
			pr_info("VE %u: removing what the unfinished migration %s left", veid, mid);
			d.pid = 0;
			d.restored = d.ve_open;
			dst_cleanup(&d);
		}
		_exit(0);
	}
}
