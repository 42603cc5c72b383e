/* Internals shared by the files of the migration engine (agent/migrate/);
 * nothing outside this directory includes this header but its unit tests.
 *
 * Three kinds of worker run the engine:
 *   struct mig_src  the source of a move (mig_source_run, source.c);
 *   struct mig_dst  the destination of a move (mig_dest_serve, dest.c);
 *   struct mig_srv  this host as a source, answering a destination on a
 *                   connection the destination opened (the decision,
 *                   post-copy's page streams: recover.c, postcopy_src.c). */
#ifndef VZ_MIGRATE_INT_H
#define VZ_MIGRATE_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "err.h"
#include "memverify.h"
#include "migrate.h"
#include "migrate.pb-c.h"
#include "pagestore.h"
#include "progress.h"
#include "track.h"
#include "ve.h"
#include "ve_ops.h"

typedef Vz__Migrate__Msg mig_msg;

#define MIG_CONNECT_TIMEOUT_MS 5000
/* How long a destination holding a frozen VE asks for the decision. */
#define MIG_DECISION_WAIT_S 300
/* Pages in one PAGES message at most, in bytes (the tracker sends 1 MiB). */
#define MIG_PAGES_MAX (1u << 20)
/* Pre-copy rounds while the VE runs, whatever a request asks. */
#define MIG_MAX_ROUNDS 64
/* Longest migration id accepted (hex digits). */
#define MIG_ID_MAX 64

double mig_ms_since(uint64_t t0);

/* ---- proto.c: migrate.proto on a connection ---- */

int mig_send_type(struct vz_conn *c, Vz__Migrate__Type t, struct vz_err *err);
/* T_ERROR with code (VZ_EXIT_SYSTEM when 0); best effort. */
void mig_send_error(struct vz_conn *c, int code, const char *text);
int mig_recv(struct vz_conn *c, mig_msg **m, struct vz_err *err);
void mig_msg_free(mig_msg *m);
/* Receive one message of type want (out NULL: drop it); T_ERROR becomes
 * our error with the peer's exit code. */
int mig_expect(struct vz_conn *c, Vz__Migrate__Type want, mig_msg **out, struct vz_err *err);
/* A message that names a migration: type, migration_id and the VEID. */
int mig_send_named(struct vz_conn *c, Vz__Migrate__Type type, const char *mid, unsigned veid, struct vz_err *err);
/* Pure: does m name a migration well (an id and a VEID)? The VEID goes
 * to *veid: Msg.veid, or Msg.offset from a peer that has no veid. */
bool mig_named_ok(const mig_msg *m, unsigned *veid);
/* One PAGES message: len bytes of pid vpid's memory at vaddr, a chunk of
 * the stream z compresses for this connection. */
int mig_send_pages(struct vz_conn *c, struct vz_zenc *z, uint32_t vpid, uint64_t vaddr, const void *data, size_t len,
		   struct vz_err *err);
/* Pure: is m a well-formed PAGES message (the raw size in 1..MIG_PAGES_MAX,
 * whole pages, a pid)? */
bool mig_pages_ok(const mig_msg *m);
/* This host's TLS context (client or server); NULL with err filled. */
struct vz_tls *mig_tls(struct vz_agent *a, bool server, struct vz_err *err);
/* TLS connection to host:port with the agent's timeouts. */
int mig_connect(struct vz_agent *a, const char *host, unsigned port, int io_timeout_ms, struct vz_conn *c,
		struct vz_err *err);
/* DEST as a name from VZ_ROOT/etc/vz/hosts ("name address" lines), else
 * as given. */
void mig_resolve_dest(const char *dest, char *out, size_t len);
/* A connection to 127.0.0.1:port (CRIU's lazy-dump page server): an fd or
 * a negative errno. */
int mig_loopback_connect(int port);
/* Every process of the VE gets SIGKILL (it dies when next it runs). */
void mig_kill_all(struct vz_agent *a, unsigned veid);

/* ---- record.c: the durable records (see migrate.h) ---- */

