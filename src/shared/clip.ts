// Gradient clipping as torch.nn.utils.clip_grad_norm_ (1.13) over gradpool's one flat gradient buffer:
// the total norm of order p, the clip coefficient max_norm / (norm + 1e-6) clamped to 1, and the
// float32 arithmetic torch uses for both; plus validation of the options that turn it on.

import { hinted, OptionRangeError, OptionTypeError, shown } from './option-errors.js';

export interface ClipOptions {
  /** Clip the gradient's total norm to this (clip_grad_norm_'s max_norm); null or absent: no clipping. */
  clipGradNorm?: number | null;
  /** Order of the norm (norm_type): any p >= 1, or Infinity for the largest |gradient|. Default 2. */
  clipNormType?: number;
  /** Throw when the total norm is NaN or infinite instead of scaling by it (error_if_nonfinite). Default false. */
  errorIfNonfinite?: boolean;
}

const f32 = Math.fround;
const EPS = f32(1e-6);

// The total norm is assembled from partials over fixed chunks of the flat buffer, so that the workers
// can each compute the partials of their own chunks (src/shared/step.ts) and every split of the buffer
// gives the same bits. A chunk's partials: the sum of squares (finite exactly when every entry is: a
// float32 squared cannot overflow float64), its largest |g|, and its sum of |g|^p scaled by that largest
// entry (for orders other than 1, 2 and Infinity: then |g|^p neither overflows nor underflows float64).

/** Floats per norm chunk: small enough to split ~100K parameters evenly over a few workers. */
export const NORM_CHUNK = 4096;
/** Float64 partials per chunk, laid out by the kNorm* indices. */
export const NORM_FIELDS = 3;
export const kNormSquares = 0;
export const kNormMax = 1;
export const kNormPowerSum = 2;

/** Chunks of NORM_CHUNK floats that cover P floats (the last may be shorter). */
export function normChunks(P: number): number {
  return Math.ceil(P / NORM_CHUNK);
}

/**
 * Writes the partials of chunks [c0, c1) of grad (P) into partials (chunks, NORM_FIELDS). The two sums
 * run in four lanes (element i of a chunk in lane i % 4), combined as (l0 + l2) + (l1 + l3), then the
 * chunk's last elements past a multiple of four in order: the order wasm/step.ts's SIMD loop adds in.
 */
export function normPartials(grad: Float32Array, p: number, c0: number, c1: number, partials: Float64Array): void {
  const P = grad.length;
  for (let c = c0; c < c1; c++) {
    const i0 = c * NORM_CHUNK;
    const i1 = Math.min(i0 + NORM_CHUNK, P);
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    let max = 0;
    let i = i0;
    for (; i + 4 <= i1; i += 4) {
      const g0 = Math.abs(grad[i]), g1 = Math.abs(grad[i + 1]), g2 = Math.abs(grad[i + 2]), g3 = Math.abs(grad[i + 3]);
      s0 += g0 * g0; s1 += g1 * g1; s2 += g2 * g2; s3 += g3 * g3;
      a0 += g0; a1 += g1; a2 += g2; a3 += g3;
      if (g0 > max) max = g0; // NaN fails every comparison: dropped here, carried by the squares
      if (g1 > max) max = g1;
      if (g2 > max) max = g2;
      if (g3 > max) max = g3;
    }
    let squares = (s0 + s2) + (s1 + s3);
    let abs = (a0 + a2) + (a1 + a3);
    for (; i < i1; i++) {
      const g = Math.abs(grad[i]);
      squares += g * g;
      abs += g;
      if (g > max) max = g;
    }
    let power = p === 1 ? abs : 0;
    if (p !== 1 && p !== 2 && p !== Infinity && max > 0 && max < Infinity) {
      for (let j = i0; j < i1; j++) power += (Math.abs(grad[j]) / max) ** p;
    }
    const r = c * NORM_FIELDS;
    partials[r + kNormSquares] = squares;
    partials[r + kNormMax] = max;
    partials[r + kNormPowerSum] = power;
  }
}

/**
 * The norm of order p from the partials of `chunks` chunks, combined in chunk order in float64 and
 * rounded to float32 as torch returns it. torch takes the norm of the per-tensor norms; over one buffer
 * that is the same number up to rounding. NaN when any entry is NaN (torch's norm and max propagate it).
 */
