// The optimizer step that follows a batch's gradient, done by the workers themselves, split by parameter
// range: once every shard's gradient is in its slot, each worker sums the slots over its chunks of the
// flat buffer and writes the chunks' norm partials; after a second barrier every worker makes the same
// decision from the shards' stats and all the partials (update, clip by how much, or no update) and
// applies SGD to its chunks. Chunks are fixed (NORM_CHUNK floats), not per worker, and the slots are
// always added in slot order, so the gradient, its norm and the update are the same bits for any
// worker count. The coordinator reads the same decision back with decideStep().

import { clipCoefficient, combineNorm, kNormPowerSum, NORM_CHUNK, NORM_FIELDS, normPartials, scaleRange } from './clip.js';
import { kStatCorrect, kStatCounted, kStatLossSum, kStatRows, kStatWeightSum, STAT_FIELDS } from './contract.js';
import { adamStep, type AdamBuffers, type AdamScalars } from './adam.js';
import { sgdStep, usesMomentum, type SGDOptions, type SGDSource, type SGDState } from './sgd.js';
import type { WasmStepExports } from './wasm.js';

/** A batch's totals, summed over its shards in slot order. */
export interface BatchSums {
  lossSum: number;
  /** The 'mean' divisor: the total weight of the targets counted (rows, class weights, ...). */
  weightSum: number;
  correct: number;
  counted: number;
  rows: number;
}

export function emptySums(): BatchSums {
  return { lossSum: 0, weightSum: 0, correct: 0, counted: 0, rows: 0 };
}

export function addSums(total: BatchSums, s: BatchSums): void {
  total.lossSum += s.lossSum;
  total.weightSum += s.weightSum;
  total.correct += s.correct;
  total.counted += s.counted;
  total.rows += s.rows;
}

/** The sums of the first `shards` rows of the stats buffer (S, STAT_FIELDS), in slot order. */
export function readBatchSums(stats: Float64Array, shards: number): BatchSums {
  const sums = emptySums();
  for (let s = 0; s < shards; s++) {
    const r = s * STAT_FIELDS;
    sums.lossSum += stats[r + kStatLossSum];
    sums.weightSum += stats[r + kStatWeightSum];
    sums.correct += stats[r + kStatCorrect];
    sums.counted += stats[r + kStatCounted];
    sums.rows += stats[r + kStatRows];
  }
  return sums;
}

/**
 * out[i] = (((g0[i] + g1[i]) + g2[i]) + ...) / divisor for i in [from, to), the sum in double precision
 * in slot order. One fused pass for up to four slots (the usual case) instead of a pass per slot: the
 * same additions in the same order, so the same bits. More slots go through `acc` (a scratch of at least
 * to - from doubles), still in order.
 */
export function sumSlots(
  out: Float32Array, g: Float32Array[], n: number, divisor: number, acc: Float64Array, from = 0, to = out.length,
): void {
  if (n === 1) {
    const a = g[0];
    for (let i = from; i < to; i++) out[i] = a[i] / divisor;
  } else if (n === 2) {
    const [a, b] = g;
    for (let i = from; i < to; i++) out[i] = (a[i] + b[i]) / divisor;
  } else if (n === 3) {
    const [a, b, c] = g;
    for (let i = from; i < to; i++) out[i] = (a[i] + b[i] + c[i]) / divisor;
  } else {
    const [a, b, c, d] = g;
    for (let i = from; i < to; i++) acc[i - from] = a[i] + b[i] + c[i] + d[i];
    for (let k = 4; k < n; k++) {
      const e = g[k];
      for (let i = from; i < to; i++) acc[i - from] += e[i];
    }
    for (let i = from; i < to; i++) out[i] = acc[i - from] / divisor;
  }
}

/** The floats [from, to) of chunks [c0, c1) of a P-float buffer. */
export function chunkFloats(c0: number, c1: number, P: number): [number, number] {
  return [Math.min(c0 * NORM_CHUNK, P), Math.min(c1 * NORM_CHUNK, P)];
}

/** What the step does with the batch's gradient, as every worker and the coordinator work it out. */
export interface StepDecision {
  /** 'update': SGD applied; 'no-targets': every target ignored (torch's mean would be 0/0), no update;
   *  'nonfinite': the loss or a gradient is NaN or infinite, no update. */
  outcome: 'update' | 'no-targets' | 'nonfinite';
  /** The gradient's total norm of order normType (clipping on), else its 2-norm; NaN when not reduced. */
  gradNorm: number;
  /** The factor the gradient is scaled by before the update (1: not clipped). */
  coef: number;
}

/** One step's hyperparameters, as the workers read them from the run's hyper table (contract.ts). */
export interface StepHyper {
  lr: number;
  momentum: number;
  /** clip_grad_norm_'s max_norm; 0: no clipping. */
  maxNorm: number;
  normType: number;
  /** True while SGD's momentum buffer has not started (torch's first step with momentum). */
  first: boolean;
  /** Adam's (AdamW's) scalars for this step; null: the optimizer is SGD. */
  adam: AdamScalars | null;
}