enum mig_record_kind { MIG_REC_DECISION, MIG_REC_OUTGOING, MIG_REC_INCOMING, MIG_REC_CAPPED };

struct mig_record {
	enum mig_record_kind kind;
	unsigned veid;
	char mid[MIG_ID_MAX + 1];
	bool go;	/* decision: go, else abort */
	int port;	/* outgoing: CRIU's page-server port, 0 none; incoming: the source's */
	bool postcopy;	/* outgoing */
	bool recovered; /* outgoing: kept by a restarted agent */
	char host[128]; /* incoming: the source's address */
	bool online;	/* incoming */
};

/* Pure: is mid a migration id (1..MIG_ID_MAX lowercase hex digits; NULL
 * is not)? */
bool mig_id_ok(const char *mid);
/* Pure: does a message name a migration well: a migration id, and a VEID
 * in 1..INT32_MAX? (HELLO, ASK_DECISION, PAGE_STREAM, PAGE_PUSH) */
bool mig_names_ok(const char *mid, uint64_t veid);
/* Pure: kind, VEID and id from a file name of the records directory;
 * 0, or -EINVAL for a name that is no record's. */
int mig_record_name_parse(const char *name, struct mig_record *r);
/* Pure: the contents of a record of kind r->kind (len bytes, not
 * necessarily terminated) into r; 0, or -EINVAL for anything else than
 * what mig_record_format writes. Keeps r's kind, VEID and id (the name's). */
int mig_record_parse(struct mig_record *r, const char *text, size_t len);
/* Pure: r's contents as text; the length, or a negative errno when buf is
 * too small. */
int mig_record_format(const struct mig_record *r, char *buf, size_t len);
/* The record's path (its directory created). */
char *mig_record_path(const struct mig_record *r, char *buf, size_t len);
/* Write r (not a decision: mig_decide). */
int mig_record_write(const struct mig_record *r, struct vz_err *err);
/* Read the record r's kind, veid and mid name. */
int mig_record_read(struct mig_record *r, struct vz_err *err);
void mig_record_remove(const struct mig_record *r);
/* A record of one kind for a VE and a migration (mid NULL when the kind
 * has none). */
struct mig_record mig_record_of(enum mig_record_kind kind, unsigned veid, const char *mid);
/* Record go or abort unless a decision exists; *go gets the one that
 * stands. Durable before it returns. */
int mig_decide(unsigned veid, const char *mid, bool want_go, bool *go, struct vz_err *err);
/* Is there a decision, and is it go? */
bool mig_decision_exists(unsigned veid, const char *mid);
bool mig_decided_go(unsigned veid, const char *mid);
/* Call fn for each record of kind in the records directory. */
void mig_record_scan(enum mig_record_kind kind, void (*fn)(void *arg, const struct mig_record *r, const char *path),
		     void *arg);

/* ---- files.c: a VE's private area as a stream (FILE, DATA, FILE_END,
 * DELETE, PASS_END).
 *
 * The first pass sends everything (holes and zero blocks skipped). It
 * remembers each entry's inode, size, times and a hash of every 1 MiB
 * block; a later pass sends only entries whose metadata changed, and of
 * those regular files only the blocks whose hash changed (a loop-mounted
 * disk image keeps its size while its contents move), and deletes what
 * is gone. The receiver trusts no path: each is relative, free of "..",
 * and resolved beneath the private area without following symlinks. */

struct mig_fstate; /* what the last pass sent */

struct mig_pass_stats {
	uint64_t files, raw_bytes, wire_bytes, deleted;
};

/* Send one pass of root (a directory) over c. *st is NULL before the
 * first pass and holds its memory after; progress(arg, raw bytes so far)
 * is called now and then. */
int mig_files_send(struct vz_conn *c, const char *root, struct mig_fstate **st, struct mig_pass_stats *ps,
		   void (*progress)(void *arg, uint64_t raw), void *arg, struct vz_err *err);
void mig_fstate_free(struct mig_fstate *st);

/* Receiver: apply one message of a pass (first is FILE, DATA, FILE_END
 * or DELETE) beneath root. */
