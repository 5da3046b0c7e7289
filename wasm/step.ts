// WebAssembly SIMD versions of the optimizer step's loops (src/shared/step.ts, clip.ts, sgd.ts), built by
// `npm run build:wasm` to src/shared/step.wasm. The module imports the coordinator's *shared* memory, in
// which the parameters, momentum, gradient slots, gradient and norm partials live (contract.ts
// stateLayout), so every worker runs its share of the step on the same buffers without a copy.
// Pointers are byte offsets into that memory, counts are elements. Every function gives the same bits as
// its TypeScript reference: the same IEEE operations in the same order, lane by lane (f32 ops where the
// reference rounds each op to float32, which equals the correctly rounded float32 op; f64 ops where it
// computes in double).

/** [a0, a1] as doubles from f32 lanes 0, 1 of v. */
// @ts-ignore: decorator
@inline function lo(v: v128): v128 {
  return f64x2.promote_low_f32x4(v);
}

/** [a2, a3] as doubles from f32 lanes 2, 3 of v. */
// @ts-ignore: decorator
@inline function hi(v: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
}

/** f32x4 of the four doubles a (lanes 0, 1) and b (lanes 0, 1), each rounded to float32. */
// @ts-ignore: decorator
@inline function demote2(a: v128, b: v128): v128 {
  return v128.shuffle<f32>(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 4, 5);
}

// @ts-ignore: decorator
@inline function f(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}

// @ts-ignore: decorator
@inline function put(p: usize, i: i32, v: f32): void {
  store<f32>(p + (<usize>i << 2), v);
}

/** out[i] = f32((s_0[i] + s_1[i] + ... + s_{n-1}[i]) / divisor) in double, slots in order, for i in
 *  [from, to); slot k starts at slots + k * stride bytes. (step.ts sumSlots) */
export function sum_slots(out: usize, slots: usize, stride: usize, n: i32, divisor: f64, from: i32, to: i32): void {
  const d = f64x2.splat(divisor);
  let i = from;
  for (; i + 4 <= to; i += 4) {
    const off = <usize>i << 2;
    const v = v128.load(slots + off);
    let a = lo(v);
    let b = hi(v);
    for (let k = 1; k < n; k++) {
      const w = v128.load(slots + <usize>k * stride + off);
      a = f64x2.add(a, lo(w));
      b = f64x2.add(b, hi(w));
    }
    v128.store(out + off, demote2(f64x2.div(a, d), f64x2.div(b, d)));
  }
  for (; i < to; i++) {
    const off = <usize>i << 2;
    let s: f64 = <f64>load<f32>(slots + off);
    for (let k = 1; k < n; k++) s += <f64>load<f32>(slots + <usize>k * stride + off);
    store<f32>(out + off, <f32>(s / divisor));
  }
}

/**
 * The norm partials of grad[from, to) (clip.ts normPartials, orders 1, 2 and Infinity): writes to
 * partials (f64) the sum of squares, the largest |g| and the sum of |g|. Both sums in four lanes
 * (element i in lane (i - from) % 4), combined as (l0 + l2) + (l1 + l3), then the tail in order.
 */
