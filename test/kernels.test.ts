// Checks the float32 kernels of src/shared/kernels.ts and losses.ts (their default options) and the shard's lossAndBackward: every backward
// against central finite differences of a float64 reference forward written here, each loss against
// values worked out by hand from PyTorch's documented formulas, and softmax/argmax semantics.

import { describe, it, expect } from 'vitest';
import { activationBackward, activationForward, linearBackward, linearForward, sigmoid } from '../src/shared/kernels.js';
import {
  bceWithLogitsBackward, bceWithLogitsForward, crossEntropyBackward, crossEntropyForward, softmaxForward,
} from '../src/shared/losses.js';
import { ACTIVATIONS, linearViews, paramLayout } from '../src/shared/model.js';
import type { Activation, ModelConfig } from '../src/shared/model.js';
import { Rng } from '../src/shared/rng.js';
import { createScratch, forward, lossAndBackward } from '../src/worker/shard.js';
import { argmaxRow } from '../src/shared/kernels.js';

// ---------------------------------------------------------------------------------------------------
// Helpers: float32 test data, comparison that reports the largest difference, central differences.

/** n float32 values uniform in [-bound, bound), seeded. */
function randomF32(rng: Rng, n: number, bound = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(bound);
  return a;
}

interface Diff {
  /** Largest |actual - expected|. */
  maxDiff: number;
  /** Largest |actual - expected| - (abs + rel * |expected|): <= 0 when every element is within tolerance. */
  excess: number;
  at: number;
}

function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, abs: number, rel: number): Diff {
  expect(actual.length).toBe(expected.length);
  let maxDiff = 0;
  let excess = -Infinity;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    const e = d - (abs + rel * Math.abs(expected[i]));
    if (!(d <= maxDiff)) maxDiff = d; // NaN sticks
    if (!(e <= excess)) { excess = e; at = i; }
  }
  return { maxDiff, excess, at };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, abs: number, rel: number, what: string): void {
  const { maxDiff, excess, at } = compare(actual, expected, abs, rel);
  expect(
    excess,
    `${what}: max |diff| ${maxDiff}; worst at [${at}]: ${actual[at]} vs ${expected[at]} (tol ${abs} + ${rel}*|ref|)`,
  ).toBeLessThanOrEqual(0);
}

/**
 * d f / d v[i] for every i, by central differences in float64: v is copied to float64, and f reads
 * the float64 copy, so the perturbation h is not rounded away.
 */
function centralDiff(f: (v: Float64Array) => number, v: ArrayLike<number>, h: number): Float64Array {
  const x = Float64Array.from(v);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i];
    x[i] = xi + h;
    const up = f(x);
    x[i] = xi - h;
    const down = f(x);
    x[i] = xi;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// Tolerances. The kernels round every stored value to float32 (eps 6e-8) and these sizes sum at most a
// dozen terms, so 1e-5 absolute / 1e-4 relative leaves two orders of margin; the float64 central
// differences with h = 1e-5 are good to ~1e-9.
const KERNEL_ABS = 1e-5;
const KERNEL_REL = 1e-4;
const H = 1e-5;

// ---------------------------------------------------------------------------------------------------
// Float64 reference forward, written from the textbook definitions, independent of kernels.ts.

function refLinear(inp: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, B: number, C: number, OC: number): Float64Array {
  const out = new Float64Array(B * OC);
  for (let r = 0; r < B; r++) {
    for (let o = 0; o < OC; o++) {
      let s = b[o];
      for (let c = 0; c < C; c++) s += inp[r * C + c] * w[o * C + c];
      out[r * OC + o] = s;
    }
  }
  return out;
}

function refAct(kind: Activation, x: number): number {
  switch (kind) {
    case 'relu': return Math.max(x, 0);
    case 'tanh': return Math.tanh(x);
    case 'sigmoid': return 1 / (1 + Math.exp(-x));
  }
}