struct mig_recv;
struct mig_recv *mig_recv_new(const char *root, struct vz_err *err);
void mig_recv_free(struct mig_recv *r);
int mig_recv_msg(struct mig_recv *r, const mig_msg *m, struct vz_err *err);
uint64_t mig_recv_bytes(const struct mig_recv *r);
/* A pass ended: the next one's data is a new compressed stream. */
void mig_recv_pass_end(struct mig_recv *r);

/* Pure: is p a safe relative path ("a/b", no "..", no "//", no leading
 * "/")? Unit-tested (tests/unit/migrate). */
bool mig_path_ok(const char *p);

/* ---- lazy.c: the destination's lazy restore.
 *
 * Our page server (the pages in the store) on 127.0.0.1 and CRIU's
 * lazy-pages daemon fetching from it into the VE that `criu restore
 * --lazy-pages` brings back. Pre-copy: every page is in the store before
 * the go. Post-copy: the store fetches what it lacks from the source
 * (vz_pstore_set_fetch, postcopy_dst.c). */

struct mig_lazy;

/* Start both; returns when the daemon listens for the restore (its
 * socket is in workdir, which the restore must use as its work dir).
 * on_fail, when set, is called when our page server cannot answer, before
 * the daemon hears of it. */
int mig_lazy_start(struct mig_lazy **out, const char *criu, struct vz_pstore *ps, const char *imgdir,
		   const char *workdir, const char *logname, void (*on_fail)(void *arg), void *fail_arg,
		   struct vz_err *err);
/* Wait until every page is in the VE (the daemon exits when so). */
int mig_lazy_wait(struct mig_lazy *l, int timeout_ms, struct vz_err *err);
/* Kill the daemon if still there and free everything. */
void mig_lazy_free(struct mig_lazy *l);

/* ---- the source of a move ---- */

/* Ends CRIU's lazy-dump page-server session the moment it listens, when
 * the destination has no use for it (pre-copy: it serves pages itself;
 * any failure before the go). Whether CRIU then kills or resumes the VE
 * follows from the post-dump answer, not from this session. Post-copy
 * leaves the session to the destination's page stream after a go. */
enum mig_closer_mode { CLOSER_WAIT, CLOSER_CLOSE, CLOSER_LEAVE };
struct mig_closer {
	int port;
	atomic_bool stop;
	_Atomic int mode; /* enum mig_closer_mode */
	bool running;
	pthread_t th;
};

/* The phase being shown: name, expected bytes, start, bytes so far. */
struct mig_phase {
	const char *name;
	uint64_t total, t0, done, last_shown;
};

/* How long each step took, ms. */
struct mig_times {
	double pass1, dump, pass2, copy, undump, frozen, postcopy, final;
};

/* One pre-copy round, for the summary. */
struct mig_round {
	uint64_t pages, wire;
	double ms, cap;
};

struct mig_precopy {
	enum vz_track_kind tkind;
	struct vz_track *trk;
	struct vz_zenc *pz; /* PAGES: one zstd stream for the migration */
	unsigned nrounds;
	struct mig_round rounds[MIG_MAX_ROUNDS + 1];
	uint64_t final_pages;
	bool converged;
	char why[256]; /* how it ended, for the summary */
};

/* --auto-converge: CPUs the VE may use (0: as configured), and its CPU
 * time when the round began. */
struct mig_autoconv {
	bool on;
	double cap;
	uint64_t cpu_ns, cpu_t;
};

struct mig_src {
	struct vz_agent *a;
	const struct mig_request *req;
	const struct vz_progress *progress;
	struct ve *ve;
	struct vz_conn conn;
	char mid[40];
	bool online, was_running;
	pid_t init;
	/* pre-copy; post-copy; either restores lazily */
	bool precopy, postcopy, lazy, verify;
	bool committed, go_sent, done_seen;
	struct mig_fstate *fs;
	uint64_t private_total, raw_bytes;
	uint64_t t0, freeze_ns, go_ns;
	struct mig_times t;
	uint32_t userns_src, userns_dst; /* host id of the VE's root here, there (0: none) */
	struct mig_phase phase;
	struct mig_precopy pc;
	struct mig_autoconv ac;
	struct mig_closer *cl;
	int images_fd;
	char images_dir[PATH_MAX];
	struct vz_mem_mask *mask; /* --verify-memory: rseq areas */
	size_t nmask;
	struct vz_err err; /* commit_phase's, from inside CRIU's post-dump call */
};

