// The cross-entropy family as forward/backward kernel pairs on logits, each matching a PyTorch loss
// with reduction='none' (the forward writes one loss per row or element; the caller sums) and adding
// the gradient of the loss *sum* into dlogits. Each forward returns its share of the 'mean' divisor.
// Shapes: logits and probs (B, K); index targets (B); value targets (B, K); weight, posWeight (K).

import { sigmoid } from './kernels.js';
import type { LossName } from './model.js';

/** A loss with its options resolved, as the workers receive it. Defaults are PyTorch's. */
export interface LossSpec {
  name: LossName;
  /** Rescaling weight per class (cross-entropy) or per output (BCE losses), (K); null for none. */
  weight: Float32Array | null;
  /** Class-index target that is skipped (cross-entropy, softmax-focal). Default -100. */
  ignoreIndex: number;
  /** Cross-entropy's label smoothing in [0, 1]. Default 0. */
  labelSmoothing: number;
  /** bce-with-logits: weight of positive examples per output, (K); null for none. */
  posWeight: Float32Array | null;
  /** Focal losses' focusing parameter gamma >= 0. Default 2. */
  focalGamma: number;
  /** sigmoid-focal: alpha (negative turns it off; default 0.25 as torchvision). softmax-focal: per
   *  class (K), or null for none. */
  focalAlpha: number | Float32Array | null;
}

export function defaultLossSpec(name: LossName): LossSpec {
  return {
    name, weight: null, ignoreIndex: -100, labelSmoothing: 0, posWeight: null, focalGamma: 2,
    focalAlpha: name === 'sigmoid-focal' ? 0.25 : null,
  };
}

// ---------------------------------------------------------------------------------------------------
// Softmax cross-entropy with class-index targets: nn.CrossEntropyLoss(weight, ignore_index,
// label_smoothing). With smoothing e the target distribution is (1 - e) onehot + e / K, so per row
//   loss = (1 - e) w[t] (-log p_t) + (e / K) sum_c w[c] (-log p_c)
// and 'mean' divides the sum by sum over scored rows of w[t] (PyTorch's rule, smoothing term included).
// Rows whose target is ignoreIndex have loss 0, no gradient and no weight.

/** losses (B), probs (B, K) from logits (B, K) and targets (B); returns sum of w[t] over scored rows. */
export function crossEntropyForward(
  losses: Float32Array, probs: Float32Array, logits: Float32Array, targets: Int32Array | Uint8Array,
  B: number, K: number, weight: Float32Array | null = null, ignoreIndex = -100, smoothing = 0,
): number {
  let weightSum = 0;
  for (let b = 0; b < B; b++) {
    const r = b * K;
    const t = targets[b];
    if (t === ignoreIndex) {
      losses[b] = 0;
      continue;
    }
    // -log p_c = logsumexp(x) - x_c: exact in the tail where p_c itself underflows to 0.
    const lse = softmaxRow(probs, logits, r, K);
    const wt = weight === null ? 1 : weight[t];
    let loss = (1 - smoothing) * wt * (lse - logits[r + t]);
    if (smoothing > 0) {
      let smooth = 0;
      for (let c = 0; c < K; c++) smooth += (weight === null ? 1 : weight[c]) * (lse - logits[r + c]);
      loss += (smoothing / K) * smooth;
    }
    losses[b] = loss;
    weightSum += wt;
  }
  return weightSum;
}

/** dlogits (B, K) += (1 - e) w[t] (p - onehot(t)) + (e / K) (W p - w), W = sum of w: the fused backward. */
export function crossEntropyBackward(
  dlogits: Float32Array, probs: Float32Array, targets: Int32Array | Uint8Array, B: number, K: number,
  weight: Float32Array | null = null, ignoreIndex = -100, smoothing = 0,
): void {
  let W = K;
  if (weight !== null) {
    W = 0;
    for (let c = 0; c < K; c++) W += weight[c];
  }
  const e = smoothing / K;
  for (let b = 0; b < B; b++) {
    const t = targets[b];
    if (t === ignoreIndex) continue;
    const r = b * K;
    const a = (1 - smoothing) * (weight === null ? 1 : weight[t]);
    for (let k = 0; k < K; k++) {
      dlogits[r + k] += a * probs[r + k] + (e === 0 ? 0 : e * (W * probs[r + k] - (weight === null ? 1 : weight[k])));
    }
    dlogits[r + t] -= a;
  }
}

