#!/usr/bin/env python3
# Writes test/fixtures/torch-schedules.json for test/schedule.test.ts and test/clip.test.ts: the lr (and OneCycle
# momentum) torch.optim.lr_scheduler puts in force before each optimizer.step(), configurations torch refuses or
# mis-runs, and clip_grad_norm_ results. Run from the repository root with a Python that has torch:
#   /usr/bin/python3 scripts/reference/make_schedule_fixtures.py

import json
import math
import os
import sys
import warnings

import torch
from torch.optim import SGD
from torch.optim import lr_scheduler as L

torch.set_default_dtype(torch.float32)
# SequentialLR calls scheduler.step(0) at each milestone, which warns EPOCH_DEPRECATION_WARNING; expected here.
warnings.simplefilter("ignore")

OUT_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "torch-schedules.json")
BASE_LR = 0.1


def flat(t):
    return t.detach().double().reshape(-1).tolist()


def num(x):
    # JSON has no Infinity or NaN; the tests read these strings back.
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    if isinstance(x, float) and math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def build(spec, opt):
    """A torch scheduler from a gradpool ScheduleSpec (the same JSON the tests read)."""
    n = spec["name"]
    if n == "step":
        return L.StepLR(opt, step_size=spec["stepSize"], gamma=spec.get("gamma", 0.1))
    if n == "multistep":
        return L.MultiStepLR(opt, milestones=spec["milestones"], gamma=spec.get("gamma", 0.1))
    if n == "exponential":
        return L.ExponentialLR(opt, gamma=spec["gamma"])
    if n == "cosine":
        return L.CosineAnnealingLR(opt, T_max=spec["tMax"], eta_min=spec.get("etaMin", 0))
    if n == "linear":
        return L.LinearLR(opt, start_factor=spec.get("startFactor", 1.0 / 3), end_factor=spec.get("endFactor", 1.0),
                          total_iters=spec.get("totalIters", 5))
    if n == "onecycle":
        kw = {}
        for ours, theirs in [("pctStart", "pct_start"), ("annealStrategy", "anneal_strategy"), ("divFactor", "div_factor"),
                             ("finalDivFactor", "final_div_factor"), ("threePhase", "three_phase"),
                             ("cycleMomentum", "cycle_momentum"), ("baseMomentum", "base_momentum"),
                             ("maxMomentum", "max_momentum")]:
            if ours in spec:
                kw[theirs] = spec[ours]
        return L.OneCycleLR(opt, max_lr=spec["maxLr"], total_steps=spec["totalSteps"], **kw)
    if n == "sequential":
        # Constructed in list order, as a user writes SequentialLR(opt, [A(opt), B(opt)], ms).
        subs = [build(s, opt) for s in spec["schedulers"]]
        return L.SequentialLR(opt, schedulers=subs, milestones=spec["milestones"])
    raise ValueError(n)


def schedule_case(name, spec, steps, momentum=0.0):
    opt = SGD([torch.nn.Parameter(torch.zeros(3))], lr=BASE_LR, momentum=momentum)
    sched = build(spec, opt)
    lrs, moms, error = [], [], None
    for t in range(steps):
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        moms.append(group["momentum"])
        opt.step()
        try:
            sched.step()
        except Exception as e:  # recorded: the step after which torch gave up
            error = {"afterSteps": t + 1, "type": type(e).__name__, "message": str(e)}
            break
    case = {"name": name, "spec": spec, "baseLr": BASE_LR, "sgdMomentum": momentum, "lr": lrs, "momentum": moms}
    if error is not None:
        case["error"] = error
    return case


