// WebAssembly SIMD (f32x4) kernels for the three products of a linear layer, in AssemblyScript, built by
// `npm run build:wasm` twice from this one source: to src/shared/kernels.wasm (SIMD, each multiply-add a
// multiply and an add) and, with relaxed SIMD enabled, to src/shared/kernels-fma.wasm (each a fused
// f32x4.relaxed_madd); `madd` below is the only difference. Both are loaded by src/shared/wasm.ts. Pointers
// are byte offsets into the imported memory, sizes are element counts, arrays row-major float32; the letters
// are model.ts's (B rows, C inputs, OC outputs). The algorithmic references are src/shared/kernels.ts's.

/** acc + a * b per lane: one fused multiply-add where relaxed SIMD is enabled (V8 emits vfmadd where the
 *  CPU has FMA3, or NEON's fmla; a multiply and an add on an x64 CPU without FMA3), else a multiply and an
 *  add, each rounded. ASC_FEATURE_RELAXED_SIMD is a compile-time constant, so each build keeps one branch. */
// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, acc);
  return f32x4.add(acc, f32x4.mul(a, b));
}

/** Where JS may start handing out arrays when this instance has the memory to itself: past the static
 *  data and the default packing scratch, 16-byte aligned. */
export function heap_base(): usize {
  return ((__heap_base + 15) & ~15) + PACK_BYTES;
}

// ---------------------------------------------------------------------------------------------------
// Tile sizes follow V8's code generation on x64: f32x4 maps to 128-bit SSE/AVX registers, of which
// TurboFan allocates 15, and it issues a loop body's loads before its arithmetic, so the accumulators,
// the loaded vectors and the broadcasts must all fit at once. The 4 x 8 tiles below (8 accumulators,
// 2 loads, 4 broadcasts) do; 5 x 8 and 6 x 8 spill and run at half the speed (measured with a multiply
// and an add per step, which need a register for the product).

// Horizontal sums.

/** [sum(a), sum(b), sum(c), sum(d)] */
// @ts-ignore: decorator
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 1, 4, 5), v128.shuffle<f32>(a, b, 2, 3, 6, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 1, 4, 5), v128.shuffle<f32>(c, d, 2, 3, 6, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 2, 4, 6), v128.shuffle<f32>(ab, cd, 1, 3, 5, 7));
}

/** sum over c in [c0, c1) of x[c] * w[c], scalar: the columns past the last whole vector. */
function dotTail(x: usize, w: usize, c0: i32, c1: i32): f32 {
  let s: f32 = 0;
  for (let c = c0; c < c1; c++) s += load<f32>(x + (<usize>c << 2)) * load<f32>(w + (<usize>c << 2));
  return s;
}

