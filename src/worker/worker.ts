// The pool's worker: maps the shared parameters, gradient slots, stats and ring once at start-up, then
// runs the step protocol's loop (see contract.ts) as its one piscina task: sleep on the control block,
// map any dataset that has arrived on its port, and carry out the command: a run of steps, each its share
// of the step's shards into their slots, then, at barriers with the other workers, its share of the
// reduction and of the update (step.ts); or its share of a forward pass. Stamp itself done, sleep again.

import { receiveMessageOnPort, threadId, workerData, type MessagePort } from 'node:worker_threads';
import { parseFaults } from '../shared/faults.js';
import {
  allStamped, cutBatch, enterCommand, hyperField, kCmdForward, kCmdRun, kCmdStop, kCtlArrivals, kCtlBatch0, kCtlBatchSize,
  kCtlCommand, kCtlDataset, kCtlEnd, kCtlExecuted, kCtlFailedStep, kCtlGeneration, kCtlLastStep, kCtlSequence, kCtlStart,
  kCtlSteps, kCtlStop, kCtlNonfiniteRule, kHypLr, kHypMomentum, kPhaseDecided, kPhaseReduced, kPhaseUpdated, kRunMaxNorm,
  kRunNormType, kStatComputeMs, kStatCorrect, kStatCounted, kStatLossSum, kStatRows, kStatWeightSum, kWorkShard, kWorkThread,
  reportFailure, STAT_FIELDS, stamp, stampDone, stampOf, stateViews, taskShards, workField,
  type DatasetBuffers, type LoopTask, type WorkerInit,
} from '../shared/contract.js';
import {
  commitStep, kRingReduceMs, kRingUpdateMs, kRingWaitMs, kRingWorkerStartMs, mapRing, postedProgress, writeShare, writeStepRow,
  type ComputeTimes, type StepProgress,
} from '../shared/ring.js';
import { adamScalars } from '../shared/adam.js';
import { NORM_CHUNK, normChunks } from '../shared/clip.js';
import { isSoftmaxLoss, linearViews, paramLayout } from '../shared/model.js';
import {
  decideStep, jsStepKernels, nonfiniteEnds, readBatchSums, reduceShare, updateShare, wasmStepKernels, type BatchSums,
  type NonfiniteRule, type StepBuffers, type StepDecision,
} from '../shared/step.js';
import { createWasmLinearIn, instantiateStep } from '../shared/wasm.js';
import { createScratch, forward, jsKernels, lossAndBackward, probabilities, type LinearKernels, type Scratch } from './shard.js';

// ---------------------------------------------------------------------------------------------------
// The module's state. Mapped once when the thread starts: the model, the shared buffers and views of them.
const init = workerData as WorkerInit;
const model = init.model;
const loss = init.loss;
const perRowLoss = isSoftmaxLoss(loss.name);
const P = paramLayout(model.layers).total;
const K = model.layers[model.layers.length - 1];
// With the WebAssembly kernels the state is their memory too: its views must be of that memory's own
// buffer (the kernels check), not of the clone of it that came in workerData.
const state = stateViews(init.stateMemory?.buffer as SharedArrayBuffer | undefined ?? init.state, init.layout, init.slots);
const gradSlots = state.slots.map((flat) => ({ flat, views: linearViews(flat, model.layers) }));
/** The parameters' views the kernels read, by the parity of the current half. */
const paramViews = state.params.map((half) => linearViews(half, model.layers));
const stats = new Float64Array(init.stats);
const control = new Int32Array(init.control);
const hyperTable = new Float64Array(init.hyper);
const ring = mapRing(init.ring, init.workers);
const chunks = normChunks(P);
/** This worker's view of the step being taken: its hyperparameters are refilled from the table per step. */
const step: StepBuffers = {
  ...state, hyper: { lr: 0, momentum: 0, maxNorm: 0, normType: 2, first: true, adam: null }, acc: new Float64Array(NORM_CHUNK),
};
const stepKernels = init.stateMemory === null ? jsStepKernels : wasmStepKernels(instantiateStep(init.stateMemory));
if (init.kernels !== 'js' && init.stateMemory === null) throw new Error('worker: the WebAssembly kernels need the state in a WebAssembly memory');