/** The decision every worker (and the coordinator) takes from a batch's sums and norm partials. */
export function decideStep(sums: BatchSums, partials: Float64Array, chunks: number, hyper: StepHyper): StepDecision {
  if (!(sums.weightSum > 0)) return { outcome: 'no-targets', gradNorm: NaN, coef: 1 };
  const maxNorm = hyper.maxNorm;
  const gradNorm = combineNorm(partials, chunks, maxNorm > 0 ? hyper.normType : 2);
  // The sum of squares is finite exactly when every gradient entry is, whatever the norm's order.
  const squares = maxNorm > 0 ? combineNorm(partials, chunks, 2) : gradNorm;
  if (!Number.isFinite(sums.lossSum) || !Number.isFinite(squares) || !Number.isFinite(gradNorm)) {
    return { outcome: 'nonfinite', gradNorm, coef: 1 };
  }
  return { outcome: 'update', gradNorm, coef: maxNorm > 0 ? clipCoefficient(gradNorm, maxNorm) : 1 };
}

/**
 * When a non-finite step ends fit() instead of being skipped, as the code the control block carries
 * (kCtlNonfiniteRule): never (onNonfinite 'skip'), always (onNonfinite 'stop'), or when the gradient norm
 * itself is non-finite (errorIfNonfinite under clipping: torch's clip_grad_norm_ raises only then, so a
 * step non-finite by its loss alone is skipped). The workers end a run by it, the coordinator turns the
 * same steps into fit()'s error.
 */
export const NONFINITE_SKIPS = 0;
export const NONFINITE_ENDS = 1;
export const NONFINITE_NORM_ENDS = 2;
export type NonfiniteRule = typeof NONFINITE_SKIPS | typeof NONFINITE_ENDS | typeof NONFINITE_NORM_ENDS;

export function nonfiniteRule(o: { onNonfinite: 'stop' | 'skip'; clipGradNorm: number | null; errorIfNonfinite: boolean }): NonfiniteRule {
  if (o.onNonfinite === 'stop') return NONFINITE_ENDS;
  return o.clipGradNorm !== null && o.errorIfNonfinite ? NONFINITE_NORM_ENDS : NONFINITE_SKIPS;
}

/** Whether a non-finite step with this gradient norm ends the run and fit(), by the rule. */
export function nonfiniteEnds(rule: NonfiniteRule, gradNorm: number): boolean {
  return rule === NONFINITE_ENDS || (rule === NONFINITE_NORM_ENDS && !Number.isFinite(gradNorm));
}

/** The loops of a share of the step: the TypeScript references, or wasm/step.ts's SIMD versions. */
export interface StepKernels {
  sumSlots(out: Float32Array, g: Float32Array[], n: number, divisor: number, acc: Float64Array, from: number, to: number): void;
  normPartials(grad: Float32Array, p: number, c0: number, c1: number, partials: Float64Array): void;
  scale(grad: Float32Array, coef: number, from: number, to: number): void;
  sgd(params: Float32Array, grads: Float32Array, state: SGDState, o: SGDOptions, lr: number, momentum: number, source: SGDSource): void;
  adam(params: Float32Array, grads: Float32Array, state: AdamBuffers, s: AdamScalars, source: { params: Float32Array } & AdamBuffers): void;
}

export const jsStepKernels: StepKernels = { sumSlots, normPartials, scale: scaleRange, sgd: sgdStep, adam: adamStep };

/**
 * The SIMD loops over views of the shared memory step.wasm was instantiated on (every array passed must
 * be one; the gradient slots evenly spaced). Same bits as jsStepKernels, tested in test/step.test.ts.
 */
