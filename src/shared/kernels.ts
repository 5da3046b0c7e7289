// Forward/backward kernel pairs for the MLP's layers (the losses are in losses.ts): plain loops over typed arrays with explicit
// sizes, arguments ordered outputs, inputs, sizes (llm.c's convention, camelCased as TypeScript reads).
// Backward kernels accumulate (+=) into gradient buffers; the caller zeroes them once per shard.
// Shapes use the letters defined in model.ts: B rows, C inputs, OC outputs, K classes.

import type { Activation } from './model.js';

// ---------------------------------------------------------------------------------------------------
// Linear layer: out = inp @ weight^T + bias, weight in nn.Linear's (OC, C) layout.

/** out (B, OC) = inp (B, C) @ weight (OC, C)^T + bias (OC) */
export function linearForward(
  out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array,
  B: number, C: number, OC: number,
): void {
  for (let b = 0; b < B; b++) {
    const ib = b * C;
    const ob = b * OC;
    let o = 0;
    // Four output rows at a time share each input load; the accumulators are doubles, rounded once.
    for (; o + 4 <= OC; o += 4) {
      const w0 = o * C, w1 = w0 + C, w2 = w1 + C, w3 = w2 + C;
      let s0 = bias[o], s1 = bias[o + 1], s2 = bias[o + 2], s3 = bias[o + 3];
      for (let c = 0; c < C; c++) {
        const x = inp[ib + c];
        s0 += x * weight[w0 + c];
        s1 += x * weight[w1 + c];
        s2 += x * weight[w2 + c];
        s3 += x * weight[w3 + c];
      }
      out[ob + o] = s0; out[ob + o + 1] = s1; out[ob + o + 2] = s2; out[ob + o + 3] = s3;
    }
    for (; o < OC; o++) {
      const wo = o * C;
      let s = bias[o];
      for (let c = 0; c < C; c++) s += inp[ib + c] * weight[wo + c];
      out[ob + o] = s;
    }
  }
}

/**
 * dweight (OC, C) += dout^T @ inp, dbias (OC) += column sums of dout, and, unless dinp is null (the
 * first layer, whose input is data), dinp (B, C) += dout (B, OC) @ weight (OC, C).
 */
export function linearBackward(
  dinp: Float32Array | null, dweight: Float32Array, dbias: Float32Array,
  dout: Float32Array, inp: Float32Array, weight: Float32Array,
  B: number, C: number, OC: number,
): void {
  for (let b = 0; b < B; b++) {
    const ib = b * C;
    const ob = b * OC;
    for (let o = 0; o < OC; o++) {
      const g = dout[ob + o];
      if (g === 0) continue; // ReLU zeroes many rows; skipping them changes no bit of the sum
      dbias[o] += g;
      const wo = o * C;
      for (let c = 0; c < C; c++) dweight[wo + c] += g * inp[ib + c];
      if (dinp !== null) {
        for (let c = 0; c < C; c++) dinp[ib + c] += g * weight[wo + c];
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Activations, elementwise over N = B * OC values. The backward reads the forward's output, which is
// all that relu, tanh and sigmoid need.

/** out (N) = act(inp (N)) */
export function activationForward(kind: Activation, out: Float32Array, inp: Float32Array, N: number): void {
  switch (kind) {
    case 'relu':
      for (let i = 0; i < N; i++) out[i] = inp[i] > 0 ? inp[i] : 0;
      return;
    case 'tanh':
      for (let i = 0; i < N; i++) out[i] = Math.tanh(inp[i]);
      return;
    case 'sigmoid':
      for (let i = 0; i < N; i++) out[i] = sigmoid(inp[i]);
      return;
  }
}

/** dinp (N) += dout (N) * act'(inp), with act' written in terms of out (N) = act(inp) */
export function activationBackward(kind: Activation, dinp: Float32Array, dout: Float32Array, out: Float32Array, N: number): void {
  switch (kind) {
    case 'relu':
      for (let i = 0; i < N; i++) if (out[i] > 0) dinp[i] += dout[i];
      return;
    case 'tanh':
      for (let i = 0; i < N; i++) dinp[i] += dout[i] * (1 - out[i] * out[i]);
      return;
    case 'sigmoid':
      for (let i = 0; i < N; i++) dinp[i] += dout[i] * out[i] * (1 - out[i]);
      return;
  }
}

/** 1 / (1 + e^-x), written so that neither branch overflows. */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** Index of the largest value in row b of a (B, K) matrix; the first one on ties, as torch.argmax. */
export function argmaxRow(m: Float32Array, b: number, K: number): number {
  const r = b * K;
  let best = 0;
  for (let k = 1; k < K; k++) if (m[r + k] > m[r + best]) best = k;
  return best;
}