// The kernels, and the scratch of the shard being computed. With the WebAssembly kernels the scratch is
// in this worker's region of the state memory (contract.ts stateLayout), and the kernels read the
// current half of the parameters and write the shard's gradient slot where they are. The region is the
// loop task's worker's, so it is bound when a task starts (a new task may be another worker's).
let kernels: LinearKernels = jsKernels;
let scratch: Scratch = createScratch(model, 0);
/** The worker whose region the kernels and scratch are bound to (-1: none yet). */
let boundTo = -1;

// Datasets arrive on the worker's port; the coordinator says which ones it has let go, so the map holds
// only the live ones.
const datasets = new Map<number, MappedDataset>();

/** Milliseconds this worker has spent in barriers in the step under way. */
let waited = 0;
/** Stamp polls between two looks at the clock while a barrier spins. */
const POLLS_PER_CLOCK = 64;
/** The update of a step without clipping, applied before its decision is known. */
const UNCLIPPED: StepDecision = { outcome: 'update', gradNorm: NaN, coef: 1 };

/** Faults to inject, for the fault-tolerance tests only (GRADPOOL_FAULTS, see faults.ts). */
const faultsAt = parseFaults(process.env.GRADPOOL_FAULTS);
faultsAt?.(0, -1, 'start', -1);
// ---------------------------------------------------------------------------------------------------

function bindKernels(w: number): void {
  if (w === boundTo) return;
  if (init.stateMemory !== null && init.kernels !== 'js') {
    const { kernels: base, kernelBytes } = init.layout;
    const wasm = createWasmLinearIn(init.stateMemory, base + w * kernelBytes, kernelBytes, init.kernels);
    kernels = {
      forward: (out, inp, weight, bias, B, C, OC) => wasm.forward(out, inp, weight, bias, B, C, OC),
      backward: (dinp, dweight, dbias, dout, inp, weight, B, C, OC) => {
        wasm.backwardWeight(dweight, dbias, dout, inp, B, C, OC);
        if (dinp !== null) wasm.backwardInput(dinp, dout, weight, B, C, OC);
      },
    };
    scratch = createScratch(model, init.maxShardRows, (n) => wasm.allocate(n));
  } else if (boundTo === -1) {
    scratch = createScratch(model, init.maxShardRows);
  }
  boundTo = w;
}

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
    // TypedArray.set of a subarray is a memcpy; the element loop it replaced took 4x as long (29 µs
    // against 7 µs for a shard of 16 MNIST rows, measured inside training).
    x.set(d.x.subarray(row * D, row * D + D), i * D);
    if (d.yIndex !== null) yIndex[i] = d.yIndex[row];
    if (d.yValue !== null) yValue.set(d.yValue.subarray(row * K, row * K + K), i * K);
  }
}

/** The loop: one piscina task per worker for the pool's whole life. Returns when told to stop. */
export default function loop(task: LoopTask): number {
  const w = task.worker;
  bindKernels(w);
  Atomics.store(control, workField(w, kWorkThread), threadId);
  // A new loop task (after a failure, possibly on the same thread) gets every live dataset on its new
  // port: whatever this thread mapped before is dropped, released ones included.
  datasets.clear();
  let seen = task.generation;
  for (;;) {
    // Sleeps until the coordinator bumps the generation (a command) and notifies.
    Atomics.wait(control, kCtlGeneration, seen);
    seen = Atomics.load(control, kCtlGeneration);
    const command = control[kCtlCommand];
    if (command === kCmdStop) return 0;
    enterCommand(control, w, seen);
    // The shard stays set if this command fails: the coordinator reads it to say which shard failed.
    Atomics.store(control, workField(w, kWorkShard), -1);
    let j = 0; // the step this worker is in, for a failure report
    try {
      const d = dataset(task.port, control[kCtlDataset]);
      if (command === kCmdForward) forwardCommand(w, d);
      else if (command === kCmdRun) runSteps(openRun(w, seen, d), (at) => (j = at));
    } catch (err) {
      // Nothing from step j on counts, for the others and the coordinator; the stamp below passes every
      // barrier of this command, so nobody waits for this worker. Then its task rejects.
      reportFailure(control, j);
      throw err;
    } finally {
      stampDone(control, w);
    }
  }
}

