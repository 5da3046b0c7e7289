// The step record, defined once for both sides of the thread boundary: the ring's fields (one Float64
// row per step of a run), worker 0's writer of a step's row and each worker's writer of its own share,
// the coordinator's reader, which turns the row into the Trainer's StepTiming, the outcome code, and the
// rule by which a committed step moves the pool on (commitStep), which the workers and the coordinator
// both apply to every step, in order.

import {
  kCtlAdamStep, kCtlHasMomentum, kCtlParity, RING_STEPS,
} from './contract.js';
import { usesMomentum } from './sgd.js';
import type { BatchSums, StepDecision } from './step.js';

// A run's results, one Float64 row per step of the run, written by the workers during the run and read
// by the coordinator as each step is committed. Worker 0 writes the step's sums, decision and compute
// times once every worker has reduced its share (writeStepRow); every worker writes its own share's
// timing (writeShare).
export const kRingLossSum = 0;
export const kRingWeightSum = 1;
export const kRingCorrect = 2;
export const kRingCounted = 3;
export const kRingRows = 4;
export const kRingGradNorm = 5; // the total norm of order normType when clipping, else the 2-norm
export const kRingOutcome = 6; // the decision's outcome, coded by OUTCOME_CODES
export const kRingComputeMaxMs = 7; // the slowest task's shard compute: the critical path
export const kRingComputeSumMs = 8; // shard compute summed over the tasks (worker-milliseconds)
export const kRingTasks = 9; // workers that had shards: min(workers, shards)
/** Row 0: when the coordinator posted the run (performance.timeOrigin + now(), ms: comparable across
 *  threads). Later steps' starts are per worker (kRingWorkerStartMs). */
export const kRingStartMs = 10;
export const kRingCoef = 11; // the factor the gradient was scaled by before the update (1: not clipped)
export const RING_BASE_FIELDS = 12;
// Then RING_WORKER_FIELDS per worker, at RING_BASE_FIELDS + w * RING_WORKER_FIELDS: its share of summing
// the slots (and their norm partials), and of clipping and the update, in milliseconds; and when it began
// the step (row `executed` of a run: when it finished the run). A step lasts from the first worker's start
// to the first worker's start of the next, which bounds every worker's part of it.
export const kRingReduceMs = 0;
export const kRingUpdateMs = 1;
export const kRingWorkerStartMs = 2;
export const kRingWaitMs = 3; // its time in the step's barriers (spinning or asleep)
export const RING_WORKER_FIELDS = 4;

/** Float64s a ring row holds for `workers` workers. */
export function ringFields(workers: number): number {
  return RING_BASE_FIELDS + RING_WORKER_FIELDS * workers;
}

/** Bytes of a ring for `workers` workers: RING_STEPS rows, and one more for the end of the last step. */
export function ringBytes(workers: number): number {
  return (RING_STEPS + 1) * ringFields(workers) * 8;
}

/** A ring buffer as either side maps it. */
export interface Ring {
  f64: Float64Array;
  workers: number;
  /** Float64s per row. */
  row: number;
}

export function mapRing(buffer: SharedArrayBuffer, workers: number): Ring {
  return { f64: new Float64Array(buffer), workers, row: ringFields(workers) };
}

/** The index of step j's field (kRing* below RING_BASE_FIELDS). */
export function ringField(r: Ring, j: number, field: number): number {
  return j * r.row + field;
}

/** The index of worker w's field (kRingReduceMs ... kRingWaitMs) in step j's row. */
export function shareField(r: Ring, j: number, w: number, field: number): number {
  return j * r.row + RING_BASE_FIELDS + RING_WORKER_FIELDS * w + field;
}

export type StepOutcome = StepDecision['outcome'];

/** The outcome code the ring holds for each outcome: the one mapping, both ways (outcomeOfCode). */
export const OUTCOME_CODES: Readonly<Record<StepOutcome, number>> = { update: 0, 'no-targets': 1, nonfinite: 2 };

