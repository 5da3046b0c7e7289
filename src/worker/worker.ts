// The pool's worker: maps the shared parameters, gradient slots and stats once at start-up, then runs
// the step protocol's loop (see contract.ts) as its one piscina task: sleep on the control block, map any
// dataset that has arrived on its port, compute its share of the command's shards into their slots, and
// for a step, meet the other workers at two barriers to reduce and apply its share of the update
// (step.ts); count itself done, sleep again.

import { receiveMessageOnPort, threadId, workerData, type MessagePort } from 'node:worker_threads';
import { parseFaults } from '../shared/faults.js';
import {
  allStamped, kCmdStep, kCmdStop, kCtlArrivals, kCtlCommand, kCtlDataset, kCtlEnd, kCtlFailed,
  kCtlGeneration, kCtlParity, kCtlShardRows, kCtlShards, kCtlStart, kCtlTasks, kPhaseDecided, kPhaseDone,
  kPhaseReduced, kStatComputeMs, kStatCorrect, kStatCounted, kWorkShard, kWorkThread, stamp, stampOf, workField,
  kStatLossSum, kStatRows, kStatWeightSum, kTimeReduceMs, kTimeUpdateMs, STAT_FIELDS, stateViews, taskShards, TIME_FIELDS,
  type DatasetBuffers, type LoopTask, type WorkerInit,
} from '../shared/contract.js';
import { NORM_CHUNK, normChunks } from '../shared/clip.js';
import { isSoftmaxLoss, linearViews, paramLayout } from '../shared/model.js';
import {
  decideStep, jsStepKernels, readBatchSums, reduceShare, updateShare, wasmStepKernels, type StepBuffers,
} from '../shared/step.js';
import { createWasmLinear, instantiateStep } from '../shared/wasm.js';
import { createScratch, forward, jsKernels, lossAndBackward, probabilities, type LinearKernels } from './shard.js';

const init = workerData as WorkerInit;
const model = init.model;
const loss = init.loss;
const perRowLoss = isSoftmaxLoss(loss.name);
const P = paramLayout(model.layers).total;
const K = model.layers[model.layers.length - 1];
const state = stateViews(init.state, init.layout, init.slots);
const sharedParams = state.params;
const gradSlots = state.slots.map((flat) => ({ flat, views: linearViews(flat, model.layers) }));
const stats = new Float64Array(init.stats);
const control = new Int32Array(init.control);
const times = new Float64Array(init.times);
const chunks = normChunks(P);
const step: StepBuffers = { ...state, hyper: new Float64Array(init.hyper), acc: new Float64Array(NORM_CHUNK) };
const stepKernels = init.stateMemory === null ? jsStepKernels : wasmStepKernels(instantiateStep(init.stateMemory));

// With the WebAssembly kernels, everything they touch lives in their memory: the scratch, a copy of the
// current parameters (refreshed at each command; they change only between commands) and the gradient of
// the shard being computed (copied to its slot when done). With the TS kernels the shared buffers serve.
const wasm = init.kernels === 'wasm' ? createWasmLinear(wasmFloats()) : null;
if (init.kernels === 'wasm' && wasm === null) throw new Error('worker: WebAssembly SIMD is not available in this thread');
const local = wasm === null ? null : { params: wasm.allocate(P), grad: wasm.allocate(P) };
/** The parameters' views the kernels read, by the parity of the current half. */
const paramViews = local !== null ? [linearViews(local.params, model.layers), linearViews(local.params, model.layers)]
  : sharedParams.map((half) => linearViews(half, model.layers));
const localGrad = local === null ? null : linearViews(local.grad, model.layers);
const kernels: LinearKernels = wasm === null ? jsKernels : {
  forward: (out, inp, weight, bias, B, C, OC) => wasm.forward(out, inp, weight, bias, B, C, OC),
  backward: (dinp, dweight, dbias, dout, inp, weight, B, C, OC) => {
    wasm.backwardWeight(dweight, dbias, dout, inp, B, C, OC);
    if (dinp !== null) wasm.backwardInput(dinp, dout, weight, B, C, OC);
  },
};
const scratch = createScratch(model, init.maxShardRows, wasm === null ? undefined : (n) => wasm.allocate(n));

