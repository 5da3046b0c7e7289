// What the training script prints: the header, the data's loading time, one fixed line per epoch, the
// confusion matrix.

import type { EpochRecord, Trainer } from '../main/index.js';

/** One fixed line per epoch. */
export function epochLine(r: EpochRecord, epochs: number, valName = 'test'): string {
  const val = r.valLoss === undefined ? '' :
    `, ${valName} loss ${r.valLoss.toFixed(4)}, ${valName} accuracy ${(100 * (r.valAccuracy as number)).toFixed(2)}%`;
  return `epoch ${r.epoch}/${epochs}: train loss ${r.trainLoss.toFixed(4)}${val}, lr ${Number(r.lr.toPrecision(4))}, ` +
    `${Math.round(r.samplesPerSec)} samples/s, ${r.seconds.toFixed(2)} s\n`;
}

export function matrixText(m: number[][]): string {
  const w = Math.max(4, ...m.flat().map((v) => String(v).length + 1));
  const head = '     ' + m.map((_, k) => String(k).padStart(w)).join('') + '\n';
  return head + m.map((row, k) => String(k).padStart(4) + ' ' + row.map((v) => String(v).padStart(w)).join('')).join('\n') + '\n';
}

/** The run's header: the model, the optimizer, the pool, the data, and where a resumed run stands. */
export function headerText(
  trainer: Trainer, data: { description: string }, resumedFrom: string | undefined,
): string {
  const o = trainer.options;
  const p = trainer.progress;
  const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
  return `gradpool: MLP ${o.layers.join('-')} (${o.activation}), ${o.loss}, SGD lr ${o.lr} momentum ${o.momentum}, ` +
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
