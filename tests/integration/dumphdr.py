#!/usr/bin/env python3
"""dumphdr.py IN OUT FIELD VALUE: copy a vzcluster dump file with one text
field of its header (criu_version, kernel, machine) replaced and the
checksum made valid again, so a test can show what the restore refuses
for a reason other than the checksum. Layout: ckpt/dumpfile.h."""
import hashlib
import sys

FIELDS = {"criu_version": (48, 16), "kernel": (64, 64), "machine": (128, 16)}
SHA_OFF, HDR = 144, 256

src, dst, field, value = sys.argv[1:5]
data = bytearray(open(src, "rb").read())
off, size = FIELDS[field]
raw = value.encode()
if len(raw) >= size:
    sys.exit(f"dumphdr.py: {field} value too long")
data[off:off + size] = raw + bytes(size - len(raw))
hdr = bytearray(data[:HDR])
hdr[SHA_OFF:SHA_OFF + 32] = bytes(32)
# The checksum covers the payload, then the header with its field zeroed.
data[SHA_OFF:SHA_OFF + 32] = hashlib.sha256(bytes(data[HDR:]) + bytes(hdr)).digest()
open(dst, "wb").write(data)
