// Gradient clipping as torch.nn.utils.clip_grad_norm_ (1.13) over gradpool's one flat gradient buffer:
// the total norm of order p, the clip coefficient max_norm / (norm + 1e-6) clamped to 1, and the
// float32 arithmetic torch uses for both; plus validation of the options that turn it on.

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

/**
 * The norm of order p of grad (P), accumulated in float64 and rounded to float32 as torch returns it.
 * torch takes the norm of the per-tensor norms; over one buffer that is the same number up to rounding.
 */
function totalNorm(grad: Float32Array, p: number): number {
  const P = grad.length;
  let max = 0;
  for (let i = 0; i < P; i++) {
    const a = Math.abs(grad[i]);
    if (a > max) max = a;
    else if (a !== a) return NaN; // torch's norm and max both propagate NaN
  }
  if (p === Infinity || max === 0 || max === Infinity) return max;
  let s = 0;
  if (p === 1) {
    for (let i = 0; i < P; i++) s += Math.abs(grad[i]);
    return f32(s);
  }
  if (p === 2) {
    for (let i = 0; i < P; i++) s += grad[i] * grad[i];
    return f32(Math.sqrt(s));
  }
  // Scaled by the largest entry so that |g|^p neither overflows nor underflows float64 for large p.
  for (let i = 0; i < P; i++) s += (Math.abs(grad[i]) / max) ** p;
  return f32(max * s ** (1 / p));
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
  if (errorIfNonfinite && !Number.isFinite(total)) {
    throw new RangeError(
      `The total norm of order ${normType} of the gradients is non-finite (${total}), so it cannot be clipped. ` +
      `To disable this error and scale the gradients by the non-finite norm anyway, set options.errorIfNonfinite ` +
      `to false; hint: a smaller options.lr or options.clipGradNorm can keep the gradients finite`,
    );
  }
  // torch computes max_norm / (total_norm + 1e-6) on a float32 tensor as reciprocal(total + 1e-6) * max_norm,
  // each op rounded to float32 (the scalars too); clamp(max=1) keeps a NaN.
  const coef = Math.min(f32(f32(1 / f32(total + EPS)) * f32(maxNorm)), 1);
  if (coef === 1) return total; // torch multiplies by 1.0, which changes no float32 value
  const P = grad.length;
  for (let i = 0; i < P; i++) grad[i] *= coef; // the product of two float32s is exact in float64: one rounding
  return total;
}

/** Throws TypeError/RangeError naming options.clipGradNorm, options.clipNormType or options.errorIfNonfinite. */
export function validateClip(o: ClipOptions): void {
  const { clipGradNorm: maxNorm, clipNormType: normType, errorIfNonfinite } = o;
  if (maxNorm !== undefined && maxNorm !== null) {
    if (typeof maxNorm !== 'number' || !Number.isFinite(maxNorm)) {
      throw new TypeError(`options.clipGradNorm must be a finite number; got ${String(maxNorm)}`);
    }
    // torch accepts any max_norm: 0 zeroes every gradient and a negative one flips their sign.
    if (maxNorm <= 0) {
      throw new RangeError(`options.clipGradNorm must be > 0; got ${maxNorm} (hint: leave it unset to disable clipping)`);
    }
  }
  if (normType !== undefined) {
    if (typeof normType !== 'number' || Number.isNaN(normType)) {
      throw new TypeError(`options.clipNormType must be a number; got ${String(normType)}`);
    }
    if (!(normType >= 1)) {
      throw new RangeError(`options.clipNormType must be >= 1 or Infinity; got ${normType}`);
    }
  }
  if (errorIfNonfinite !== undefined && typeof errorIfNonfinite !== 'boolean') {
    throw new TypeError(`options.errorIfNonfinite must be a boolean; got ${String(errorIfNonfinite)}`);
  }
}