/** A batch of positions [start, end) of the dataset's order, cut into shards (contract.ts cutBatch),
 *  computed by `tasks` workers. */
interface BatchCut {
  start: number;
  end: number;
  shardRows: number;
  shards: number;
  tasks: number;
}

function cutOf(start: number, end: number): BatchCut {
  const { shardRows, shards } = cutBatch(end - start, init.slots);
  return { start, end, shardRows, shards, tasks: Math.min(init.workers, shards) };
}

/** What a run of shards computes: for step (or forward command) `seq`, on `data`, with the parameters of
 *  half `parity`; with `grad`, the gradient into the shards' slots. */
interface ShardWork {
  seq: number;
  data: MappedDataset;
  grad: boolean;
  parity: 0 | 1;
}

/** A forward pass over positions [start, end): this worker's run of the shards. */
function forwardCommand(w: number, data: MappedDataset): void {
  const parity = postedProgress(control).parity;
  runShards(w, { seq: control[kCtlSequence], data, grad: false, parity }, cutOf(control[kCtlStart], control[kCtlEnd]));
}

/** A run of steps as this worker carries it out: the command's fields, read once, and what it moves on. */
interface Run {
  w: number;
  /** The command's generation. */
  g: number;
  data: MappedDataset;
  steps: number;
  batch0: number;
  batchSize: number;
  /** The sequence number of the run's first step. */
  sequence: number;
  /** Which non-finite steps end the run (and fit()). */
  nonfiniteRule: NonfiniteRule;
  /** Without clipping the update needs no global norm: it is fused into the reduction (contract.ts). */
  fused: boolean;
  /** This worker's chunks [c0, c1) of the reduction and of the update. */
  c0: number;
  c1: number;
  /** The current half and the optimizer's progress, moved on by each committed step. */
  progress: StepProgress;
}

function openRun(w: number, g: number, data: MappedDataset): Run {
  const h = step.hyper;
  h.maxNorm = hyperTable[kRunMaxNorm];
  h.normType = hyperTable[kRunNormType];
  // Every worker, with shards or not, takes its chunks of the reduction and of the update.
  const [c0, c1] = taskShards(w, init.workers, chunks);
  return {
    w, g, data, steps: control[kCtlSteps], batch0: control[kCtlBatch0], batchSize: control[kCtlBatchSize],
    sequence: control[kCtlSequence], nonfiniteRule: control[kCtlNonfiniteRule] as NonfiniteRule, fused: h.maxNorm === 0, c0, c1,
    progress: postedProgress(control),
  };
}

/**
 * A run of steps (see contract.ts): batch by batch, this worker's shards, then its share of the
 * reduction and of the update between barriers, until the run's last step or the step the workers
 * agreed to stop after. `at` is told the step this worker is in.
 */
function runSteps(run: Run, at: (j: number) => void): void {
  const w = run.w;
  let j = 0;
  for (; j < run.steps; j++) {
    at(j);
    if (j > 0) writeShare(ring, j - 1, w, kRingWaitMs, waited);
    waited = 0;
    if (j > 0) writeShare(ring, j, w, kRingWorkerStartMs, performance.timeOrigin + performance.now());
    const next = takeStep(run, j);
    if (next === 'left') return;
    if (next === 'last') {
      j++;
      break;
    }
  }
  if (j > 0) writeShare(ring, j - 1, w, kRingWaitMs, waited);
  writeShare(ring, j, w, kRingWorkerStartMs, performance.timeOrigin + performance.now());
  Atomics.store(control, kCtlExecuted, j);
}

/**
 * Step j of the run, from this worker's shards to the commit: 'next' when the run goes on, 'last' when
 * the workers agreed it ends with this step (a stop, or a non-finite step that ends the run), 'left'
 * when a worker failed at or before it (then this worker leaves the run at once).
 */
