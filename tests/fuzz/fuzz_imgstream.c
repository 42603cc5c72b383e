/* libFuzzer target: the image-stream record parser and the dump file
 * header parser, both fed untrusted bytes (a dump file, a peer). Neither
 * may crash, read out of bounds, or accept a file name with a slash. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dumpfile.h"
#include "imgstream.h"

static int on_begin(void *arg, const char *name, uint32_t mode, uint64_t size, struct vz_err *err)
{
	(void)arg;
	(void)mode;
	(void)size;
	(void)err;
	if (strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
		__builtin_trap();
	return 0;
}

static const struct vz_img_ops ops = { .begin = on_begin };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vz_err err = { 0 };
	struct vz_dump_hdr h;
	struct vz_img_parser *p = vz_img_parser_new(1 << 20, &ops, NULL);

	/* Split at a point chosen by the input, to cross record boundaries. */
	size_t cut = size ? data[0] % (size + 1) : 0;

	if (vz_img_parser_feed(p, data, cut, &err) == 0)
		vz_img_parser_feed(p, data + cut, size - cut, &err);
	vz_img_parser_free(p);
	vz_dump_hdr_parse(data, size, &h, &err);
	return 0;
}
