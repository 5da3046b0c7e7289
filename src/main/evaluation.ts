// What evaluate() reports beyond the loss: the confusion matrices of a forward pass's probabilities
// against the targets, from which report.ts derives precision, recall and F1.

import type { SharedDataset } from './data.js';
import { argmaxRow } from '../shared/kernels.js';
import type { LossSpec } from '../shared/losses.js';
import { isSoftmaxLoss, type ModelConfig } from '../shared/model.js';

/**
 * Confusion matrices counts[true][predicted]: one K x K for softmax losses (true class: the index, or the
 * argmax of probability targets; ignored rows skipped), one 2 x 2 per output for sigmoid losses
 * (thresholds 0.5). `data.out` holds the probabilities (N, K) in the order's positions.
 */
export function confusionMatrices(data: SharedDataset, model: ModelConfig, loss: LossSpec): number[][][] {
  const K = model.layers[model.layers.length - 1];
  const out = data.out as Float32Array;
  if (isSoftmaxLoss(model.loss)) {
    const m = Array.from({ length: K }, () => new Array<number>(K).fill(0));
    for (let i = 0; i < data.rows; i++) {
      const row = data.order[i];
      const t = data.labels !== null ? data.labels[row] : argmaxRow(data.values as Float32Array, row, K);
      if (data.labels !== null && t === loss.ignoreIndex) continue;
      m[t][argmaxRow(out, i, K)]++;
    }
    return [m];
  }
  const y = data.values as Float32Array;
  const ms = Array.from({ length: K }, () => [[0, 0], [0, 0]]);
  for (let i = 0; i < data.rows; i++) {
    const row = data.order[i];
    for (let k = 0; k < K; k++) ms[k][y[row * K + k] >= 0.5 ? 1 : 0][out[i * K + k] > 0.5 ? 1 : 0]++;
  }
  return ms;
}