const OUTCOMES: readonly StepOutcome[] = (Object.keys(OUTCOME_CODES) as StepOutcome[])
  .sort((a, b) => OUTCOME_CODES[a] - OUTCOME_CODES[b]);

/** The outcome of a code in the ring; throws on a code OUTCOME_CODES does not give. */
export function outcomeOfCode(code: number): StepOutcome {
  const outcome = OUTCOMES.find((o) => OUTCOME_CODES[o] === code);
  if (outcome === undefined) throw new Error(`ring: ${code} is not a step outcome code`);
  return outcome;
}

/** The shards' compute time of a step, as worker 0 reads it from the stats before they are overwritten. */
export interface ComputeTimes {
  /** The slowest task's compute: the critical path of the parallel part. */
  maxMs: number;
  /** Compute summed over every task (worker-milliseconds). */
  sumMs: number;
  /** Workers that had shards: min(workers, shards). */
  tasks: number;
}

/** Worker 0's part of step j's row: the batch's sums, the decision, and the shards' compute times. */
export function writeStepRow(r: Ring, j: number, sums: BatchSums, decision: StepDecision, compute: ComputeTimes): void {
  const f = r.f64;
  const at = ringField(r, j, 0);
  f[at + kRingLossSum] = sums.lossSum;
  f[at + kRingWeightSum] = sums.weightSum;
  f[at + kRingCorrect] = sums.correct;
  f[at + kRingCounted] = sums.counted;
  f[at + kRingRows] = sums.rows;
  f[at + kRingGradNorm] = decision.gradNorm;
  f[at + kRingOutcome] = OUTCOME_CODES[decision.outcome];
  f[at + kRingCoef] = decision.coef;
  f[at + kRingComputeMaxMs] = compute.maxMs;
  f[at + kRingComputeSumMs] = compute.sumMs;
  f[at + kRingTasks] = compute.tasks;
}

/** Worker w's own field (kRingReduceMs ... kRingWaitMs) of step j's row. */
export function writeShare(r: Ring, j: number, w: number, field: number, value: number): void {
  r.f64[shareField(r, j, w, field)] = value;
}

/** Before a run of `steps` steps is posted: its start time in row 0, and no worker's start in rows
 *  1 .. steps yet (a worker stood in for leaves NaN there, and the others' starts serve). */
export function startRun(r: Ring, steps: number, now: number): void {
  r.f64[kRingStartMs] = now;
  for (let j = 1; j <= steps; j++) {
    for (let w = 0; w < r.workers; w++) r.f64[shareField(r, j, w, kRingWorkerStartMs)] = NaN;
  }
}

/**
 * Where a step's wall time went, in milliseconds: stepMs = computeMs + dispatchMs + reduceMs + updateMs,
 * where computeMs is the slowest worker's shard compute (the critical path). barrierMs is how long the
 * other workers waited for it on average (idle time, inside computeMs, not added to the step).
 */
export interface StepTiming {
  stepMs: number;
  computeMs: number;
  /** Shard compute summed over the workers (worker-milliseconds). */
  computeTotalMs: number;
  barrierMs: number;
  /** The workers' mean time inside the step's barriers, measured by each (waiting for the others and
   *  passing the barrier): what synchronising the workers costs, imbalance included. */
  waitMs: number;
  /** Posting the command, waking the workers, their barriers and the coordinator's bookkeeping: the
   *  step beyond the compute, the reduction and the update. */
  dispatchMs: number;
  /** Summing the gradient slots: the share of the worker whose reduction and update took longest. */
  reduceMs: number;
  /** Clipping and the optimizer's update: that worker's share. (With clipping the two are phases of
   *  their own, whose slowest may be other workers': the difference is in dispatchMs.) */
  updateMs: number;
  /** Tasks the step was spread over (min(workers, shards)). */
  tasks: number;
}

/** What one committed step of a run did, as the ring records it. */
export interface StepRecord {
  sums: BatchSums;
  decision: StepDecision;
  timing: StepTiming;
}