/* negotiate.c */
int mig_hello(struct mig_src *s, struct vz_err *err);
/* source.c */
int mig_file_pass(struct mig_src *s, const char *what, double *t, struct vz_err *err);
/* precopy.c */
int mig_precopy_rounds(struct mig_src *s, struct vz_err *err);
int mig_precopy_final(struct mig_src *s, struct vz_err *err);
void mig_uncap(struct mig_src *s);
/* commit.c: the online dump, with the commit inside CRIU's post-dump call. */
int mig_dump_and_commit(struct mig_src *s, struct vz_err *err);
/* The destination restored the VE: decide go, durably (s->committed). */
int mig_decide_go(struct mig_src *s, struct vz_err *err);
/* After the decision: GO, and the destination's DONE (s->done_seen). From
 * here the destination owns the VE: failures only delay it. */
void mig_say_go(struct mig_src *s, struct vz_err *err);
/* verify.c: --verify-memory's digests of the frozen VE, to the destination. */
int mig_send_digests(struct mig_src *s, struct vz_err *err);
/* progress.c */
void mig_phase_start(struct mig_src *s, const char *name, uint64_t total);
void mig_phase_show(struct mig_src *s, uint64_t done);
void mig_summary(struct mig_src *s, double total);
/* summary.c: the summary as one JSON line to req->json (if set); a
 * finished move's figures for the agent's metrics (when they are on). */
void mig_summary_json(struct mig_src *s, double total);
void mig_src_record_stats(struct mig_src *s, bool ok, double total);
struct mig_dst;
void mig_dst_record_stats(struct mig_dst *d, bool ok, double total);

/* The convergence rule of pre-copy (precopy.c), a pure function. */
struct mig_conv_in {
	unsigned round;	      /* the round just sent, from 0 */
	uint64_t sent;	      /* pages it sent */
	uint64_t prev_sent;   /* pages the round before sent (round 0: 0) */
	uint64_t left;	      /* pages still to send: written during the round */
	bool left_measured;   /* false: the tracker cannot tell before the next
			       * round (soft-dirty) and left is what this round
			       * sent, the pages written during the round before */
	double ms;	      /* how long the round took */
	unsigned downtime_ms; /* budget */
	unsigned max_rounds;
	bool polished; /* the one extra round within budget was had */
	bool autoconv; /* --auto-converge, and a cap would still do something */
	double used;   /* CPUs the VE used during the round, < 0 unknown */
};
enum mig_conv {
	MIG_CONV_AGAIN,	      /* another round */
	MIG_CONV_POLISH,      /* within budget, but one more round while running pays */
	MIG_CONV_CAP,	      /* cap the VE's CPU, then another round (if no cap: ask again without autoconv) */
	MIG_CONV_CONVERGED,   /* freeze: what is left fits the budget */
	MIG_CONV_ROUND_LIMIT, /* freeze: no rounds left */
	MIG_CONV_NO_PROGRESS, /* freeze: the VE writes as fast as the rounds send */
};
struct mig_conv_out {
	enum mig_conv verdict;
	double rate;   /* bytes per ms the round achieved */
	double est_ms; /* time to send what is left at that rate */
	uint64_t base; /* what left was compared with */
};
void mig_should_freeze(const struct mig_conv_in *in, struct mig_conv_out *out);

/* ---- the destination of a move ---- */

