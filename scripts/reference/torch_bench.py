#!/usr/bin/python3
"""PyTorch's training step on one of `npm run bench`'s workloads, for `npm run bench -- --vs-pytorch`.

The same model (nn.Sequential of Linear and ReLU), loss (CrossEntropyLoss, or BCEWithLogitsLoss for one
output), optimizer (SGD(lr=0.01), or Adam or AdamW with lr=0.01, as the optional fifth argument names)
and batch size as gradpool's workload, on random inputs of the same shape (the
arithmetic does not depend on the values), on one thread. Prints one JSON line: the median samples/s over
`windows` windows of ~`seconds` seconds after a warm-up, and the BLAS kernels in use.
"""
import ctypes
import json
import sys
import time

import torch


def blas_core():
    """OpenBLAS's kernel family (e.g. 'SkylakeX', 'Prescott' for its SSE3 fallback), or what BLAS is loaded."""
    with open('/proc/self/maps') as maps:
        paths = sorted({line.split()[-1] for line in maps if 'blas' in line.lower() and '/' in line})
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return 'not OpenBLAS: ' + (', '.join(paths) or 'none found')


def main():
    layers = [int(v) for v in sys.argv[1].split(',')]
    batch, windows, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    optimizer = sys.argv[5] if len(sys.argv) > 5 else 'sgd'
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mods = []
    for i in range(len(layers) - 1):
        mods.append(torch.nn.Linear(layers[i], layers[i + 1]))
        if i < len(layers) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods)
    K = layers[-1]
    loss_fn = torch.nn.BCEWithLogitsLoss() if K == 1 else torch.nn.CrossEntropyLoss()
    opt = {'sgd': torch.optim.SGD, 'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW}[optimizer](model.parameters(), lr=0.01)
    x = torch.rand(batch * 64, layers[0])
    y = (torch.randint(0, 2, (batch * 64, 1)).float() if K == 1 else torch.randint(0, K, (batch * 64,)))

    def steps(n):
        for s in range(n):
            i = (s % 64) * batch
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[i:i + batch]), y[i:i + batch]).backward()
            opt.step()

    t0 = time.perf_counter()
    steps(5)
    per = max((time.perf_counter() - t0) / 5, 1e-6)
    n = max(3, int(seconds / per))
    steps(n)  # warm-up
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        steps(n)
        rates.append(n * batch / (time.perf_counter() - t0))
    rates.sort()
    print(json.dumps({'samplesPerSec': rates[len(rates) // 2], 'spread': [rates[0], rates[-1]], 'blas': blas_core(),
                      'torch': torch.__version__, 'threads': torch.get_num_threads()}))


if __name__ == '__main__':
    main()
