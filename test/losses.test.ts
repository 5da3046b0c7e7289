// The cross-entropy family with its options against PyTorch 1.13 and torchvision 0.14
// (test/fixtures/torch-losses.json, written by scripts/reference/make_loss_fixtures.py): the reduced
// loss and its gradient on the logits, through the shard's loss dispatch. Then values worked out by
// hand from PyTorch's documented formulas, and finite differences of every loss's backward.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultLossSpec, type LossSpec } from '../src/shared/losses.js';
import { isSoftmaxLoss, linearViews, type LossName, type ModelConfig } from '../src/shared/model.js';
import { createScratch, forward, lossAndBackward } from '../src/worker/shard.js';
import { Rng } from '../src/shared/rng.js';
import { oneShard } from './helpers.js';

interface Case {
  name: string;
  loss: LossName;
  B: number;
  K: number;
  logits: number[];
  targets: number[];
  targetKind: 'index' | 'values';
  options: { weight?: number[]; posWeight?: number[]; ignoreIndex?: number; labelSmoothing?: number; focalGamma?: number; focalAlpha?: number | number[] };
  results: { reduction: 'mean' | 'sum'; loss: number; grad: number[] }[];
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/torch-losses.json', import.meta.url), 'utf8')) as { torch: string; cases: Case[] };

function spec(loss: LossName, o: Case['options']): LossSpec {
  const s = defaultLossSpec(loss);
  if (o.weight) s.weight = Float32Array.from(o.weight);
  if (o.posWeight) s.posWeight = Float32Array.from(o.posWeight);
  if (o.ignoreIndex !== undefined) s.ignoreIndex = o.ignoreIndex;
  if (o.labelSmoothing !== undefined) s.labelSmoothing = o.labelSmoothing;
  if (o.focalGamma !== undefined) s.focalGamma = o.focalGamma;
  if (o.focalAlpha !== undefined) s.focalAlpha = typeof o.focalAlpha === 'number' ? o.focalAlpha : Float32Array.from(o.focalAlpha);
  return s;
}

/**
 * Runs the loss on `logits` through lossAndBackward with a [K, K] network whose weight is the identity
 * and bias zero, so its logits are the inputs exactly; returns the loss sum, the divisor, and dlogits.
 */
function run(loss: LossSpec, logits: ArrayLike<number>, targets: ArrayLike<number>, index: boolean, B: number, K: number) {
  const model: ModelConfig = { layers: [K, K], activation: 'relu', loss: loss.name };
  const params = new Float32Array(K * K + K);
  for (let k = 0; k < K; k++) params[k * K + k] = 1;
  const grads = new Float32Array(params.length);
  const s = createScratch(model, B);
  s.x.set(Float32Array.from(logits));
  if (index) s.yIndex.set(Int32Array.from(targets));
  else s.yValue.set(Float32Array.from(targets));
  forward(s, model, linearViews(params, model.layers), B);
  const sums = lossAndBackward(s, model, linearViews(params, model.layers), linearViews(grads, model.layers), B, loss, index);
  return { ...sums, dlogits: s.dz[0].slice(0, B * K), losses: s.losses.slice(0, isSoftmaxLoss(loss.name) ? B : B * K) };
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return m;
}

describe(`against PyTorch ${fixture.torch}`, () => {
  for (const c of fixture.cases) {
    for (const r of c.results) {
      it(`${c.name}, reduction '${r.reduction}': loss and gradient on the logits`, () => {
        const got = run(spec(c.loss, c.options), c.logits, c.targets, c.targetKind === 'index', c.B, c.K);
        const divisor = r.reduction === 'mean' ? got.weightSum : 1;
        const loss = got.lossSum / divisor;
        expect(Math.abs(loss - r.loss) / Math.max(1, Math.abs(r.loss)), `loss ${loss} vs torch ${r.loss}`).toBeLessThan(1e-6);
        const grad = Array.from(got.dlogits, (g) => g / divisor);
        const d = maxRelDiff(grad, r.grad);
        expect(d, `max |diff| in the gradient ${d}`).toBeLessThan(1e-6);
      });
    }
  }
});

describe('values worked out by hand from the documented formulas', () => {
  it("weighted cross-entropy's mean divides by the weights of the rows' targets", () => {
    // rows: logits [0, 0] target 0, [0, ln 3] target 1; weight [2, 1]
    // losses: 2 * ln 2, 1 * -ln(3/4); mean = (2 ln 2 - ln 0.75) / (2 + 1)
    const s = spec('cross-entropy', { weight: [2, 1] });
    const got = run(s, [0, 0, 0, Math.log(3)], [0, 1], true, 2, 2);
    expect(got.weightSum).toBe(3);
    expect(got.lossSum / got.weightSum).toBeCloseTo((2 * Math.log(2) - Math.log(0.75)) / 3, 6);
  });

  it('label smoothing mixes the uniform distribution into the target: (1 - e) nll + e/K sum of -log p', () => {
    // logits [1, 2, 3], target 0, e = 0.3: p = softmax; loss = 0.7 (-log p0) + 0.1 (-log p0 - log p1 - log p2)
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    const expected = 0.7 * (lse - 1) + 0.1 * (3 * lse - 6);
    const got = run(spec('cross-entropy', { labelSmoothing: 0.3 }), [1, 2, 3], [0], true, 1, 3);
    expect(got.lossSum).toBeCloseTo(expected, 5);
  });

  it('ignored rows add no loss, no gradient and no weight; an all-ignored batch has weight 0', () => {
    const got = run(spec('cross-entropy', {}), [1, 2, 3, 4], [-100, 1], true, 2, 2);
    expect(got.weightSum).toBe(1);
    expect(Array.from(got.dlogits.slice(0, 2))).toEqual([0, 0]);
    expect(got.counted).toBe(1);
    const none = run(spec('cross-entropy', {}), [1, 2], [-100], true, 1, 2);
    expect(none.weightSum).toBe(0);
    expect(none.lossSum).toBe(0);
  });

  it('pos_weight multiplies the positive term: y pw (-log s(x)) + (1 - y)(-log(1 - s(x)))', () => {
    // x = 0.5, y = 0.25, pw = 3
    const sg = 1 / (1 + Math.exp(-0.5));
    const expected = -(0.25 * 3 * Math.log(sg) + 0.75 * Math.log(1 - sg));
    const got = run(spec('bce-with-logits', { posWeight: [3] }), [0.5], [0.25], false, 1, 1);
    expect(got.lossSum).toBeCloseTo(expected, 6);
  });

  it('BCE on probabilities clamps each log at -100, as nn.BCELoss does, where float32 sigmoid is exactly 1 or 0', () => {
    // s(40) rounds to 1 in float32 (log(1 - p) = -inf); s(-120) underflows to 0 (log p = -inf).
    const got = run(spec('bce', {}), [40, -120, 40, -40], [0, 1, 1, 1], false, 4, 1);
    expect(Array.from(got.losses, (v) => v + 0)).toEqual([100, 100, 0, Math.fround(40)]);
    expect(got.dlogits.every(Number.isFinite)).toBe(true);
  });

  it('sigmoid focal loss is alpha_t (1 - p_t)^gamma times BCE, as torchvision defines it', () => {
    // x = 1, y = 1, alpha 0.25, gamma 2: p = s(1), ce = -log p, p_t = p
    const p = 1 / (1 + Math.exp(-1));
    const got = run(spec('sigmoid-focal', {}), [1], [1], false, 1, 1);
    expect(got.lossSum).toBeCloseTo(0.25 * (1 - p) ** 2 * -Math.log(p), 7);
  });

  it('softmax focal loss is -alpha[t] (1 - p_t)^gamma log p_t, and plain cross-entropy at gamma 0', () => {
    const lse = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
    const pt = Math.exp(2 - lse);
    const got = run(spec('softmax-focal', { focalGamma: 2, focalAlpha: [1, 0.5, 1] }), [1, 2, 3], [1], true, 1, 3);
    expect(got.lossSum).toBeCloseTo(-0.5 * (1 - pt) ** 2 * Math.log(pt), 7);
    const ce = run(spec('cross-entropy', {}), [1, 2, 3], [1], true, 1, 3);
    const fl0 = run(spec('softmax-focal', { focalGamma: 0 }), [1, 2, 3], [1], true, 1, 3);
    expect(fl0.lossSum).toBeCloseTo(ce.lossSum, 7);
    expect(maxRelDiff(fl0.dlogits, ce.dlogits)).toBeLessThan(1e-7);
  });

  it('probability targets: the loss is the cross-entropy of the two distributions, mean over rows', () => {
    // logits [0, 0] (p = [.5, .5]); q = [0.2, 0.8]: loss = -(0.2 ln .5 + 0.8 ln .5) = ln 2
    const got = run(spec('cross-entropy', {}), [0, 0], [0.2, 0.8], false, 1, 2);
    expect(got.lossSum).toBeCloseTo(Math.log(2), 7);
    expect(got.weightSum).toBe(1);
    expect(Array.from(got.dlogits)).toEqual([Math.fround(0.5 - 0.2), Math.fround(0.5 - 0.8)]);
  });
});

describe('finite differences of every loss', () => {
  const cases: [string, LossName, Case['options'], 'index' | 'values'][] = [
    ['weighted, smoothed cross-entropy', 'cross-entropy', { weight: [0.5, 2, 1], labelSmoothing: 0.2 }, 'index'],
    ['cross-entropy on probability targets with weights', 'cross-entropy', { weight: [0.5, 2, 1], labelSmoothing: 0.1 }, 'values'],
    ['bce-with-logits with weight and pos_weight', 'bce-with-logits', { weight: [1, 2, 0.5], posWeight: [2, 0.5, 1] }, 'values'],
    ['bce on probabilities', 'bce', { weight: [1, 2, 0.5] }, 'values'],
    ['sigmoid focal', 'sigmoid-focal', { focalGamma: 1.5, focalAlpha: 0.3 }, 'values'],
    ['softmax focal', 'softmax-focal', { focalGamma: 2.5, focalAlpha: [0.2, 1, 0.7] }, 'index'],
  ];
  for (const [name, loss, options, kind] of cases) {
    it(`${name}: the backward equals central differences of the forward`, () => {
      const B = 4;
      const K = 3;
      const logits = [0.3, -1.2, 2, 1.5, 0.1, -0.4, -2, 0.7, 0.2, 0.05, -0.3, 1.1];
      const targets = kind === 'index' ? [2, 0, 1, 1] : [0.2, 0.9, 0.5, 1, 0, 0.3, 0.6, 0.1, 1, 0, 1, 0.4];
      const s = spec(loss, options);
      const { dlogits } = run(s, logits, targets, kind === 'index', B, K);
      // Logits are float32 and each loss is stored as float32 (relative error 6e-8): a step of 1e-3 keeps
      // that rounding near 1e-4 of the difference; the step is measured after rounding the logits.
      const h = 1e-3;
      let worst = 0;
      for (let i = 0; i < logits.length; i++) {
        const up = logits.slice();
        const down = logits.slice();
        up[i] = Math.fround(up[i] + h);
        down[i] = Math.fround(down[i] - h);
        const diff = run(s, up, targets, kind === 'index', B, K).lossSum - run(s, down, targets, kind === 'index', B, K).lossSum;
        const fd = diff / (up[i] - down[i]);
        worst = Math.max(worst, Math.abs(fd - dlogits[i]) / Math.max(1, Math.abs(fd)));
      }
      expect(worst, `max |diff| ${worst}`).toBeLessThan(1e-3);
    });
  }
});

// Softmax losses where every logit is far below zero: e^x underflows to 0 for each of them, so only a
// log-sum-exp that subtracts the row's largest logit (not 0, not nothing) stays finite. The values are
// worked out here from the offsets d = x + 1e4, which are exact in float32 and in double.
describe('softmax cross-entropy with every logit very negative', () => {
  const K = 6;
  const offsets = [[0, 1, 2, 3, 4, 5], [5, 0.5, 3, 1, 2, 4], [0, 0, 0, 0, 0, 0]];
  const logits = offsets.flat().map((d) => -1e4 + d);
  const targets = [0, 2, 5];
  const B = offsets.length;
  /** log sum_k e^(d_k) and the softmax of a row's offsets, in double. */
  const softmax = (d: number[]) => {
    const lse = Math.log(d.reduce((s, v) => s + Math.exp(v), 0));
    return { lse, p: d.map((v) => Math.exp(v - lse)) };
  };

  it('gives finite losses equal to log-sum-exp minus the target logit', () => {
    const got = run(spec('cross-entropy', {}), logits, targets, true, B, K);
    expect(Array.from(got.losses).every(Number.isFinite)).toBe(true);
    const want = offsets.map((d, b) => softmax(d).lse - d[targets[b]]); // e.g. ln 6 for the uniform row
    const diff = maxRelDiff(got.losses, want);
    expect(diff, `losses ${Array.from(got.losses)} vs ${want}`).toBeLessThan(1e-6);
    expect(got.lossSum / got.weightSum).toBeCloseTo(want.reduce((a, b) => a + b, 0) / B, 5);
  });

  it('gives the gradient softmax minus one-hot of the target, finite in every entry', () => {
    const got = run(spec('cross-entropy', {}), logits, targets, true, B, K);
    expect(Array.from(got.dlogits).every(Number.isFinite)).toBe(true);
    const want = offsets.flatMap((d, b) => softmax(d).p.map((p, k) => p - (k === targets[b] ? 1 : 0)));
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got.dlogits[i] - want[i]));
    expect(worst, `max |diff| ${worst}`).toBeLessThan(1e-6);
  });

