// The contract between the coordinator (src/main) and the workers (src/worker): what each worker is
// given once at start-up, the step protocol's control block, and the layout of the shared buffers both
// sides read. Nothing else crosses threads during training: a command names a dataset and a range of
// rows, and results go to shared slots.

import type { MessagePort } from 'node:worker_threads';
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
  /** (CONTROL_FIELDS) int32: the step protocol's control block, laid out by the kCtl* indices below. */
  control: SharedArrayBuffer;
  /** Worker count: how many count themselves done for each command. */
  workers: number;
  /** The linear layers' kernels: WebAssembly SIMD, or the TS reference loops. */
  kernels: 'wasm' | 'js';
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
 * A dataset in shared memory. The coordinator builds it once and posts it on each worker's port before
 * the first command that names it; the worker maps it then and keeps the views for later commands.
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

// ---------------------------------------------------------------------------------------------------
// The step protocol. Each worker runs one long piscina task, a loop that sleeps on the control block
// until the coordinator posts a command, computes its share of the command's shards, counts itself
// done, and sleeps again. A step therefore costs two Atomics notifications instead of a message round
// trip per worker. Int32 fields of the control block:
export const kCtlGeneration = 0; // bumped by the coordinator for each command; workers wait on it
export const kCtlDone = 1; // workers that have finished the current command; the last one notifies
export const kCtlCommand = 2; // kCmdGrad, kCmdForward or kCmdStop
export const kCtlDataset = 3; // the dataset's id
export const kCtlStart = 4; // positions [start, end) of the dataset's order
export const kCtlEnd = 5;
export const kCtlShardRows = 6; // rows per shard (the last may be shorter)
export const kCtlShards = 7; // shards in the command: shard s goes to slot s
export const kCtlTasks = 8; // workers with work: min(workers, shards); the others only count in
export const kCtlFailed = 9; // set by a worker whose command threw, before it counts in; its task rejects
export const CONTROL_FIELDS = 10;

export const kCmdGrad = 1; // loss stats and gradient sums
export const kCmdForward = 2; // loss stats (when the data has targets) and probabilities (when wanted)
export const kCmdStop = 3; // leave the loop: the pool is closing

/** The one piscina task each worker runs: its index, a port on which datasets arrive, and the
 *  generation when the task was posted (a command may be posted before the worker has started). */
export interface LoopTask {
  worker: number;
  port: MessagePort;
  generation: number;
}

/**
 * The contiguous run of shards [s0, s1) that worker t of `tasks` computes. The cut depends only on the
 * batch, and shard s always goes to slot s, whatever the worker count: that is what makes results
 * bit-identical for any number of workers.
 */
export function taskShards(t: number, tasks: number, shards: number): [number, number] {
  return [Math.floor((t * shards) / tasks), Math.floor(((t + 1) * shards) / tasks)];
}
