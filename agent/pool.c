/* The agent's member process: registration, heartbeats with the host's
 * inventory, reconnection (pool.h). */
#define LOG_PREFIX "pool: "
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "conn.h"
#include "disk.h"
#include "log.h"
#include "migrate/migrate.h"
#include "orders.h"
#include "paths.h"
#include "pool.h"
#include "pool.pb-c.h"
#include "resources.h"
#include "util.h"
#include "ve.h"

#define MEMBER_MAGIC   0x565a5031u /* "VZP1", as coordinator/members.h */
#define MEMBER_VERSION 1
#define CPU_TAU_NS     10000000000ull /* the CPU average's time constant: 10 s */
/* A plain-directory VE's disk use is its tree's, walked at most this often. */
#define DISK_EVERY_NS 60000000000ull

/* A VE's CPU time at the last heartbeat, for its moving average, and its
 * disk use when last measured. */
struct cpu_seen {
	unsigned veid;
	uint64_t used_ns, at_ns;
	double avg;  /* CPUs */
	bool primed; /* avg holds a rate */
	uint64_t disk_kib, disk_at_ns;
	bool disk_known;
};

struct member {
	struct vz_agent *agent;
	struct vz_tls *tls;
	struct vz_conn conn;
	uint64_t seq;
	struct cpu_seen *cpu;
	size_t n_cpu, cap_cpu;
	char last_error[1024];
};

int agent_pool_parse_coordinator(const char *s, char *host, size_t len, unsigned *port)
{
	const char *end, *colon;
	unsigned long n = POOL_COORD_PORT;
	size_t hl;

	if (*s == '[') {
		end = strchr(s, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		colon = end[1] ? end + 1 : NULL;
		s++;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			return -EINVAL; /* an IPv6 address needs its brackets */
		end = colon ? colon : s + strlen(s);
	}
	hl = (size_t)(end - s);
	if (hl == 0 || hl >= len || (colon && vz_parse_ulong(colon + 1, 1, 65535, &n) < 0))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	*port = (unsigned)n;
	return 0;
}

int agent_pool_conf(struct vz_agent *a, const char *path, struct vz_err *err)
{
	const char *v = vz_conf_get(&a->global, "COORDINATOR");
	unsigned long n;

	a->coord_host[0] = '\0';
	a->pool_pid = 0;
	if (v && *v && agent_pool_parse_coordinator(v, a->coord_host, sizeof(a->coord_host), &a->coord_port) < 0)
		return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: COORDINATOR must be host[:port], not '%s'",
					 path, v);
	v = vz_conf_get(&a->global, "HEARTBEAT_INTERVAL");
	a->hb_interval = POOL_INTERVAL_DEFAULT;
	if (v && *v) {
		if (vz_parse_ulong(v, 1, 60, &n) < 0)
			return vz_error_exit_msg(err, VZ_EXIT_BADVAL, EINVAL, "%s: HEARTBEAT_INTERVAL must be 1..60",
						 path);
		a->hb_interval = (unsigned)n;
	}
	return 0;
}

/* MemTotal and MemAvailable, bytes. */
static void host_memory(uint64_t *total, uint64_t *avail)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	unsigned long long kib;

	*total = *avail = 0;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
			*total = kib * 1024;
		else if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			*avail = kib * 1024;
	}
}

static uint32_t host_load_milli(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/loadavg", "re");
	double l = 0;

	if (!f || fscanf(f, "%lf", &l) != 1)
		return 0;
	return (uint32_t)(l * 1000 + 0.5);
}

static struct cpu_seen *seen_of(struct member *m, unsigned veid, bool *fresh)
{
	*fresh = false;
	for (size_t i = 0; i < m->n_cpu; i++)
		if (m->cpu[i].veid == veid)
			return &m->cpu[i];
	if (vz_grow((void **)&m->cpu, &m->cap_cpu, m->n_cpu, sizeof(*m->cpu), 16) < 0)
		return NULL;
	*fresh = true;
	m->cpu[m->n_cpu] = (struct cpu_seen){ .veid = veid };
	return &m->cpu[m->n_cpu++];
}

/* The VE's CPU use, a moving average over about CPU_TAU_NS, in
 * thousandths of a CPU; -1 until two samples give a rate. The first rate
 * is taken whole, so that a VE that just arrived (a move) or started is
 * not reported idle while an average from 0 climbs. */