export function norm_partials(grad: usize, from: i32, to: i32, partials: usize): void {
  let sq0 = f64x2.splat(0);
  let sq1 = f64x2.splat(0);
  let ab0 = f64x2.splat(0);
  let ab1 = f64x2.splat(0);
  let mx = f32x4.splat(0);
  let i = from;
  for (; i + 4 <= to; i += 4) {
    const v = f32x4.abs(v128.load(grad + (<usize>i << 2)));
    const a = lo(v);
    const b = hi(v);
    sq0 = f64x2.add(sq0, f64x2.mul(a, a));
    sq1 = f64x2.add(sq1, f64x2.mul(b, b));
    ab0 = f64x2.add(ab0, a);
    ab1 = f64x2.add(ab1, b);
    mx = f32x4.pmax(mx, v); // NaN lanes are dropped here; the sum of squares carries them
  }
  const sq = f64x2.add(sq0, sq1);
  const ab = f64x2.add(ab0, ab1);
  let squares = f64x2.extract_lane(sq, 0) + f64x2.extract_lane(sq, 1);
  let abs = f64x2.extract_lane(ab, 0) + f64x2.extract_lane(ab, 1);
  let m = max(max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
  for (; i < to; i++) {
    const g = <f64>Mathf.abs(f(grad, i));
    squares += g * g;
    abs += g;
    if (<f32>g > m) m = <f32>g;
  }
  store<f64>(partials, squares);
  store<f64>(partials, <f64>m, 8);
  store<f64>(partials, abs, 16);
}

/** grad[i] = f32(grad[i] * coef) for i in [from, to), coef a float32 value. (clip.ts scaleRange) */
export function scale(grad: usize, coef: f32, from: i32, to: i32): void {
  const c = f32x4.splat(coef);
  let i = from;
  for (; i + 4 <= to; i += 4) {
    const p = grad + (<usize>i << 2);
    v128.store(p, f32x4.mul(v128.load(p), c));
  }
  for (; i < to; i++) put(grad, i, f(grad, i) * coef);
}

/**
 * SGD on elements [0, n) of the given arrays, as sgd.ts sgdStep: reads src and srcBuf, writes params
 * and buf. Scalars are float32 values (wd, mom, damp = 1 - dampening, step = -lr), flags 0 or 1.
 */
export function sgd(
  params: usize, grads: usize, buf: usize, src: usize, srcBuf: usize, n: i32,
  wd: f32, mom: f32, damp: f32, step: f32, first: i32, nesterov: i32, maximize: i32,
): void {
  const s = f64x2.splat(<f64>step);
  if (wd == 0 && !maximize && !nesterov && damp == 1 && (mom == 0 || !first)) {
    let i = 0;
    if (mom == 0) {
      for (; i + 4 <= n; i += 4) {
        const off = <usize>i << 2;
        const g = v128.load(grads + off);
        const p = v128.load(src + off);
        v128.store(params + off, demote2(f64x2.add(lo(p), f64x2.mul(s, lo(g))), f64x2.add(hi(p), f64x2.mul(s, hi(g)))));
      }
      for (; i < n; i++) put(params, i, <f32>(<f64>f(src, i) + <f64>step * <f64>f(grads, i)));
      return;
    }
    const m = f32x4.splat(mom);
    for (; i + 4 <= n; i += 4) {
      const off = <usize>i << 2;
      const b = f32x4.add(f32x4.mul(v128.load(srcBuf + off), m), v128.load(grads + off));
      v128.store(buf + off, b);
      const p = v128.load(src + off);
      v128.store(params + off, demote2(f64x2.add(lo(p), f64x2.mul(s, lo(b))), f64x2.add(hi(p), f64x2.mul(s, hi(b)))));
    }
    for (; i < n; i++) {
      const b = f(srcBuf, i) * mom + f(grads, i);
      put(buf, i, b);
      put(params, i, <f32>(<f64>f(src, i) + <f64>step * <f64>b));
    }
    return;
  }
  // Every other setting, element by element in double as the reference's general loop.
  for (let i = 0; i < n; i++) {
    const p = <f64>f(src, i);
    let g = <f64>f(grads, i);
    if (maximize) g = -g;
    if (wd != 0) g = <f64><f32>(g + <f64>wd * p);
    if (mom != 0) {
      const b: f64 = first ? g : <f64><f32>(<f64>(f(srcBuf, i) * mom) + <f64>damp * g);
      put(buf, i, <f32>b);
      g = nesterov ? <f64><f32>(g + <f64>mom * b) : b;
    }
    put(params, i, <f32>(p + <f64>step * g));
  }
}

/** f32x4 of a + b * c, computed in double per lane and rounded once (a multiply-add torch fuses). */
// @ts-ignore: decorator
@inline function muladd(a: v128, b: v128, c: v128): v128 {
  return demote2(f64x2.add(lo(a), f64x2.mul(lo(b), lo(c))), f64x2.add(hi(a), f64x2.mul(hi(b), hi(c))));
}

/**
 * Adam (AdamW) on elements [0, n), as adam.ts adamStep: reads src, srcM, srcV and srcMax, writes params,
 * m, v and vmax (vmax and srcMax 0: no AMSGrad). The scalars are adam.ts adamScalars's, float32 values.
 */
export function adam(
  params: usize, grads: usize, m: usize, v: usize, vmax: usize, src: usize, srcM: usize, srcV: usize, srcMax: usize, n: i32,
  wd: f32, decay: f32, weight: f32, weightM1: f32, beta2: f32, oneMinusBeta2: f32, bc2Sqrt: f32, eps: f32, negStepSize: f32,
  maximize: i32,
): void {
  const small = weight < 0.5;
  const W = f32x4.splat(small ? weight : weightM1);
  const WD = f32x4.splat(wd);
  const DECAY = f32x4.splat(decay);
  const B2 = f32x4.splat(beta2);
  const OMB2 = f32x4.splat(oneMinusBeta2);
  const S2 = f32x4.splat(bc2Sqrt);
  const EPS = f32x4.splat(eps);
  const NSS = f32x4.splat(negStepSize);
  const ams = vmax != 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const off = <usize>i << 2;
    let p = v128.load(src + off);
    let g = v128.load(grads + off);
    if (maximize) g = f32x4.neg(g);
    if (wd != 0) g = muladd(g, WD, p);
    if (decay != 1) p = f32x4.mul(p, DECAY);
    const m0 = v128.load(srcM + off);
    const diff = f32x4.sub(g, m0);
    const mt = muladd(small ? m0 : g, W, diff);
    const vt = muladd(f32x4.mul(v128.load(srcV + off), B2), f32x4.mul(OMB2, g), g);
    v128.store(m + off, mt);
    v128.store(v + off, vt);
    let vhat = vt;
    if (ams) {
      vhat = f32x4.pmax(vt, v128.load(srcMax + off));
      v128.store(vmax + off, vhat);
    }
    const denom = f32x4.add(f32x4.div(f32x4.sqrt(vhat), S2), EPS);
    v128.store(params + off, f32x4.add(p, f32x4.div(f32x4.mul(NSS, mt), denom)));
  }
  for (; i < n; i++) {
    let p = f(src, i);
    let g = f(grads, i);
    if (maximize) g = -g;
    if (wd != 0) g = <f32>(<f64>g + <f64>wd * <f64>p);
    if (decay != 1) p = p * decay;
    const m0 = f(srcM, i);
    const diff = g - m0;
    const mt = small ? <f32>(<f64>m0 + <f64>weight * <f64>diff) : <f32>(<f64>g + <f64>weightM1 * <f64>diff);
    const vt = <f32>(<f64>(f(srcV, i) * beta2) + <f64>(oneMinusBeta2 * g) * <f64>g);
    put(m, i, mt);
    put(v, i, vt);
    let vhat = vt;
    if (ams) {
      const old = f(srcMax, i);
      if (old > vt) vhat = old;
      put(vmax, i, vhat);
    }
    const denom = Mathf.sqrt(vhat) / bc2Sqrt + eps;
    put(params, i, p + (negStepSize * mt) / denom);
  }
}