SCHEDULES = [
    ("StepLR stepSize 3, default gamma 0.1, 12 steps", {"name": "step", "stepSize": 3}, 12),
    ("StepLR stepSize 3, gamma 0.5, 12 steps", {"name": "step", "stepSize": 3, "gamma": 0.5}, 12),
    ("StepLR stepSize 1, gamma 0.9, 8 steps", {"name": "step", "stepSize": 1, "gamma": 0.9}, 8),
    ("MultiStepLR [2, 5, 9], default gamma, 12 steps", {"name": "multistep", "milestones": [2, 5, 9]}, 12),
    ("MultiStepLR [2, 5, 9], gamma 0.5, 12 steps", {"name": "multistep", "milestones": [2, 5, 9], "gamma": 0.5}, 12),
    ("MultiStepLR repeated milestone [3, 3, 6] multiplies twice", {"name": "multistep", "milestones": [3, 3, 6]}, 9),
    ("MultiStepLR milestone 0 decays before the first step", {"name": "multistep", "milestones": [0, 4], "gamma": 0.5}, 6),
    ("ExponentialLR gamma 0.9, 12 steps", {"name": "exponential", "gamma": 0.9}, 12),
    ("ExponentialLR gamma 1.05, 12 steps", {"name": "exponential", "gamma": 1.05}, 12),
    ("CosineAnnealingLR tMax 10, default etaMin, 11 steps", {"name": "cosine", "tMax": 10}, 11),
    ("CosineAnnealingLR tMax 10, etaMin 0.01, 10 steps", {"name": "cosine", "tMax": 10, "etaMin": 0.01}, 10),
    ("CosineAnnealingLR tMax 10, etaMin 0.01, 25 steps (past tMax)", {"name": "cosine", "tMax": 10, "etaMin": 0.01}, 25),
    ("CosineAnnealingLR tMax 3, 14 steps (several periods)", {"name": "cosine", "tMax": 3}, 14),
    ("LinearLR defaults, 10 steps", {"name": "linear"}, 10),
    ("LinearLR startFactor 0.1, totalIters 4, 8 steps", {"name": "linear", "startFactor": 0.1, "totalIters": 4}, 8),
    ("LinearLR decay 1.0 -> 0.1 over 5, 9 steps", {"name": "linear", "startFactor": 1.0, "endFactor": 0.1, "totalIters": 5}, 9),
    ("LinearLR endFactor 0 over 3, 6 steps", {"name": "linear", "startFactor": 0.5, "endFactor": 0.0, "totalIters": 3}, 6),
    ("SequentialLR LinearLR(0.1, 3) -> CosineAnnealingLR(7), milestones [3], 12 steps",
     {"name": "sequential", "milestones": [3], "schedulers": [
         {"name": "linear", "startFactor": 0.1, "totalIters": 3}, {"name": "cosine", "tMax": 7}]}, 12),
    ("SequentialLR LinearLR(0.25, 4) -> ExponentialLR(0.9) -> CosineAnnealingLR(6, 0.001), milestones [4, 8], 18 steps",
     {"name": "sequential", "milestones": [4, 8], "schedulers": [
         {"name": "linear", "startFactor": 0.25, "totalIters": 4}, {"name": "exponential", "gamma": 0.9},
         {"name": "cosine", "tMax": 6, "etaMin": 0.001}]}, 18),
    ("SequentialLR StepLR(2, 0.5) -> MultiStepLR([0, 3]) -> LinearLR(0.5, 1.0, 2), milestones [5, 7], 12 steps",
     {"name": "sequential", "milestones": [5, 7], "schedulers": [
         {"name": "step", "stepSize": 2, "gamma": 0.5}, {"name": "multistep", "milestones": [0, 3]},
         {"name": "linear", "startFactor": 0.5, "totalIters": 2}]}, 12),
    ("SequentialLR milestone before the warm-up ends: LinearLR(0.2, 5) -> ExponentialLR(0.8), milestones [2], 6 steps",
     {"name": "sequential", "milestones": [2], "schedulers": [
         {"name": "linear", "startFactor": 0.2, "totalIters": 5}, {"name": "exponential", "gamma": 0.8}]}, 6),
    ("SequentialLR of one scheduler, no milestones", {"name": "sequential", "milestones": [], "schedulers": [
        {"name": "exponential", "gamma": 0.5}]}, 5),
]

# OneCycle: momentum 0.9 on the SGD so the override is visible; run one step past totalSteps to record the error.
ONECYCLE = [
    ("OneCycleLR totalSteps 20, defaults", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 20}, 0.9),
    ("OneCycleLR totalSteps 20, annealStrategy linear", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 20, "annealStrategy": "linear"}, 0.9),
    ("OneCycleLR totalSteps 20, threePhase", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 20, "threePhase": True}, 0.9),
    ("OneCycleLR totalSteps 20, threePhase linear", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 20, "threePhase": True,
                                                    "annealStrategy": "linear"}, 0.9),
    ("OneCycleLR totalSteps 17, pctStart 0.25, divFactor 10, finalDivFactor 100, momenta 0.8/0.9",
     {"name": "onecycle", "maxLr": 0.5, "totalSteps": 17, "pctStart": 0.25, "divFactor": 10.0, "finalDivFactor": 100.0,
      "baseMomentum": 0.8, "maxMomentum": 0.9}, 0.9),
    ("OneCycleLR cycleMomentum false leaves SGD momentum alone", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 10,
                                                                  "cycleMomentum": False}, 0.9),
    ("OneCycleLR cycles momentum even when SGD momentum is 0", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 10}, 0.0),
    ("OneCycleLR pctStart 0 starts in the annealing phase", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 8, "pctStart": 0.0}, 0.9),
    ("OneCycleLR threePhase pctStart 0.05 (a first phase of negative length)",
     {"name": "onecycle", "maxLr": 1.0, "totalSteps": 10, "pctStart": 0.05, "threePhase": True}, 0.9),
    ("OneCycleLR totalSteps 1", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 1}, 0.9),
]


