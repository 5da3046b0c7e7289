// One shard's computation, thread-agnostic: forward through the MLP, the loss, and (for training) the
// backward into a gradient slot. The worker calls it on rows it gathers from shared memory; tests call it
// directly to compare against finite differences and a one-shard run.

import type { ModelConfig } from '../shared/model.js';
import type { LinearViews } from '../shared/model.js';
import {
  activationBackward, activationForward, bceWithLogitsBackward, bceWithLogitsForward,
  crossEntropyBackward, crossEntropyForward, linearBackward, linearForward, softmaxForward,
} from '../shared/kernels.js';

/** Activations and their gradients for up to maxRows rows, allocated once per worker. */
export interface Scratch {
  maxRows: number;
  /** (B, D) the shard's inputs, gathered from the dataset in the epoch's order. */
  x: Float32Array;
  /** cross-entropy targets (B); bce targets (B, K). */
  yIndex: Int32Array;
  yValue: Float32Array;
  /** Per linear layer l: z[l] (B, OC_l) before the activation, a[l] (B, OC_l) after it. The last
   *  layer has no activation: a[L-1] is z[L-1], the logits. */
  z: Float32Array[];
  a: Float32Array[];
  dz: Float32Array[];
  da: Float32Array[];
  /** (B, K) softmax probabilities (cross-entropy) and per-element losses (B * K at most). */
  probs: Float32Array;
  losses: Float32Array;
}

export function createScratch(model: ModelConfig, maxRows: number): Scratch {
  const widths = model.layers.slice(1);
  const K = widths[widths.length - 1];
  const z = widths.map((w) => new Float32Array(maxRows * w));
  const dz = widths.map((w) => new Float32Array(maxRows * w));
  const a = z.map((zl, l) => (l === widths.length - 1 ? zl : new Float32Array(zl.length)));
  const da = dz.map((dzl, l) => (l === widths.length - 1 ? dzl : new Float32Array(dzl.length)));
  return {
    maxRows,
    x: new Float32Array(maxRows * model.layers[0]),
    yIndex: new Int32Array(maxRows),
    yValue: new Float32Array(maxRows * K),
    z, a, dz, da,
    probs: new Float32Array(maxRows * K),
    losses: new Float32Array(maxRows * K),
  };
}

/** What a shard adds to its stats slot: sums over its rows, never means. */
export interface ShardSums {
  lossSum: number;
  /** What the loss sum is a sum over: rows for cross-entropy, rows x outputs for BCE (PyTorch's mean
   *  of BCEWithLogitsLoss averages over every element). */
  weightSum: number;
  /** Rows classified right (cross-entropy), or elements thresholded right at logit 0 (BCE). */
  correct: number;
}

/** logits (B, K) of s.x (B, D): the forward pass, leaving every activation in scratch for backward. */
export function forward(s: Scratch, model: ModelConfig, params: LinearViews[], B: number): Float32Array {
  let inp = s.x;
  for (let l = 0; l < params.length; l++) {
    const { weight, bias, C, OC } = params[l];
    linearForward(s.z[l], inp, weight, bias, B, C, OC);
    if (l < params.length - 1) activationForward(model.activation, s.a[l], s.z[l], B * OC);
    inp = s.a[l];
  }
  return s.a[params.length - 1];
}

/**
 * Loss of the logits left by forward() against the targets in scratch; with grads, the gradient of the
 * loss *sum* is added into grads (which the caller has zeroed).
 */
export function lossAndBackward(
  s: Scratch, model: ModelConfig, params: LinearViews[], grads: LinearViews[] | null, B: number,
): ShardSums {
  const L = params.length;
  const K = params[L - 1].OC;
  const logits = s.a[L - 1];
  let lossSum = 0;
  let correct = 0;
  let weightSum: number;
  if (model.loss === 'cross-entropy') {
    crossEntropyForward(s.losses, s.probs, logits, s.yIndex, B, K);
    for (let b = 0; b < B; b++) {
      lossSum += s.losses[b];
      if (argmaxRow(logits, b, K) === s.yIndex[b]) correct++;
    }
    weightSum = B;
  } else {
    bceWithLogitsForward(s.losses, logits, s.yValue, B * K);
    for (let i = 0; i < B * K; i++) {
      lossSum += s.losses[i];
      if ((logits[i] > 0) === (s.yValue[i] >= 0.5)) correct++;
    }
    weightSum = B * K;
  }
  if (grads !== null) {
    for (let l = 0; l < L; l++) {
      s.dz[l].fill(0, 0, B * params[l].OC);
      s.da[l].fill(0, 0, B * params[l].OC);
    }
    if (model.loss === 'cross-entropy') crossEntropyBackward(s.dz[L - 1], s.probs, s.yIndex, B, K);
    else bceWithLogitsBackward(s.dz[L - 1], logits, s.yValue, B * K);
    for (let l = L - 1; l >= 0; l--) {
      const { weight, C, OC } = params[l];
      const inp = l === 0 ? s.x : s.a[l - 1];
      linearBackward(l === 0 ? null : s.da[l - 1], grads[l].weight, grads[l].bias, s.dz[l], inp, weight, B, C, OC);
      if (l > 0) activationBackward(model.activation, s.dz[l - 1], s.da[l - 1], s.a[l - 1], B * C);
    }
  }
  return { lossSum, weightSum, correct };
}

/** Probabilities (B, K) from the logits left by forward(): softmax rows, or elementwise sigmoid. */
export function probabilities(out: Float32Array, s: Scratch, model: ModelConfig, B: number, K: number): void {
  const logits = s.a[s.a.length - 1];
  if (model.loss === 'cross-entropy') softmaxForward(out, logits, B, K);
  else activationForward('sigmoid', out, logits, B * K);
}

/** Index of the largest value in row b of a (B, K) matrix; the first one on ties, as torch.argmax. */
export function argmaxRow(m: Float32Array, b: number, K: number): number {
  const r = b * K;
  let best = 0;
  for (let k = 1; k < K; k++) if (m[r + k] > m[r + best]) best = k;
  return best;
}
