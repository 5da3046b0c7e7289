// One shard's computation, thread-agnostic: forward through the MLP, the loss, and (for training) the
// backward into a gradient slot. The worker calls it on rows it gathers from shared memory; tests call it
// directly to compare against finite differences and a one-shard run.

import { heapArrays, isSoftmaxLoss, type LinearViews, type LossName, type ModelConfig } from '../shared/model.js';
import { activationBackward, activationForward, argmaxRow, linearBackward, linearForward } from '../shared/kernels.js';
import {
  bceBackward, bceForward, bceWithLogitsBackward, bceWithLogitsForward, crossEntropyBackward, crossEntropyForward,
  defaultLossSpec, sigmoidFocalBackward, sigmoidFocalForward, softCrossEntropyBackward, softCrossEntropyForward,
  softmaxFocalBackward, softmaxFocalForward, softmaxForward, type LossSpec,
} from '../shared/losses.js';

/**
 * The linear layer's products, from the TS kernels of kernels.ts or the WebAssembly SIMD ones (whose
 * arrays must then live in the module's memory). Same arguments as linearForward / linearBackward.
 */
export interface LinearKernels {
  forward(out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array, B: number, C: number, OC: number): void;
  backward(dinp: Float32Array | null, dweight: Float32Array, dbias: Float32Array, dout: Float32Array, inp: Float32Array,
    weight: Float32Array, B: number, C: number, OC: number): void;
}

/** The reference kernels: plain loops, the fallback where WebAssembly SIMD is missing. */
export const jsKernels: LinearKernels = { forward: linearForward, backward: linearBackward };

/** Activations and their gradients for up to maxRows rows, allocated once per worker. */
export interface Scratch {
  maxRows: number;
  /** (B, D) the shard's inputs, gathered from the dataset in the epoch's order. */
  x: Float32Array;
  /** Class-index targets (B), or value targets (B, K) in [0, 1]. */
  yIndex: Int32Array;
  yValue: Float32Array;
  /** Per linear layer l: z[l] (B, OC_l) before the activation, a[l] (B, OC_l) after it. The last
   *  layer has no activation: a[L-1] is z[L-1], the logits. */
  z: Float32Array[];
  a: Float32Array[];
  dz: Float32Array[];
  da: Float32Array[];
  /** (B, K) softmax probabilities (softmax losses), and per-row or per-element losses (B * K at most). */
  probs: Float32Array;
  losses: Float32Array;
}

/**
 * Scratch for maxRows rows. The arrays the linear kernels read and write (x, z, a, dz, da: model.ts
 * kernelArrays) come from `allocate`, which puts them in the WebAssembly kernels' memory when those are
 * used; the others (model.ts heapArrays) are in the worker's heap.
 */
export function createScratch(
  model: ModelConfig, maxRows: number, allocate: (floats: number) => Float32Array = (n) => new Float32Array(n),
): Scratch {
  const widths = model.layers.slice(1);
  const heap = heapArrays(model.layers, maxRows);
  const z = widths.map((w) => allocate(maxRows * w));
  const dz = widths.map((w) => allocate(maxRows * w));
  const a = z.map((zl, l) => (l === widths.length - 1 ? zl : allocate(zl.length)));
  const da = dz.map((dzl, l) => (l === widths.length - 1 ? dzl : allocate(dzl.length)));
  return {
    maxRows,
    x: allocate(maxRows * model.layers[0]),
    yIndex: new Int32Array(heap.yIndex),
    yValue: new Float32Array(heap.yValue),
    z, a, dz, da,
    probs: new Float32Array(heap.probs),
    losses: new Float32Array(heap.losses),
  };
}

