/* libFuzzer target: a load trace for vzcoord simulate (simulate.c's
 * parser), then, when it parses, an hour of simulation, so that whatever
 * a trace holds (no VE, hosts of one core, huge sizes, zero loads, odd
 * settings) reaches the planner (rebalance.c). A bad trace is refused
 * in one message, never a crash, a hang or a NaN in a plan. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simulate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_trace t;
	struct sim_result r;
	struct vz_err err = { 0 };
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (sim_trace_parse(text, "fuzz", &t, &err) == 0) {
		/* the planner is quadratic in the pool: keep each input quick */
		if (t.n_hosts * (t.n_ves + 1) <= 4096 && sim_run(&t, 3600, 600, NULL, NULL, &r, &err) == 0) {
			for (size_t i = 0; i < r.n_samples; i++)
				if (isnan(r.samples[i].imbalance))
					abort();
			sim_result_free(&r);
		}
		sim_trace_free(&t);
	}
	free(text);
	return 0;
}