// Softmax cross-entropy with probability targets q (B, K) (soft labels): nn.CrossEntropyLoss given
// class probabilities. q' = (1 - e) q + e / K; loss = sum_c w[c] q'_c (-log p_c); 'mean' divides by
// the row count (PyTorch does not divide by the weights for probability targets).

/** losses (B), probs (B, K) from logits (B, K) and targets (B, K); returns B. */
export function softCrossEntropyForward(
  losses: Float32Array, probs: Float32Array, logits: Float32Array, targets: Float32Array,
  B: number, K: number, weight: Float32Array | null = null, smoothing = 0,
): number {
  for (let b = 0; b < B; b++) {
    const r = b * K;
    const lse = softmaxRow(probs, logits, r, K);
    let loss = 0;
    for (let c = 0; c < K; c++) {
      const q = (1 - smoothing) * targets[r + c] + smoothing / K;
      loss += (weight === null ? 1 : weight[c]) * q * (lse - logits[r + c]);
    }
    losses[b] = loss;
  }
  return B;
}

/** dlogits (B, K) += p_j S - w_j q'_j, S = sum_c w_c q'_c. */
export function softCrossEntropyBackward(
  dlogits: Float32Array, probs: Float32Array, targets: Float32Array, B: number, K: number,
  weight: Float32Array | null = null, smoothing = 0,
): void {
  for (let b = 0; b < B; b++) {
    const r = b * K;
    let S = 0;
    for (let c = 0; c < K; c++) S += (weight === null ? 1 : weight[c]) * ((1 - smoothing) * targets[r + c] + smoothing / K);
    for (let j = 0; j < K; j++) {
      const q = (1 - smoothing) * targets[r + j] + smoothing / K;
      dlogits[r + j] += probs[r + j] * S - (weight === null ? 1 : weight[j]) * q;
    }
  }
}

/** probs (B, K) = softmax(logits (B, K)), row by row. */
export function softmaxForward(probs: Float32Array, logits: Float32Array, B: number, K: number): void {
  for (let b = 0; b < B; b++) softmaxRow(probs, logits, b * K, K);
}

/** Softmax of the K values at offset r into probs; returns their log-sum-exp (max subtracted first). */
function softmaxRow(probs: Float32Array, logits: Float32Array, r: number, K: number): number {
  let max = -Infinity;
  for (let k = 0; k < K; k++) if (logits[r + k] > max) max = logits[r + k];
  let sum = 0;
  for (let k = 0; k < K; k++) {
    const e = Math.exp(logits[r + k] - max);
    probs[r + k] = e;
    sum += e;
  }
  for (let k = 0; k < K; k++) probs[r + k] /= sum;
  return max + Math.log(sum);
}

/** log sum_k e^(x_k) of the K logits at offset r, the maximum subtracted first. */
function logSumExpRow(logits: Float32Array, r: number, K: number): number {
  let max = -Infinity;
  for (let k = 0; k < K; k++) if (logits[r + k] > max) max = logits[r + k];
  let sum = 0;
  for (let k = 0; k < K; k++) sum += Math.exp(logits[r + k] - max);
  return max + Math.log(sum);
}

// ---------------------------------------------------------------------------------------------------
// Binary cross-entropy on logits, elementwise over N = B * K values with targets y in [0, 1]:
// nn.BCEWithLogitsLoss(weight, pos_weight), weight and posWeight per output k = i % K. Softplus form,
// finite for every finite x: with l = 1 + (pw - 1) y,
//   loss = w ((1 - y) x + l (log(1 + e^-|x|) + max(-x, 0)))
// 'mean' divides by N whatever the weights, as PyTorch does.

