// The contract between the coordinator (src/main) and the workers (src/worker): what each worker is
// given once at start-up, the step protocol's control block, and the layout of the shared buffers both
// sides read. Nothing else crosses threads during training: a command names a dataset and a run of
// batches, and results go to shared slots and the ring.

import type { MessagePort } from 'node:worker_threads';
import type { LossSpec } from './losses.js';
import type { ModelConfig } from './model.js';
import type { AdamOptions } from './adam.js';
import type { SGDOptions } from './sgd.js';
import type { WasmKernels, WasmMemory } from './wasm.js';

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
  /** (RUN_FIELDS + RING_STEPS * HYPER_FIELDS) float64: a run's clipping settings, then each step's lr
   *  and momentum, laid out by the kRun* and kHyp* indices below (runHyper). */
  hyper: SharedArrayBuffer;
  /** SGD's fixed options (lr and momentum come per step in hyper). */
  sgd: SGDOptions;
  /** Adam's (AdamW's) fixed options when the optimizer is Adam or AdamW (lr and beta1 come per step in
   *  hyper), else null. */
  adam: AdamOptions | null;
  /** 'mean' divides the gradient by the batch's total weight, 'sum' by 1. */
  mean: boolean;
  /** (S, STAT_FIELDS) float64: per-shard sums, laid out by the kStat* indices below. */
  stats: SharedArrayBuffer;
  /** S: the number of shard slots. A batch is cut into at most S shards, whatever the worker count. */
  slots: number;
  /** Most rows a shard can have: each worker sizes its activation scratch from it once. */
  maxShardRows: number;
  /** (RING_STEPS + 1, ringFields(workers)) float64: each step's results, laid out and written and read
   *  by ring.ts, for the coordinator to report in order (see the protocol below). */
  ring: SharedArrayBuffer;
  /** (controlFields(workers)) int32: the step protocol's control block, laid out by the kCtl* and
   *  kWork* indices below. */
  control: SharedArrayBuffer;
  /** Worker count: how many count themselves done for each command. */
  workers: number;
  /** Milliseconds a barrier spins before it sleeps: 0 when there are more workers than CPUs (a spinning
   *  worker would then take the core of the one it waits for). */
  spinMs: number;
  /** The linear layers' kernels: WebAssembly SIMD (multiply and add, or fused multiply-add), or the TS
   *  reference loops. */
  kernels: WasmKernels | 'js';
}

/**
 * Byte offsets in the shared state buffer, each 16-byte aligned (for step.wasm's vector loads):
 *  params   (2, P) float32, double-buffered: half kCtlParity is current; a step reads it and writes the
 *           other half, which becomes current only when the step is complete (so a step can be re-run);
 *  momentum (2, P) float32, SGD's momentum buffer or Adam's first moment, double-buffered with the
 *           parameters;
 *  moments  (M, 2, P) float32, Adam's second moment and AMSGrad's maximum of it (M = 0, 1 or 2: the
 *           optimizer's `momentBuffers`), double-buffered likewise;
 *  slots    (S, P) float32 at `slotStride` bytes apart: slot s holds the gradient *sum* of shard s;
 *  grad     (P) float32, the batch's gradient (the slots' sum over the divisor, clipped);
 *  partials (chunks, NORM_FIELDS) float64, the gradient's norm partials per chunk (clip.ts);
 *  kernels  with the WebAssembly kernels, one region of `kernelBytes` per worker: its instance's packing
 *           scratch and its shard's activations (shard.ts createScratch), so that the kernels read the
 *           parameters and write the gradient slots where they are, with no copy in or out.
 */
export interface StateLayout {
  P: number;
  /** Bytes from one half of params or momentum, or one slot, to the next. */
  slotStride: number;
  params: number;
  momentum: number;
  /** Adam's extra buffers: moment m's halves at moments + (2m + half) * slotStride; M of them. */
  moments: number;
  M: number;
  slots: number;
  grad: number;
  partials: number;
  /** Worker w's kernel region starts at kernels + w * kernelBytes (kernelBytes 0: no regions). */
  kernels: number;
  kernelBytes: number;
  bytes: number;
}