function takeStep(run: Run, j: number): 'next' | 'last' | 'left' {
  const { w, g, fused, progress } = run;
  const seq = run.sequence + j;
  const start = (run.batch0 + j) * run.batchSize;
  const cut = cutOf(start, Math.min(start + run.batchSize, run.data.rows));
  const h = step.hyper;
  h.lr = hyperTable[hyperField(j, kHypLr)];
  h.momentum = hyperTable[hyperField(j, kHypMomentum)];
  h.first = !progress.hasMomentumBuffer;
  // torch increments state['step'] before using it: this step's t is one past the steps applied.
  if (init.adam !== null) h.adam = adamScalars(init.adam, h.lr, h.momentum, progress.adamStep + 1);
  runShards(w, { seq, data: run.data, grad: true, parity: progress.parity }, cut);
  Atomics.store(control, workField(w, kWorkShard), -1);
  if (!barrier(w, g, j, kPhaseReduced)) return 'left';
  const { sums, compute, reduceMs, updateMs } = reduceStep(run, seq, cut);
  if (Atomics.load(control, kCtlStop) !== 0) Atomics.store(control, kCtlLastStep, j);
  // Fused, this is the step's last barrier: its stamp says the step is done (stepOfStamp).
  if (!barrier(w, g, j, fused ? kPhaseUpdated : kPhaseDecided)) return 'left';
  const decision = decideStep(sums, step.partials, chunks, h);
  if (w === 0) writeStepRow(ring, j, sums, decision, compute as ComputeTimes);
  const last = Atomics.load(control, kCtlLastStep) <= j;
  writeShare(ring, j, w, kRingReduceMs, reduceMs);
  writeShare(ring, j, w, kRingUpdateMs, updateMs);
  // Carried out, nothing applied: the run ends on it.
  if (decision.outcome === 'nonfinite' && nonfiniteEnds(run.nonfiniteRule, decision.gradNorm)) return 'last';
  if (!fused) {
    const t3 = performance.now();
    if (decision.outcome === 'update') update(w, seq, decision, progress.parity, run);
    writeShare(ring, j, w, kRingUpdateMs, performance.now() - t3);
    if (!barrier(w, g, j, kPhaseUpdated)) return 'left';
  }
  commitStep(progress, decision.outcome, h.momentum, init.adam !== null);
  return last ? 'last' : 'next';
}

/**
 * This worker's share of step `seq`'s reduction once every shard is in: the batch's sums, its chunks of
 * the gradient and their norm partials, and (fused) their update into the other half, which becomes
 * current only if the decision is 'update'. Worker 0 also reads the shards' compute times now: once
 * past the step's last barrier, the others overwrite the stats with the next step's.
 */
function reduceStep(run: Run, seq: number, cut: BatchCut): { sums: BatchSums; compute: ComputeTimes | null; reduceMs: number; updateMs: number } {
  const t0 = performance.now();
  faultsAt?.(seq, run.w, 'reduce', -1);
  const sums = readBatchSums(stats, cut.shards);
  const compute = run.w === 0 ? computeTimes(cut) : null;
  let t1 = t0;
  if (sums.weightSum > 0) {
    reduceShare(stepKernels, step, sums, cut.shards, init.mean, run.c0, run.c1);
    t1 = performance.now();
    if (run.fused) update(run.w, seq, UNCLIPPED, run.progress.parity, run);
  }
  return { sums, compute, reduceMs: t1 - t0, updateMs: performance.now() - t1 };
}

/** This worker's share of the update of step `seq`, from half `parity` into the other. */
function update(w: number, seq: number, decision: StepDecision, parity: 0 | 1, run: Run): void {
  faultsAt?.(seq, w, 'update', -1);
  updateShare(stepKernels, step, decision, init.sgd, parity, run.c0, run.c1);
  faultsAt?.(seq, w, 'updated', -1);
}

/** The slowest task's and the total shard compute time of a batch, from the shards' stats. */
function computeTimes(cut: BatchCut): ComputeTimes {
  let maxMs = 0;
  let sumMs = 0;
  for (let t = 0; t < cut.tasks; t++) {
    const [s0, s1] = taskShards(t, cut.tasks, cut.shards);
    let ms = 0;
    for (let s = s0; s < s1; s++) ms += stats[s * STAT_FIELDS + kStatComputeMs];
    maxMs = Math.max(maxMs, ms);
    sumMs += ms;
  }
  return { maxMs, sumMs, tasks: cut.tasks };
}