def reject_case(name, spec, steps, why):
    """A configuration that torch refuses, at construction or at some step; the tests expect validateSchedule to refuse it."""
    opt = SGD([torch.nn.Parameter(torch.zeros(3))], lr=BASE_LR, momentum=0.9)
    try:
        sched = build(spec, opt)
        for t in range(steps):
            opt.step()
            sched.step()
    except Exception as e:
        return {"name": name, "spec": spec, "why": why, "torchError": f"{type(e).__name__}: {e}"}
    return {"name": name, "spec": spec, "why": why, "torchError": None, "torchLr": opt.param_groups[0]["lr"]}


REJECTS = [
    ("LinearLR startFactor 0", {"name": "linear", "startFactor": 0.0}, 3, "torch divides by zero on the first step"),
    ("LinearLR startFactor above 1", {"name": "linear", "startFactor": 1.5}, 1, "torch checks"),
    ("LinearLR endFactor below 0", {"name": "linear", "endFactor": -0.5}, 1, "torch checks"),
    ("OneCycleLR totalSteps 0", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 0}, 1, "torch checks"),
    ("OneCycleLR pctStart above 1", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 10, "pctStart": 1.5}, 1, "torch checks"),
    ("OneCycleLR anneal strategy 'exp'", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 10, "annealStrategy": "exp"}, 1,
     "torch checks"),
    ("OneCycleLR pctStart * totalSteps = 1 (first phase of zero steps)",
     {"name": "onecycle", "maxLr": 1.0, "totalSteps": 10, "pctStart": 0.1}, 1, "torch divides by zero at construction"),
    ("OneCycleLR pctStart 1 (last phase of zero steps)", {"name": "onecycle", "maxLr": 1.0, "totalSteps": 5, "pctStart": 1.0}, 5,
     "torch divides by zero on the last scheduler.step()"),
    ("OneCycleLR threePhase pctStart 0.55 of 10 (last phase of zero steps)",
     {"name": "onecycle", "maxLr": 1.0, "totalSteps": 10, "pctStart": 0.55, "threePhase": True}, 10,
     "torch divides by zero on the last scheduler.step()"),
    ("SequentialLR with milestones not one fewer than schedulers",
     {"name": "sequential", "milestones": [2, 4], "schedulers": [{"name": "linear"}, {"name": "exponential", "gamma": 0.9}]}, 1,
     "torch checks"),
    ("SequentialLR of no schedulers", {"name": "sequential", "milestones": [], "schedulers": []}, 1, "torch checks"),
    ("SequentialLR nested in a later position",
     {"name": "sequential", "milestones": [3], "schedulers": [
         {"name": "linear", "startFactor": 0.5, "totalIters": 2},
         {"name": "sequential", "milestones": [2], "schedulers": [{"name": "linear"}, {"name": "exponential", "gamma": 0.5}]}]},
     6, "SequentialLR.step() takes no epoch, so the milestone's step(0) fails"),
]


def sequential_quirks():
    """Configurations torch runs but not as a closed form of the step count; recorded as evidence for rejecting them."""
    out = []
    for name, spec, steps in [
        ("SequentialLR nested in first position", {"name": "sequential", "milestones": [4], "schedulers": [
            {"name": "sequential", "milestones": [2], "schedulers": [
                {"name": "linear", "startFactor": 0.5, "totalIters": 2}, {"name": "exponential", "gamma": 0.5}]},
            {"name": "step", "stepSize": 2}]}, 8),
        ("SequentialLR with milestone 0", {"name": "sequential", "milestones": [0], "schedulers": [
            {"name": "linear", "startFactor": 0.1, "totalIters": 3}, {"name": "cosine", "tMax": 7}]}, 8),
        ("SequentialLR with repeated milestones [2, 2]", {"name": "sequential", "milestones": [2, 2], "schedulers": [
            {"name": "linear", "startFactor": 0.5, "totalIters": 3}, {"name": "exponential", "gamma": 0.5},
            {"name": "step", "stepSize": 2}]}, 7),
        ("SequentialLR with descending milestones [4, 2]", {"name": "sequential", "milestones": [4, 2], "schedulers": [
            {"name": "linear", "startFactor": 0.5, "totalIters": 3}, {"name": "exponential", "gamma": 0.5},
            {"name": "step", "stepSize": 2}]}, 7),
        ("SequentialLR LinearLR -> OneCycleLR", {"name": "sequential", "milestones": [3], "schedulers": [
            {"name": "linear", "startFactor": 0.5, "totalIters": 2}, {"name": "onecycle", "maxLr": 1.0, "totalSteps": 5}]}, 9),
        ("SequentialLR OneCycleLR -> ExponentialLR", {"name": "sequential", "milestones": [3], "schedulers": [
            {"name": "onecycle", "maxLr": 1.0, "totalSteps": 5}, {"name": "exponential", "gamma": 0.5}]}, 7),
    ]:
        out.append(schedule_case(name, spec, steps, momentum=0.9))
    return out


