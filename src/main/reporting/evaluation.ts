// What evaluate() reports beyond the loss: the counts a forward pass's probabilities give against the
// targets, per class (for report.ts's precision, recall and F1), and the confusion matrix where it is
// small enough to be worth returning. Memory grows with rows and classes, never with classes squared.

import type { SharedDataset } from '../data/data.js';
import { classCounts, type ClassCounts } from './report.js';
import { argmaxRow } from '../../shared/kernels.js';
import type { LossSpec } from '../../shared/losses.js';
import { isSoftmaxLoss, type ModelConfig } from '../../shared/model.js';

/** The most classes for which evaluate() returns the K x K confusion matrix (1,048,576 cells at 1,024
 *  classes, about 8 MB as JavaScript numbers); with more, `confusion` is null and the report comes from
 *  per-class counts alone. */
export const MAX_CONFUSION_CLASSES = 1024;

/**
 * The per-class counts of an evaluation and its confusion matrix counts[true][predicted], from the
 * probabilities in `data.out` (N, K) (in the order's positions). Softmax losses: the true class is the
 * index, or the argmax of probability targets (ignored rows skipped), and the matrix is K x K, or null
 * above MAX_CONFUSION_CLASSES. Sigmoid losses (thresholds 0.5): one 2 x 2 matrix per output; `confusion`
 * is the matrix of a single output (its two classes are reported) and null for several (each output's
 * positive class is reported).
 */
export function evaluationCounts(data: SharedDataset, model: ModelConfig, loss: LossSpec): { counts: ClassCounts; confusion: number[][] | null } {
  const K = model.layers[model.layers.length - 1];
  const out = data.out as Float32Array;
  if (isSoftmaxLoss(model.loss)) {
    const counts: ClassCounts = { tp: new Float64Array(K), predicted: new Float64Array(K), support: new Float64Array(K) };
    const m = K <= MAX_CONFUSION_CLASSES ? Array.from({ length: K }, () => new Array<number>(K).fill(0)) : null;
    for (let i = 0; i < data.rows; i++) {
      const row = data.order[i];
      const t = data.labels !== null ? data.labels[row] : argmaxRow(data.values as Float32Array, row, K);
      if (data.labels !== null && t === loss.ignoreIndex) continue;
      const p = argmaxRow(out, i, K);
      counts.support[t]++;
      counts.predicted[p]++;
      if (t === p) counts.tp[t]++;
      if (m !== null) m[t][p]++;
    }
    return { counts, confusion: m };
  }
  const y = data.values as Float32Array;
  const ms = Array.from({ length: K }, () => [[0, 0], [0, 0]]);
  for (let i = 0; i < data.rows; i++) {
    const row = data.order[i];
    for (let k = 0; k < K; k++) ms[k][y[row * K + k] >= 0.5 ? 1 : 0][out[i * K + k] > 0.5 ? 1 : 0]++;
  }
  return { counts: classCounts(ms), confusion: K === 1 ? ms[0] : null };
}
