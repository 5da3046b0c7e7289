// The order an epoch visits the training rows in: identity without shuffling, else a permutation
// seeded by (seed, epoch) alone, so that any epoch's order can be made again (a resumed run redoes it).

import { Rng } from '../../shared/rng.js';

/** Fills `order` (N) with the epoch's visiting order: 0..N-1, shuffled from (seed, epoch) unless seed
 *  is null. */
export function epochOrder(order: Int32Array, seed: number | null, epoch: number): void {
  for (let i = 0; i < order.length; i++) order[i] = i;
  if (seed !== null) new Rng((seed ^ Math.imul(epoch, 0x9e3779b1)) >>> 0).shuffle(order);
}
