// A model's initial parameters: nn.Linear's default initialisation, seeded.

import { linearViews } from '../../shared/model.js';
import { Rng } from '../../shared/rng.js';

/** Weight and bias uniform in +-1/sqrt(fan_in), drawn in layout order from Rng(seed). */
export function initParameters(params: Float32Array, layers: readonly number[], seed: number): void {
  const rng = new Rng(seed);
  for (const layer of linearViews(params, layers)) {
    const bound = 1 / Math.sqrt(layer.C);
    for (let i = 0; i < layer.weight.length; i++) layer.weight[i] = rng.uniform(bound);
    for (let i = 0; i < layer.bias.length; i++) layer.bias[i] = rng.uniform(bound);
  }
}
