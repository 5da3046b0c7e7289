#!/usr/bin/env python3
# Writes test/fixtures/tiny.safetensors, a gradpool checkpoint for layers [3, 2, 2] built from the
# safetensors spec with struct and json only (no gradpool code), for test/checkpoint.test.ts to decode.
# Run from anywhere: /usr/bin/python3 scripts/reference/make_safetensors_fixture.py [OUT_PATH]

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_PATH = os.path.join(HERE, "..", "..", "test", "fixtures", "tiny.safetensors")

# Every value is exactly representable in float32, so the test can compare with ===.
TENSORS = [  # layout order: the order of the data section
    ("layers.0.weight", [2, 3], [0.5, -1.25, 3.0, -0.75, 2.0, 0.125]),
    ("layers.0.bias", [2], [0.25, -0.5]),
    ("layers.2.weight", [2, 2], [1.5, -2.0, 0.0625, 4.0]),
    ("layers.2.bias", [2], [-3.5, 1.0]),
]
# Deliberately not layout order: readers must go by data_offsets, not by key order.
KEY_ORDER = ["layers.2.bias", "__metadata__", "layers.0.weight", "layers.2.weight", "layers.0.bias"]


def main():
    out_path = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else OUT_PATH)
    entries = {}
    data = b""
    for name, shape, values in TENSORS:
        chunk = struct.pack("<%df" % len(values), *values)
        entries[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(chunk)]}
        data += chunk
    config = {"layers": [3, 2, 2], "activation": "relu", "loss": "cross-entropy"}
    entries["__metadata__"] = {
        "format": "gradpool",
        "gradpool.version": "1",
        "config": json.dumps(config, separators=(",", ":")),
        "written_by": "scripts/reference/make_safetensors_fixture.py",
    }
    header = json.dumps({k: entries[k] for k in KEY_ORDER}, separators=(",", ":")).encode("utf-8")
    header += b" " * ((8 - (8 + len(header)) % 8) % 8)  # the data section starts 8-byte aligned
    with open(out_path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)
    print("wrote %s (%d bytes)" % (out_path, 8 + len(header) + len(data)))


if __name__ == "__main__":
    main()