/** -log(e^{x_t} / sum_k e^{x_k}), straight from nn.CrossEntropyLoss's documented formula. */
function refCrossEntropyRow(logits: ArrayLike<number>, r: number, K: number, t: number): number {
  let m = -Infinity;
  for (let k = 0; k < K; k++) m = Math.max(m, logits[r * K + k]);
  let s = 0;
  for (let k = 0; k < K; k++) s += Math.exp(logits[r * K + k] - m);
  return m + Math.log(s) - logits[r * K + t];
}

/** nn.BCEWithLogitsLoss's documented stable form: max(x, 0) - x y + log(1 + e^-|x|). */
function refBceStable(x: number, y: number): number {
  return Math.max(x, 0) - x * y + Math.log(1 + Math.exp(-Math.abs(x)));
}

/** The naive form -(y log σ(x) + (1 - y) log(1 - σ(x))), valid for moderate x. */
function refBceNaive(x: number, y: number): number {
  const p = 1 / (1 + Math.exp(-x));
  return -(y * Math.log(p) + (1 - y) * Math.log(1 - p));
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Loss sum of a whole MLP in float64, parameters in paramLayout order. */
function refNetworkLossSum(
  model: ModelConfig, flat: ArrayLike<number>, x: ArrayLike<number>, yIndex: ArrayLike<number>,
  yValue: ArrayLike<number>, B: number,
): number {
  const { entries } = paramLayout(model.layers);
  let h: ArrayLike<number> = x;
  const L = model.layers.length - 1;
  for (let l = 0; l < L; l++) {
    const w = entries[2 * l];
    const b = entries[2 * l + 1];
    const [OC, C] = w.shape;
    const slice = (off: number, n: number): number[] => Array.from({ length: n }, (_, i) => flat[off + i]);
    const z = refLinear(h, slice(w.offset, w.size), slice(b.offset, b.size), B, C, OC);
    if (l < L - 1) for (let i = 0; i < z.length; i++) z[i] = refAct(model.activation, z[i]);
    h = z;
  }
  const K = model.layers[L];
  let sum = 0;
  if (model.loss === 'cross-entropy') for (let r = 0; r < B; r++) sum += refCrossEntropyRow(h, r, K, yIndex[r]);
  else for (let i = 0; i < B * K; i++) sum += refBceStable(h[i], yValue[i]);
  return sum;
}

// ---------------------------------------------------------------------------------------------------

describe('linear kernels', () => {
  const B = 3, C = 5, OC = 6; // OC = 6 runs both the four-row block and the remainder of linearForward
  const rng = new Rng(11);
  const inp = randomF32(rng, B * C);
  const weight = randomF32(rng, OC * C);
  const bias = randomF32(rng, OC);
  const dout = randomF32(rng, B * OC);
  // L = sum(dout * linear(inp, weight, bias)): its gradient is what linearBackward computes.
  const L = (i: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>): number => dot(dout, refLinear(i, w, b, B, C, OC));

  it('linearForward matches a float64 matrix product', () => {
    const out = new Float32Array(B * OC);
    linearForward(out, inp, weight, bias, B, C, OC);
    expectClose(out, refLinear(inp, weight, bias, B, C, OC), 1e-6, 1e-6, 'out');
  });

  it('linearBackward gives dinp, dweight and dbias equal to finite differences', () => {
    const dinp = new Float32Array(B * C);
    const dweight = new Float32Array(OC * C);
    const dbias = new Float32Array(OC);
    linearBackward(dinp, dweight, dbias, dout, inp, weight, B, C, OC);
    expectClose(dinp, centralDiff((v) => L(v, weight, bias), inp, H), KERNEL_ABS, KERNEL_REL, 'dinp');
    expectClose(dweight, centralDiff((v) => L(inp, v, bias), weight, H), KERNEL_ABS, KERNEL_REL, 'dweight');
    expectClose(dbias, centralDiff((v) => L(inp, weight, v), bias, H), KERNEL_ABS, KERNEL_REL, 'dbias');
  });

  it('linearBackward with dinp null gives the same finite-difference dweight and dbias', () => {
    const dweight = new Float32Array(OC * C);
    const dbias = new Float32Array(OC);
    linearBackward(null, dweight, dbias, dout, inp, weight, B, C, OC);
    expectClose(dweight, centralDiff((v) => L(inp, v, bias), weight, H), KERNEL_ABS, KERNEL_REL, 'dweight');
    expectClose(dbias, centralDiff((v) => L(inp, weight, v), bias, H), KERNEL_ABS, KERNEL_REL, 'dbias');
  });
});

describe('activation kernels', () => {
  it.each(ACTIVATIONS)('%s forward matches the float64 definition', (kind) => {
    const rng = new Rng(21);
    const N = 24;
    const inp = randomF32(rng, N, 4);
    const out = new Float32Array(N);
    activationForward(kind, out, inp, N);
    expectClose(out, Array.from(inp, (x) => refAct(kind, x)), 1e-7, 1e-6, kind);
  });

  it.each(ACTIVATIONS)('%s backward equals finite differences', (kind) => {
    const rng = new Rng(22);
    const N = 24;
    const inp = randomF32(rng, N, 4);
    // ReLU has a kink at 0: keep every input well clear of it so h never straddles it.
    for (let i = 0; i < N; i++) if (Math.abs(inp[i]) < 0.05) inp[i] = 0.5;
    const dout = randomF32(rng, N);
    const out = new Float32Array(N);
    activationForward(kind, out, inp, N);
    const dinp = new Float32Array(N);
    activationBackward(kind, dinp, dout, out, N);
    const fd = centralDiff((v) => dot(dout, Array.from(v, (x) => refAct(kind, x))), inp, H);
    expectClose(dinp, fd, KERNEL_ABS, KERNEL_REL, `d${kind}`);
  });
});

describe('loss kernels', () => {
  it('crossEntropyBackward equals finite differences of the summed float64 cross-entropy', () => {
    const rng = new Rng(31);
    const B = 4, K = 5;
    const logits = randomF32(rng, B * K, 3);
    const targets = Int32Array.from([0, 4, 2, 2]);
    const losses = new Float32Array(B);
    const probs = new Float32Array(B * K);
    crossEntropyForward(losses, probs, logits, targets, B, K);
    const dlogits = new Float32Array(B * K);
    crossEntropyBackward(dlogits, probs, targets, B, K);
    const sumCE = (v: ArrayLike<number>): number => {
      let s = 0;
      for (let r = 0; r < B; r++) s += refCrossEntropyRow(v, r, K, targets[r]);
      return s;
    };
    expectClose(dlogits, centralDiff(sumCE, logits, H), KERNEL_ABS, KERNEL_REL, 'dlogits');
  });

  it('crossEntropyForward matches the float64 formula row by row', () => {
    const rng = new Rng(32);
    const B = 4, K = 5;
    const logits = randomF32(rng, B * K, 3);
    const targets = Int32Array.from([1, 0, 4, 3]);
    const losses = new Float32Array(B);
    crossEntropyForward(losses, new Float32Array(B * K), logits, targets, B, K);
    const ref = Array.from({ length: B }, (_, r) => refCrossEntropyRow(logits, r, K, targets[r]));
    expectClose(losses, ref, 1e-6, 1e-6, 'losses');
  });

  it('bceWithLogitsBackward equals finite differences of the summed float64 BCE', () => {
    const rng = new Rng(33);
    const N = 12;
    const logits = randomF32(rng, N, 4);
    const targets = Float32Array.from({ length: N }, () => rng.nextFloat());
    const dlogits = new Float32Array(N);
    bceWithLogitsBackward(dlogits, logits, targets, N);
    const sumBce = (v: ArrayLike<number>): number => {
      let s = 0;
      for (let i = 0; i < N; i++) s += refBceStable(v[i], targets[i]);
      return s;
    };
    expectClose(dlogits, centralDiff(sumBce, logits, H), KERNEL_ABS, KERNEL_REL, 'dlogits');
  });
});

describe('backward kernels accumulate', () => {
  // Each case runs a backward kernel into zeroed buffers and into buffers pre-filled with a pattern;
  // the second must be the pattern plus the first (+=), not the first alone (=).
  const rng = new Rng(41);
  const B = 2, C = 3, OC = 5, N = B * OC;
  const inp = randomF32(rng, B * C);
  const weight = randomF32(rng, OC * C);
  const dout = randomF32(rng, N);
  const logits = randomF32(rng, N, 2);
  const yValue = Float32Array.from({ length: N }, () => rng.nextFloat());
  const yIndex = Int32Array.from([3, 1]);
  const probs = new Float32Array(N);
  crossEntropyForward(new Float32Array(B), probs, logits, yIndex, B, OC);
  const out = new Float32Array(N);

  const cases: [string, number[], (bufs: Float32Array[]) => void][] = [
    ['linearBackward', [B * C, OC * C, OC], ([di, dw, db]) => linearBackward(di, dw, db, dout, inp, weight, B, C, OC)],
    ...ACTIVATIONS.map((kind): [string, number[], (bufs: Float32Array[]) => void] => [
      `activationBackward ${kind}`, [N], ([d]) => {
        activationForward(kind, out, logits, N);
        activationBackward(kind, d, dout, out, N);
      },
    ]),
    ['crossEntropyBackward', [N], ([d]) => crossEntropyBackward(d, probs, yIndex, B, OC)],
    ['bceWithLogitsBackward', [N], ([d]) => bceWithLogitsBackward(d, logits, yValue, N)],
  ];

  it.each(cases)('%s adds into pre-filled gradient buffers', (_name, sizes, run) => {
    const fresh = sizes.map((n) => new Float32Array(n));
    run(fresh);
    const prefill = sizes.map((n) => Float32Array.from({ length: n }, (_, i) => 10 + i));
    const acc = prefill.map((p) => p.slice());
    run(acc);
    for (let j = 0; j < sizes.length; j++) {
      const added = acc[j].map((v, i) => v - prefill[j][i]);
      // the prefill is ~10, so one float32 rounding of the sum costs up to ~1e-6
      expectClose(added, fresh[j], 2e-6, 0, `buffer ${j}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// The whole network through the shard code, against finite differences of the float64 loss sum.

/** A model with random float32 parameters and data, run through forward + lossAndBackward. */
function runShard(model: ModelConfig, B: number, seed: number) {
  const rng = new Rng(seed);
  const { total } = paramLayout(model.layers);
  const D = model.layers[0];
  const K = model.layers[model.layers.length - 1];
  const flat = randomF32(rng, total, 0.8);
  const gradFlat = new Float32Array(total);
  const s = createScratch(model, B);
  s.x.set(randomF32(rng, B * D, 1.5));
  for (let r = 0; r < B; r++) s.yIndex[r] = rng.nextInt(K);
  for (let i = 0; i < B * K; i++) s.yValue[i] = rng.nextFloat();
  const params = linearViews(flat, model.layers);
  const grads = linearViews(gradFlat, model.layers);
  forward(s, model, params, B);
  const sums = lossAndBackward(s, model, params, grads, B);
  return { flat, gradFlat, s, sums, params, grads };
}

// Float32 forward and backward through 2-3 layers: each gradient is a short chain of float32-rounded
// products, good to ~1e-6; 1e-4 absolute / 1e-3 relative is float32's tolerance for such a chain.
const NET_ABS = 1e-4;
const NET_REL = 1e-3;

describe('lossAndBackward over a whole network', () => {
  const nets: [string, ModelConfig, number][] = [
    ...ACTIVATIONS.map((activation): [string, ModelConfig, number] =>
      [`[5,4,3] ${activation} cross-entropy`, { layers: [5, 4, 3], activation, loss: 'cross-entropy' }, 6]),
    ...ACTIVATIONS.map((activation): [string, ModelConfig, number] =>
      [`[4,6,5,1] ${activation} bce-with-logits`, { layers: [4, 6, 5, 1], activation, loss: 'bce-with-logits' }, 5]),
  ];

  it.each(nets)('%s: parameter gradient equals finite differences of the float64 loss sum', (_n, model, B) => {
    const { flat, gradFlat, s } = runShard(model, B, 51);
    const fd = centralDiff((v) => refNetworkLossSum(model, v, s.x, s.yIndex, s.yValue, B), flat, H);
    expectClose(gradFlat, fd, NET_ABS, NET_REL, 'grad');
  });

  it.each(nets)('%s: loss sum and weight sum match the float64 reference', (_n, model, B) => {
    const { flat, s, sums } = runShard(model, B, 52);
    const ref = refNetworkLossSum(model, flat, s.x, s.yIndex, s.yValue, B);
    const K = model.layers[model.layers.length - 1];
    expectClose([sums.lossSum], [ref], 0, 1e-5, 'lossSum');
    expect(sums.weightSum).toBe(model.loss === 'cross-entropy' ? B : B * K);
  });

  it('adds the gradient into grads: two calls give twice one call', () => {
    const model: ModelConfig = { layers: [5, 4, 3], activation: 'tanh', loss: 'cross-entropy' };
    const B = 6;
    const { gradFlat, s, params, grads } = runShard(model, B, 53);
    const once = gradFlat.slice();
    lossAndBackward(s, model, params, grads, B);
    expectClose(gradFlat, once.map((g) => 2 * g), 1e-6, 1e-6, 'grad after two calls');
  });

  it('gradient sums of two shards add up to the gradient of the whole batch', () => {
    const model: ModelConfig = { layers: [4, 6, 5, 2], activation: 'sigmoid', loss: 'bce-with-logits' };
    const B = 7, split = 3, D = 4, K = 2;
    const whole = runShard(model, B, 54);
    const shardGrad = new Float32Array(whole.gradFlat.length);
    const gviews = linearViews(shardGrad, model.layers);
    let lossSum = 0;
    for (const [lo, hi] of [[0, split], [split, B]]) {
      const s = createScratch(model, hi - lo);
      s.x.set(whole.s.x.subarray(lo * D, hi * D));
      s.yValue.set(whole.s.yValue.subarray(lo * K, hi * K));
      forward(s, model, whole.params, hi - lo);
      lossSum += lossAndBackward(s, model, whole.params, gviews, hi - lo).lossSum;
    }
    expectClose(shardGrad, whole.gradFlat, 1e-6, 1e-6, 'grad');
    expectClose([lossSum], [whole.sums.lossSum], 0, 1e-6, 'lossSum');
  });
});

// ---------------------------------------------------------------------------------------------------
// Losses against values worked out by hand from PyTorch's documented formulas.

describe('loss values from the documented formulas', () => {
  it('cross-entropy of logits [1,2,3] with target 2 is -log(e^3 / (e + e^2 + e^3))', () => {
    const losses = new Float32Array(1);
    crossEntropyForward(losses, new Float32Array(3), Float32Array.from([1, 2, 3]), Int32Array.from([2]), 1, 3);
    const byHand = -Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
    expectClose(losses, [byHand], 0, 1e-6, 'loss'); // 0.40760596...
  });

  it('cross-entropy of logits [1,2,3] with target 0 is -log(e / (e + e^2 + e^3))', () => {
    const losses = new Float32Array(1);
    crossEntropyForward(losses, new Float32Array(3), Float32Array.from([1, 2, 3]), Int32Array.from([0]), 1, 3);
    const byHand = -Math.log(Math.exp(1) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
    expectClose(losses, [byHand], 0, 1e-6, 'loss'); // 2.40760596...
  });

  const x = [-2, 0, 3];
  const y = [0, 1, 0.25];

  it('BCE-with-logits of x=[-2,0,3], y=[0,1,0.25] equals max(x,0) - x y + log(1 + e^-|x|)', () => {
    const losses = new Float32Array(3);
    bceWithLogitsForward(losses, Float32Array.from(x), Float32Array.from(y), 3);
    expectClose(losses, x.map((xi, i) => refBceStable(xi, y[i])), 0, 1e-6, 'loss');
  });

  it('BCE-with-logits of x=[-2,0,3], y=[0,1,0.25] equals -(y log σ(x) + (1-y) log(1-σ(x)))', () => {
    const losses = new Float32Array(3);
    bceWithLogitsForward(losses, Float32Array.from(x), Float32Array.from(y), 3);
    expectClose(losses, x.map((xi, i) => refBceNaive(xi, y[i])), 0, 1e-6, 'loss');
  });

  it('cross-entropy of logits [1000, 0] is exactly 1000 for target 1 and 0 for target 0', () => {
    const losses = new Float32Array(3);
    const logits = Float32Array.from([1000, 0, 1000, 0, 1000, -1000]);
    crossEntropyForward(losses, new Float32Array(6), logits, Int32Array.from([1, 0, 1]), 3, 2);
    expect(Array.from(losses)).toEqual([1000, 0, 2000]);
  });

  it('BCE-with-logits stays finite at |x| = 1000 and equals the closed form', () => {
    const losses = new Float32Array(4);
    // x=-1000,y=1 → 1000; x=1000,y=0 → 1000; x=1000,y=1 → 0; x=-1000,y=0.5 → 500
    bceWithLogitsForward(losses, Float32Array.from([-1000, 1000, 1000, -1000]), Float32Array.from([1, 0, 1, 0.5]), 4);
    expect(Array.from(losses)).toEqual([1000, 1000, 0, 500]);
  });

  it('loss gradients stay finite at logits of ±1000', () => {
    const ce = new Float32Array(2);
    const probs = new Float32Array(2);
    crossEntropyForward(new Float32Array(1), probs, Float32Array.from([1000, 0]), Int32Array.from([1]), 1, 2);
    crossEntropyBackward(ce, probs, Int32Array.from([1]), 1, 2);
    expect(Array.from(ce)).toEqual([1, -1]);
    const bce = new Float32Array(2);
    bceWithLogitsBackward(bce, Float32Array.from([-1000, 1000]), Float32Array.from([1, 1]), 2);
    expect(Array.from(bce)).toEqual([-1, 0]);
  });

  it('sigmoid of ±1000 is 0 and 1 without overflow', () => {
    expect([sigmoid(-1000), sigmoid(1000), sigmoid(0)]).toEqual([0, 1, 0.5]);
  });
});

describe('softmax and argmax', () => {
  it('softmax rows sum to 1, extreme rows included', () => {
    const K = 4;
    const rows = [
      [1, 2, 3, 4], [0, 0, 0, 0], [1000, 1000, -1000, 0], [-1e4, -1e4 + 1, -1e4 - 1, -1e4], [88, -88, 50, 3],
    ];
    const logits = Float32Array.from(rows.flat());
    const probs = new Float32Array(logits.length);
    softmaxForward(probs, logits, rows.length, K);
    const sums = rows.map((_, r) => probs.subarray(r * K, r * K + K).reduce((a, b) => a + b, 0));
    expect(probs.every(Number.isFinite)).toBe(true);
    expectClose(sums, rows.map(() => 1), 1e-6, 0, 'row sums');
  });

  it('softmax of [1,2,3,4] equals e^x / sum e^x computed in float64', () => {
    const probs = new Float32Array(4);
    softmaxForward(probs, Float32Array.from([1, 2, 3, 4]), 1, 4);
    const z = [1, 2, 3, 4].reduce((a, v) => a + Math.exp(v), 0);
    expectClose(probs, [1, 2, 3, 4].map((v) => Math.exp(v) / z), 0, 1e-6, 'probs');
  });

  it('argmaxRow picks the first of tied maxima, as torch.argmax', () => {
    const m = Float32Array.from([1, 3, 3, 2, /* */ 5, 5, 5, 5, /* */ -1, -2, -1, -1]);
    expect([argmaxRow(m, 0, 4), argmaxRow(m, 1, 4), argmaxRow(m, 2, 4)]).toEqual([1, 0, 0]);
  });
});
