#!/usr/bin/env python3
# Writes test/fixtures/torch-reference.json: losses, parameter gradients and SGD trajectories computed
# by PyTorch in float32, for test/torch-reference.test.ts to compare gradpool against.
# Run from the repository root with a Python that has torch: /usr/bin/python3 scripts/reference/make_torch_fixtures.py
#
# Every tensor is dumped as float64 lists of its float32 values, which JSON round-trips exactly.

import json
import os
import sys

import torch
from torch import nn

torch.set_default_dtype(torch.float32)

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
ROWS = 7
OUT_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "torch-reference.json")


def flat(t):
    return t.detach().double().reshape(-1).tolist()


def build_net(layers, act):
    mods = []
    for i in range(len(layers) - 1):
        mods.append(nn.Linear(layers[i], layers[i + 1]))
        if i + 2 < len(layers):
            mods.append(ACTIVATIONS[act]())
    return nn.Sequential(*mods)


def state(net):
    # Keys as gradpool names them: 'layers.0.weight', 'layers.0.bias', 'layers.2.weight', ...
    return {f"layers.{k}": {"shape": list(v.shape), "data": flat(v)} for k, v in net.state_dict().items()}


def grads(net):
    return {f"layers.{k}": flat(p.grad) for k, p in net.named_parameters()}


def network_case(seed, layers, act, loss):
    torch.manual_seed(seed)
    net = build_net(layers, act)
    x = torch.randn(ROWS, layers[0])
    K = layers[-1]
    if loss == "cross-entropy":
        y = torch.randint(0, K, (ROWS,))
        make = lambda reduction: nn.CrossEntropyLoss(reduction=reduction)
        targets = y.tolist()
    else:
        y = torch.rand(ROWS, K)
        make = lambda reduction: nn.BCEWithLogitsLoss(reduction=reduction)
        targets = flat(y)

    net.zero_grad()
    logits = net(x)
    loss_sum = make("sum")(logits, y)
    loss_sum.backward()
    sum_grads = grads(net)

    with torch.no_grad():
        loss_mean = make("mean")(net(x), y)

    return {
        "name": f"{loss} {act} {layers}",
        "layers": layers,
        "activation": act,
        "loss": loss,
        "rows": ROWS,
        "params": state(net),
        "x": flat(x),
        "targets": targets,
        "logits": flat(logits),
        "lossSum": loss_sum.item(),
        "lossMean": loss_mean.item(),
        "grads": sum_grads,
    }


SGD_CASES = [
    ("plain", dict(lr=0.1)),
    ("momentum", dict(lr=0.1, momentum=0.9)),
    ("momentum + dampening", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("nesterov", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("weight decay + momentum", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("weight decay", dict(lr=0.1, weight_decay=0.01)),
    ("maximize", dict(lr=0.1, maximize=True)),
    ("maximize + nesterov + weight decay", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
]
SGD_STEPS = 5


def sgd_cases():
    torch.manual_seed(1234)
    p0 = torch.randn(6)
    # A gradient sequence with sign flips, a zero and a large entry, fixed by the seed.
    gs = [torch.randn(6) for _ in range(SGD_STEPS)]
    gs[2][1] = 0.0
    gs[3][4] = 25.0
    out = []
    for name, opts in SGD_CASES:
        p = p0.clone().requires_grad_(True)
        opt = torch.optim.SGD([p], **opts)
        traj = []
        for g in gs:
            p.grad = g.clone()
            opt.step()
            traj.append(flat(p))
        out.append({
            "name": name,
            "options": {
                "lr": opts["lr"],
                "momentum": opts.get("momentum", 0.0),
                "dampening": opts.get("dampening", 0.0),
                "weightDecay": opts.get("weight_decay", 0.0),
                "nesterov": opts.get("nesterov", False),
                "maximize": opts.get("maximize", False),
            },
            "params0": flat(p0),
            "grads": [flat(g) for g in gs],
            "trajectory": traj,
        })
    return out


def main():
    cases = []
    for i, act in enumerate(ACTIVATIONS):
        cases.append(network_case(100 + i, [6, 5, 4], act, "cross-entropy"))
    for i, act in enumerate(ACTIVATIONS):
        cases.append(network_case(200 + i, [6, 5, 3], act, "bce-with-logits"))
    # Two hidden layers, so the gradient passes through an activation into a hidden linear layer.
    cases.append(network_case(300, [6, 5, 4, 3], "tanh", "cross-entropy"))
    cases.append(network_case(301, [6, 5, 4, 3], "sigmoid", "bce-with-logits"))

    doc = {
        "generator": "scripts/reference/make_torch_fixtures.py",
        "torch": torch.__version__,
        "dtype": "float32",
        "networks": cases,
        "sgd": sgd_cases(),
    }
    path = os.path.normpath(OUT_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes) with torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