/** What a shard adds to its stats slot: sums over its rows, never means. */
export interface ShardSums {
  lossSum: number;
  /** The loss's share of the 'mean' divisor: rows for plain cross-entropy, the sum of w[target] with
   *  class weights, scored rows with ignoreIndex, rows x outputs for the BCE losses (PyTorch's mean of
   *  an elementwise loss averages over every element). */
  weightSum: number;
  /** Predictions scored right: rows whose argmax is the target class (softmax losses), or outputs
   *  thresholded right at logit 0 against target >= 0.5 (sigmoid losses). */
  correct: number;
  /** Predictions scored: rows not ignored, or rows x outputs. */
  counted: number;
}

/** logits (B, K) of s.x (B, D): the forward pass, leaving every activation in scratch for backward. */
export function forward(s: Scratch, model: ModelConfig, params: LinearViews[], B: number, kernels = jsKernels): Float32Array {
  let inp = s.x;
  for (let l = 0; l < params.length; l++) {
    const { weight, bias, C, OC } = params[l];
    kernels.forward(s.z[l], inp, weight, bias, B, C, OC);
    if (l < params.length - 1) activationForward(model.activation, s.a[l], s.z[l], B * OC);
    inp = s.a[l];
  }
  return s.a[params.length - 1];
}

/** The arrays and sizes a loss kernel pair reads and writes: the logits (B, K), the targets in scratch,
 *  per-row or per-element losses, softmax probabilities (softmax losses), the logits' gradient. */
interface LossArgs {
  logits: Float32Array;
  s: Scratch;
  B: number;
  K: number;
  loss: LossSpec;
  /** Class-index targets (s.yIndex) rather than values (s.yValue). */
  indexTargets: boolean;
}

/** Each loss as its forward (losses into s.losses, returning its share of the 'mean' divisor) and its
 *  backward (the gradient of the loss *sum* into dlogits), side by side: the kernels of losses.ts. */
const LOSS_KERNELS: Record<LossName, { forward(a: LossArgs): number; backward(dlogits: Float32Array, a: LossArgs): void }> = {
  'cross-entropy': {
    forward: ({ logits, s, B, K, loss: l, indexTargets }) => indexTargets
      ? crossEntropyForward(s.losses, s.probs, logits, s.yIndex, B, K, l.weight, l.ignoreIndex, l.labelSmoothing)
      : softCrossEntropyForward(s.losses, s.probs, logits, s.yValue, B, K, l.weight, l.labelSmoothing),
    backward: (dlogits, { s, B, K, loss: l, indexTargets }) => indexTargets
      ? crossEntropyBackward(dlogits, s.probs, s.yIndex, B, K, l.weight, l.ignoreIndex, l.labelSmoothing)
      : softCrossEntropyBackward(dlogits, s.probs, s.yValue, B, K, l.weight, l.labelSmoothing),
  },
  'softmax-focal': {
    forward: ({ logits, s, B, K, loss: l }) => softmaxFocalForward(s.losses, s.probs, logits, s.yIndex, B, K, l.focalGamma, alphaPerClass(l), l.ignoreIndex),
    backward: (dlogits, { logits, s, B, K, loss: l }) => softmaxFocalBackward(dlogits, s.probs, logits, s.yIndex, B, K, l.focalGamma, alphaPerClass(l), l.ignoreIndex),
  },
  'bce-with-logits': {
    forward: ({ logits, s, B, K, loss: l }) => bceWithLogitsForward(s.losses, logits, s.yValue, B * K, K, l.weight, l.posWeight),
    backward: (dlogits, { logits, s, B, K, loss: l }) => bceWithLogitsBackward(dlogits, logits, s.yValue, B * K, K, l.weight, l.posWeight),
  },
  bce: {
    forward: ({ logits, s, B, K, loss: l }) => bceForward(s.losses, logits, s.yValue, B * K, K, l.weight),
    backward: (dlogits, { logits, s, B, K, loss: l }) => bceBackward(dlogits, logits, s.yValue, B * K, K, l.weight),
  },
  'sigmoid-focal': {
    forward: ({ logits, s, B, K, loss: l }) => sigmoidFocalForward(s.losses, logits, s.yValue, B * K, l.focalGamma, alphaScalar(l)),
    backward: (dlogits, { logits, s, B, K, loss: l }) => sigmoidFocalBackward(dlogits, logits, s.yValue, B * K, l.focalGamma, alphaScalar(l)),
  },
};