/** Step j's row, read once the step is committed (and every worker has started the next). */
export function readStepRow(r: Ring, j: number): StepRecord {
  const f = r.f64;
  const at = ringField(r, j, 0);
  const sums: BatchSums = {
    lossSum: f[at + kRingLossSum], weightSum: f[at + kRingWeightSum], correct: f[at + kRingCorrect],
    counted: f[at + kRingCounted], rows: f[at + kRingRows],
  };
  const decision: StepDecision = {
    outcome: outcomeOfCode(f[at + kRingOutcome]), gradNorm: f[at + kRingGradNorm], coef: f[at + kRingCoef],
  };
  // The reduction and the update of the worker whose share of them took longest: without clipping they
  // are one phase (contract.ts), where the slowest reduce and the slowest update may be two workers'
  // and their sum longer than the phase.
  let reduceMs = 0;
  let updateMs = 0;
  let waitMs = 0;
  let next = Infinity;
  let start = j === 0 ? f[kRingStartMs] : Infinity;
  for (let w = 0; w < r.workers; w++) {
    const reduce = f[shareField(r, j, w, kRingReduceMs)];
    const update = f[shareField(r, j, w, kRingUpdateMs)];
    if (reduce + update > reduceMs + updateMs) {
      reduceMs = reduce;
      updateMs = update;
    }
    waitMs += f[shareField(r, j, w, kRingWaitMs)] / r.workers;
    // A worker stood in for left NaN: the others' times serve.
    const began = f[shareField(r, j, w, kRingWorkerStartMs)];
    if (j > 0 && began < start) start = began;
    const nextBegan = f[shareField(r, j + 1, w, kRingWorkerStartMs)];
    if (nextBegan < next) next = nextBegan;
  }
  const stepMs = Number.isFinite(next - start) ? next - start : NaN;
  const computeMs = f[at + kRingComputeMaxMs];
  const computeTotalMs = f[at + kRingComputeSumMs];
  const tasks = f[at + kRingTasks];
  return {
    sums, decision,
    timing: {
      stepMs, computeMs, computeTotalMs, barrierMs: computeMs - computeTotalMs / tasks, waitMs,
      dispatchMs: stepMs - computeMs - reduceMs - updateMs, reduceMs, updateMs, tasks,
    },
  };
}

/** What the optimizer's state is, beside its tensors. */
export interface OptimizerProgress {
  /** SGD's momentum buffer has started (torch's first step with momentum is done). */
  hasMomentumBuffer: boolean;
  /** Adam's steps taken (torch's state['step']); 0 with SGD. */
  adamStep: number;
}

/** What a committed step moves on: which half of the double-buffered state is current, and the
 *  optimizer's progress. Each worker keeps one for its run, the coordinator one for the pool. */
export interface StepProgress extends OptimizerProgress {
  parity: 0 | 1;
}

/**
 * The step-committed rule: an update makes the other half current and moves the optimizer on (Adam
 * counts the step; SGD's momentum buffer starts with its first step that uses momentum); any other
 * outcome leaves everything as it was. `momentum` is the step's (SGD's momentum, unused with Adam).
 */
export function commitStep(p: StepProgress, outcome: StepOutcome, momentum: number, adam: boolean): void {
  if (outcome !== 'update') return;
  p.parity = p.parity === 0 ? 1 : 0;
  if (adam) p.adamStep++;
  else if (usesMomentum(momentum)) p.hasMomentumBuffer = true;
}

/** The progress a command starts from, as the coordinator posts it in the control block. */
export function postProgress(control: Int32Array, p: StepProgress): void {
  control[kCtlParity] = p.parity;
  control[kCtlHasMomentum] = p.hasMomentumBuffer ? 1 : 0;
  control[kCtlAdamStep] = p.adamStep;
}

/** The progress a command starts from, as a worker reads it from the control block. */
export function postedProgress(control: Int32Array): StepProgress {
  return {
    parity: control[kCtlParity] === 0 ? 0 : 1,
    hasMomentumBuffer: control[kCtlHasMomentum] !== 0,
    adamStep: control[kCtlAdamStep],
  };
}