/** Floats the kernels' memory needs: the parameters and one gradient, and the scratch, with alignment. */
function wasmFloats(): number {
  let floats = 2 * (P + 4);
  createScratch(model, init.maxShardRows, (n) => {
    floats += n + 4;
    return new Float32Array(n);
  });
  return floats;
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

// Datasets arrive on the worker's port; the coordinator says which ones it has let go, so the map holds
// only the live ones.
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

/** The loop: one piscina task per worker for the pool's whole life. Returns when told to stop. */
export default function loop(task: LoopTask): number {
  Atomics.store(control, workField(task.worker, kWorkThread), threadId);
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
    // The shard stays set if this command fails: the coordinator reads it to say which shard failed.
    Atomics.store(control, workField(task.worker, kWorkShard), -1);
    try {
      runCommand(task, command, seen);
    } catch (err) {
      // The flag tells the others (and the coordinator) to apply nothing; the stamp below passes
      // every barrier of this command, so nobody waits for this worker. Then its task rejects.
      Atomics.store(control, kCtlFailed, 1);
      throw err;
    } finally {
      stamp(control, task.worker, stampOf(seen, kPhaseDone));
    }
  }
}

function runCommand(task: LoopTask, command: number, g: number): void {
  const tasks = control[kCtlTasks];
  const shards = control[kCtlShards];
  const parity = control[kCtlParity] === 0 ? 0 : 1;
  if (task.worker < tasks) {
    const d = dataset(task.port, control[kCtlDataset]);
    const [s0, s1] = taskShards(task.worker, tasks, shards);
    const start = control[kCtlStart];
    const shardRows = control[kCtlShardRows];
    runShards(task.worker, g, d, command === kCmdStep, parity, start + s0 * shardRows, Math.min(start + s1 * shardRows, control[kCtlEnd]), shardRows, s0);
  }
  if (command !== kCmdStep) return;
  // Every worker, with shards or not, takes its chunks of the reduction and of the update.
  const [c0, c1] = taskShards(task.worker, init.workers, chunks);
  const row = task.worker * TIME_FIELDS;
  times[row + kTimeReduceMs] = 0;
  times[row + kTimeUpdateMs] = 0;
  Atomics.store(control, workField(task.worker, kWorkShard), -1);
  if (!barrier(task.worker, stampOf(g, kPhaseReduced))) return;
  const t0 = performance.now();
  faults?.(g, task.worker, 'reduce', -1);
  const sums = readBatchSums(stats, shards);
  if (sums.weightSum > 0) reduceShare(stepKernels, step, sums, shards, init.mean, c0, c1);
  const t1 = performance.now();
  if (!barrier(task.worker, stampOf(g, kPhaseDecided))) return;
  const t2 = performance.now();
  faults?.(g, task.worker, 'update', -1);
  const decision = decideStep(sums, step.partials, chunks, step.hyper);
  if (decision.outcome === 'update') updateShare(stepKernels, step, decision, init.sgd, parity, c0, c1);
  faults?.(g, task.worker, 'updated', -1);
  times[row + kTimeReduceMs] = t1 - t0;
  times[row + kTimeUpdateMs] = performance.now() - t2;
}

/**
 * Stamps this worker at `value` and waits until every worker has: a barrier of the step. False when a
 * worker failed in this command (then there is nothing more to do). The wait has no time limit of its
 * own: a worker that dies is stamped by the coordinator, and one that hangs is stopped by it.
 */
function barrier(worker: number, value: number): boolean {
  stamp(control, worker, value);
  for (;;) {
    const arrivals = Atomics.load(control, kCtlArrivals);
    if (allStamped(control, init.workers, value)) break;
    Atomics.wait(control, kCtlArrivals, arrivals);
  }
  return Atomics.load(control, kCtlFailed) === 0;
}

/** Faults to inject, for the fault-tolerance tests only (GRADPOOL_FAULTS, see faults.ts). */
const faults = parseFaults(process.env.GRADPOOL_FAULTS);

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

/** Computes the shards of positions [start, end), shard j into slot firstSlot + j. */
function runShards(
  worker: number, g: number, d: MappedDataset, grad: boolean, parity: 0 | 1, start: number, end: number, shardRows: number,
  firstSlot: number,
): void {
  local?.params.set(sharedParams[parity]);
  const params = paramViews[parity];
  const hasTargets = d.yIndex !== null || d.yValue !== null;
  const indexTargets = d.yIndex !== null;
  for (let p = start, slot = firstSlot; p < end; p += shardRows, slot++) {
    const B = Math.min(shardRows, end - p);
    Atomics.store(control, workField(worker, kWorkShard), slot);
    faults?.(g, worker, 'compute', slot);
    const t0 = performance.now();
    gather(d, p, B);
    forward(scratch, model, params, B, kernels);
    const row = slot * STAT_FIELDS;
    stats.fill(0, row, row + STAT_FIELDS);
    stats[row + kStatRows] = B;
    if (grad || hasTargets) {
      const g = grad ? gradSlots[slot] : null;
      (local?.grad ?? g?.flat)?.fill(0);
      const views = g === null ? null : (localGrad ?? g.views);
      const sums = lossAndBackward(scratch, model, params, views, B, loss, indexTargets, kernels);
      if (g !== null && local !== null) g.flat.set(local.grad);
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
    faults?.(g, worker, 'computed', slot);
  }
}