/** softmax-focal's alpha per class (K), or null for none. */
function alphaPerClass(l: LossSpec): Float32Array | null {
  return l.focalAlpha instanceof Float32Array ? l.focalAlpha : null;
}

/** sigmoid-focal's alpha, negative for none. */
function alphaScalar(l: LossSpec): number {
  return typeof l.focalAlpha === 'number' ? l.focalAlpha : -1;
}

/**
 * Loss of the logits left by forward() against the targets in scratch (s.yIndex when `indexTargets`,
 * else s.yValue); per-row or per-element losses stay in s.losses. With grads, the gradient of the loss
 * *sum* is added into grads (which the caller has zeroed).
 */
export function lossAndBackward(
  s: Scratch, model: ModelConfig, params: LinearViews[], grads: LinearViews[] | null, B: number,
  loss: LossSpec = defaultLossSpec(model.loss), indexTargets = isSoftmaxLoss(model.loss), kernels = jsKernels,
): ShardSums {
  const L = params.length;
  const K = params[L - 1].OC;
  const logits = s.a[L - 1];
  const perRow = isSoftmaxLoss(loss.name);
  const args: LossArgs = { logits, s, B, K, loss, indexTargets };
  const pair = LOSS_KERNELS[loss.name];
  const weightSum = pair.forward(args);
  let lossSum = 0;
  for (let i = 0, n = perRow ? B : B * K; i < n; i++) lossSum += s.losses[i];
  const { correct, counted } = score(s, logits, B, K, perRow, indexTargets, loss.ignoreIndex);

  if (grads !== null) {
    for (let l = 0; l < L; l++) {
      s.dz[l].fill(0, 0, B * params[l].OC);
      s.da[l].fill(0, 0, B * params[l].OC);
    }
    pair.backward(s.dz[L - 1], args);
    for (let l = L - 1; l >= 0; l--) {
      const { weight: w, C, OC } = params[l];
      const inp = l === 0 ? s.x : s.a[l - 1];
      kernels.backward(l === 0 ? null : s.da[l - 1], grads[l].weight, grads[l].bias, s.dz[l], inp, w, B, C, OC);
      if (l > 0) activationBackward(model.activation, s.dz[l - 1], s.da[l - 1], s.a[l - 1], B * C);
    }
  }
  return { lossSum, weightSum, correct, counted };
}

/** Accuracy counts of the logits (B, K) against the targets in scratch. */
function score(
  s: Scratch, logits: Float32Array, B: number, K: number, perRow: boolean, indexTargets: boolean, ignoreIndex: number,
): { correct: number; counted: number } {
  let correct = 0;
  let counted = 0;
  if (!perRow) {
    for (let i = 0; i < B * K; i++) if ((logits[i] > 0) === (s.yValue[i] >= 0.5)) correct++;
    return { correct, counted: B * K };
  }
  for (let b = 0; b < B; b++) {
    const t = indexTargets ? s.yIndex[b] : argmaxRow(s.yValue, b, K);
    if (indexTargets && t === ignoreIndex) continue;
    counted++;
    if (argmaxRow(logits, b, K) === t) correct++;
  }
  return { correct, counted };
}

/** Probabilities (B, K) from the logits left by forward(): softmax rows, or elementwise sigmoid. */
export function probabilities(out: Float32Array, s: Scratch, model: ModelConfig, B: number, K: number): void {
  const logits = s.a[s.a.length - 1];
  if (isSoftmaxLoss(model.loss)) softmaxForward(out, logits, B, K);
  else activationForward('sigmoid', out, logits, B * K);
}
