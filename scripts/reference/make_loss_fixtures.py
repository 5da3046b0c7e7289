#!/usr/bin/env python3
# Writes test/fixtures/torch-losses.json: every loss of the cross-entropy family with its options, as
# PyTorch 1.13 and torchvision 0.14 compute them on fixed logits (float32): the reduced loss and the
# gradient of that loss with respect to the logits, for test/losses.test.ts to compare gradpool against.
# Run from anywhere with Debian's Python: /usr/bin/python3 scripts/reference/make_loss_fixtures.py
# (needs python3-torch and python3-torchvision). The softmax focal loss has no PyTorch module: it is
# written here from its definition, -alpha[t] (1 - p_t)^gamma log p_t, and differentiated by autograd.

import json
import os

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

torch.manual_seed(1234)
OUT_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "torch-losses.json")
B, K = 6, 4


def flat(t):
    return t.detach().double().reshape(-1).tolist()


def case(name, loss_name, logits, targets, fn, options, reductions=("mean", "sum")):
    out = []
    for reduction in reductions:
        x = logits.clone().requires_grad_(True)
        loss = fn(x, reduction)
        loss.backward()
        out.append({"reduction": reduction, "loss": float(loss), "grad": flat(x.grad)})
    return {
        "name": name, "loss": loss_name, "B": logits.shape[0], "K": logits.shape[1],
        "logits": flat(logits), "targets": flat(targets), "targetKind": "index" if targets.dtype == torch.long else "values",
        "options": options, "results": out,
    }


logits = (torch.randn(B, K) * 2).float()
logits[5] = torch.tensor([30.0, -30.0, 0.0, 5.0])  # a confident row, to exercise the tails
labels = torch.tensor([0, 3, 1, 2, 3, 0])
weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
soft = torch.softmax(torch.randn(B, K), dim=1).float()
binary = torch.randint(0, 2, (B, K)).float()
binary[0] = torch.tensor([0.25, 0.5, 1.0, 0.0])  # BCE targets need not be 0 or 1
pos_weight = torch.tensor([1.0, 3.0, 0.5, 2.0])
ignored = labels.clone()
ignored[1] = -100  # skipped with the default ignore_index
ignored2 = labels.clone()
ignored2[4] = 2  # with ignore_index=2, rows 3 and 4 are skipped

cases = []
def ce(target, **kw):
    return lambda x, r: F.cross_entropy(x, target, reduction=r, **kw)


cases.append(case("cross-entropy", "cross-entropy", logits, labels, ce(target=labels), {}))
cases.append(case("cross-entropy with class weights", "cross-entropy", logits, labels, ce(target=labels, weight=weight), {"weight": flat(weight)}))
cases.append(case("cross-entropy with ignore_index -100", "cross-entropy", logits, ignored, ce(target=ignored), {}))
cases.append(case("cross-entropy with ignore_index 2 and weights", "cross-entropy", logits, ignored2,
                  ce(target=ignored2, ignore_index=2, weight=weight), {"ignoreIndex": 2, "weight": flat(weight)}))
cases.append(case("cross-entropy with label smoothing 0.1", "cross-entropy", logits, labels, ce(target=labels, label_smoothing=0.1), {"labelSmoothing": 0.1}))
cases.append(case("cross-entropy with label smoothing 0.2, weights and ignore_index", "cross-entropy", logits, ignored,
                  ce(target=ignored, label_smoothing=0.2, weight=weight), {"labelSmoothing": 0.2, "weight": flat(weight)}))
cases.append(case("cross-entropy with probability targets", "cross-entropy", logits, soft, ce(target=soft), {}))
cases.append(case("cross-entropy with probability targets, weights and smoothing 0.3", "cross-entropy", logits, soft,
                  ce(target=soft, weight=weight, label_smoothing=0.3), {"weight": flat(weight), "labelSmoothing": 0.3}))

bcel = lambda **kw: (lambda x, r: F.binary_cross_entropy_with_logits(x, binary, reduction=r, **kw))
cases.append(case("bce-with-logits", "bce-with-logits", logits, binary, bcel(), {}))
cases.append(case("bce-with-logits with pos_weight", "bce-with-logits", logits, binary, bcel(pos_weight=pos_weight), {"posWeight": flat(pos_weight)}))
cases.append(case("bce-with-logits with weight and pos_weight", "bce-with-logits", logits, binary,
                  bcel(weight=weight, pos_weight=pos_weight), {"weight": flat(weight), "posWeight": flat(pos_weight)}))

# nn.Sigmoid then nn.BCELoss: logits large enough that float32 sigmoid is exactly 1 or 0 hit the -100 clamp.
bce_logits = logits.clone()
bce_logits[2] = torch.tensor([40.0, -40.0, 120.0, -120.0])
bce = lambda **kw: (lambda x, r: F.binary_cross_entropy(torch.sigmoid(x), binary, reduction=r, **kw))
cases.append(case("bce on sigmoid outputs, log clamped at -100", "bce", bce_logits, binary, bce(), {}))
cases.append(case("bce on sigmoid outputs with weight", "bce", bce_logits, binary, bce(weight=weight), {"weight": flat(weight)}))

sfl = lambda alpha, gamma: (lambda x, r: sigmoid_focal_loss(x, binary, alpha=alpha, gamma=gamma, reduction=r))
cases.append(case("sigmoid focal, torchvision defaults", "sigmoid-focal", logits, binary, sfl(0.25, 2.0), {}))
cases.append(case("sigmoid focal, alpha off, gamma 0 (plain BCE)", "sigmoid-focal", logits, binary, sfl(-1.0, 0.0), {"focalAlpha": -1, "focalGamma": 0}))
cases.append(case("sigmoid focal, alpha 0.6, gamma 0.5", "sigmoid-focal", logits, binary, sfl(0.6, 0.5), {"focalAlpha": 0.6, "focalGamma": 0.5}))


def softmax_focal(target, gamma, alpha=None, ignore_index=-100):
    def fn(x, r):
        keep = target != ignore_index
        t = target.clamp(min=0)
        logp = F.log_softmax(x, dim=1).gather(1, t[:, None])[:, 0]
        a = torch.ones(K) if alpha is None else alpha
        losses = -a[t] * (1 - logp.exp()) ** gamma * logp
        losses = torch.where(keep, losses, torch.zeros_like(losses))
        return losses.sum() / keep.sum() if r == "mean" else losses.sum()
    return fn


alpha = torch.tensor([0.25, 0.5, 0.75, 1.0])
cases.append(case("softmax focal, gamma 2", "softmax-focal", logits, labels, softmax_focal(labels, 2.0), {"focalGamma": 2}))
cases.append(case("softmax focal, gamma 0 (plain cross-entropy)", "softmax-focal", logits, labels, softmax_focal(labels, 0.0), {"focalGamma": 0}))
cases.append(case("softmax focal, per-class alpha, gamma 1.5, ignore_index", "softmax-focal", logits, ignored,
                  softmax_focal(ignored, 1.5, alpha), {"focalGamma": 1.5, "focalAlpha": flat(alpha)}))

with open(OUT_PATH, "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, indent=1)
print(f"wrote {len(cases)} cases to {os.path.normpath(OUT_PATH)}")