/** The layout for P parameters, `slots` shard slots and M moment buffers; `kernelRegions` per worker when given. */
export function stateLayout(
  P: number, slots: number, normFloats: number, kernelRegions: { workers: number; bytes: number } | null = null, M = 0,
): StateLayout {
  const align = (n: number): number => Math.ceil(n / 16) * 16;
  const stride = align(P * 4);
  const params = 0;
  const momentum = params + 2 * stride;
  const moments = momentum + 2 * stride;
  const slotBase = moments + 2 * M * stride;
  const grad = slotBase + slots * stride;
  const partials = grad + stride;
  const kernels = align(partials + normFloats * 8);
  const kernelBytes = kernelRegions === null ? 0 : align(kernelRegions.bytes);
  return {
    P, slotStride: stride, params, momentum, moments, M, slots: slotBase, grad, partials, kernels, kernelBytes,
    bytes: kernels + (kernelRegions?.workers ?? 0) * kernelBytes,
  };
}

/** The views of a state buffer laid out by `l`: [current, next] halves are picked by the parity. */
export function stateViews(state: SharedArrayBuffer, l: StateLayout, slots: number): {
  params: [Float32Array, Float32Array]; momentum: [Float32Array, Float32Array]; moments: [Float32Array, Float32Array][];
  slots: Float32Array[];
  grad: Float32Array; partials: Float64Array;
} {
  const f = (byte: number): Float32Array => new Float32Array(state, byte, l.P);
  return {
    params: [f(l.params), f(l.params + l.slotStride)],
    momentum: [f(l.momentum), f(l.momentum + l.slotStride)],
    moments: Array.from({ length: l.M }, (_, m): [Float32Array, Float32Array] =>
      [f(l.moments + 2 * m * l.slotStride), f(l.moments + (2 * m + 1) * l.slotStride)]),
    slots: Array.from({ length: slots }, (_, s) => f(l.slots + s * l.slotStride)),
    grad: f(l.grad),
    partials: new Float64Array(state, l.partials, (l.kernels - l.partials) / 8),
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

/** Steps one run may take at most: the ring's length. */
export const RING_STEPS = 4096;

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
// until the coordinator posts a command (bumps kCtlGeneration and notifies). A command is a run of steps
// (kCmdRun: batches batch0 .. batch0 + steps - 1 of the epoch's order, each step's lr and momentum in the
// hyper table), or one forward pass over a range of positions (kCmdForward). The coordinator's thread
// then sleeps while the workers go from step to step among themselves: a step has three barriers,
//   kPhaseReduced  every shard's loss sums and gradient are in their slots (each worker computed its
//                  contiguous run of the step's shards); each worker then sums the slots over its fixed
//                  chunks of the parameters (step.ts) and writes their norm partials;
//   kPhaseDecided  every share is reduced; every worker reads all the partials and makes the same
//                  decision (update, clip by how much, or nothing for a non-finite or empty batch),
//                  worker 0 writes the step's row of the ring, and each applies SGD to its chunks,
//                  reading the current half of the parameters and momentum and writing the other;
//   kPhaseUpdated  every chunk is updated: the other half is current for everyone (each worker flips
//                  its own parity; all take the same decisions, so all agree), and the step is committed
//                  (ring.ts commitStep, which the coordinator applies too as it reads the step's row).
// Without clipping the update needs no global norm, so each worker applies it to its chunks right after
// reducing them, into the other half, before kPhaseDecided; the decision then only says whether that
// half becomes current (it does not for a non-finite or empty batch): two barriers a step, the second
// stamped kPhaseUpdated, since every chunk is updated by then.
// The coordinator reads the ring as steps are committed, to report them in order, and learns from it
// which half is current at the end of the run.
//
// Stopping inside a run is decided where every worker agrees: before stamping kPhaseDecided of step j
// a worker that sees kCtlStop set writes j to kCtlLastStep; after the barrier every worker reads it, so
// all end the run after the same step. A non-finite step that ends fit() by kCtlNonfiniteRule (step.ts
// nonfiniteEnds) ends it too, with nothing applied. The run's workers write how many steps they carried out to kCtlExecuted.
//
// Barriers are per-worker stamps within a command: kWorkGen is the command (generation) a worker's
// stamp belongs to and kWorkStamp is stampOf(j, phase) within it, or kStampDone once the worker has
// finished the command; a worker clears its stamp before it moves to a new generation, so a stamp read
// after its generation always belongs to it. The coordinator can then stand in for a worker that died:
// it stamps it done (which passes every barrier of the command) and lowers kCtlFailedStep to the step
// the worker was in. Every worker checks kCtlFailedStep after each barrier of step j and leaves the run
// when it is <= j: steps before it are committed; step j and later are not, and run again (on a fresh
// command) from the current half of the parameters, which gives the same bits.
// Int32 fields of the control block (the progress a command starts from, kCtlParity, kCtlHasMomentum and
// kCtlAdamStep, is posted and read by ring.ts's postProgress and postedProgress):
export const kCtlGeneration = 0; // bumped by the coordinator for each command; workers wait on it
export const kCtlArrivals = 1; // bumped (and notified) at every stamp; barrier waits sleep on it
export const kCtlCommand = 2; // kCmdRun, kCmdForward or kCmdStop
export const kCtlDataset = 3; // the dataset's id
export const kCtlStart = 4; // kCmdForward: positions [start, end) of the dataset's order
export const kCtlEnd = 5;
export const kCtlBatch0 = 6; // kCmdRun: the run's first batch of the epoch's order
export const kCtlSteps = 7; // kCmdRun: steps in the run (at most RING_STEPS)
export const kCtlBatchSize = 8; // kCmdRun: rows per batch (the epoch's last batch may be shorter)
export const kCtlParity = 9; // which half of the parameter and momentum buffers is current at the command's start
export const kCtlHasMomentum = 10; // 1 once SGD's momentum buffer has started (torch's first step is done)
export const kCtlNonfiniteRule = 11; // which non-finite steps end the run: step.ts NonfiniteRule
export const kCtlStop = 12; // set by the coordinator at any time: end the run after the current step
export const kCtlLastStep = 13; // the step after which the run ends, as the workers agreed (see above)
export const kCtlFailedStep = 14; // the first step a worker failed in (kNoFailure: none); nothing from it on counts
export const kCtlExecuted = 15; // steps of the run the workers carried out (a non-finite last one included)
export const kCtlSequence = 16; // the sequence number of the command's first step (faults.ts numbers steps by it)
export const kCtlBell = 17; // bumped (and notified) when a worker is done with a command: the coordinator sleeps on it
export const kCtlAdamStep = 18; // Adam: steps applied before the command (torch's state['step']); the workers count on from it
export const CONTROL_FIELDS = 19;
// Then WORK_FIELDS int32 per worker, at CONTROL_FIELDS + w * WORK_FIELDS:
export const kWorkGen = 0; // the generation its stamp belongs to
export const kWorkStamp = 1; // stampOf(j, phase) it reached in that command, or kStampDone
export const kWorkShard = 2; // the shard (slot) it is computing, or -1
export const kWorkThread = 3; // its thread's threadId (so the coordinator can tell which thread to stop)
export const WORK_FIELDS = 4;
export const kPhaseReduced = 1; // its shards of step j are in their slots
export const kPhaseDecided = 2; // its share of step j's gradient is reduced and its norm partials written
export const kPhaseUpdated = 3; // its chunks of step j are updated
export const kStampDone = 0x7fffffff; // the command is done (or failed) for it
export const kNoFailure = 0x7fffffff;

/** The index in the control block of worker w's field (kWork*). */
export function workField(w: number, field: number): number {
  return CONTROL_FIELDS + w * WORK_FIELDS + field;
}

/** Int32s of a control block for `workers` workers. */
export function controlFields(workers: number): number {
  return CONTROL_FIELDS + workers * WORK_FIELDS;
}

/** The stamp of phase `phase` of step j of a command. */
export function stampOf(j: number, phase: number): number {
  return j * 4 + phase;
}

/** The step a worker is in (or failed in) when its last stamp is `s`: after kPhaseUpdated, the next. */
export function stepOfStamp(s: number): number {
  return Math.floor(s / 4) + (s % 4 === kPhaseUpdated ? 1 : 0);
}

/** True when worker w has stamped `value` (or later) in command g. */
export function hasStamped(control: Int32Array, w: number, g: number, value: number): boolean {
  // The generation first: a worker clears its stamp before it takes up a new generation.
  return Atomics.load(control, workField(w, kWorkGen)) === g && Atomics.load(control, workField(w, kWorkStamp)) >= value;
}

/** True when every one of `workers` workers has stamped `value` or later in command g. */
export function allStamped(control: Int32Array, workers: number, g: number, value: number): boolean {
  for (let w = 0; w < workers; w++) if (!hasStamped(control, w, g, value)) return false;
  return true;
}

/** Worker w takes up command g: its stamp is cleared before its generation moves on. */
export function enterCommand(control: Int32Array, w: number, g: number): void {
  Atomics.store(control, workField(w, kWorkStamp), 0);
  Atomics.store(control, workField(w, kWorkGen), g);
}

/** Stamps worker w at `value` in its current command (never backwards) and wakes whoever waits on a
 *  barrier. */
export function stamp(control: Int32Array, w: number, value: number): void {
  const i = workField(w, kWorkStamp);
  if (Atomics.load(control, i) < value) Atomics.store(control, i, value);
  Atomics.add(control, kCtlArrivals, 1);
  Atomics.notify(control, kCtlArrivals);
}

/** Stamps worker w done with its command and rings the coordinator's bell. */
export function stampDone(control: Int32Array, w: number): void {
  stamp(control, w, kStampDone);
  Atomics.add(control, kCtlBell, 1);
  Atomics.notify(control, kCtlBell);
}

/** Lowers kCtlFailedStep to j (failures can be reported by several workers and the coordinator). */
export function reportFailure(control: Int32Array, j: number): void {
  for (;;) {
    const now = Atomics.load(control, kCtlFailedStep);
    if (now <= j || Atomics.compareExchange(control, kCtlFailedStep, now, j) === now) return;
  }
}

// The hyper buffer: a run's constants, then RING_STEPS rows of a step's own hyperparameters (float64).
export const kRunMaxNorm = 0; // clip_grad_norm_'s max_norm; 0: no clipping
export const kRunNormType = 1;
export const RUN_FIELDS = 2;
export const kHypLr = 0;
export const kHypMomentum = 1; // SGD's momentum, or Adam's betas[0] (a OneCycle schedule cycles either)
export const HYPER_FIELDS = 2;

/** Float64s of the hyper buffer. */
export const HYPER_FLOATS = RUN_FIELDS + RING_STEPS * HYPER_FIELDS;

/** The index in the hyper buffer of step j's field (kHyp*). */
export function hyperField(j: number, field: number): number {
  return RUN_FIELDS + j * HYPER_FIELDS + field;
}

export const kCmdRun = 1; // a run of optimizer steps (see above)
export const kCmdForward = 2; // loss stats (when the data has targets) and probabilities (when wanted)
export const kCmdStop = 3; // leave the loop: the pool is closing

/**
 * How a batch of `rows` rows is cut: `shards` shards of `shardRows` rows (the last may be shorter), at
 * most `slots` of them. The cut depends only on the batch, so each slot holds the same sums whatever the
 * worker count.
 */
export function cutBatch(rows: number, slots: number): { shardRows: number; shards: number } {
  const shardRows = Math.ceil(rows / slots);
  return { shardRows, shards: Math.ceil(rows / shardRows) };
}

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
