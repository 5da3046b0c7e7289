// The pool's worker: maps the shared parameters, gradient slots and stats once at start-up, maps each
// dataset the first time a task names it, and computes shards into their slots. Its one export is the
// piscina task handler.

import { workerData } from 'node:worker_threads';
import {
  kDone, kNeedDataset, kStatComputeMs, kStatCorrect, kStatCounted, kStatLossSum, kStatRows, kStatWeightSum, STAT_FIELDS,
  type DatasetBuffers, type ShardTask, type TaskResult, type WorkerInit,
} from '../shared/contract.js';
import { isSoftmaxLoss, linearViews, paramLayout } from '../shared/model.js';
import { createScratch, forward, lossAndBackward, probabilities } from './shard.js';

const init = workerData as WorkerInit;
const model = init.model;
const loss = init.loss;
const perRowLoss = isSoftmaxLoss(loss.name);
const P = paramLayout(model.layers).total;
const K = model.layers[model.layers.length - 1];
const params = linearViews(new Float32Array(init.params), model.layers);
const gradSlots = Array.from({ length: init.slots }, (_, s) => {
  const flat = new Float32Array(init.grads, s * P * 4, P);
  return { flat, views: linearViews(flat, model.layers) };
});
const stats = new Float64Array(init.stats);
const scratch = createScratch(model, init.maxShardRows);

interface MappedDataset {
  rows: number;
  features: number;
  x: Float32Array;
  yIndex: Int32Array | null;
  yValue: Float32Array | null;
  order: Int32Array;
  out: Float32Array | null;
  lossOut: Float32Array | null;
}

// A few datasets stay mapped (train, validation, a prediction batch); an evicted one is simply asked
// for again, so the cache bounds memory without any coordination.
const MAX_MAPPED = 8;
const datasets = new Map<number, MappedDataset>();

function mapDataset(d: DatasetBuffers): MappedDataset {
  return {
    rows: d.rows,
    features: d.features,
    x: new Float32Array(d.x),
    yIndex: d.y !== null && d.targets === 'index' ? new Int32Array(d.y) : null,
    yValue: d.y !== null && d.targets === 'values' ? new Float32Array(d.y) : null,
    order: new Int32Array(d.order),
    out: d.out !== null ? new Float32Array(d.out) : null,
    lossOut: d.lossOut !== null ? new Float32Array(d.lossOut) : null,
  };
}

/** Copies the rows at positions [p, p + B) of the dataset's order into scratch (x and targets). */
function gather(d: MappedDataset, p: number, B: number): void {
  const D = d.features;
  const { x, yIndex, yValue } = scratch;
  for (let i = 0; i < B; i++) {
    const row = d.order[p + i];
    const src = row * D;
    const dst = i * D;
    for (let c = 0; c < D; c++) x[dst + c] = d.x[src + c];
    if (d.yIndex !== null) yIndex[i] = d.yIndex[row];
    if (d.yValue !== null) {
      for (let k = 0; k < K; k++) yValue[i * K + k] = d.yValue[row * K + k];
    }
  }
}

export default function runShards(task: ShardTask): TaskResult {
  let d = datasets.get(task.dataset);
  if (d === undefined) {
    if (task.data === undefined) return kNeedDataset;
    if (datasets.size >= MAX_MAPPED) datasets.delete(datasets.keys().next().value as number);
    d = mapDataset(task.data);
    datasets.set(task.dataset, d);
  }
  const hasTargets = d.yIndex !== null || d.yValue !== null;
  const indexTargets = d.yIndex !== null;
  for (let p = task.start, slot = task.firstSlot; p < task.end; p += task.shardRows, slot++) {
    const B = Math.min(task.shardRows, task.end - p);
    const t0 = performance.now();
    gather(d, p, B);
    forward(scratch, model, params, B);
    const row = slot * STAT_FIELDS;
    stats.fill(0, row, row + STAT_FIELDS);
    stats[row + kStatRows] = B;
    if (task.kind === 'grad' || hasTargets) {
      const g = task.kind === 'grad' ? gradSlots[slot] : null;
      g?.flat.fill(0);
      const sums = lossAndBackward(scratch, model, params, g === null ? null : g.views, B, loss, indexTargets);
      stats[row + kStatLossSum] = sums.lossSum;
      stats[row + kStatWeightSum] = sums.weightSum;
      stats[row + kStatCorrect] = sums.correct;
      stats[row + kStatCounted] = sums.counted;
      if (d.lossOut !== null) {
        const n = perRowLoss ? B : B * K;
        d.lossOut.set(scratch.losses.subarray(0, n), perRowLoss ? p : p * K);
      }
    }
    if (task.kind === 'forward' && d.out !== null) {
      // Each row's probabilities go to its position, so the output follows the order buffer.
      const probs = scratch.probs;
      probabilities(probs, scratch, model, B, K);
      d.out.set(probs.subarray(0, B * K), p * K);
    }
    stats[row + kStatComputeMs] = performance.now() - t0;
  }
  return kDone;
}
