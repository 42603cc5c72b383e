/* libFuzzer target: a control frame as the agent reads it, and an
 * agent-to-agent migration message: the length
 * header checked against the cap, then the protobuf request unpacked. A
 * lying length or a garbled message is refused, never a crash. */
#include <stddef.h>
#include <stdint.h>

#include "control.pb-c.h"
#include "frame.h"
#include "migrate.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Vz__Control__Request *req;
	uint32_t len;

	if (size < VZ_FRAME_HDR)
		return 0;
	if (vz_frame_parse_header(data, 1 << 16, &len) < 0)
		return 0;
	if (len > size - VZ_FRAME_HDR)
		return 0;
	req = vz__control__request__unpack(NULL, len, data + VZ_FRAME_HDR);
	if (req)
		vz__control__request__free_unpacked(req, NULL);
	/* The same bytes as a message from another agent. */
	{
		Vz__Migrate__Msg *m = vz__migrate__msg__unpack(NULL, len, data + VZ_FRAME_HDR);

		if (m)
			vz__migrate__msg__free_unpacked(m, NULL);
	}
	return 0;
}