static int64_t cpu_average(struct member *m, unsigned veid, uint64_t used_ns, uint64_t now)
{
	bool fresh;
	struct cpu_seen *s = seen_of(m, veid, &fresh);

	if (!s)
		return -1;
	if (fresh || !s->at_ns) {
		s->used_ns = used_ns;
		s->at_ns = now;
		return -1;
	}
	if (now > s->at_ns && used_ns >= s->used_ns) {
		double dt = (double)(now - s->at_ns), rate = (double)(used_ns - s->used_ns) / dt;
		double alpha = dt / (dt + (double)CPU_TAU_NS);

		s->avg = s->primed ? s->avg + alpha * (rate - s->avg) : rate;
		s->primed = true;
	}
	s->used_ns = used_ns;
	s->at_ns = now;
	return s->primed ? (int64_t)(s->avg * 1000 + 0.5) : -1;
}

char *agent_pool_addresses(const char *list)
{
	char *out = list && *list ? calloc(1, strlen(list) + 1) : NULL, *p = out;
	const char *s = list;

	while (out && *s) {
		size_t w;

		s += strspn(s, " \t");
		w = strcspn(s, " \t");
		if (!w)
			break;
		if (p != out)
			*p++ = ' ';
		for (size_t i = 0; i < w && s[i] != '/'; i++)
			*p++ = s[i];
		s += w;
	}
	if (out && p == out)
		vz_freep(&out);
	return out;
}

static void ve_usage(struct member *m, unsigned veid, Vz__Pool__VeUsage *u, uint64_t now)
{
	struct vz_agent *a = m->agent;
	_cleanup_ve_ struct ve ve;
	uint64_t v, total, inodes;
	pid_t *pids = NULL;
	const char *hn;
	enum ve_state st;
	size_t n = 0;

	vz__pool__ve_usage__init(u);
	u->veid = veid;
	u->state = VZ__POOL__VE_STATE__VE_STOPPED;
	if (ve_open(veid, false, &ve, NULL) < 0)
		return;
	st = ve_state(&ve, NULL);
	u->state = st == VE_STATE_RUNNING   ? VZ__POOL__VE_STATE__VE_RUNNING
		   : st == VE_STATE_MOUNTED ? VZ__POOL__VE_STATE__VE_MOUNTED
					    : VZ__POOL__VE_STATE__VE_STOPPED;
	if (st == VE_STATE_RUNNING && res_mem_usage(&a->cg, veid, &v, NULL) == 0) {
		u->has_mem_used = 1;
		u->mem_used = v;
	}
	if (st == VE_STATE_RUNNING && res_cpu_usage(&a->cg, veid, &v, NULL) == 0) {
		int64_t cpu = cpu_average(m, veid, v, now);

		u->has_cpu_permille = cpu >= 0;
		u->cpu_permille = cpu >= 0 ? (uint32_t)cpu : 0;
	}
	/* A stopped VE's image is not mounted, but a directory can be walked. */
	if (st != VE_STATE_STOPPED || !disk_is_image(&ve)) {
		bool fresh;
		struct cpu_seen *s = seen_of(m, veid, &fresh);

		if (s && (!s->disk_known || now - s->disk_at_ns >= DISK_EVERY_NS) &&
		    ve_disk_usage(&ve, &v, &total, &inodes) == 0) {
			s->disk_kib = v;
			s->disk_at_ns = now;
			s->disk_known = true;
		}
		if (s && s->disk_known) {
			u->has_disk_used = 1;
			u->disk_used = s->disk_kib;
		}
	}
	if (st == VE_STATE_RUNNING && vz_cg_pids(&a->cg, veid, &pids, &n, NULL) == 0) {
		u->has_nproc = 1;
		u->nproc = (uint32_t)n;
	}
	free(pids);
	u->ip = agent_pool_addresses(vz_conf_get(&ve.conf, "IP_ADDRESS"));
	hn = vz_conf_get(&ve.conf, "HOSTNAME");
	u->hostname = hn && *hn ? strdup(hn) : NULL;
	hn = vz_conf_get(&ve.conf, "PIN");
	u->has_pinned = 1;
	u->pinned = hn && !strcmp(hn, "yes");
	hn = vz_conf_get(&ve.conf, "ANTI_AFFINITY");
	u->anti_affinity = hn && *hn ? strdup(hn) : NULL;
	u->move_id = order_move_of(veid);
	u->has_move_id = u->move_id != 0;
}

static void ve_usage_free(Vz__Pool__VeUsage *u)
{
	free(u->ip);
	free(u->hostname);
	free(u->anti_affinity);
	u->ip = u->hostname = u->anti_affinity = NULL;
}