/** dotTail for one input row against four weight rows w, w + ws, w + 2 ws, w + 3 ws. */
function dotTail4(x: usize, w: usize, ws: usize, c0: i32, c1: i32): v128 {
  let r = f32x4.splat(0);
  r = f32x4.replace_lane(r, 0, dotTail(x, w, c0, c1));
  r = f32x4.replace_lane(r, 1, dotTail(x, w + ws, c0, c1));
  r = f32x4.replace_lane(r, 2, dotTail(x, w + 2 * ws, c0, c1));
  r = f32x4.replace_lane(r, 3, dotTail(x, w + 3 * ws, c0, c1));
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Forward: every output is a dot product of an input row and a weight row, both contiguous in c. A tile
// of (b, o) pairs keeps one f32x4 of partial sums per pair over whole vectors of c, then sums each
// horizontally and adds the columns past the last whole vector (C % 4) in scalar.

/** out (B, OC) = inp (B, C) @ weight (OC, C)^T + bias (OC) */
export function linear_forward(out: usize, inp: usize, weight: usize, bias: usize, B: i32, C: i32, OC: i32): void {
  const rs = <usize>C << 2; // bytes per inp or weight row
  const os = <usize>OC << 2; // bytes per out row
  const O4 = OC & ~3;
  // Weight rows in chunks of about 128 KiB, so that a chunk stays in L2 while every input row passes.
  const chunk = max(4, (32768 / max(C, 1)) & ~3);
  for (let o0 = 0; o0 < O4; o0 += chunk) {
    const o1 = min(O4, o0 + chunk);
    let b = 0;
    for (; b + 2 <= B; b += 2) {
      for (let o = o0; o < o1; o += 4) {
        forward2x4(out + <usize>b * os + (<usize>o << 2), os, inp + <usize>b * rs, weight + <usize>o * rs, rs, bias + (<usize>o << 2), C);
      }
    }
    if (b < B) {
      for (let o = o0; o < o1; o += 4) {
        forward1x4(out + <usize>b * os + (<usize>o << 2), inp + <usize>b * rs, weight + <usize>o * rs, rs, bias + (<usize>o << 2), C);
      }
    }
  }
  // The last OC % 4 outputs, four input rows at a time.
  let o = O4;
  for (; o + 2 <= OC; o += 2) {
    const y = out + (<usize>o << 2);
    const w = weight + <usize>o * rs;
    const bo = bias + (<usize>o << 2);
    let b = 0;
    for (; b + 4 <= B; b += 4) forward4x2(y + <usize>b * os, os, inp + <usize>b * rs, rs, w, bo, C);
    for (; b < B; b++) {
      forward4x1(y + <usize>b * os, 0, inp + <usize>b * rs, 0, 1, w, bo, C);
      forward4x1(y + <usize>b * os + 4, 0, inp + <usize>b * rs, 0, 1, w + rs, bo + 4, C);
    }
  }
  if (o < OC) {
    const y = out + (<usize>o << 2);
    const w = weight + <usize>o * rs;
    const bo = bias + (<usize>o << 2);
    let b = 0;
    for (; b + 4 <= B; b += 4) forward4x1(y + <usize>b * os, os, inp + <usize>b * rs, rs, 4, w, bo, C);
    for (; b < B; b++) forward4x1(y + <usize>b * os, 0, inp + <usize>b * rs, 0, 1, w, bo, C);
  }
}

/** y[r, 0..4] = x[r] . w[0..4] + bias[0..4] for rows r < 2 (x rows and w rows rs apart, y rows os apart). */
// @ts-ignore: decorator
@inline function forward2x4(y0: usize, os: usize, x0: usize, w0: usize, rs: usize, bias: usize, C: i32): void {
  const x1 = x0 + rs;
  const w1 = w0 + rs, w2 = w1 + rs, w3 = w2 + rs;
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a02 = f32x4.splat(0), a03 = f32x4.splat(0);
  let a10 = f32x4.splat(0), a11 = f32x4.splat(0), a12 = f32x4.splat(0), a13 = f32x4.splat(0);
  const cv = <usize>(C & ~3) << 2;
  for (let c: usize = 0; c < cv; c += 16) {
    const p = v128.load(x0 + c);
    const q = v128.load(x1 + c);
    let w = v128.load(w0 + c);
    a00 = madd(p, w, a00);
    a10 = madd(q, w, a10);
    w = v128.load(w1 + c);
    a01 = madd(p, w, a01);
    a11 = madd(q, w, a11);
    w = v128.load(w2 + c);
    a02 = madd(p, w, a02);
    a12 = madd(q, w, a12);
    w = v128.load(w3 + c);
    a03 = madd(p, w, a03);
    a13 = madd(q, w, a13);
  }
  const bv = v128.load(bias);
  let s0 = f32x4.add(hsum4(a00, a01, a02, a03), bv);
  let s1 = f32x4.add(hsum4(a10, a11, a12, a13), bv);
  if (C & 3) {
    s0 = f32x4.add(s0, dotTail4(x0, w0, rs, C & ~3, C));
    s1 = f32x4.add(s1, dotTail4(x1, w0, rs, C & ~3, C));
  }
  v128.store(y0, s0);
  v128.store(y0 + os, s1);
}

/** forward2x4 for one row. */
// @ts-ignore: decorator
@inline function forward1x4(y0: usize, x0: usize, w0: usize, rs: usize, bias: usize, C: i32): void {
  const w1 = w0 + rs, w2 = w1 + rs, w3 = w2 + rs;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const cv = <usize>(C & ~3) << 2;
  for (let c: usize = 0; c < cv; c += 16) {
    const p = v128.load(x0 + c);
    a0 = madd(p, v128.load(w0 + c), a0);
    a1 = madd(p, v128.load(w1 + c), a1);
    a2 = madd(p, v128.load(w2 + c), a2);
    a3 = madd(p, v128.load(w3 + c), a3);
  }
  let s = f32x4.add(hsum4(a0, a1, a2, a3), v128.load(bias));
  if (C & 3) s = f32x4.add(s, dotTail4(x0, w0, rs, C & ~3, C));
  v128.store(y0, s);
}

/** y[r, 0..2] = x[r] . w[0..2] + bias[0..2] for rows r < 4: two weight rows against four input rows. */
// @ts-ignore: decorator
@inline function forward4x2(y0: usize, os: usize, x0: usize, rs: usize, w0: usize, bias: usize, C: i32): void {
  const x1 = x0 + rs, x2 = x1 + rs, x3 = x2 + rs;
  const w1 = w0 + rs;
  let a00 = f32x4.splat(0), a01 = f32x4.splat(0), a10 = f32x4.splat(0), a11 = f32x4.splat(0);
  let a20 = f32x4.splat(0), a21 = f32x4.splat(0), a30 = f32x4.splat(0), a31 = f32x4.splat(0);
  const cv = <usize>(C & ~3) << 2;
  for (let c: usize = 0; c < cv; c += 16) {
    const u = v128.load(w0 + c);
    const v = v128.load(w1 + c);
    let p = v128.load(x0 + c);
    a00 = madd(p, u, a00);
    a01 = madd(p, v, a01);
    p = v128.load(x1 + c);
    a10 = madd(p, u, a10);
    a11 = madd(p, v, a11);
    p = v128.load(x2 + c);
    a20 = madd(p, u, a20);
    a21 = madd(p, v, a21);
    p = v128.load(x3 + c);
    a30 = madd(p, u, a30);
    a31 = madd(p, v, a31);
  }
  // [x0.w0, x0.w1, x1.w0, x1.w1] and the same for rows 2 and 3.
  let s01 = hsum4(a00, a01, a10, a11);
  let s23 = hsum4(a20, a21, a30, a31);
  if (C & 3) {
    const C4 = C & ~3;
    s01 = f32x4.add(s01, f32x4(dotTail(x0, w0, C4, C), dotTail(x0, w1, C4, C), dotTail(x1, w0, C4, C), dotTail(x1, w1, C4, C)));
    s23 = f32x4.add(s23, f32x4(dotTail(x2, w0, C4, C), dotTail(x2, w1, C4, C), dotTail(x3, w0, C4, C), dotTail(x3, w1, C4, C)));
  }
  const b0 = load<f32>(bias), b1 = load<f32>(bias, 4);
  store<f32>(y0, f32x4.extract_lane(s01, 0) + b0);
  store<f32>(y0, f32x4.extract_lane(s01, 1) + b1, 4);
  store<f32>(y0 + os, f32x4.extract_lane(s01, 2) + b0);
  store<f32>(y0 + os, f32x4.extract_lane(s01, 3) + b1, 4);
  store<f32>(y0 + 2 * os, f32x4.extract_lane(s23, 0) + b0);
  store<f32>(y0 + 2 * os, f32x4.extract_lane(s23, 1) + b1, 4);
  store<f32>(y0 + 3 * os, f32x4.extract_lane(s23, 2) + b0);
  store<f32>(y0 + 3 * os, f32x4.extract_lane(s23, 3) + b1, 4);
}

/**
 * y[r] = x[r] . w + bias[0] for rows r < n (1 or 4): one weight row against n input rows. With n = 1
 * the other three rows repeat row 0 (strides 0) and only row 0 is stored.
 */
function forward4x1(y0: usize, os: usize, x0: usize, rs: usize, n: i32, w: usize, bias: usize, C: i32): void {
  const x1 = x0 + rs, x2 = x1 + rs, x3 = x2 + rs;
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  const cv = <usize>(C & ~3) << 2;
  for (let c: usize = 0; c < cv; c += 16) {
    const u = v128.load(w + c);
    a0 = madd(v128.load(x0 + c), u, a0);
    a1 = madd(v128.load(x1 + c), u, a1);
    a2 = madd(v128.load(x2 + c), u, a2);
    a3 = madd(v128.load(x3 + c), u, a3);
  }
  let s = f32x4.add(hsum4(a0, a1, a2, a3), v128.load32_splat(bias));
  if (C & 3) {
    const C4 = C & ~3;
    s = f32x4.add(s, f32x4(dotTail(x0, w, C4, C), dotTail(x1, w, C4, C), dotTail(x2, w, C4, C), dotTail(x3, w, C4, C)));
  }
  store<f32>(y0, f32x4.extract_lane(s, 0));
  if (n == 4) {
    store<f32>(y0 + os, f32x4.extract_lane(s, 1));
    store<f32>(y0 + 2 * os, f32x4.extract_lane(s, 2));
    store<f32>(y0 + 3 * os, f32x4.extract_lane(s, 3));
  }
}

// ---------------------------------------------------------------------------------------------------
// Backward: both products are sums of rank-1 updates, out[r, :] += a[r, k] * m[k, :], vectorised
// along the contiguous rows of m and out: for the weight gradient r = o, k = b (a = dout read
// transposed, m = inp); for the input gradient r = b, k = o (a = dout, m = weight). Both accumulate
// into out, which is loaded into the tile's registers and stored back.

/**
 * out[r, j] += sum over k < K of a[r, k] * m[k, j], for r < R, j < N. Strides are in bytes: out rows
 * os apart, a's elements ar apart in r and ak apart in k (so a may be read transposed), m rows ms apart.
 */
function rankUpdate(out: usize, os: usize, a: usize, ar: usize, ak: usize, m: usize, ms: usize, R: i32, K: i32, N: i32): void {
  const N8 = N & ~7;
  for (let jc = 0; jc < N8; jc += NC) {
    const nc = min(NC, N8 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      packM(m + <usize>pc * ms + (<usize>jc << 2), ms, kc, nc);
      for (let ic = 0; ic < R; ic += MC) {
        const mc = min(MC, R - ic);
        packA(a + <usize>ic * ar + <usize>pc * ak, ar, ak, mc, kc);
        const panelA = <usize>kc << 4; // bytes of one packed 4-row panel of a
        const panelM = <usize>kc << 5; // bytes of one packed 8-column panel of m
        const m4 = mc & ~3;
        for (let jr = 0; jr < nc; jr += 8) {
          const pm = PACK_M + <usize>(jr >> 3) * panelM;
          const y = out + <usize>ic * os + (<usize>(jc + jr) << 2);
          for (let ir = 0; ir < m4; ir += 4) micro4x8(y + <usize>ir * os, os, PACK_A + <usize>(ir >> 2) * panelA, pm, kc);
        }
        if (m4 < mc) remainderRows(out + <usize>(ic + m4) * os + (<usize>jc << 2), os, PACK_A + <usize>(m4 >> 2) * panelA, mc - m4, kc, nc);
      }
    }
  }
  rankUpdateColumns(out, os, a, ar, ak, m, ms, R, K, N8, N);
}

/**
 * The last n < 4 rows of a packed block (their a values share the block's last panel pa), over the nc
 * packed columns: two m panels at a time, as with fewer rows more columns keep enough sums in flight.
 */
function remainderRows(y: usize, os: usize, pa: usize, n: i32, kc: i32, nc: i32): void {
  const panelM = <usize>kc << 5;
  let jr = 0;
  for (; jr + 16 <= nc; jr += 16) {
    const pm = PACK_M + <usize>(jr >> 3) * panelM;
    const yj = y + (<usize>jr << 2);
    if (n >= 2) micro2x16(yj, os, pa, pm, pm + panelM, kc);
    if (n & 1) micro1x16(yj + <usize>(n - 1) * os, pa + (<usize>(n - 1) << 2), pm, pm + panelM, kc);
  }
  if (jr < nc) {
    const pm = PACK_M + <usize>(jr >> 3) * panelM;
    for (let ir = 0; ir < n; ir++) micro1x8(y + <usize>ir * os + (<usize>jr << 2), pa + (<usize>ir << 2), pm, kc);
  }
}

// Cache blocking, as in BLIS: a KC x NC block of m is packed into PACK_M as NC/8 panels of KC x 8
// floats (one panel stays in L1 while every row of a passes over it), and an MC x KC block of a into
// PACK_A as MC/4 panels of KC x 4 (held in L2). Packing also undoes strides of 4 KiB (C or OC = 1024),
// which map a panel's rows onto one cache set.
const KC = 128;
const NC = 512;
const MC = 64;
const PACK_M_BYTES: usize = KC * NC * 4;
const PACK_BYTES: usize = PACK_M_BYTES + MC * KC * 4;
// The memory is shared by every worker's instance (it holds the training state, contract.ts), so each
// instance packs into a region of its own, set by set_pack; by default the one past the static data.
let PACK_M: usize = (__heap_base + 15) & ~15;
let PACK_A: usize = PACK_M + PACK_M_BYTES;

/** Bytes of packing scratch an instance needs (at a 16-byte aligned pointer given to set_pack). */
export function pack_bytes(): usize {
  return PACK_BYTES;
}

/** This instance packs into [pack, pack + pack_bytes()), which no other instance may use at the same time. */
export function set_pack(pack: usize): void {
  PACK_M = pack;
  PACK_A = pack + PACK_M_BYTES;
}

/** PACK_M[j / 8][k][j % 8] = m[k, j], for k < kc, j < nc (a multiple of 8). */
function packM(m: usize, ms: usize, kc: i32, nc: i32): void {
  // Two panels at a time, so that each k reads a whole 64-byte line of m.
  const panel = <usize>kc << 5;
  const nb = <usize>nc << 2;
  let dst = PACK_M;
  let j: usize = 0;
  for (; j + 64 <= nb; j += 64) {
    let src = m + j;
    for (let k = 0; k < kc; k++) {
      v128.store(dst, v128.load(src));
      v128.store(dst, v128.load(src, 16), 16);
      v128.store(dst + panel, v128.load(src, 32));
      v128.store(dst + panel, v128.load(src, 48), 16);
      src += ms;
      dst += 32;
    }
    dst += panel;
  }
  if (j < nb) {
    let src = m + j;
    for (let k = 0; k < kc; k++) {
      v128.store(dst, v128.load(src));
      v128.store(dst, v128.load(src, 16), 16);
      src += ms;
      dst += 32;
    }
  }
}

/** PACK_A[r / 4][k][r % 4] = a[r, k], for r < mc (zero-padded to a multiple of 4), k < kc. */
function packA(a: usize, ar: usize, ak: usize, mc: i32, kc: i32): void {
  let dst = PACK_A;
  for (let r = 0; r < mc; r += 4) {
    const n = min(4, mc - r);
    let src = a + <usize>r * ar;
    if (n == 4 && ar == 4) {
      for (let k = 0; k < kc; k++) {
        v128.store(dst, v128.load(src));
        src += ak;
        dst += 16;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        let v = f32x4.splat(0);
        v = f32x4.replace_lane(v, 0, load<f32>(src));
        if (n > 1) v = f32x4.replace_lane(v, 1, load<f32>(src + ar));
        if (n > 2) v = f32x4.replace_lane(v, 2, load<f32>(src + 2 * ar));
        if (n > 3) v = f32x4.replace_lane(v, 3, load<f32>(src + 3 * ar));
        v128.store(dst, v);
        src += ak;
        dst += 16;
      }
    }
  }
}

/** y[r, 0..8] += sum over k of pa[k][r] * pm[k][0..8], for r < 4: a 4 x 8 tile held in registers. */
// @ts-ignore: decorator
@inline function micro4x8(y0: usize, os: usize, pa: usize, pm: usize, kc: i32): void {
  const y1 = y0 + os, y2 = y1 + os, y3 = y2 + os;
  let c00 = v128.load(y0), c01 = v128.load(y0, 16);
  let c10 = v128.load(y1), c11 = v128.load(y1, 16);
  let c20 = v128.load(y2), c21 = v128.load(y2, 16);
  let c30 = v128.load(y3), c31 = v128.load(y3, 16);
  const end = pm + (<usize>kc << 5);
  while (pm < end) {
    const m0 = v128.load(pm), m1 = v128.load(pm, 16);
    let s = v128.load32_splat(pa);
    c00 = madd(s, m0, c00);
    c01 = madd(s, m1, c01);
    s = v128.load32_splat(pa, 4);
    c10 = madd(s, m0, c10);
    c11 = madd(s, m1, c11);
    s = v128.load32_splat(pa, 8);
    c20 = madd(s, m0, c20);
    c21 = madd(s, m1, c21);
    s = v128.load32_splat(pa, 12);
    c30 = madd(s, m0, c30);
    c31 = madd(s, m1, c31);
    pa += 16;
    pm += 32;
  }
  v128.store(y0, c00); v128.store(y0, c01, 16);
  v128.store(y1, c10); v128.store(y1, c11, 16);
  v128.store(y2, c20); v128.store(y2, c21, 16);
  v128.store(y3, c30); v128.store(y3, c31, 16);
}

/** micro4x8 for two rows, over 16 columns held in two m panels. */
// @ts-ignore: decorator
@inline function micro2x16(y0: usize, os: usize, pa: usize, pm: usize, pn: usize, kc: i32): void {
  const y1 = y0 + os;
  let c00 = v128.load(y0), c01 = v128.load(y0, 16), c02 = v128.load(y0, 32), c03 = v128.load(y0, 48);
  let c10 = v128.load(y1), c11 = v128.load(y1, 16), c12 = v128.load(y1, 32), c13 = v128.load(y1, 48);
  const end = pm + (<usize>kc << 5);
  while (pm < end) {
    const m0 = v128.load(pm), m1 = v128.load(pm, 16), m2 = v128.load(pn), m3 = v128.load(pn, 16);
    let s = v128.load32_splat(pa);
    c00 = madd(s, m0, c00);
    c01 = madd(s, m1, c01);
    c02 = madd(s, m2, c02);
    c03 = madd(s, m3, c03);
    s = v128.load32_splat(pa, 4);
    c10 = madd(s, m0, c10);
    c11 = madd(s, m1, c11);
    c12 = madd(s, m2, c12);
    c13 = madd(s, m3, c13);
    pa += 16;
    pm += 32;
    pn += 32;
  }
  v128.store(y0, c00); v128.store(y0, c01, 16); v128.store(y0, c02, 32); v128.store(y0, c03, 48);
  v128.store(y1, c10); v128.store(y1, c11, 16); v128.store(y1, c12, 32); v128.store(y1, c13, 48);
}

/** micro2x16 for one row. */
// @ts-ignore: decorator
@inline function micro1x16(y0: usize, pa: usize, pm: usize, pn: usize, kc: i32): void {
  let c00 = v128.load(y0), c01 = v128.load(y0, 16), c02 = v128.load(y0, 32), c03 = v128.load(y0, 48);
  const end = pm + (<usize>kc << 5);
  while (pm < end) {
    const s = v128.load32_splat(pa);
    c00 = madd(s, v128.load(pm), c00);
    c01 = madd(s, v128.load(pm, 16), c01);
    c02 = madd(s, v128.load(pn), c02);
    c03 = madd(s, v128.load(pn, 16), c03);
    pa += 16;
    pm += 32;
    pn += 32;
  }
  v128.store(y0, c00); v128.store(y0, c01, 16); v128.store(y0, c02, 32); v128.store(y0, c03, 48);
}

/** micro4x8 for one row, whose a values are 16 bytes apart in the packed panel. */
// @ts-ignore: decorator
@inline function micro1x8(y0: usize, pa: usize, pm: usize, kc: i32): void {
  let c00 = v128.load(y0), c01 = v128.load(y0, 16);
  const end = pm + (<usize>kc << 5);
  while (pm < end) {
    const s = v128.load32_splat(pa);
    c00 = madd(s, v128.load(pm), c00);
    c01 = madd(s, v128.load(pm, 16), c01);
    pa += 16;
    pm += 32;
  }
  v128.store(y0, c00); v128.store(y0, c01, 16);
}

/** rankUpdate's columns j0 <= j < N (fewer than 8), unpacked: one vector wide, then scalar. */
function rankUpdateColumns(out: usize, os: usize, a: usize, ar: usize, ak: usize, m: usize, ms: usize, R: i32, K: i32, j0: i32, N: i32): void {
  const kEnd = <usize>K;
  const nv4 = <usize>(N & ~3) << 2;
  let j = <usize>j0 << 2;
  for (; j < nv4; j += 16) {
    let r = 0;
    for (; r + 4 <= R; r += 4) {
      const y0 = out + <usize>r * os + j, y1 = y0 + os, y2 = y1 + os, y3 = y2 + os;
      let c0 = v128.load(y0), c1 = v128.load(y1), c2 = v128.load(y2), c3 = v128.load(y3);
      let pa = a + <usize>r * ar;
      let pm = m + j;
      for (let k: usize = 0; k < kEnd; k++) {
        const m0 = v128.load(pm);
        c0 = madd(v128.load32_splat(pa), m0, c0);
        c1 = madd(v128.load32_splat(pa + ar), m0, c1);
        c2 = madd(v128.load32_splat(pa + 2 * ar), m0, c2);
        c3 = madd(v128.load32_splat(pa + 3 * ar), m0, c3);
        pa += ak;
        pm += ms;
      }
      v128.store(y0, c0); v128.store(y1, c1); v128.store(y2, c2); v128.store(y3, c3);
    }
    for (; r < R; r++) {
      const y0 = out + <usize>r * os + j;
      let c0 = v128.load(y0);
      let pa = a + <usize>r * ar;
      let pm = m + j;
      for (let k: usize = 0; k < kEnd; k++) {
        c0 = madd(v128.load32_splat(pa), v128.load(pm), c0);
        pa += ak;
        pm += ms;
      }
      v128.store(y0, c0);
    }
  }
  const nBytes = <usize>N << 2;
  for (; j < nBytes; j += 4) {
    for (let r = 0; r < R; r++) {
      let s: f32 = 0;
      let pa = a + <usize>r * ar;
      let pm = m + j;
      for (let k: usize = 0; k < kEnd; k++) {
        s += load<f32>(pa) * load<f32>(pm);
        pa += ak;
        pm += ms;
      }
      const y = out + <usize>r * os + j;
      store<f32>(y, load<f32>(y) + s);
    }
  }
}

/** dweight (OC, C) += dout (B, OC)^T @ inp (B, C); dbias (OC) += column sums of dout */
export function linear_backward_weight(dweight: usize, dbias: usize, dout: usize, inp: usize, B: i32, C: i32, OC: i32): void {
  const os = <usize>OC << 2;
  rankUpdate(dweight, <usize>C << 2, dout, 4, os, inp, <usize>C << 2, OC, B, C);
  const ov = <usize>(OC & ~3) << 2;
  for (let b = 0; b < B; b++) {
    const g = dout + <usize>b * os;
    let o: usize = 0;
    for (; o < ov; o += 16) v128.store(dbias + o, f32x4.add(v128.load(dbias + o), v128.load(g + o)));
    for (; o < os; o += 4) store<f32>(dbias + o, load<f32>(dbias + o) + load<f32>(g + o));
  }
}

/** dinp (B, C) += dout (B, OC) @ weight (OC, C) */
export function linear_backward_input(dinp: usize, dout: usize, weight: usize, B: i32, C: i32, OC: i32): void {
  rankUpdate(dinp, <usize>C << 2, dout, <usize>OC << 2, 4, weight, <usize>C << 2, B, OC, C);
}

// ---------------------------------------------------------------------------------------------------
// The ceiling the products above are measured against (npm run bench): 12 independent chains of f32x4
// multiply-adds, a = a * k + m, no loads, so that nothing but the SIMD units limits it. Every step needs
// the chain's previous value, so no compiler can hoist or shorten it (WebAssembly forbids reassociating
// floats), and k and m are arguments, so none can fold them. With madd as built: a mul and an add, or one
// relaxed_madd in kernels-fma.wasm; 2 flops a lane either way, 8 a vector, 96 an iteration.

/** `iters` iterations of 12 independent f32x4 multiply-add chains; returns a lane of their sum (so that the
 *  work cannot be optimised away). k below 1 keeps the chains at m / (1 - k), away from overflow and
 *  subnormals. */
export function simd_peak(iters: i32, x: f32, y: f32): f32 {
  const k = f32x4.splat(x);
  const m = f32x4.splat(y);
  let a0 = f32x4.splat(0), a1 = f32x4.splat(1), a2 = f32x4.splat(2), a3 = f32x4.splat(3);
  let a4 = f32x4.splat(4), a5 = f32x4.splat(5), a6 = f32x4.splat(6), a7 = f32x4.splat(7);
  let a8 = f32x4.splat(8), a9 = f32x4.splat(9), a10 = f32x4.splat(10), a11 = f32x4.splat(11);
  for (let i = 0; i < iters; i++) {
    a0 = madd(a0, k, m); a1 = madd(a1, k, m); a2 = madd(a2, k, m); a3 = madd(a3, k, m);
    a4 = madd(a4, k, m); a5 = madd(a5, k, m); a6 = madd(a6, k, m); a7 = madd(a7, k, m);
    a8 = madd(a8, k, m); a9 = madd(a9, k, m); a10 = madd(a10, k, m); a11 = madd(a11, k, m);
  }
  const s = f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7)),
    f32x4.add(f32x4.add(a8, a9), f32x4.add(a10, a11))));
  return f32x4.extract_lane(s, 0);
}
