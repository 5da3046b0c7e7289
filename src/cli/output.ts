// What the training script prints beside the epoch lines (the library's epochText): the header, the
// data's loading time and the
// confusion matrix.

import type { Trainer } from '../main/index.js';

/** Class names printed on one line at most: the rest is a count. */
export const SHOWN_NAMES = 10;

/** '"setosa", "versicolor", "virginica"'; past SHOWN_NAMES names, the first ones and how many more. */
export function namesText(names: readonly string[]): string {
  const shown = names.slice(0, SHOWN_NAMES).map((n) => JSON.stringify(n)).join(', ');
  return names.length > SHOWN_NAMES ? `${shown}, ... (${names.length - SHOWN_NAMES} more)` : shown;
}

/** The confusion matrix, rows and columns headed by class index, or by class name when given. */
export function matrixText(m: number[][], names?: readonly string[]): string {
  const label = (k: number): string => names?.[k] ?? String(k);
  const w = Math.max(4, ...m.flat().map((v) => String(v).length + 1), ...m.map((_, k) => label(k).length + 1));
  const lw = Math.max(4, ...m.map((_, k) => label(k).length));
  const head = ' '.repeat(lw + 1) + m.map((_, k) => label(k).padStart(w)).join('') + '\n';
  return head + m.map((row, k) => label(k).padStart(lw) + ' ' + row.map((v) => String(v).padStart(w)).join('')).join('\n') + '\n';
}

/** The optimizer and its settings, as the header shows them. */
function optimizerText(o: Trainer['options']): string {
  if (o.optimizer === 'sgd') return `SGD lr ${o.lr} momentum ${o.momentum}`;
  const name = o.optimizer === 'adam' ? 'Adam' : 'AdamW';
  return `${name} lr ${o.lr} betas ${o.betas.join(',')} weight decay ${o.weightDecay}${o.amsgrad ? ' amsgrad' : ''}`;
}

/** The run's header: the model, the optimizer, the pool, the data, and where a resumed run stands. */
export function headerText(
  trainer: Trainer, data: { description: string }, resumedFrom: string | undefined,
): string {
  const o = trainer.options;
  const p = trainer.progress;
  const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
  return `gradpool: MLP ${o.layers.join('-')} (${o.activation}), ${o.loss}, ${optimizerText(o)}, ` +
    `batch ${o.batchSize}, ${plural(o.workers, 'worker')} x ${plural(o.shards, 'shard')}, ${o.kernels} kernels, seed ${o.seed}\n` +
    (trainer.workersChoice === undefined ? '' : `workers: auto chose ${trainer.workersChoice.workers}: ${trainer.workersChoice.reason}\n`) +
    (o.schedule === null ? '' : `schedule: ${JSON.stringify(o.schedule)} per ${o.scheduleInterval}\n`) +
    `data: ${data.description}\n` +
    (p.epoch > 0 || p.batch > 0
      ? `resuming after epoch ${p.epoch}${p.batch > 0 ? ` and ${p.batch} batches of epoch ${p.epoch + 1}` : ''} (step ${p.step}) from ${resumedFrom}\n`
      : '');
}

/** How long reading the data took, and at what rate when files were read. */
export function loadingLine(loading: { seconds: number; bytes: number }): string {
  const { seconds, bytes } = loading;
  const size = bytes < 1e6 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;
  const rate = bytes === 0 ? '' : ` (${size}, ${(bytes / 1e6 / Math.max(seconds, 1e-6)).toFixed(1)} MB/s)`;
  return `data loaded in ${seconds.toFixed(2)} s${rate}\n`;
}