export function wasmStepKernels(k: WasmStepExports): StepKernels {
  const f32 = Math.fround;
  return {
    sumSlots(out, g, n, divisor, _acc, from, to) {
      const stride = n > 1 ? g[1].byteOffset - g[0].byteOffset : 0;
      k.sum_slots(out.byteOffset, g[0].byteOffset, stride, n, divisor, from, to);
    },
    normPartials(grad, p, c0, c1, partials) {
      // Orders other than 1, 2 and Infinity need a power per element: the reference serves them.
      if (p !== 1 && p !== 2 && p !== Infinity) return normPartials(grad, p, c0, c1, partials);
      for (let c = c0; c < c1; c++) {
        const [from, to] = chunkFloats(c, c + 1, grad.length);
        k.norm_partials(grad.byteOffset, from, to, partials.byteOffset + c * NORM_FIELDS * 8);
      }
      // The power sum is the abs sum only for order 1; the reference leaves 0 otherwise.
      if (p !== 1) for (let c = c0; c < c1; c++) partials[c * NORM_FIELDS + kNormPowerSum] = 0;
    },
    scale(grad, coef, from, to) {
      k.scale(grad.byteOffset, coef, from, to);
    },
    sgd(params, grads, state, o, lr, momentum, source) {
      const mom = f32(momentum);
      k.sgd(
        params.byteOffset, grads.byteOffset, state.momentumBuffer.byteOffset, source.params.byteOffset,
        source.momentumBuffer.byteOffset, params.length, f32(o.weightDecay), mom, f32(1 - o.dampening), f32(-lr),
        state.hasMomentumBuffer ? 0 : 1, o.nesterov ? 1 : 0, o.maximize ? 1 : 0,
      );
      if (usesMomentum(momentum)) state.hasMomentumBuffer = true;
    },
    adam(params, grads, state, s, source) {
      const max = state.maxExpAvgSq;
      const srcMax = source.maxExpAvgSq;
      k.adam(
        params.byteOffset, grads.byteOffset, state.expAvg.byteOffset, state.expAvgSq.byteOffset, max === null ? 0 : max.byteOffset,
        source.params.byteOffset, source.expAvg.byteOffset, source.expAvgSq.byteOffset, srcMax === null ? 0 : srcMax.byteOffset,
        params.length, s.wd, s.decay, s.weight, s.weightM1, s.beta2, s.oneMinusBeta2, s.bc2Sqrt, s.eps, s.negStepSize,
        s.maximize ? 1 : 0,
      );
    },
  };
}

/** The buffers a worker's share of the step works on. Parameters and optimizer state are double-buffered. */
export interface StepBuffers {
  /** [current, next] (P) parameters: the step reads one and writes the other, so it can be repeated. */
  params: [Float32Array, Float32Array];
  /** SGD's momentum buffer, or Adam's first moment (exp_avg). */
  momentum: [Float32Array, Float32Array];
  /** Adam's second moment (exp_avg_sq) and AMSGrad's running maximum of it; [] when not used. */
  moments: [Float32Array, Float32Array][];
  /** (S, P) gradient sums per shard. */
  slots: Float32Array[];
  /** (P) the batch's gradient. */
  grad: Float32Array;
  /** (chunks, NORM_FIELDS) norm partials. */
  partials: Float64Array;
  /** The step's hyperparameters. */
  hyper: StepHyper;
  /** Scratch for sumSlots beyond four slots: NORM_CHUNK doubles, reused chunk by chunk. */
  acc: Float64Array;
}

/** Phase 1, after every shard is in: grad[chunks c0..c1) = sum of the slots / divisor, and its partials. */
export function reduceShare(
  k: StepKernels, b: StepBuffers, sums: BatchSums, shards: number, mean: boolean, c0: number, c1: number,
): void {
  const P = b.grad.length;
  const divisor = mean ? sums.weightSum : 1;
  for (let c = c0; c < c1; c++) {
    const [from, to] = chunkFloats(c, c + 1, P);
    k.sumSlots(b.grad, b.slots, shards, divisor, b.acc, from, to);
  }
  const h = b.hyper;
  k.normPartials(b.grad, h.maxNorm > 0 ? h.normType : 2, c0, c1, b.partials);
}

/** Phase 2, after every share is reduced: clip and update chunks [c0, c1), reading `current`, writing
 *  the other buffers. The caller makes the other buffers current once every share is done. */
export function updateShare(
  k: StepKernels, b: StepBuffers, d: StepDecision, sgd: SGDOptions, current: 0 | 1, c0: number, c1: number,
): void {
  const [from, to] = chunkFloats(c0, c1, b.grad.length);
  const next = 1 - current;
  if (d.coef !== 1) k.scale(b.grad, d.coef, from, to);
  const h = b.hyper;
  if (h.adam !== null) {
    const half = (which: 0 | 1): { params: Float32Array } & AdamBuffers => ({
      params: b.params[which].subarray(from, to),
      expAvg: b.momentum[which].subarray(from, to),
      expAvgSq: b.moments[0][which].subarray(from, to),
      maxExpAvgSq: b.moments.length > 1 ? b.moments[1][which].subarray(from, to) : null,
    });
    const { params, ...state } = half(next as 0 | 1);
    k.adam(params, b.grad.subarray(from, to), state, h.adam, half(current));
    return;
  }
  const { momentum, first } = h;
  const source = { params: b.params[current].subarray(from, to), momentumBuffer: b.momentum[current].subarray(from, to) };
  const state = { momentumBuffer: b.momentum[next].subarray(from, to), hasMomentumBuffer: !first };
  k.sgd(b.params[next].subarray(from, to), b.grad.subarray(from, to), state, sgd, h.lr, momentum, source);
  // A step without momentum (a schedule may set it to 0) leaves torch's buffer as it was: carry it over.
  if (!usesMomentum(momentum) && !first) state.momentumBuffer.set(source.momentumBuffer);
}
