// The order an epoch visits the training rows in (src/main/core/order.ts): a permutation of the rows, a new one
// every epoch, made again from (seed, epoch) alone, and the identity without shuffling. References: the
// rows 0..N-1 sorted back, orders compared pairwise, and counts over many epochs against the uniform
// distribution.

import { describe, expect, it } from 'vitest';
import { epochOrder } from '../src/main/core/order.js';

const N = 50;

function order(seed: number | null, epoch: number, n = N): number[] {
  const a = new Int32Array(n);
  epochOrder(a, seed, epoch);
  return Array.from(a);
}

const identity = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('epochOrder', () => {
  it('makes each epoch visit every row exactly once', () => {
    for (const seed of [0, 1, 12345, 0xffffffff]) {
      for (let epoch = 1; epoch <= 5; epoch++) {
        expect([...order(seed, epoch)].sort((a, b) => a - b), `seed ${seed} epoch ${epoch}`).toEqual(identity(N));
      }
    }
  });

  it('visits the rows in a different order in every epoch of a run', () => {
    // 50! orders: two shuffles that agree by chance would be a bug, not luck
    const epochs = Array.from({ length: 8 }, (_, e) => order(7, e + 1).join(','));
    for (let a = 0; a < epochs.length; a++) {
      for (let b = a + 1; b < epochs.length; b++) expect(epochs[a], `epochs ${a + 1} and ${b + 1}`).not.toBe(epochs[b]);
    }
  });

  it('makes the same order again from the same seed and epoch, whatever the array held before', () => {
    const first = order(42, 3);
    const reused = new Int32Array(N).fill(9);
    epochOrder(reused, 42, 5);
    epochOrder(reused, 42, 3);
    expect(Array.from(reused)).toEqual(first);
    expect(order(42, 3)).toEqual(first);
  });

  it('gives different orders for different seeds in the same epoch', () => {
    const seeds = [0, 1, 2, 3, 1000, 0xffffffff].map((seed) => order(seed, 1).join(','));
    for (let a = 0; a < seeds.length; a++) {
      for (let b = a + 1; b < seeds.length; b++) expect(seeds[a], `seeds #${a} and #${b}`).not.toBe(seeds[b]);
    }
  });

  it('does not give one seed the order of another seed in another epoch', () => {
    // e.g. a seed + epoch mix would give seed 1's epoch 2 the order of seed 2's epoch 1
    const seen = new Map<string, string>();
    for (let seed = 0; seed < 6; seed++) {
      for (let epoch = 1; epoch <= 6; epoch++) {
        const key = order(seed, epoch).join(',');
        expect(seen.get(key), `seed ${seed} epoch ${epoch}`).toBeUndefined();
        seen.set(key, `seed ${seed} epoch ${epoch}`);
      }
    }
  });

  it('keeps the rows in order when the seed is null, in every epoch', () => {
    for (const epoch of [1, 2, 10]) expect(order(null, epoch)).toEqual(identity(N));
    expect(order(null, 1, 0)).toEqual([]);
  });

  it('shuffles with seed 0: only null turns shuffling off', () => {
    expect(order(0, 1)).not.toEqual(identity(N));
  });

  it('puts every row at every position equally often over many epochs', () => {
    // 3000 epochs of 5 rows: each (row, position) pair is expected 600 times, standard deviation
    // sqrt(3000 * 0.2 * 0.8) ~ 22; a biased shuffle (one that never leaves a row in place, or moves
    // only some) misses by far more than the 6 standard deviations allowed.
    const n = 5;
    const epochs = 3000;
    const counts = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    const a = new Int32Array(n);
    for (let epoch = 1; epoch <= epochs; epoch++) {
      epochOrder(a, 3, epoch);
      for (let pos = 0; pos < n; pos++) counts[a[pos]][pos]++;
    }
    const expected = epochs / n;
    const sd = Math.sqrt(epochs * (1 / n) * (1 - 1 / n));
    for (let row = 0; row < n; row++) {
      for (let pos = 0; pos < n; pos++) {
        expect(Math.abs(counts[row][pos] - expected), `row ${row} at position ${pos}: ${counts[row][pos]} times`).toBeLessThan(6 * sd);
      }
    }
  });
});