  it('gives probability targets the finite loss sum over classes of q times (log-sum-exp minus the logit)', () => {
    const q = [[0.5, 0.5, 0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4, 0, 0], [0, 0, 0, 0, 0, 1]];
    const got = run(spec('cross-entropy', {}), logits, q.flat(), false, B, K);
    const want = offsets.map((d, b) => {
      const { lse } = softmax(d);
      return d.reduce((s, v, k) => s + Math.fround(q[b][k]) * (lse - v), 0);
    });
    expect(Array.from(got.losses).every(Number.isFinite)).toBe(true);
    const diff = maxRelDiff(got.losses, want);
    expect(diff, `losses ${Array.from(got.losses)} vs ${want}`).toBeLessThan(1e-6);
  });
});

// A weighted mean over shards: each shard adds its loss sum, gradient sum and the weight of its targets;
// the batch divides once by the total weight. With shards whose weights differ by orders of magnitude, an
// average of per-shard means (or a division by rows) would land far from the one-shard mean.
describe('the weighted cross-entropy mean across shards', () => {
  const model: ModelConfig = { layers: [6, 5, 3], activation: 'tanh', loss: 'cross-entropy' };
  const weight = [20, 0.05, 1];
  const loss = spec('cross-entropy', { weight });
  const rng = new Rng(21);
  const params = Float32Array.from({ length: 6 * 5 + 5 + 5 * 3 + 3 }, () => rng.uniform(0.8));
  const B = 12;
  const x = Float32Array.from({ length: B * 6 }, () => rng.uniform(2));
  // shard 0: three rows of the heavy class (weight 60); shard 1: seven of the light one (0.35); shard 2: two of weight 1
  const y = Int32Array.from([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2]);
  const pieces: [number, number][] = [[0, 3], [3, 10], [10, 12]];

  /** Loss sum, weight sum and parameter gradient sum of rows [r0, r1), in one shard. */
  const shard = (r0: number, r1: number): ReturnType<typeof oneShard> => oneShard(model, loss, params, x, y, r0, r1);
  /** The sum of the class weights of rows [r0, r1)'s targets, from the weights as float32. */
  const handWeight = (r0: number, r1: number): number => Array.from(y.subarray(r0, r1), (c) => Math.fround(weight[c])).reduce((a, b) => a + b, 0);

  it("gives each shard's divisor as the sum of its targets' class weights", () => {
    const got = pieces.map(([r0, r1]) => shard(r0, r1).weightSum);
    const want = pieces.map(([r0, r1]) => handWeight(r0, r1));
    got.forEach((w, i) => expect(w, `shard ${i}`).toBeCloseTo(want[i], 6));
    expect(shard(0, B).weightSum).toBeCloseTo(handWeight(0, B), 6);
  });

  it('summed over shards of very different weight and divided once by the total weight, equals the one-shard mean', () => {
    const whole = shard(0, B);
    const parts = pieces.map(([r0, r1]) => shard(r0, r1));
    const total = handWeight(0, B);
    const summed = new Float64Array(params.length);
    for (const p of parts) for (let i = 0; i < summed.length; i++) summed[i] += p.grad[i];
    const mean = Array.from(summed, (g) => g / total);
    const wholeMean = Array.from(whole.grad, (g) => g / total);
    expect(maxRelDiff(mean, wholeMean), 'gradient').toBeLessThan(1e-6);
    expect(parts.reduce((a, p) => a + p.lossSum, 0) / total).toBeCloseTo(whole.lossSum / total, 6);
    // the data tells the right mean from an average of the shards' own means
    const ofMeans = Array.from(summed, (_, i) => parts.reduce((a, p) => a + p.grad[i] / p.weightSum, 0) / parts.length);
    expect(maxRelDiff(ofMeans, wholeMean)).toBeGreaterThan(1e-2);
  });
});