/* One heartbeat: the host's figures and every VE with its usage. */
static int send_heartbeat(struct member *m, struct vz_err *err)
{
	Vz__Pool__AgentMsg msg = VZ__POOL__AGENT_MSG__INIT;
	Vz__Pool__Heartbeat hb = VZ__POOL__HEARTBEAT__INIT;
	_cleanup_free_ unsigned *veids = NULL;
	_cleanup_free_ Vz__Pool__VeUsage *us = NULL;
	_cleanup_free_ Vz__Pool__VeUsage **ups = NULL;
	uint64_t now = vz_now_ns(), total;
	char priv[PATH_MAX];
	struct statvfs sv;
	size_t n = 0;
	int ret;

	ret = ve_list(&veids, &n, err);
	if (ret < 0)
		return ret;
	us = calloc(n ? n : 1, sizeof(*us));
	ups = calloc(n ? n : 1, sizeof(*ups));
	if (!us || !ups)
		return vz_error_msg(err, ENOMEM, "Out of memory");
	for (size_t i = 0; i < n; i++) {
		/* A VE moving here is the source's until the move ends (its
		 * incoming record): the source reports it, and a VE still
		 * being restored here is not a mounted VE of this host. */
		if (mig_incoming_pending(veids[i]))
			continue;
		ve_usage(m, veids[i], &us[hb.n_ves], now);
		ups[hb.n_ves] = &us[hb.n_ves];
		hb.n_ves++;
	}
	hb.seq = ++m->seq;
	hb.ves = ups;
	hb.has_mem_free = hb.has_load_milli = 1;
	host_memory(&total, &hb.mem_free);
	hb.load_milli = host_load_milli();
	if (statvfs(vz_path(priv, sizeof(priv), VZ_PRIVATE_DIR), &sv) == 0) {
		hb.has_disk_free = 1;
		hb.disk_free = (uint64_t)sv.f_bavail * sv.f_frsize / 1024;
	}
	hb.has_draining = hb.has_epoch = 1;
	hb.draining = agent_maintenance();
	hb.epoch = order_epoch_seen();
	msg.magic = MEMBER_MAGIC;
	msg.version = MEMBER_VERSION;
	msg.hb = &hb;
	ret = vz_msg_send(&m->conn, &msg.base, err);
	for (size_t i = 0; i < hb.n_ves; i++)
		ve_usage_free(&us[i]);
	return ret;
}

static int send_register(struct member *m, struct vz_err *err)
{
	struct vz_agent *a = m->agent;
	Vz__Pool__AgentMsg msg = VZ__POOL__AGENT_MSG__INIT;
	Vz__Pool__Register r = VZ__POOL__REGISTER__INIT;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[64] = "";
	uint64_t avail;
	long cores = sysconf(_SC_NPROCESSORS_ONLN);

	/* The address this host reaches the coordinator from is the one its
	 * peers reach its migrations at. */
	if (getsockname(m->conn.fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST) != 0)
		addr[0] = '\0';
	if (!strncmp(addr, "::ffff:", 7))
		memmove(addr, addr + 7, strlen(addr + 7) + 1);
	r.host = a->host_name;
	r.address = addr;
	r.has_mig_port = r.has_cores = r.has_mem_total = r.has_interval_ms = 1;
	r.mig_port = a->mig_port;
	r.cores = cores > 0 ? (uint32_t)cores : 1;
	host_memory(&r.mem_total, &avail);
	r.interval_ms = a->hb_interval * 1000;
	msg.magic = MEMBER_MAGIC;
	msg.version = MEMBER_VERSION;
	msg.reg = &r;
	return vz_msg_send(&m->conn, &msg.base, err);
}

