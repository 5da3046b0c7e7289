// The errors a failed step ends fit() with, worded for the user: which step, which shard, which samples
// (by the loader's row names: 'train.csv line 12'), and what to change.

import { NonfiniteError, ShardFailure, WorkerTimeout } from '../errors.js';
import type { SharedDataset } from '../data/data.js';
import type { BatchSums } from '../../shared/step.js';

export type RowName = (row: number) => string;

/** Where a step stands, for messages: `step 12 (epoch 2, batch 3 of 126)`. */
export interface StepPlace {
  step: number;
  epoch: number;
  batch: number;
  batches: number;
}

/** A step as its errors name it: where it stands, and the data its samples are rows of. */
export interface StepSite {
  data: SharedDataset;
  rowName: RowName;
  place: StepPlace;
}

export function placeText(p: StepPlace): string {
  return `step ${p.step} (epoch ${p.epoch}, batch ${p.batch} of ${p.batches})`;
}

/** The first few of a list, then '...' (and how many in all, when `count`) if there are more. */
function firstFew(items: string[], few: number, count = false): string {
  if (items.length <= few) return items.join(', ');
  return `${items.slice(0, few).join(', ')}, ...${count ? ` (${items.length} in all)` : ''}`;
}

/**
 * The error for a step whose loss or gradient was not finite (nothing was applied): each bad shard with
 * the samples whose loss is not finite, or, when every loss is finite, the samples of the shard whose
 * gradient is not.
 */
export function nonfiniteError(
  { data, rowName, place }: StepSite,
  { sums, gradNorm, lr, badShards }: { sums: BatchSums; gradNorm: number; lr: number; badShards: { shard: number; positions: [number, number] }[] },
): NonfiniteError {
  const perSample = data.lossOut;
  const K = perSample !== null && perSample.length > data.rows ? perSample.length / data.rows : 1;
  const bad = badShards.map((sh) => {
    const [p0, p1] = sh.positions;
    const rows = Array.from(data.order.subarray(p0, p1));
    const named: string[] = [];
    for (let p = p0; p < p1 && perSample !== null; p++) {
      for (let k = 0; k < K; k++) {
        const v = perSample[p * K + k];
        if (!Number.isFinite(v)) named.push(`${rowName(data.order[p])} (loss ${v}${K > 1 ? ` at output ${k}` : ''})`);
      }
    }
    const what = named.length > 0
      ? `non-finite loss in ${named.length} sample${named.length > 1 ? 's' : ''}: ${firstFew(named, 5)}`
      : `a finite loss but a non-finite gradient, over samples ${firstFew(rows.map(rowName), 5)}`;
    return { shard: sh.shard, positions: sh.positions, rows, text: `shard ${sh.shard} (positions ${p0}-${p1 - 1} of the epoch's order): ${what}` };
  });
  const message =
    `${placeText(place)} gave a non-finite ${Number.isFinite(sums.lossSum) ? 'gradient' : `loss (${sums.lossSum})`} ` +
    `(gradient norm ${gradNorm}); the update was not applied, so the parameters keep their values from before this step` +
    bad.map((b) => `\n  ${b.text}`).join('');
  const hint =
    `the usual causes are a learning rate too high for this model (options.lr, now ${lr}), inputs that are not ` +
    'normalised (standardize them, or scale them to about [-1, 1]), or an extreme class or positive weight; ' +
    "options.clipGradNorm bounds the steps. To skip such steps and go on, set options.onNonfinite to 'skip'";
  return new NonfiniteError(message, place.step, bad.map(({ shard, positions, rows }) => ({ shard, positions, rows })), hint);
}

/** The coordinator's account of a shard whose workers kept failing, as the error fit() rejects with. */
export function shardFailure(
  f: { shard: number; positions: [number, number]; attempts: number; cause: Error },
  { data, rowName, place }: StepSite, { shardRetries, workerTimeout }: { shardRetries: number; workerTimeout: number },
): ShardFailure {
  const [p0, p1] = f.positions;
  const rows = Array.from(data.order.subarray(p0, p1), rowName);
  const what = f.shard >= 0 ? `shard ${f.shard} of ${placeText(place)}` : `the gradient reduction and update of ${placeText(place)}`;
  const samples = `its samples: positions ${p0}-${p1 - 1} of the order, ${firstFew(rows, 8, true)}`;
  if (f.cause instanceof WorkerTimeout) {
    // The cause first: too short a timeout stops healthy workers, and then no shard is to blame.
    return new ShardFailure(
      `${what}: ${f.cause.message}, on ${f.attempts} workers in a row (options.shardRetries is ${shardRetries}); ${samples}`,
      f.shard, f.positions, f.attempts, f.cause,
      `a worker that hangs on this shard, or an options.workerTimeout too short for a step of this model (it is ${workerTimeout} ms; ` +
        'the default is 600000): raise it, or look for what the shard does that never ends',
    );
  }
  return new ShardFailure(
    `${what} failed on ${f.attempts} workers in a row (options.shardRetries is ${shardRetries}), so it ` +
    `is not bad luck but something in the shard or the code; ${samples}. The last worker error: ${f.cause.stack ?? f.cause.message}`,
    f.shard, f.positions, f.attempts, f.cause,
  );
}