/** losses (N) from logits (N) and targets (N); returns N. */
export function bceWithLogitsForward(
  losses: Float32Array, logits: Float32Array, targets: Float32Array, N: number,
  K = 1, weight: Float32Array | null = null, posWeight: Float32Array | null = null,
): number {
  for (let i = 0; i < N; i++) {
    const x = logits[i];
    const y = targets[i];
    const k = i % K;
    const l = posWeight === null ? 1 : 1 + (posWeight[k] - 1) * y;
    const loss = (1 - y) * x + l * (Math.log1p(Math.exp(-Math.abs(x))) + Math.max(-x, 0));
    losses[i] = weight === null ? loss : weight[k] * loss;
  }
  return N;
}

/** dlogits (N) += w (l sigmoid(x) - l + 1 - y); with no posWeight, w (sigmoid(x) - y). */
export function bceWithLogitsBackward(
  dlogits: Float32Array, logits: Float32Array, targets: Float32Array, N: number,
  K = 1, weight: Float32Array | null = null, posWeight: Float32Array | null = null,
): void {
  for (let i = 0; i < N; i++) {
    const y = targets[i];
    const k = i % K;
    const l = posWeight === null ? 1 : 1 + (posWeight[k] - 1) * y;
    const g = l * (sigmoid(logits[i]) - 1) + 1 - y;
    dlogits[i] += weight === null ? g : weight[k] * g;
  }
}

// Binary cross-entropy on probabilities, nn.Sigmoid then nn.BCELoss(weight), for users who bring a
// network ending in a sigmoid. p is rounded to float32 as torch holds it, so p can be exactly 0 or 1;
// each log is clamped at -100 as PyTorch does, and the gradient's denominator at 1e-12:
//   loss = -w (y max(log p, -100) + (1 - y) max(log(1 - p), -100))
//   dloss/dp = w (p - y) / max(p (1 - p), 1e-12), then times p (1 - p) through the sigmoid.

/** losses (N) from logits (N) and targets (N); returns N. */
export function bceForward(
  losses: Float32Array, logits: Float32Array, targets: Float32Array, N: number,
  K = 1, weight: Float32Array | null = null,
): number {
  for (let i = 0; i < N; i++) {
    const p = Math.fround(sigmoid(logits[i]));
    const y = targets[i];
    const loss = -(y * Math.max(Math.log(p), -100) + (1 - y) * Math.max(Math.log(1 - p), -100));
    losses[i] = weight === null ? loss : weight[i % K] * loss;
  }
  return N;
}

export function bceBackward(
  dlogits: Float32Array, logits: Float32Array, targets: Float32Array, N: number,
  K = 1, weight: Float32Array | null = null,
): void {
  for (let i = 0; i < N; i++) {
    const p = Math.fround(sigmoid(logits[i]));
    const s = p * (1 - p);
    const g = ((p - targets[i]) / Math.max(s, 1e-12)) * s;
    dlogits[i] += weight === null ? g : weight[i % K] * g;
  }
}

// ---------------------------------------------------------------------------------------------------
// Focal losses (Lin et al. 2017) for class imbalance: the cross-entropy of each row or element scaled
// by (1 - p_t)^gamma, which shrinks the loss of examples the model already gets right.

// Sigmoid form, as torchvision.ops.sigmoid_focal_loss, elementwise over N = B * K:
//   ce = BCE-with-logits(x, y), p_t = p y + (1 - p)(1 - y), loss = a_t ce (1 - p_t)^gamma,
//   a_t = alpha y + (1 - alpha)(1 - y) when alpha >= 0 (alpha < 0: a_t = 1). 'mean' divides by N.
// dloss/dx = a_t ((p - y) m - gamma ce (1 - p_t)^(gamma - 1) (2y - 1) p (1 - p)), m = (1 - p_t)^gamma.