static int recv_ack(struct member *m, uint64_t seq, struct vz_err *err)
{
	Vz__Pool__Ack *ack = NULL;
	int ret = vz_msg_recv(&m->conn, &vz__pool__ack__descriptor, 64 * 1024, (ProtobufCMessage **)&ack, err);

	if (ret < 0)
		return ret;
	if (ack->error)
		ret = vz_error_msg(err, EACCES, "The coordinator refused us: %s", ack->error);
	else if (ack->seq != seq)
		ret = vz_error_msg(err, EPROTO, "The coordinator acknowledged %llu, not %llu",
				   (unsigned long long)ack->seq, (unsigned long long)seq);
	vz__pool__ack__free_unpacked(ack, NULL);
	return ret;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Connect, register, then heartbeats until the connection fails. */
static int session(struct member *m, bool *registered, struct vz_err *err)
{
	struct vz_agent *a = m->agent;
	uint64_t interval = (uint64_t)a->hb_interval * 1000000000ull, next;
	int io_ms = (int)(a->hb_interval * 1000 + 3000);
	int ret;

	ret = vz_tls_connect(m->tls, a->coord_host, a->coord_port, 3000, io_ms, &m->conn, err);
	if (ret < 0)
		return ret;
	/* Any host of the cluster CA could answer at that address: only the
	 * coordinator's certificate (deploy/vz-certs coordinator) is the
	 * coordinator's. */
	if (strcmp(m->conn.peer, POOL_COORD_CN))
		ret = vz_error_msg(err, EACCES, "%s:%u presents the certificate of %s, not of %s", a->coord_host,
				   a->coord_port, m->conn.peer, POOL_COORD_CN);
	if (ret == 0)
		ret = send_register(m, err);
	if (ret == 0)
		ret = recv_ack(m, 0, err);
	if (ret == 0) {
		*registered = true;
		pr_info("Member of the pool of %s:%u (%s), a heartbeat every %u s", a->coord_host, a->coord_port,
			m->conn.peer, a->hb_interval);
		m->last_error[0] = '\0';
	}
	for (next = vz_now_ns(); ret == 0; next += interval) {
		uint64_t now = vz_now_ns();

		if (next > now)
			sleep_ns(next - now);
		else
			next = now;
		ret = send_heartbeat(m, err);
		if (ret == 0)
			ret = recv_ack(m, m->seq, err);
	}
	vz_conn_close(&m->conn);
	return ret;
}

static void __attribute__((noreturn)) member_main(struct vz_agent *a, pid_t parent)
{
	struct member m = { .agent = a };
	struct vz_err err = { 0 };
	uint64_t backoff_ms = 1000;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	prctl(PR_SET_NAME, "vzagent-pool");
	if (vz_tls_new(&m.tls, a->tls_ca, a->tls_cert, a->tls_key, false, &err) < 0) {
		pr_err("Not a member of the pool: %s", err.msg);
		_exit(1);
	}
	for (;;) {
		bool registered = false;

		vz_err_clear(&err);
		session(&m, &registered, &err);
		if (registered)
			backoff_ms = 1000;
		/* Said once, not at every retry, until something else happens. */
		if (strcmp(err.msg, m.last_error)) {
			pr_warn("Coordinator %s:%u: %s; retrying every %llu s at most", a->coord_host, a->coord_port,
				err.msg, (unsigned long long)POOL_BACKOFF_MAX_MS / 1000);
			snprintf(m.last_error, sizeof(m.last_error), "%s", err.msg);
		}
		sleep_ns(backoff_ms * 1000000ull);
		backoff_ms = backoff_ms * 2 > POOL_BACKOFF_MAX_MS ? POOL_BACKOFF_MAX_MS : backoff_ms * 2;
	}
}

void agent_pool_start(struct vz_agent *a)
{
	pid_t parent = getpid(), pid;

	if (!a->coord_host[0])
		return;
	if (!vz_exists(a->tls_cert) || !vz_exists(a->tls_key) || !vz_exists(a->tls_ca)) {
		pr_warn("COORDINATOR is %s but there is no TLS certificate at %s: not a member of the pool",
			a->coord_host, a->tls_cert);
		return;
	}
	pid = fork();
	if (pid == 0) {
		agent_worker_detach(a);
		member_main(a, parent);
	}
	if (pid < 0) {
		pr_perror("Fork the pool member process");
		return;
	}
	a->pool_pid = pid;
}

static void respawn_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	agent_pool_start(container_of(w, struct vz_agent, pool_w));
}

void agent_pool_reaped(struct vz_agent *a, pid_t pid)
{
	if (pid <= 0 || pid != a->pool_pid)
		return;
	a->pool_pid = 0;
	pr_warn("The pool member process %d ended: another in 1 s", (int)pid);
	ev_timer_init(&a->pool_w, respawn_cb, 1.0, 0.);
	ev_timer_start(a->loop, &a->pool_w);
}

void agent_pool_stop(struct vz_agent *a)
{
	if (ev_is_active(&a->pool_w))
		ev_timer_stop(a->loop, &a->pool_w);
	if (a->pool_pid > 0)
		kill(a->pool_pid, SIGTERM);
	a->pool_pid = 0;
}