# clip_grad_norm_ over an MLP-shaped list of tensors: layers.0.weight (3, 4), layers.0.bias (3,),
# layers.2.weight (2, 3), layers.2.bias (2,); gradpool sees them flattened in this order.
CLIP_SHAPES = [(3, 4), (3,), (2, 3), (2,)]


def clip_case(name, grads, max_norm, norm_type, error_if_nonfinite=False):
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    case = {"name": name, "shapes": [list(g.shape) for g in grads], "maxNorm": max_norm, "normType": num(float(norm_type)),
            "errorIfNonfinite": error_if_nonfinite, "grad": [num(v) for g in grads for v in flat(g)]}
    try:
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type, error_if_nonfinite=error_if_nonfinite)
        case["totalNorm"] = num(total.item())
        case["clipped"] = [num(v) for p in params for v in flat(p.grad)]
    except RuntimeError as e:
        case["error"] = str(e)
    return case


def clip_cases():
    torch.manual_seed(4321)
    sets = {
        "unit-scale": [torch.randn(*s) for s in CLIP_SHAPES],
        "large": [torch.randn(*s) * 7.5 for s in CLIP_SHAPES],
        "small": [torch.randn(*s) * 0.01 for s in CLIP_SHAPES],
    }
    out = []
    for set_name, grads in sets.items():
        for norm_type in [2.0, 1.0, 3.0, math.inf]:
            for max_norm in [1.0, 0.5, 100.0]:
                out.append(clip_case(f"{set_name} gradients, norm {norm_type}, maxNorm {max_norm}", grads, max_norm, norm_type))
    # Exactly at the limit: the 1e-6 in the denominator still scales by 1/(1 + 1e-6).
    out.append(clip_case("3-4-5 gradient at exactly maxNorm 5", [torch.tensor([3.0, 4.0])], 5.0, 2.0))
    out.append(clip_case("3-4-5 gradient, maxNorm 1", [torch.tensor([3.0, 4.0])], 1.0, 2.0))
    out.append(clip_case("all-zero gradient", [torch.zeros(3), torch.zeros(2)], 1.0, 2.0))
    with_inf = [torch.tensor([[1.0, -2.0], [float("inf"), 0.5]]), torch.tensor([0.25, -0.75])]
    with_nan = [torch.tensor([[1.0, -2.0], [float("nan"), 0.5]]), torch.tensor([0.25, -0.75])]
    for nt in [2.0, math.inf]:
        out.append(clip_case(f"an inf gradient, norm {nt}, errorIfNonfinite false", with_inf, 1.0, nt, False))
        out.append(clip_case(f"an inf gradient, norm {nt}, errorIfNonfinite true", with_inf, 1.0, nt, True))
    out.append(clip_case("a NaN gradient, errorIfNonfinite false", with_nan, 1.0, 2.0, False))
    out.append(clip_case("a NaN gradient, errorIfNonfinite true", with_nan, 1.0, 2.0, True))
    return out


def main():
    schedules = [schedule_case(n, s, k) for n, s, k in SCHEDULES]
    for name, spec, momentum in ONECYCLE:
        schedules.append(schedule_case(name, spec, spec["totalSteps"] + 2, momentum=momentum))
    doc = {
        "generator": "scripts/reference/make_schedule_fixtures.py",
        "torch": torch.__version__,
        "baseLr": BASE_LR,
        "schedules": schedules,
        "rejects": [reject_case(*r) for r in REJECTS],
        "sequentialQuirks": sequential_quirks(),
        "clip": clip_cases(),
    }
    path = os.path.normpath(OUT_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path} ({os.path.getsize(path)} bytes) with torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
