#!/usr/bin/env python3
# Writes test/fixtures/torch-plateau.json for test/plateau.test.ts: torch.optim.lr_scheduler.ReduceLROnPlateau
# fed fixed metric sequences, and its state (lr, best, num_bad_epochs, cooldown_counter, last_epoch) after each
# step(metric). Run from the repository root with a Python that has torch; both torch 1.13 and 2.x:
#   /usr/bin/python3 scripts/reference/make_plateau_fixtures.py
#   V/bin/python scripts/reference/make_plateau_fixtures.py  (V: a venv with the PyTorch 2.x wheel, as in make_adam_fixtures.py)
# Each writes its own section (keyed by torch's version); the test checks every section present.

import json
import math
import os
import random

import torch
from torch.optim import SGD
from torch.optim.lr_scheduler import ReduceLROnPlateau

OUT_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "torch-plateau.json")


def num(x):
    # JSON has no Infinity or NaN; the test reads these strings back.
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def losses(n, seed, noise):
    """A loss that falls, then flattens with noise: plateaus of varying length."""
    rng = random.Random(seed)
    return [1.0 / (1 + 0.3 * i) + 0.5 + noise * rng.uniform(-1, 1) for i in range(n)]


def accuracies(n, seed):
    rng = random.Random(seed)
    return [min(0.99, 0.5 + 0.05 * math.sqrt(i) + 0.01 * rng.uniform(-1, 1)) for i in range(n)]


# (name, monitor, gradpool's spec without name/monitor, lr, metrics)
CASES = [
    ("defaults", "valLoss", {}, 0.1, losses(15, 1, 0.02) + [0.7] * 30),
    ("min rel patience 2", "valLoss", {"patience": 2}, 0.1, losses(30, 2, 0.05)),
    ("min abs", "trainLoss", {"patience": 1, "threshold": 0.01, "thresholdMode": "abs"}, 0.5, losses(30, 3, 0.01)),
    ("max rel", "valAccuracy", {"patience": 1, "threshold": 0.01}, 0.1, accuracies(30, 4)),
    ("max abs", "trainAccuracy", {"patience": 0, "threshold": 0.005, "thresholdMode": "abs", "factor": 0.5}, 0.2, accuracies(30, 5)),
    ("cooldown", "valLoss", {"patience": 1, "cooldown": 3, "factor": 0.5}, 0.1, [1.0] * 25),
    ("minLr", "valLoss", {"patience": 0, "factor": 0.3, "minLr": 0.004}, 0.1, [2.0] * 12),
    ("eps stops small reductions", "valLoss", {"patience": 0, "factor": 0.5, "eps": 0.01}, 0.1, [3.0] * 10),
    ("factor 0", "valLoss", {"patience": 3, "factor": 0.0}, 0.05, [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.8]),
    ("nan and inf metrics", "valLoss", {"patience": 1, "factor": 0.5},
     0.1, [float("inf"), 1.0, float("nan"), float("nan"), 0.5, float("inf"), 0.4, float("nan"), float("nan"), float("nan")]),
    ("threshold above 1, rel", "valLoss", {"patience": 1, "threshold": 1.5}, 0.1, [1.0, 0.5, 0.1, 0.01, 0.001, 0.0]),
    ("threshold 0 and ties", "valLoss", {"patience": 1, "threshold": 0.0, "factor": 0.5}, 0.1, [1.0, 1.0, 1.0, 0.99, 0.99, 0.99, 0.99]),
    ("negative losses", "trainLoss", {"patience": 1, "factor": 0.5}, 0.1, [-1.0, -1.5, -1.4999, -1.6, -1.5, -1.5, -1.7]),
]

TORCH_NAMES = {"factor": "factor", "patience": "patience", "threshold": "threshold", "thresholdMode": "threshold_mode",
               "cooldown": "cooldown", "minLr": "min_lr", "eps": "eps"}


def run(monitor, spec, lr, metrics):
    opt = SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    mode = "min" if monitor.endswith("Loss") else "max"
    sched = ReduceLROnPlateau(opt, mode=mode, **{TORCH_NAMES[k]: v for k, v in spec.items()})
    states = []
    for m in metrics:
        sched.step(m)
        states.append({
            "lr": opt.param_groups[0]["lr"], "best": num(sched.best), "numBadEpochs": sched.num_bad_epochs,
            "cooldownCounter": sched.cooldown_counter, "lastEpoch": sched.last_epoch,
        })
    return states


def main():
    out = {}
    if os.path.exists(OUT_PATH):
        with open(OUT_PATH) as f:
            out = json.load(f)
    version = torch.__version__.split("+")[0]
    out[version] = [
        {"name": name, "monitor": monitor, "spec": spec, "lr": lr, "metrics": [num(m) for m in metrics],
         "states": run(monitor, spec, lr, metrics)}
        for name, monitor, spec, lr, metrics in CASES
    ]
    with open(OUT_PATH, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT_PATH} [{version}]: {len(CASES)} cases")


if __name__ == "__main__":
    main()
