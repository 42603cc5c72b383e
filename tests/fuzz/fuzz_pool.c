/* libFuzzer target: what an agent sends the coordinator, unpacked as
 * vzcoord reads it, then fed to the pool's view (members.c): a
 * registration, a heartbeat with its inventory (bad VEIDs and states,
 * repeats, a VEID another host holds), the host states and the admin's
 * report. A garbled or hostile message is refused, never a crash. */
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "members.h"
#include "pool.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int logs_off;
	struct pool p = { .suspect_after = 3, .offline_after_ns = 20000000000ull };
	Vz__Pool__Register other = VZ__POOL__REGISTER__INIT;
	Vz__Pool__AdminReply r = VZ__POOL__ADMIN_REPLY__INIT;
	Vz__Pool__AgentMsg *m;
	struct vz_err err = { 0 };

	if (!logs_off) {
		vz_log_init("fuzz", VZ_LOG_ERR, 0);
		logs_off = 1;
	}
	m = vz__pool__agent_msg__unpack(NULL, size, data);
	if (!m)
		return 0;
	/* A host that already holds whatever VEIDs the input reports. */
	other.host = "h0";
	pool_register(&p, &other, 1, &err);
	if (m->reg)
		pool_register(&p, m->reg, 2, &err);
	if (m->hb) {
		pool_heartbeat(&p, "h0", m->hb, 3, &err);
		pool_heartbeat(&p, m->reg ? m->reg->host : "h0", m->hb, 4, &err);
	}
	pool_tick(&p, 30000000000ull);
	if (pool_report(&p, 5000000000ull, &r, &err) == 0)
		pool_report_free(&r);
	pool_free(&p);
	vz__pool__agent_msg__free_unpacked(m, NULL);
	return 0;
}