export function combineNorm(partials: Float64Array, chunks: number, p: number): number {
  let squares = 0;
  let max = 0;
  for (let c = 0; c < chunks; c++) {
    squares += partials[c * NORM_FIELDS + kNormSquares];
    const m = partials[c * NORM_FIELDS + kNormMax];
    if (m > max) max = m;
  }
  if (squares !== squares) return NaN;
  if (p === Infinity || max === 0 || max === Infinity) return max;
  if (p === 2) return f32(Math.sqrt(squares));
  let s = 0;
  for (let c = 0; c < chunks; c++) {
    const r = c * NORM_FIELDS;
    s += p === 1 ? partials[r + kNormPowerSum] : partials[r + kNormPowerSum] * (partials[r + kNormMax] / max) ** p;
  }
  return p === 1 ? f32(s) : f32(max * s ** (1 / p));
}

/** The norm of order p of grad (P), as the workers' partials give it. */
function totalNorm(grad: Float32Array, p: number): number {
  const chunks = normChunks(grad.length);
  const partials = new Float64Array(chunks * NORM_FIELDS);
  normPartials(grad, p, 0, chunks, partials);
  return combineNorm(partials, chunks, p);
}

/**
 * The factor clip_grad_norm_ scales by: max_norm / (total_norm + 1e-6), computed on a float32 tensor as
 * torch does, reciprocal(total + 1e-6) * max_norm with each op (and the scalars) rounded to float32, then
 * clamped to 1 (a NaN stays NaN). 1 means the gradient is left alone.
 */
export function clipCoefficient(total: number, maxNorm: number): number {
  return Math.min(f32(f32(1 / f32(total + EPS)) * f32(maxNorm)), 1);
}

/** Throws clip_grad_norm_'s error_if_nonfinite error unless the total norm is finite. */
export function checkNormFinite(total: number, normType: number): void {
  if (Number.isFinite(total)) return;
  throw hinted(
    (m) => new RangeError(m),
    `The total norm of order ${normType} of the gradients is non-finite (${total}), so it cannot be clipped. ` +
      `To disable this error and scale the gradients by the non-finite norm anyway, set options.errorIfNonfinite to false`,
    'a smaller options.lr or options.clipGradNorm can keep the gradients finite',
  );
}

/** grad[from, to) *= coef: the product of two float32s is exact in float64, so one rounding. */
export function scaleRange(grad: Float32Array, coef: number, from: number, to: number): void {
  for (let i = from; i < to; i++) grad[i] *= coef;
}

/**
 * Scales grad (P) in place so its total norm of order normType is at most maxNorm, as clip_grad_norm_
 * does, and returns the total norm before clipping (float32, as torch's tensor). The scale is
 * min(maxNorm / (norm + 1e-6), 1), so a gradient at exactly maxNorm is still scaled by about 1 - 1e-6/maxNorm;
 * one further below the limit is left bit-identical. A NaN norm makes every gradient NaN; an infinite one
 * scales by 0 (the infinite entries become NaN), as in torch, unless errorIfNonfinite, which throws first.
 */
export function clipGradNorm(grad: Float32Array, maxNorm: number, normType = 2, errorIfNonfinite = false): number {
  const total = totalNorm(grad, normType);
  if (errorIfNonfinite) checkNormFinite(total, normType);
  const coef = clipCoefficient(total, maxNorm);
  if (coef !== 1) scaleRange(grad, coef, 0, grad.length); // torch multiplies by 1.0, which changes no float32 value
  return total;
}

/** Throws TypeError/RangeError naming options.clipGradNorm, options.clipNormType or options.errorIfNonfinite. */
export function validateClip(o: ClipOptions): void {
  const { clipGradNorm: maxNorm, clipNormType: normType, errorIfNonfinite } = o;
  if (maxNorm !== undefined && maxNorm !== null) {
    if (typeof maxNorm !== 'number' || !Number.isFinite(maxNorm)) {
      throw new OptionTypeError(`options.clipGradNorm must be a finite number; got ${shown(maxNorm)}`);
    }
    // torch accepts any max_norm: 0 zeroes every gradient and a negative one flips their sign.
    if (maxNorm <= 0) {
      throw new OptionRangeError(`options.clipGradNorm must be > 0; got ${maxNorm}`, 'leave it unset to disable clipping');
    }
  }
  if (normType !== undefined) {
    if (typeof normType !== 'number' || Number.isNaN(normType)) {
      throw new OptionTypeError(`options.clipNormType must be a number; got ${shown(normType)}`);
    }
    if (!(normType >= 1)) {
      throw new OptionRangeError(`options.clipNormType must be >= 1 or Infinity; got ${normType}`);
    }
  }
  if (errorIfNonfinite !== undefined && typeof errorIfNonfinite !== 'boolean') {
    throw new OptionTypeError(`options.errorIfNonfinite must be a boolean; got ${shown(errorIfNonfinite)}`);
  }
}
