#!/usr/bin/env python3
# Writes test/fixtures/tiny-images-idx3-ubyte.gz (4 images of 3 x 2, u8, gzipped) and
# test/fixtures/tiny-labels-idx1-ubyte (4 u8 labels) from the IDX spec with numpy, struct and gzip only
# (no gradpool code), for test/loaders.test.ts to decode. Run: /usr/bin/python3 scripts/reference/make_idx_fixture.py

import gzip
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "test", "fixtures")

# Image i, row r, column c holds 100 * i + 10 * r + c; the last image uses the ends of the u8 range.
IMAGES = np.array([[[100 * i + 10 * r + c for c in range(2)] for r in range(3)] for i in range(2)]
                  + [[[0, 255], [1, 254], [128, 127]], [[7, 0], [0, 0], [0, 9]]])
LABELS = np.array([3, 0, 9, 1])


def idx_bytes(array, type_code):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(">%dI" % array.ndim, *array.shape)
    return header + array.astype(">u1").tobytes()


def main():
    images = idx_bytes(IMAGES, 0x08)
    labels = idx_bytes(LABELS, 0x08)
    # mtime=0 so the gzip bytes do not change from run to run.
    with open(os.path.join(FIXTURES, "tiny-images-idx3-ubyte.gz"), "wb") as f:
        f.write(gzip.compress(images, mtime=0))
    with open(os.path.join(FIXTURES, "tiny-labels-idx1-ubyte"), "wb") as f:
        f.write(labels)
    print(IMAGES.reshape(len(IMAGES), -1).tolist(), LABELS.tolist())


if __name__ == "__main__":
    main()
