// Checks gradpool against PyTorch itself: logits, CrossEntropyLoss / BCEWithLogitsLoss sums and means,
// parameter gradients, and torch.optim.SGD trajectories, all recorded in float32 by
// scripts/reference/make_torch_fixtures.py into test/fixtures/torch-reference.json.

import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { linearViews, paramLayout } from '../src/shared/model.js';
import type { Activation, LossName, ModelConfig } from '../src/shared/model.js';
import { SGD_DEFAULTS, sgdStep, validateSGD } from '../src/shared/sgd.js';
import type { SGDOptions, SGDState } from '../src/shared/sgd.js';
import { createScratch, forward, lossAndBackward } from '../src/worker/shard.js';

interface NetworkCase {
  name: string;
  layers: number[];
  activation: Activation;
  loss: LossName;
  rows: number;
  params: Record<string, { shape: number[]; data: number[] }>;
  x: number[];
  /** class indices (cross-entropy) or (rows, K) probabilities (bce) */
  targets: number[];
  logits: number[];
  lossSum: number;
  lossMean: number;
  /** gradients of the loss with reduction='sum', keyed like params */
  grads: Record<string, number[]>;
}

interface SgdCase {
  name: string;
  options: SGDOptions;
  params0: number[];
  grads: number[][];
  /** parameters after each step */
  trajectory: number[][];
}

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/torch-reference.json', import.meta.url), 'utf8'),
) as { torch: string; networks: NetworkCase[]; sgd: SgdCase[] };

/** Largest |a - b| over two equal-length arrays. */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d; // NaN sticks
  }
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Runs one fixture case through gradpool's shard code. */
function runCase(c: NetworkCase) {
  const model: ModelConfig = { layers: c.layers, activation: c.activation, loss: c.loss };
  const layout = paramLayout(c.layers);
  const flat = new Float32Array(layout.total);
  for (const e of layout.entries) {
    const t = c.params[e.name];
    expect(t.shape, e.name).toEqual(e.shape);
    flat.set(t.data, e.offset);
  }
  const gradFlat = new Float32Array(layout.total);
  const B = c.rows;
  const s = createScratch(model, B);
  s.x.set(c.x);
  if (c.loss === 'cross-entropy') s.yIndex.set(c.targets);
  else s.yValue.set(c.targets);
  const params = linearViews(flat, c.layers);
  const logits = forward(s, model, params, B).slice(0, B * c.layers[c.layers.length - 1]);
  const sums = lossAndBackward(s, model, params, linearViews(gradFlat, c.layers), B);
  return { layout, gradFlat, logits, sums };
}

// Float32 on both sides, summed in different orders (torch's matmul blocks vs the kernels' double
// accumulators): agreement to a few float32 ulps of the values' scale.
const LOGITS_ABS = 1e-5;
const LOSS_REL = 1e-5;
const GRAD_ABS = 1e-5; // times max(1, largest |gradient| of the tensor)
const SGD_REL = 1e-6;
const SGD_ABS = 1e-7;

describe(`networks against torch ${fixture.torch}`, () => {
  const cases = fixture.networks.map((c) => [c.name, c] as const);

  it.each(cases)('%s: logits match torch', (_n, c) => {
    const { logits } = runCase(c);
    const d = maxAbsDiff(logits, c.logits);
    expect(d, `max |diff| ${d}`).toBeLessThan(LOGITS_ABS * Math.max(1, maxAbs(c.logits)));
  });

  it.each(cases)('%s: loss sum matches torch reduction="sum"', (_n, c) => {
    const { sums } = runCase(c);
    const rel = Math.abs(sums.lossSum - c.lossSum) / Math.abs(c.lossSum);
    expect(rel, `gradpool ${sums.lossSum} vs torch ${c.lossSum}; rel diff ${rel}`).toBeLessThan(LOSS_REL);
  });

  it.each(cases)('%s: loss sum / weight sum matches torch reduction="mean"', (_n, c) => {
    const { sums } = runCase(c);
    const K = c.layers[c.layers.length - 1];
    expect(sums.weightSum).toBe(c.loss === 'cross-entropy' ? c.rows : c.rows * K);
    const mean = sums.lossSum / sums.weightSum;
    const rel = Math.abs(mean - c.lossMean) / Math.abs(c.lossMean);
    expect(rel, `gradpool ${mean} vs torch ${c.lossMean}; rel diff ${rel}`).toBeLessThan(LOSS_REL);
  });

  it.each(cases)('%s: every parameter gradient matches torch', (_n, c) => {
    const { layout, gradFlat } = runCase(c);
    for (const e of layout.entries) {
      const want = c.grads[e.name];
      const got = gradFlat.subarray(e.offset, e.offset + e.size);
      const d = maxAbsDiff(got, want);
      expect(d, `${e.name}: max |diff| ${d}`).toBeLessThan(GRAD_ABS * Math.max(1, maxAbs(want)));
    }
  });
});

describe(`sgdStep against torch.optim.SGD ${fixture.torch}`, () => {
  it.each(fixture.sgd.map((c) => [c.name, c] as const))('%s: five-step trajectory matches torch', (_n, c) => {
    const o: SGDOptions = { ...SGD_DEFAULTS, ...c.options };
    validateSGD(o);
    const params = Float32Array.from(c.params0);
    const state: SGDState = { momentumBuffer: new Float32Array(params.length), hasMomentumBuffer: false };
    let maxDiff = 0;
    let excess = -Infinity;
    c.grads.forEach((g, t) => {
      sgdStep(params, Float32Array.from(g), state, o, o.lr);
      for (let i = 0; i < params.length; i++) {
        const w = c.trajectory[t][i];
        const d = Math.abs(params[i] - w);
        maxDiff = Math.max(maxDiff, d);
        excess = Math.max(excess, d - (SGD_ABS + SGD_REL * Math.abs(w)));
      }
    });
    expect(excess, `max |diff| ${maxDiff}`).toBeLessThanOrEqual(0);
  });
});