struct mig_dst {
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
	struct ve_restore_prep prep; /* online: made before the images */
	char src_host[128];	     /* where the source is */
	/* pre-copy: the pages of every round, and the lazy restore from them */
	bool precopy;
	struct vz_pstore *ps;
	struct vz_zdec *pz;
	uint8_t *pbuf;
	struct mig_lazy *lazy;
	char workdir[PATH_MAX];
	char *memhash;	  /* --verify-memory: the source's digests */
	bool failed_here; /* a failure of ours, not a lost source */
	/* post-copy: pages the store lacks come from the source */
	bool postcopy, fault_open, push_open, push_thread_on;
	struct vz_conn fconn, pconn; /* requests; background push */
	/* fconn and released: the page server's fetches and the push thread */
	pthread_mutex_t flock;
	bool released;	      /* every page is here and the source was told so */
	atomic_bool lost;     /* pages did not come: the source keeps its copy (set by the page server's thread) */
	atomic_bool stopping; /* post-copy is over: the push thread ends */
	pthread_t pth;
	struct vz_zdec *pushz;
	uint8_t *pushbuf;
	uint64_t pushed;
	struct vz_zdec *fz;
	uint8_t *fbuf;
};

/* negotiate.c: the destination's checks of a HELLO, and its answer. */
int mig_check_hello(struct mig_dst *d, uint64_t *free_bytes, char *criu_text, size_t len, struct vz_err *err);
int mig_accept_lazy(struct mig_dst *d, mig_msg *ok, struct vz_err *err);
/* dest.c */
void mig_dst_init(struct mig_dst *d, struct vz_agent *a);
void mig_dst_cleanup(struct mig_dst *d);
void mig_dst_free(struct mig_dst *d);
int mig_dst_finish(struct mig_dst *d, struct vz_err *err);
void mig_dst_finish_lazy(struct mig_dst *d);
/* PAGES into the store, decompressed with z into buf (MIG_PAGES_MAX). */
int mig_pages_into(struct mig_dst *d, const mig_msg *m, struct vz_zdec *z, uint8_t *buf, struct vz_err *err);
/* memhash.c: MEMHASH, the source's digests. Pure: its leading
 * "mask VPID ADDR LEN" lines into *out (malloc'd, *nout of them), *rest
 * pointing at the digests after them; -EPROTO on a malformed mask line. */
int mig_memhash_masks(const char *text, struct vz_mem_mask **out, size_t *nout, const char **rest, struct vz_err *err);
/* Pure: the verdict on the source's digests (src) and those of the VE
 * restored here (dst), both vz_mem_digest's text. 0 when they are the
 * same line for line and hold at least one mapping, *ranges the number
 * compared; otherwise -EIO and a message naming the first mapping that
 * differs, is missing here or is not in the source's (and both counts when
 * they differ). Nothing compared is no verification: with no mapping on
 * either side the answer is -EIO, "Memory not verified". */
int mig_memhash_verdict(const char *src, const char *dst, size_t *ranges, struct vz_err *err);
/* verify.c: wait for every page, digest the VE restored here, compare (the go is
 * refused on -EIO, d->failed_here set); no MEMHASH is -EPROTO. */
int mig_dst_verify_memory(struct mig_dst *d, struct vz_err *err);
/* postcopy_dst.c */
int mig_postcopy_start(struct mig_dst *d, struct vz_err *err);
void mig_postcopy_close(struct mig_dst *d);
void mig_lazy_failed(void *arg);
/* recover.c: connection lost with the VE restored and frozen: ask the
 * source for the decision until it answers, then finish or undo. */
void mig_ask_decision(struct mig_dst *d);

/* ---- this host as a source, serving a destination's connection ---- */

struct mig_srv {
	struct vz_agent *a;
	struct vz_conn conn;
};

void mig_answer_decision(struct mig_srv *v, const mig_msg *q);
void mig_serve_page_stream(struct mig_srv *v, const mig_msg *m);
void mig_serve_page_push(struct mig_srv *v, const mig_msg *m);
/* Post-copy: end CRIU's lazy-dump session of a source copy (postcopy_src.c). */
void mig_end_lazy_session(struct vz_agent *a, unsigned veid, const char *mid, int port);
/* Whether CRIU (or anyone) still holds a task of the VE with ptrace. */
bool mig_ve_traced(struct vz_agent *a, unsigned veid);

#endif