/** losses (N) from logits (N) and targets (N); returns N. */
export function sigmoidFocalForward(
  losses: Float32Array, logits: Float32Array, targets: Float32Array, N: number, gamma: number, alpha: number,
): number {
  for (let i = 0; i < N; i++) {
    const x = logits[i];
    const y = targets[i];
    const p = sigmoid(x);
    const ce = (1 - y) * x + Math.log1p(Math.exp(-Math.abs(x))) + Math.max(-x, 0);
    const pt = p * y + (1 - p) * (1 - y);
    const at = alpha >= 0 ? alpha * y + (1 - alpha) * (1 - y) : 1;
    losses[i] = at * ce * Math.pow(1 - pt, gamma);
  }
  return N;
}

export function sigmoidFocalBackward(
  dlogits: Float32Array, logits: Float32Array, targets: Float32Array, N: number, gamma: number, alpha: number,
): void {
  for (let i = 0; i < N; i++) {
    const x = logits[i];
    const y = targets[i];
    const p = sigmoid(x);
    const ce = (1 - y) * x + Math.log1p(Math.exp(-Math.abs(x))) + Math.max(-x, 0);
    const u = 1 - (p * y + (1 - p) * (1 - y)); // 1 - p_t
    const at = alpha >= 0 ? alpha * y + (1 - alpha) * (1 - y) : 1;
    // At u = 0 the second term's limit is 0 (ce -> 0 as fast as u), though u^(gamma-1) may blow up.
    const second = gamma === 0 || u === 0 ? 0 : gamma * ce * Math.pow(u, gamma - 1) * (2 * y - 1) * p * (1 - p);
    dlogits[i] += at * ((p - y) * Math.pow(u, gamma) - second);
  }
}

// Softmax form with per-class alpha, over class-index targets (B):
//   loss = -alpha[t] (1 - p_t)^gamma log p_t; 'mean' divides by the scored rows; ignoreIndex as above.
// dloss/dx_j = alpha[t] (onehot_j - p_j) (gamma (1 - p_t)^(gamma - 1) p_t log p_t - (1 - p_t)^gamma).
// gamma = 0 and no alpha is exactly cross-entropy.

/** losses (B), probs (B, K) from logits (B, K) and targets (B); returns the scored row count. */
export function softmaxFocalForward(
  losses: Float32Array, probs: Float32Array, logits: Float32Array, targets: Int32Array | Uint8Array,
  B: number, K: number, gamma: number, alpha: Float32Array | null, ignoreIndex = -100,
): number {
  let rows = 0;
  for (let b = 0; b < B; b++) {
    const t = targets[b];
    if (t === ignoreIndex) {
      losses[b] = 0;
      continue;
    }
    const r = b * K;
    const logp = logits[r + t] - softmaxRow(probs, logits, r, K);
    losses[b] = -(alpha === null ? 1 : alpha[t]) * Math.pow(1 - probs[r + t], gamma) * logp;
    rows++;
  }
  return rows;
}

export function softmaxFocalBackward(
  dlogits: Float32Array, probs: Float32Array, logits: Float32Array, targets: Int32Array | Uint8Array,
  B: number, K: number, gamma: number, alpha: Float32Array | null, ignoreIndex = -100,
): void {
  for (let b = 0; b < B; b++) {
    const t = targets[b];
    if (t === ignoreIndex) continue;
    const r = b * K;
    const q = probs[r + t];
    const u = 1 - q;
    const logq = logits[r + t] - logSumExpRow(logits, r, K);
    // c multiplies (onehot - p); at p_t = 1 with gamma > 0 both of its terms vanish.
    const c = gamma === 0 ? -1 : u === 0 ? 0 : gamma * Math.pow(u, gamma - 1) * q * logq - Math.pow(u, gamma);
    const a = (alpha === null ? 1 : alpha[t]) * c;
    for (let j = 0; j < K; j++) dlogits[r + j] += a * ((j === t ? 1 : 0) - probs[r + j]);
  }
}
