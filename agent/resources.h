/* A VE's resource limits: OpenVZ's options (cpuunits, cpulimit, cpus,
 * cpumask, ram, swap, physpages, swappages, numproc, kmemsize, tcpsndbuf,
 * tcprcvbuf), stored in VEID.conf under OpenVZ's keys, enforced through the
 * VE's cgroups on v1 or v2, and read back as user beancounters. */
#ifndef VZ_RESOURCES_H
#define VZ_RESOURCES_H

#include <stdbool.h>
#include <stdint.h>

#include "cgroup.h"
#include "config.h"
#include "control.h"
#include "err.h"

/* Is `opt` ("ram", "numproc", ...) a resource option handled here? */
bool res_is_option(const char *opt);
/* Check value of option opt and set its key(s) in conf. -EINVAL with
 * VZ_EXIT_BADVAL and one clear message on a bad value; conf unchanged
 * then. ncpus is the host's CPU count (for --cpulimit and --cpus). */
int res_set_option(struct vz_conf *conf, const char *opt, const char *value, unsigned ncpus, enum vz_cg_mode mode,
		   struct vz_err *err);
/* Write every limit the config holds (and "unlimited" for those it does
 * not) to the VE's cgroups. Fails with the kernel's refusal (e.g. a memory
 * limit below what the VE holds and cannot give back). */
int res_apply(const struct vz_cg *cg, unsigned veid, const struct vz_conf *conf, struct vz_err *err);

/* The CPU limits alone, as the config has them (ends a res_cpu_cap). */
int res_apply_cpu(const struct vz_cg *cg, unsigned veid, const struct vz_conf *conf, struct vz_err *err);
/* Cap the VE at `cpus` CPUs' worth of time (a fraction of one is fine;
 * 0.1% is the least): migration's auto-converge. */
int res_cpu_cap(const struct vz_cg *cg, unsigned veid, double cpus, struct vz_err *err);
/* CPU time the VE has used, ns (v1 cpuacct.usage, v2 cpu.stat). */
int res_cpu_usage(const struct vz_cg *cg, unsigned veid, uint64_t *ns, struct vz_err *err);
/* Memory the VE's cgroup holds now, bytes (physpages' held, in bytes). */
int res_mem_usage(const struct vz_cg *cg, unsigned veid, uint64_t *bytes, struct vz_err *err);

/* The VE's beancounters, OpenVZ's table, from the cgroup counters. A row
 * the kernel cannot count has unsupported set and a reason. The array and
 * its strings are malloc'd; free with res_ubc_free. */
int res_ubc(const struct vz_cg *cg, unsigned veid, const struct vz_conf *conf, Vz__Control__Beancounter ***rows,
	    size_t *n, struct vz_err *err);
void res_ubc_free(Vz__Control__Beancounter **rows, size_t n);

#endif