/**
 * Stamps this worker at phase `phase` of step j of command g and waits until every worker has: a
 * barrier of the step. False when a worker failed at or before step j (then this worker leaves the
 * run). The wait has no time limit of its own: a worker that dies is stamped by the coordinator, and
 * one that hangs is stopped by it.
 */
function barrier(worker: number, g: number, j: number, phase: number): boolean {
  const value = stampOf(j, phase);
  const t0 = performance.now();
  stamp(control, worker, value);
  // Spin first: the others usually arrive within a fraction of a millisecond, and a thread woken from
  // Atomics.wait takes tens to hundreds of microseconds to run again.
  const until = init.spinMs > 0 ? performance.now() + init.spinMs : 0;
  for (let polls = 0; ; polls++) {
    const arrivals = Atomics.load(control, kCtlArrivals);
    if (allStamped(control, init.workers, g, value)) break;
    if (until === 0 || (polls % POLLS_PER_CLOCK === 0 && performance.now() > until)) Atomics.wait(control, kCtlArrivals, arrivals);
  }
  waited += performance.now() - t0;
  return Atomics.load(control, kCtlFailedStep) > j;
}

/** The dataset `id`, mapping whatever has arrived on the port first (messages are datasets to map, or
 *  { release: id } for one the coordinator no longer uses). */
function dataset(port: MessagePort, id: number): MappedDataset {
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    const message = m.message as DatasetBuffers | { release: number };
    if ('release' in message) datasets.delete(message.release);
    else datasets.set(message.id, mapDataset(message));
  }
  const d = datasets.get(id);
  if (d === undefined) throw new Error(`worker: dataset ${id} was never posted to this worker`);
  return d;
}

/** Worker w's run of the batch's shards (contract.ts taskShards), shard s into slot s; none when the
 *  batch has fewer shards than there are workers before it. */
function runShards(w: number, work: ShardWork, cut: BatchCut): void {
  if (w >= cut.tasks) return;
  const [s0, s1] = taskShards(w, cut.tasks, cut.shards);
  const end = Math.min(cut.start + s1 * cut.shardRows, cut.end);
  for (let p = cut.start + s0 * cut.shardRows, slot = s0; p < end; p += cut.shardRows, slot++) {
    computeShard(w, work, slot, p, Math.min(cut.shardRows, end - p));
  }
}

/** Computes the shard of B rows at position p into slot `slot` (its stats, and its gradient or outputs). */
function computeShard(w: number, work: ShardWork, slot: number, p: number, B: number): void {
  const { data: d, grad } = work;
  const params = paramViews[work.parity];
  Atomics.store(control, workField(w, kWorkShard), slot);
  faultsAt?.(work.seq, w, 'compute', slot);
  const t0 = performance.now();
  gather(d, p, B);
  forward(scratch, model, params, B, kernels);
  const row = slot * STAT_FIELDS;
  stats.fill(0, row, row + STAT_FIELDS);
  stats[row + kStatRows] = B;
  if (grad || d.yIndex !== null || d.yValue !== null) {
    const slotViews = grad ? gradSlots[slot] : null;
    slotViews?.flat.fill(0); // the kernels add into it
    const sums = lossAndBackward(scratch, model, params, slotViews?.views ?? null, B, loss, d.yIndex !== null, kernels);
    stats[row + kStatLossSum] = sums.lossSum;
    stats[row + kStatWeightSum] = sums.weightSum;
    stats[row + kStatCorrect] = sums.correct;
    stats[row + kStatCounted] = sums.counted;
    if (d.lossOut !== null) {
      const n = perRowLoss ? B : B * K;
      d.lossOut.set(scratch.losses.subarray(0, n), perRowLoss ? p : p * K);
    }
  }
  if (!grad && d.out !== null) {
    // Each row's probabilities go to its position, so the output follows the order buffer.
    const probs = scratch.probs;
    probabilities(probs, scratch, model, B, K);
    d.out.set(probs.subarray(0, B * K), p * K);
  }
  stats[row + kStatComputeMs] = performance.now() - t0;
  faultsAt?.(work.seq, w, 'computed', slot);
}
