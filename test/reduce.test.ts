// The workers' gradient reduction: its fused loops must give, bit for bit, what adding the slots
// one pass at a time in slot order gives (the definition the determinism promise rests on).

import { describe, expect, it } from 'vitest';
import { sumSlots } from '../src/shared/step.js';
import { Rng } from '../src/shared/rng.js';
import { sameBits } from './helpers.js';

/**
 * 8 slots of P float32 values whose double-precision sum depends on the order of addition, even after
 * the division and the rounding to float32: at each element every slot holds +B, -B (B from 1e4 to 2e8,
 * the same for the element) or a small value (|x| from ~1e-8 to 1), so whether the big ones cancel
 * before or after a small one is added decides how much of the small one survives. (Values of different
 * magnitudes alone are not enough: a double holds the exact sum of a few float32s unless they span over
 * 53 bits, and the float32 rounding hides a last-bit difference of the double.)
 */
function orderSensitiveSlots(seed: number, P: number): Float32Array[] {
  const rng = new Rng(seed);
  const big = Float32Array.from({ length: P }, () => (1 + rng.nextFloat()) * 10 ** (4 + rng.nextInt(5)));
  return Array.from({ length: 8 }, () => Float32Array.from({ length: P }, (_, i) => {
    const role = rng.nextInt(3);
    return role === 2 ? rng.uniform(1) * 10 ** -rng.nextInt(9) : role === 0 ? big[i] : -big[i];
  }));
}

/** f32(combine(the n slots' values at i) / divisor) per element, combine adding them in double in some
 *  order of its own. */
function sumBy(slots: Float32Array[], n: number, divisor: number, combine: (v: number[]) => number): Float32Array {
  const P = slots[0].length;
  const out = new Float32Array(P);
  for (let i = 0; i < P; i++) out[i] = combine(slots.slice(0, n).map((s) => s[i])) / divisor;
  return out;
}

/** Elements where a and b differ in their bits. */
function differingElements(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) d++;
  return d;
}

describe('sumSlots', () => {
  for (let n = 1; n <= 7; n++) {
    it(`adds ${n} slot${n > 1 ? 's' : ''} in slot order in double precision, then divides`, () => {
      const P = 1001;
      // big values that cancel among small ones, so that a different order would round differently
      // (proved by the tests below)
      const slots = orderSensitiveSlots(n, P);
      const reference = new Float32Array(P);
      const acc = new Float64Array(P);
      for (let s = 0; s < n; s++) for (let i = 0; i < P; i++) acc[i] += slots[s][i];
      for (let i = 0; i < P; i++) reference[i] = acc[i] / 37;
      const out = new Float32Array(P);
      sumSlots(out, slots, n, 37, new Float64Array(P));
      expect(sameBits(out, reference)).toBe(true);
      // and by ranges, as the workers do it, with a scratch only as long as a range
      const pieces = new Float32Array(P);
      for (let from = 0; from < P; from += 300) sumSlots(pieces, slots, n, 37, new Float64Array(300), from, Math.min(from + 300, P));
      expect(sameBits(pieces, reference)).toBe(true);
    });
  }
});

// A reordered sumSlots passes the tests above only if their data cannot tell the orders apart: these show
// it can, on the reference itself, for every slot count where the order is a choice (two values add the
// same either way).
describe('the sumSlots test data makes the order of addition visible', () => {
  const P = 1001;
  const reorderings: [string, number, (v: number[]) => number][] = [
    ['adding the slots in reverse order', 3, (v) => v.reduceRight((s, x) => s + x, 0)],
    ['adding the second and third slots first', 3, (v) => v.slice(3).reduce((s, x) => s + x, v[0] + (v[1] + v[2]))],
    ['adding the slots in pairs, (s0 + s1) + (s2 + s3) + ...', 4, (v) => v.slice(4).reduce((s, x) => s + x, (v[0] + v[1]) + (v[2] + v[3]))],
    ['adding the first slot last', 3, (v) => v.slice(1).reduce((s, x) => s + x, 0) + v[0]],
  ];
  for (const [how, from, combine] of reorderings) {
    for (let n = from; n <= 7; n++) {
      it(`${how} changes the bits of some elements of ${n} slots' divided sum`, () => {
        const slots = orderSensitiveSlots(n, P);
        const inSlotOrder = sumBy(slots, n, 37, (v) => v.reduce((s, x) => s + x, 0)); // the reference above
        const reordered = sumBy(slots, n, 37, combine);
        const differ = differingElements(inSlotOrder, reordered);
        expect(differ, `${differ} of ${P} elements differ`).toBeGreaterThan(0);
      });
    }
  }
});
