// The contract between the coordinator (src/main) and the workers (src/worker): what each worker is
// given once at start-up, the step protocol's control block, and the layout of the shared buffers both
// sides read. Nothing else crosses threads during training: a command names a dataset and a range of
// rows, and results go to shared slots.

import type { MessagePort } from 'node:worker_threads';
import type { LossSpec } from './losses.js';
import type { ModelConfig } from './model.js';
import type { SGDOptions } from './sgd.js';
import type { WasmMemory } from './wasm.js';

/**
 * Given to every worker at start-up (piscina's workerData) and mapped once: the model, its parameters,
 * and the per-shard result slots. SharedArrayBuffers are shared, not copied, by postMessage.
 */
export interface WorkerInit {
  model: ModelConfig;
  /** The loss and its options (class weights, smoothing, ...), fixed for the pool's life. */
  loss: LossSpec;
  /** The training state every worker reads and writes in place: parameters, momentum, gradient slots,
   *  gradient and norm partials, at the byte offsets of `layout` (see stateLayout). */
  state: SharedArrayBuffer;
  /** The WebAssembly.Memory whose buffer `state` is, so that workers can run step.wasm on it; null
   *  when the runtime has no WebAssembly SIMD (then `state` is a plain SharedArrayBuffer). */
  stateMemory: WasmMemory | null;
  layout: StateLayout;
  /** (HYPER_FIELDS) float64: the step's hyperparameters, laid out by the kHyp* indices below. */
  hyper: SharedArrayBuffer;
  /** SGD's fixed options (lr and momentum come per step in hyper). */
  sgd: SGDOptions;
  /** 'mean' divides the gradient by the batch's total weight, 'sum' by 1. */
  mean: boolean;
  /** (S, STAT_FIELDS) float64: per-shard sums, laid out by the kStat* indices below. */
  stats: SharedArrayBuffer;
  /** S: the number of shard slots. A batch is cut into at most S shards, whatever the worker count. */
  slots: number;
  /** Most rows a shard can have: each worker sizes its activation scratch from it once. */
  maxShardRows: number;
  /** (workers, TIME_FIELDS) float64: where each worker's share of the last step's update went. */
  times: SharedArrayBuffer;
  /** (controlFields(workers)) int32: the step protocol's control block, laid out by the kCtl* and
   *  kWork* indices below. */
  control: SharedArrayBuffer;
  /** Worker count: how many count themselves done for each command. */
  workers: number;
  /** The linear layers' kernels: WebAssembly SIMD, or the TS reference loops. */
  kernels: 'wasm' | 'js';
}

/**
 * Byte offsets in the shared state buffer, each 16-byte aligned (for step.wasm's vector loads):
 *  params   (2, P) float32, double-buffered: half kCtlParity is current; a step reads it and writes the
 *           other half, which becomes current only when the step is complete (so a step can be re-run);
 *  momentum (2, P) float32, SGD's momentum buffer, double-buffered with the parameters;
 *  slots    (S, P) float32 at `slotStride` bytes apart: slot s holds the gradient *sum* of shard s;
 *  grad     (P) float32, the batch's gradient (the slots' sum over the divisor, clipped);
 *  partials (chunks, NORM_FIELDS) float64, the gradient's norm partials per chunk (clip.ts).
 */
export interface StateLayout {
  P: number;
  /** Bytes from one half of params or momentum, or one slot, to the next. */
  slotStride: number;
  params: number;
  momentum: number;
  slots: number;
  grad: number;
  partials: number;
  bytes: number;
}

export function stateLayout(P: number, slots: number, normFloats: number): StateLayout {
  const align = (n: number): number => Math.ceil(n / 16) * 16;
  const stride = align(P * 4);
  const params = 0;
  const momentum = params + 2 * stride;
  const slotBase = momentum + 2 * stride;
  const grad = slotBase + slots * stride;
  const partials = grad + stride;
  return { P, slotStride: stride, params, momentum, slots: slotBase, grad, partials, bytes: align(partials + normFloats * 8) };
}

