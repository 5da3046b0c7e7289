// Float32 multiply-adds as the two builds of the WebAssembly kernels round them, for tests: fused (one
// rounding of a * b + c, as f32x4.relaxed_madd on a CPU with FMA) and unfused (the product rounded, then
// the sum), and the linear-layer products summed in wasm/kernels.ts's order with either. Two independent
// fused ones: fma32 (fast, in float64 with an exact error term) and fma32Exact (BigInt), which the tests
// hold against each other.

import { arch } from 'node:os';
import { readFileSync } from 'node:fs';

/** A float32 multiply-add: a * b + c rounded as one kernel step does. */
export type MulAdd = (a: number, b: number, c: number) => number;

/** Unfused: the product rounded to float32, then the sum (f32x4.add(c, f32x4.mul(a, b))). */
export const mulAdd32: MulAdd = (a, b, c) => Math.fround(c + Math.fround(a * b));

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float32 next to the float32 x, towards +Infinity (up) or -Infinity. */
function nextFloat32(x: number, up: boolean): number {
  f32[0] = x;
  if (x === 0) {
    u32[0] = up ? 1 : 0x80000001;
  } else if (x > 0 === up) {
    u32[0]++;
  } else {
    u32[0]--;
  }
  return f32[0];
}

/**
 * Fused: a * b + c rounded once to float32 (nearest, ties to even), for float32 a, b and c. In float64,
 * a * b is exact (48 significant bits), s = a * b + c is rounded, and e (TwoSum) is what that rounding
 * lost, exactly. Rounding s to float32 rounds the exact sum the same way unless s fell on a float32
 * midpoint that the exact sum is not on (a float32 midpoint is a float64 number, so no midpoint lies
 * strictly between the exact sum and its nearest float64 s): then e says which side the exact sum is on.
 */
export const fma32: MulAdd = (a, b, c) => {
  const p = a * b;
  const s = p + c;
  const bb = s - p;
  const e = (p - (s - bb)) + (c - bb);
  const r = Math.fround(s);
  if (e === 0 || r === s || !Number.isFinite(r)) return r;
  const other = nextFloat32(r, s > r);
  if (s - r !== other - s) return r; // not a midpoint
  return e > 0 === other > r ? other : r;
};

/** fma32 in exact integer arithmetic: every float32 is an integer multiple of 2^-149. For normal results. */
export function fma32Exact(a: number, b: number, c: number): number {
  const scaled = (x: number): bigint => BigInt(x * 2 ** 149);
  const n = scaled(a) * scaled(b) + (scaled(c) << 149n); // a * b + c in units of 2^-298
  if (n === 0n) return Math.fround(a * b + c); // signed zero as IEEE says
  const neg = n < 0n;
  const m = neg ? -n : n;
  const shift = BigInt(Math.max(m.toString(2).length - 24, 0));
  let q = m >> shift;
  if (shift > 0n) {
    const rem = m - (q << shift);
    const half = 1n << (shift - 1n);
    if (rem > half || (rem === half && (q & 1n) === 1n)) q++;
  }
  const v = Number(q) * 2 ** (Number(shift) - 298);
  return Math.fround(neg ? -v : v);
}

/**
 * Whether f32x4.relaxed_madd fuses on this machine: V8 emits a fused multiply-add on arm64 and on x64 CPUs
 * with FMA3, and a multiply and an add on other x64 CPUs (read from /proc/cpuinfo's flags).
 */
export function relaxedMaddFuses(): boolean {
  if (arch() === 'arm64') return true;
  try {
    return /^flags\s*:.*\bfma\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/**
 * out (B, OC) = inp (B, C) @ weight (OC, C)^T + bias in wasm/kernels.ts's order, for C a multiple of 4:
 * four partial sums per output (columns c = lane mod 4), each a chain of multiply-adds from 0, summed as
 * hsum4 does, (lane 0 + lane 2) + (lane 1 + lane 3), then the bias added.
 */
export function forwardInKernelOrder(madd: MulAdd, out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array, B: number, C: number, OC: number): void {
  const add = (x: number, y: number): number => Math.fround(x + y);
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < OC; o++) {
      const lanes = [0, 0, 0, 0];
      for (let c = 0; c < C; c++) lanes[c % 4] = madd(inp[b * C + c], weight[o * C + c], lanes[c % 4]);
      out[b * OC + o] = add(add(add(lanes[0], lanes[2]), add(lanes[1], lanes[3])), bias[o]);
    }
  }
}

/**
 * out[r, j] += sum over k of a(r, k) * m[k, j], one multiply-add at a time in k (rankUpdate's order for
 * columns j below the last multiple of 4), with out (R, N) and m (K, N) row-major.
 */
export function rankUpdateInKernelOrder(madd: MulAdd, out: Float32Array, a: (r: number, k: number) => number, m: Float32Array, R: number, K: number, N: number): void {
  for (let r = 0; r < R; r++) {
    for (let j = 0; j < N; j++) {
      let acc = out[r * N + j];
      for (let k = 0; k < K; k++) acc = madd(a(r, k), m[k * N + j], acc);
      out[r * N + j] = acc;
    }
  }
}

/**
 * What kernels: 'auto' should pick here, worked out from the built modules themselves: 'wasm-fma' where
 * the runtime validates kernels-fma.wasm, else 'wasm' where it validates kernels.wasm, else 'js'.
 */
export function expectedAutoKernels(): 'wasm-fma' | 'wasm' | 'js' {
  const wasm = (globalThis as unknown as { WebAssembly?: { validate(bytes: Uint8Array): boolean } }).WebAssembly;
  const validates = (file: string): boolean => wasm !== undefined && wasm.validate(readFileSync(new URL(`../src/shared/${file}`, import.meta.url)));
  if (validates('kernels-fma.wasm')) return 'wasm-fma';
  return validates('kernels.wasm') ? 'wasm' : 'js';
}
