/* libFuzzer target: a control frame as the agent reads it: the length
 * header checked against the cap, then the protobuf request unpacked. A
 * lying length or a garbled message is refused, never a crash. */
#include <stddef.h>
#include <stdint.h>

#include "control.pb-c.h"
#include "frame.h"

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
	return 0;
}