/** The views of a state buffer laid out by `l`: [current, next] halves are picked by the parity. */
export function stateViews(state: SharedArrayBuffer, l: StateLayout, slots: number): {
  params: [Float32Array, Float32Array]; momentum: [Float32Array, Float32Array]; slots: Float32Array[];
  grad: Float32Array; partials: Float64Array;
} {
  const f = (byte: number): Float32Array => new Float32Array(state, byte, l.P);
  return {
    params: [f(l.params), f(l.params + l.slotStride)],
    momentum: [f(l.momentum), f(l.momentum + l.slotStride)],
    slots: Array.from({ length: slots }, (_, s) => f(l.slots + s * l.slotStride)),
    grad: f(l.grad),
    partials: new Float64Array(state, l.partials, (l.bytes - l.partials) / 8),
  };
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

// Per-worker timing of a step's share of the update, one Float64 row per worker, in milliseconds.
export const kTimeReduceMs = 0; // summing its chunks of the slots and their norm partials
export const kTimeUpdateMs = 1; // clipping and SGD on its chunks
export const TIME_FIELDS = 2;

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
// until the coordinator posts a command (bumps the generation g), computes its share of the command's
// shards, stamps itself done, and sleeps again. A step command goes on inside the workers: at barrier
// kPhaseReduced every shard's gradient is in its slot, each worker sums the slots over its chunks of the
// parameters (step.ts) and writes their norm partials; at barrier kPhaseDecided every worker reads all
// the partials, decides the same (update, clip factor, or nothing for a non-finite or empty batch) and
// applies SGD to its chunks, reading the current half of the parameters and momentum and writing the
// other. The coordinator makes that half current when every worker is done. A step therefore costs two
// notifications to and from the coordinator and two barriers, and the coordinator's thread does no
// per-parameter work.
//
// Barriers are per-worker stamps, g * 4 + phase, not counters, so that the coordinator can stand in for
// a worker that died: it stamps the dead worker done (which passes every barrier of g), sets kCtlFailed
// so the others apply nothing, and re-runs the command once a replacement has started. Since a step
// reads one half of the parameters and writes the other, a re-run gives the same bits.
// Int32 fields of the control block:
export const kCtlGeneration = 0; // bumped by the coordinator for each command; workers wait on it
export const kCtlArrivals = 1; // bumped (and notified) at every stamp; barrier waits sleep on it
export const kCtlCommand = 2; // kCmdStep, kCmdForward or kCmdStop
export const kCtlDataset = 3; // the dataset's id
export const kCtlStart = 4; // positions [start, end) of the dataset's order
export const kCtlEnd = 5;
export const kCtlShardRows = 6; // rows per shard (the last may be shorter)
export const kCtlShards = 7; // shards in the command: shard s goes to slot s
export const kCtlTasks = 8; // workers with work: min(workers, shards); the others only take part in the step
export const kCtlFailed = 9; // set when a worker failed during the command: nothing is applied
export const kCtlParity = 10; // which half of the parameter and momentum buffers is current
export const CONTROL_FIELDS = 11;
// Then WORK_FIELDS int32 per worker, at CONTROL_FIELDS + w * WORK_FIELDS:
export const kWorkStamp = 0; // g * 4 + the last phase the worker reached in command g
export const kWorkShard = 1; // the shard (slot) it is computing, or -1
export const kWorkThread = 2; // its thread's threadId (so the coordinator can tell which thread to stop)
export const WORK_FIELDS = 3;
export const kPhaseReduced = 1; // its shards are in their slots
export const kPhaseDecided = 2; // its share of the gradient is reduced and its norm partials written
export const kPhaseDone = 3; // the command is done (or failed) for it

/** The index in the control block of worker w's field (kWork*). */
export function workField(w: number, field: number): number {
  return CONTROL_FIELDS + w * WORK_FIELDS + field;
}

/** Int32s of a control block for `workers` workers. */
export function controlFields(workers: number): number {
  return CONTROL_FIELDS + workers * WORK_FIELDS;
}

/** The stamp of phase `phase` of command generation g. */
export function stampOf(g: number, phase: number): number {
  return g * 4 + phase;
}

/** True when every one of `workers` workers has stamped `stamp` or later. */
export function allStamped(control: Int32Array, workers: number, stamp: number): boolean {
  for (let w = 0; w < workers; w++) {
    if (Atomics.load(control, workField(w, kWorkStamp)) < stamp) return false;
  }
  return true;
}

/** Stamps worker w at `stamp` (never backwards) and wakes whoever waits on a barrier. */
export function stamp(control: Int32Array, w: number, value: number): void {
  const i = workField(w, kWorkStamp);
  if (Atomics.load(control, i) < value) Atomics.store(control, i, value);
  Atomics.add(control, kCtlArrivals, 1);
  Atomics.notify(control, kCtlArrivals);
}

// A kCmdStep's hyperparameters, float64, written by the coordinator before the command.
export const kHypLr = 0;
export const kHypMomentum = 1;
export const kHypMaxNorm = 2; // clip_grad_norm_'s max_norm; 0: no clipping
export const kHypNormType = 3;
export const kHypFirst = 4; // 1 while SGD's momentum buffer has not started (torch's first step)
export const HYPER_FIELDS = 5;

export const kCmdStep = 1; // loss stats and gradient sums into the slots, then the step (step.ts)
export const kCmdForward = 2; // loss stats (when the data has targets) and probabilities (when wanted)
export const kCmdStop = 3; // leave the loop: the pool is closing

/** The one piscina task each worker runs: its index, a port on which datasets arrive, and the
 *  generation when the task was posted (a command may be posted before the worker has started; a
 *  replacement worker starts after the command it replaces a worker in). */
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
