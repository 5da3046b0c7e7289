#!/usr/bin/env python3
# Writes test/fixtures/torch-adam-<torch major.minor>.json: one epoch of torch.optim.Adam and AdamW (their
# CPU default, the single-tensor path) on a small MLP, per-step losses and final weights, for
# test/adam-parity.test.ts to compare Trainer.fit() against. Run it with each PyTorch checked:
#   /usr/bin/python3 scripts/reference/make_adam_fixtures.py              (Debian's torch 1.13)
#   V/bin/python scripts/reference/make_adam_fixtures.py  (torch 2.x: python3 -m venv --system-site-packages V && V/bin/pip install --no-deps /opt/wheels/torch-2*.whl)
# Every tensor is dumped as float64 lists of its float32 values, which JSON round-trips exactly.

import json
import os

import torch
from torch import nn

torch.set_default_dtype(torch.float32)

LAYERS = [6, 16, 3]
ROWS = 128
BATCH = 16
STEPS = ROWS // BATCH

# name, optimizer, its options (gradpool's names), OneCycle's max_lr or None, clip_grad_norm_'s max_norm or None
CASES = [
    ("adam", "adam", {"lr": 1e-2}, None, None),
    ("adamw", "adamw", {"lr": 1e-2}, None, None),
    ("amsgrad", "adam", {"lr": 1e-2, "amsgrad": True, "betas": [0.8, 0.99]}, None, None),
    ("adam weight decay onecycle", "adam", {"lr": 1e-2, "weightDecay": 0.1, "eps": 1e-6}, 2e-2, None),
    ("adamw amsgrad maximize", "adamw", {"lr": 1e-3, "amsgrad": True, "maximize": True, "weightDecay": 0.5}, None, None),
    ("adamw clipped", "adamw", {"lr": 1e-2}, None, 0.25),
]


def flat(t):
    return t.detach().double().reshape(-1).tolist()


def net_from(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(LAYERS[0], LAYERS[1]), nn.ReLU(), nn.Linear(LAYERS[1], LAYERS[2]))


def params_flat(net):
    return torch.cat([p.detach().reshape(-1) for p in net.state_dict().values()])


def run(name, optimizer, o, max_lr, clip, x, y):
    net = net_from(1)
    kw = dict(lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))), eps=o.get("eps", 1e-8),
              amsgrad=o.get("amsgrad", False), maximize=o.get("maximize", False))
    if "weightDecay" in o:
        kw["weight_decay"] = o["weightDecay"]
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW)(net.parameters(), **kw)
    sched = None
    if max_lr is not None:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=STEPS)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for b in range(STEPS):
        xb, yb = x[b * BATCH:(b + 1) * BATCH], y[b * BATCH:(b + 1) * BATCH]
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    state = [opt.state[p] for p in net.parameters()]
    return {
        "name": name, "optimizer": optimizer, "options": o, "maxLr": max_lr, "clip": clip, "losses": losses,
        "params": flat(params_flat(net)),
        "expAvg": flat(torch.cat([s["exp_avg"].reshape(-1) for s in state])),
        "expAvgSq": flat(torch.cat([s["exp_avg_sq"].reshape(-1) for s in state])),
        "step": float(state[0]["step"]),
    }


def main():
    torch.manual_seed(0)
    x = torch.randn(ROWS, LAYERS[0])
    y = torch.randint(0, LAYERS[-1], (ROWS,))
    version = ".".join(torch.__version__.split(".")[:2])
    out = {
        "torch": torch.__version__, "layers": LAYERS, "batchSize": BATCH, "x": flat(x), "y": y.tolist(),
        "initial": flat(params_flat(net_from(1))),
        "cases": [run(*c, x, y) for c in CASES],
    }
    path = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", f"torch-adam-{version}.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
