// predict's float32 text: the shortest decimal that reads back as the same float32, compared with an
// exact search written here in BigInt arithmetic (for 1, 2, ... 9 significant digits, the two decimals
// of that length around the value, kept when Number then Math.fround gives the value back, the nearer
// one, halfway: the larger), over random bit patterns, random probabilities and the edges: subnormals,
// powers of two and of ten and their neighbours, the largest float32, exact halfway cases.

import { describe, expect, it } from 'vitest';
import { shortestFloat32 } from '../src/cli/float32-text.js';
import { Rng } from '../src/shared/rng.js';

const f32 = new Float32Array(1);
const bits = new Uint32Array(f32.buffer);
const ofBits = (b: number): number => ((bits[0] = b >>> 0), f32[0]);
const bitsOf = (v: number): number => ((f32[0] = v), bits[0]);

/** v (a positive finite float32) as the exact fraction num / den. */
function exact(v: number): { num: bigint; den: bigint } {
  const b = bitsOf(v);
  const field = b >>> 23;
  const m = BigInt((b & 0x7fffff) + (field === 0 ? 0 : 0x800000));
  const e = Math.max(field, 1) - 150;
  return e >= 0 ? { num: m << BigInt(e), den: 1n } : { num: m, den: 1n << BigInt(-e) };
}

/** The reference: the exact search, digit count by digit count. */
function reference(v: number): string {
  if (v === 0 || !Number.isFinite(v)) return String(v);
  if (v < 0) return `-${reference(-v)}`;
  const { num, den } = exact(v);
  // k: 10^k <= v < 10^(k+1), exactly
  let k = Math.floor(Math.log10(v));
  const atLeast = (k: number): boolean => (k >= 0 ? num >= den * 10n ** BigInt(k) : num * 10n ** BigInt(-k) >= den);
  while (!atLeast(k)) k--;
  while (atLeast(k + 1)) k++;
  for (let n = 1; n <= 9; n++) {
    const p = k + 1 - n;
    const floor = p >= 0 ? num / (den * 10n ** BigInt(p)) : (num * 10n ** BigInt(-p)) / den;
    const ok = [floor, floor + 1n].filter((c) => c > 0n && Math.fround(Number(`${c}e${p}`)) === v);
    if (ok.length === 0) continue;
    let c = ok[0];
    if (ok.length === 2) {
      // 2v against (2 floor + 1) * 10^p: above the midpoint (or on it), the larger
      const twice = p >= 0 ? 2n * num : 2n * num * 10n ** BigInt(-p);
      const mid = p >= 0 ? (2n * floor + 1n) * 10n ** BigInt(p) * den : (2n * floor + 1n) * den;
      c = twice >= mid ? floor + 1n : floor;
    }
    return String(Number(`${c}e${p}`));
  }
  throw new Error(`no decimal of 9 digits reads back as ${v}`);
}

function mismatches(values: Iterable<number>): string[] {
  const bad: string[] = [];
  for (const v of values) {
    const got = shortestFloat32(v);
    const want = reference(v);
    if (got !== want) bad.push(`${v}: ${got}, expected ${want}`);
  }
  return bad;
}

describe('shortestFloat32', () => {
  const rng = new Rng(22);

  it('agrees with the exact search on 100,000 random bit patterns', () => {
    const values: number[] = [];
    while (values.length < 100_000) {
      const v = ofBits(Math.floor(rng.nextFloat() * 2 ** 32));
      if (Number.isFinite(v)) values.push(v);
    }
    expect(mismatches(values)).toEqual([]);
  });

  it('agrees on 50,000 random probabilities, and on small and tiny ones', () => {
    const values = Array.from({ length: 50_000 }, (_, i) => Math.fround(rng.nextFloat() * 10 ** -(i % 12)));
    expect(mismatches(values)).toEqual([]);
  });

  it('agrees on subnormals, powers of two and of ten and their neighbours, and the largest float32', () => {
    const values: number[] = [];
    for (let b = 1; b <= 2000; b++) values.push(ofBits(b)); // the smallest subnormals
    for (let b = 0x7fffff - 1000; b <= 0x800000 + 1000; b++) values.push(ofBits(b)); // the largest subnormals, the smallest normals
    for (let e = -149; e <= 127; e++) {
      const b = bitsOf(2 ** e);
      for (let d = -2; d <= 2; d++) values.push(ofBits(b + d));
    }
    for (let e = -45; e <= 38; e++) {
      const b = bitsOf(Math.fround(Number(`1e${e}`)));
      for (let d = -2; d <= 2; d++) values.push(ofBits(b + d));
    }
    for (let b = 0x7f7fffff - 1000; b <= 0x7f7fffff; b++) values.push(ofBits(b)); // up to the largest float32
    for (let i = 16777216 - 100; i <= 16777216 + 100; i++) values.push(Math.fround(i));
    values.push(...[1, 0.5, 0.1, 0.3, 1 / 3, 2 / 3, 0.999999, 0.9999999, 1e-7, 123456789, 0.00001, 1e21, 1e22].map(Math.fround));
    const bad = mismatches(values.filter(Number.isFinite));
    expect(bad).toEqual([]);
    expect(shortestFloat32(3.4028234663852886e38)).toBe('3.4028235e+38');
    expect(shortestFloat32(ofBits(1))).toBe('1e-45');
  });

  it('rounds a value exactly halfway between two shortest decimals to the larger, as toPrecision does', () => {
    // 210264.625 is a float32 whose neighbours are 1/64 away: 210264.62 and 210264.63 both read back
    expect(reference(210264.625)).toBe('210264.63');
    expect(shortestFloat32(210264.625)).toBe('210264.63');
    const halfway: number[] = [];
    for (let i = 0; halfway.length < 2000; i++) {
      const v = Math.fround(131072 + i * 0.125 + 0.0625 * (i % 2)); // 2^17 .. 2^18: steps of 1/64
      if (String(v).endsWith('5')) halfway.push(v);
    }
    expect(mismatches(halfway)).toEqual([]);
  });

  it('writes negative values with a sign, and 0, -0, infinities and NaN as String does', () => {
    const values = Array.from({ length: 1000 }, () => -Math.fround(rng.nextFloat() * 1000));
    expect(mismatches(values)).toEqual([]);
    expect([0, -0, Infinity, -Infinity, NaN].map(shortestFloat32)).toEqual(['0', '0', 'Infinity', '-Infinity', 'NaN']);
  });
});
