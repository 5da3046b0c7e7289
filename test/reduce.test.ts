// The workers' gradient reduction: its fused loops must give, bit for bit, what adding the slots
// one pass at a time in slot order gives (the definition the determinism promise rests on).

import { describe, expect, it } from 'vitest';
import { sumSlots } from '../src/shared/step.js';
import { Rng } from '../src/shared/rng.js';
import { sameBits } from './helpers.js';

describe('sumSlots', () => {
  for (let n = 1; n <= 7; n++) {
    it(`adds ${n} slot${n > 1 ? 's' : ''} in slot order in double precision, then divides`, () => {
      const rng = new Rng(n);
      const P = 1001;
      // values of very different magnitudes, so that a different order would round differently
      const slots = Array.from({ length: 8 }, () => Float32Array.from({ length: P }, () => rng.uniform(1) * 10 ** rng.nextInt(8)));
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
