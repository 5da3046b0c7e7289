// The contract between the coordinator (src/main) and the workers (src/worker): what each worker is
// given once at start-up, what a task says, and the layout of the shared buffers both sides read.
// Nothing else crosses threads: a task names a dataset and a range of rows, results go to shared slots.

import type { LossSpec } from './losses.js';
import type { ModelConfig } from './model.js';

/**
 * Given to every worker at start-up (piscina's workerData) and mapped once: the model, its parameters,
 * and the per-shard result slots. SharedArrayBuffers are shared, not copied, by postMessage.
 */
export interface WorkerInit {
  model: ModelConfig;
  /** The loss and its options (class weights, smoothing, ...), fixed for the pool's life. */
  loss: LossSpec;
  /** (P) float32 parameters, written only by the coordinator between steps. */
  params: SharedArrayBuffer;
  /** (S, P) float32: gradient slot s holds the gradient *sum* of shard s of the current batch. */
  grads: SharedArrayBuffer;
  /** (S, STAT_FIELDS) float64: per-shard sums, laid out by the kStat* indices below. */
  stats: SharedArrayBuffer;
  /** S: the number of shard slots. A batch is cut into at most S shards, whatever the worker count. */
  slots: number;
  /** Most rows a shard can have: each worker sizes its activation scratch from it once. */
  maxShardRows: number;
}

// Per-shard statistics, one Float64 row per slot. Sums, never means: the coordinator adds the rows in
// slot order and divides once by the batch's total weight, so every split gives the batch mean.
export const kStatLossSum = 0;
export const kStatWeightSum = 1;
export const kStatCorrect = 2;
export const kStatRows = 3;
/** Predictions scored for accuracy: rows not ignored (softmax losses) or rows x outputs (sigmoid). */
export const kStatCounted = 4;
/** Milliseconds the worker spent on the shard (gather, forward, loss, backward), for the step profile. */
export const kStatComputeMs = 5;
export const STAT_FIELDS = 6;

/**
 * A dataset in shared memory. The coordinator builds it once per dataset; a worker maps it the first
 * time a task names it and keeps the views for later tasks.
 */
export interface DatasetBuffers {
  id: number;
  /** N rows. */
  rows: number;
  /** D features per row (the model's layers[0]). */
  features: number;
  /** (N, D) float32 row-major features. */
  x: SharedArrayBuffer;
  /** What y holds: 'index', (N) int32 class indices; 'values', (N, K) float32 in [0, 1]; null, no
   *  targets (data to predict on). */
  targets: 'index' | 'values' | null;
  y: SharedArrayBuffer | null;
  /** (N) int32: the row visited at each position. The coordinator rewrites it before each epoch. */
  order: SharedArrayBuffer;
  /** (N, K) float32 output probabilities, written by 'forward' tasks when present. */
  out: SharedArrayBuffer | null;
  /** Per-sample losses, (N) for softmax losses or (N, K) for sigmoid ones (reduction 'none'), written
   *  by 'forward' tasks when present. */
  lossOut: SharedArrayBuffer | null;
}

/**
 * One unit of work: the rows at positions [start, end) of the dataset's order, cut into shards of
 * shardRows rows, shard j going to slot firstSlot + j. The cut and the slots depend only on the batch,
 * never on which worker runs the task, which is what makes results bit-identical for any worker count.
 */
export interface ShardTask {
  /** 'grad': loss stats and gradient sums. 'forward': loss stats (when the data has targets) and,
   *  when the dataset has an output buffer, probabilities. */
  kind: 'grad' | 'forward';
  dataset: number;
  /** Present only when the worker answered kNeedDataset for this dataset before. */
  data?: DatasetBuffers;
  start: number;
  end: number;
  shardRows: number;
  firstSlot: number;
}

/** A task's answer: kDone, or kNeedDataset when the worker has not mapped the dataset yet. */
export const kDone = 0;
export const kNeedDataset = 1;
export type TaskResult = typeof kDone | typeof kNeedDataset;
