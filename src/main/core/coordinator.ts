// The step protocol on the coordinator's side: the shared parameter, gradient, stats, ring and control
// buffers the workers are started with (their threads and loop tasks are worker-loops.ts's); run(),
// which posts a run of steps that the workers carry through on their own and reports each committed step
// in order, and forward(), which posts a range of rows to evaluate. A worker that fails is stood in for
// and what it left undone is run again. Between commands the workers sleep.

import {
  allStamped, controlFields, cutBatch, HYPER_FLOATS, hyperField, kCmdForward, kCmdRun, kCmdStop, kCtlArrivals, kCtlBatch0,
  kCtlBatchSize, kCtlBell, kCtlCommand, kCtlDataset, kCtlEnd, kCtlExecuted, kCtlFailedStep, kCtlGeneration,
  kCtlLastStep, kCtlSequence, kCtlStart, kCtlSteps, kCtlStop, kCtlNonfiniteRule,
  kHypLr, kHypMomentum, kNoFailure, kPhaseReduced, kRunMaxNorm, kRunNormType, kStampDone, kStatLossSum,
  kWorkGen, kWorkStamp, reportFailure, RING_STEPS, STAT_FIELDS, stampOf, stateLayout, stateViews, stepOfStamp, workField,
  type WorkerInit,
} from '../../shared/contract.js';
import {
  commitStep, mapRing, postProgress, readStepRow, ringBytes, startRun, type OptimizerProgress, type Ring, type StepProgress,
  type StepRecord,
} from '../../shared/ring.js';
import { createSharedMemory, wasmRegionBytes, type WasmKernels } from '../../shared/wasm.js';
import { NORM_FIELDS, normChunks } from '../../shared/clip.js';
import { heapScratchBytes, kernelArrays, paramLayout, type ModelConfig } from '../../shared/model.js';
import type { LossSpec } from '../../shared/losses.js';
import type { SGDOptions } from '../../shared/sgd.js';
import type { AdamOptions } from '../../shared/adam.js';
import { addSums, emptySums, readBatchSums, type BatchSums, type NonfiniteRule } from '../../shared/step.js';
import type { SharedDataset } from '../data/data.js';
import { GradpoolError, OptionRangeError, ShardFailure, WorkerTimeout } from '../errors.js';
import { cpuLimit } from '../system/cpus.js';
import { WorkerLoops } from './worker-loops.js';
import { checkLength, checkMemory, formatBytes } from '../data/memory.js';
import type { Reduction } from '../options/options.js';

/** What the pool is built with (a subset of the Trainer's resolved options). */
export interface PoolOptions {
  workers: number;
  /** Shard slots: a batch is cut into at most this many shards. */
  shards: number;
  batchSize: number;
  reduction: Reduction;
  kernels: WasmKernels | 'js';
  /** Re-runs of a shard whose worker failed before the command gives up. */
  shardRetries: number;
  /** Milliseconds a command may go without any worker making progress before the stuck ones are stopped. */
  workerTimeout: number;
  /** V8 old-generation heap limit per worker in MB (piscina's resourceLimits), or null for Node's default. */
  workerHeapMb: number | null;
}

/** What a pool is built for: the model and loss, the pool's options, and the optimizer's fixed options
 *  (Adam's, or null for SGD; the Trainer's resolved options serve as both pool and sgd). */
export interface PoolSpec {
  model: ModelConfig;
  loss: LossSpec;
  pool: PoolOptions;
  sgd: SGDOptions;
  adam: AdamOptions | null;
}

/** A run of optimizer steps: batches batch0 .. batch0 + steps - 1 of the dataset's current order. */
export interface RunSpec {
  data: SharedDataset;
  batch0: number;
  /** At most RING_STEPS. */
  steps: number;
  batchSize: number;
  /** The lr and momentum of step j of the run (the schedule's closed form). */
  hyper: (j: number) => { lr: number; momentum: number };
  /** clip_grad_norm_'s max_norm, or null for no clipping, and the norm's order. */
  maxNorm: number | null;
  normType: number;
  /** Which steps whose loss or gradient is not finite end the run (nothing of them applied). */
  nonfiniteRule: NonfiniteRule;
}

/** How long a worker's barrier spins before it sleeps, when each worker can have a CPU of its own. */
const BARRIER_SPIN_MS = 1;
/** The main thread's sleep slice while a command runs: after each, the steps committed meanwhile are
 *  reported and the event loop gets a turn (signals, timers, abort()). */
const WAIT_SLICE_MS = 10;
/** How long, after a stop was requested, a command may go without progress before its stuck workers are
 *  stopped (or workerTimeout, if shorter): a stop is honoured within seconds even while a worker hangs. */
const STOP_GRACE_MS = 2000;

export class Coordinator {
  readonly model: ModelConfig;
  readonly P: number;
  /** Adam's (AdamW's) options, or null for SGD. */
  readonly adam: AdamOptions | null;
  readonly workers: number;
  readonly slots: number;
  readonly maxShardRows: number;
  /** Worker failures recovered from (their work run again) in this pool's life. */
  retries = 0;
  private readonly paramHalves: [Float32Array, Float32Array];
  private readonly slotViews: Float32Array[];
  private readonly momentumHalves: [Float32Array, Float32Array];
  private readonly momentHalves: [Float32Array, Float32Array][];
  private readonly stats: Float64Array;
  private readonly ring: Ring;
  /** Which half of the double-buffered state is current, and the optimizer's progress: moved on by
   *  commitStep for each committed step, as the workers move theirs. */
  private readonly progress: StepProgress = { parity: 0, hasMomentumBuffer: false, adamStep: 0 };
  private readonly hyper: Float64Array;
  private readonly chunks: number;
  private readonly loops: WorkerLoops;
  private readonly control: Int32Array;
  private readonly options: PoolOptions;
  /** The sequence number of the next step (or forward command) carried out: a failed attempt uses one
   *  up, so a re-run is a new number (faults.ts fires by it). */
  private sequence = 1;
  /** When requestStop() was called (performance.now()), until the run ends: a re-posted run stops as
   *  soon too; null without a stop request. */
  private stopAt: number | null = null;
  private closing = false;

  constructor({ model, loss, pool: o, sgd, adam }: PoolSpec) {
    const { workers } = o;
    // A batch is never cut into more shards than it has rows: slots beyond batchSize would never be
    // used, so they are not made (the cut, and so the bits, are the same).
    const slots = Math.min(o.shards, o.batchSize);
    this.options = o;
    this.adam = adam === null ? null : { ...adam, betas: [...adam.betas] };
    this.model = model;
    this.workers = workers;
    this.slots = slots;
    this.maxShardRows = Math.ceil(o.batchSize / slots);
    this.P = paramLayout(model.layers).total;
    this.chunks = normChunks(this.P);
    const sab = (bytes: number): SharedArrayBuffer => new SharedArrayBuffer(bytes);
    // Each worker's activations for a shard: the kernels' arrays (in its region of the state's memory
    // with the WebAssembly kernels, in its own heap otherwise), and its targets, probabilities and losses.
    const activations = kernelArrays(model.layers, this.maxShardRows);
    const regions = o.kernels !== 'js' ? { workers, bytes: wasmRegionBytes(activations) } : null;
    // Adam's second moment, and AMSGrad's maximum of it, beside the first moment in `momentum`.
    const moments = adam === null ? 0 : adam.amsgrad ? 2 : 1;
    const layout = stateLayout(this.P, slots, this.chunks * NORM_FIELDS, regions, moments);
    const ownBytes = heapScratchBytes(model.layers, this.maxShardRows, regions === null);
    const perWorker = (regions?.bytes ?? 0) + ownBytes;
    const stateBytes = layout.bytes - workers * (regions?.bytes ?? 0);
    // Refused up front, with the size and the limit, rather than by a failed allocation.
    const rowsText = `${this.maxShardRows} rows per shard (options.batchSize ${o.batchSize} in options.shards ${o.shards})`;
    const smaller = 'a smaller options.batchSize or more options.shards need less per worker';
    checkLength(`model: ${this.P} parameters`, this.P, 4, 'float32');
    checkLength(`a worker's activations: ${rowsText} x ${Math.max(...activations) / this.maxShardRows} floats`, Math.max(...activations), 4, 'float32', smaller);
    checkMemory(
      `model: ${this.P} parameters in ${slots + 5 + 2 * moments} float32 buffers (parameters, momentum, ${moments > 0 ? 'moments, ' : ''}gradient, ${slots} shard slots: ${formatBytes(stateBytes)}) ` +
        `and ${workers} workers' activations (${formatBytes(perWorker)} each) for ${rowsText}`,
      stateBytes + workers * perWorker,
      `fewer or smaller layers, or fewer options.shards, need less for the model; ${smaller}`,
    );
    // With the WebAssembly kernels the state is a shared WebAssembly memory, so that every worker can
    // run step.wasm's loops on it in place.
    const shared = o.kernels !== 'js' ? createSharedMemory(layout.bytes) : null;
    if (o.kernels !== 'js' && shared === null) {
      throw new OptionRangeError(
        `options.kernels '${o.kernels}': the model's state and ${workers} workers' activations need ${layout.bytes} bytes, more than the 4 GiB a WebAssembly memory can hold`,
        `kernels: 'js' has no such limit; fewer options.shards need less for the state, and ${smaller}`,
      );
    }
    const state = shared?.buffer ?? sab(layout.bytes);
    const views = stateViews(state, layout, slots);
    this.paramHalves = views.params;
    this.momentumHalves = views.momentum;
    this.momentHalves = views.moments;
    this.slotViews = views.slots;
    const init = {
      hyper: sab(HYPER_FLOATS * 8),
      stats: sab(slots * STAT_FIELDS * 8),
      ring: sab(ringBytes(workers)),
      control: sab(controlFields(workers) * 4),
    };
    this.hyper = new Float64Array(init.hyper);
    this.stats = new Float64Array(init.stats);
    this.ring = mapRing(init.ring, workers);
    this.control = new Int32Array(init.control);
    const workerData: WorkerInit = {
      model, loss, state, stateMemory: shared?.memory ?? null, layout, ...init, slots, maxShardRows: this.maxShardRows,
      workers, kernels: o.kernels, sgd: { ...sgd }, adam: this.adam, mean: o.reduction === 'mean', spinMs: workers <= cpuLimit().cpus ? BARRIER_SPIN_MS : 0,
    };
    this.loops = new WorkerLoops(workerData, workers, o.workerHeapMb, (w) => this.standIn(w));
  }

  /**
   * Stands in for worker w, whose thread has ended: nothing from the step it was in on counts, and its
   * stamp passes every barrier of the command (contract.ts). A worker that threw has done both itself;
   * doing them again changes nothing.
   */
  private standIn(w: number): void {
    const c = this.control;
    const g = Atomics.load(c, kCtlGeneration);
    const inCommand = Atomics.load(c, workField(w, kWorkGen)) === g;
    reportFailure(c, inCommand ? stepOfStamp(Atomics.load(c, workField(w, kWorkStamp))) : 0);
    Atomics.store(c, workField(w, kWorkStamp), kStampDone);
    Atomics.store(c, workField(w, kWorkGen), g);
    Atomics.add(c, kCtlArrivals, 1);
    Atomics.notify(c, kCtlArrivals);
    Atomics.add(c, kCtlBell, 1);
    Atomics.notify(c, kCtlBell);
  }

  private get parity(): 0 | 1 {
    return this.progress.parity;
  }

  /** The optimizer's progress: whether SGD's momentum buffer has started, Adam's step count (a copy). */
  get optimizerProgress(): OptimizerProgress {
    return { hasMomentumBuffer: this.progress.hasMomentumBuffer, adamStep: this.progress.adamStep };
  }

  /** Restores the optimizer's progress a checkpoint recorded (its buffers are set through momentumBuffer
   *  and moments); between commands only. */
  restoreOptimizerProgress(p: OptimizerProgress): void {
    this.progress.hasMomentumBuffer = p.hasMomentumBuffer;
    this.progress.adamStep = p.adamStep;
  }

  /** (P) the current parameters. A view: the workers write the next step's into the other half, so
   *  read it again after a run rather than keeping it. Read or write it only between commands. */
  get params(): Float32Array {
    return this.paramHalves[this.parity];
  }

  /** (P) SGD's current momentum buffer (meaningful once optimizerProgress.hasMomentumBuffer), or Adam's
   *  first moment; same rules as params. */
  get momentumBuffer(): Float32Array {
    return this.momentumHalves[this.parity];
  }

  /** (P) Adam's current second moment and, with AMSGrad, its running maximum ([] with SGD); same
   *  rules as params. */
  get moments(): Float32Array[] {
    return this.momentHalves.map((halves) => halves[this.parity]);
  }

  /** Asks the run under way (if any) to end after the step the workers are on; they agree which. */
  requestStop(): void {
    this.stopAt ??= performance.now();
    Atomics.store(this.control, kCtlStop, 1);
  }

  /** Forgets a stop request (as a run or fit() ends), so that the next run goes on; not after close(). */
  clearStop(): void {
    if (this.closing) return;
    this.stopAt = null;
    Atomics.store(this.control, kCtlStop, 0);
  }

  /**
   * Runs spec.steps optimizer steps on the workers, calling `report` for each committed step in order,
   * while the run goes on (from the waiting loop; the parameters are then in motion: read them after
   * run() returns). Returns how many steps were carried out: all of them, or fewer when a stop was
   * requested, or when a non-finite step ended the run (by spec.nonfiniteRule; it is the last one
   * reported, and nothing of it was applied). A worker that fails is stood in for, and the steps from
   * the one it failed in are run again on a fresh command: the same bits as without the failure.
   */
  async run(spec: RunSpec, report: (j: number, r: StepRecord) => void): Promise<number> {
    if (spec.steps < 1 || spec.steps > RING_STEPS) throw new RangeError(`a run has 1 to ${RING_STEPS} steps; got ${spec.steps}`);
    const failures = new Map<string, number>();
    let done = 0;
    try {
      while (done < spec.steps) {
        const c = this.control;
        const steps = spec.steps - done;
        const y = this.hyper;
        y[kRunMaxNorm] = spec.maxNorm ?? 0;
        y[kRunNormType] = spec.normType;
        for (let j = 0; j < steps; j++) {
          const h = spec.hyper(done + j);
          y[hyperField(j, kHypLr)] = h.lr;
          y[hyperField(j, kHypMomentum)] = h.momentum;
        }
        c[kCtlBatch0] = spec.batch0 + done;
        c[kCtlSteps] = steps;
        c[kCtlBatchSize] = spec.batchSize;
        c[kCtlNonfiniteRule] = spec.nonfiniteRule;
        c[kCtlLastStep] = kNoFailure;
        c[kCtlExecuted] = 0;
        Atomics.store(c, kCtlStop, this.stopAt !== null ? 1 : 0);
        let reported = 0;
        const deliver = (upTo: number): void => {
          for (; reported < upTo; reported++) report(done + reported, this.result(reported));
        };
        const g = this.post(kCmdRun, spec.data, steps);
        // Step k is committed once every worker is past its last barrier and into step k + 1 (which
        // also means every worker has written its start of step k + 1), with no failure at or before k. A
        // worker done with the command tells nothing of how far the run went: the end says (executed).
        const committed = (): number => {
          const failed = Atomics.load(c, kCtlFailedStep);
          let least = kStampDone;
          for (let w = 0; w < this.workers; w++) {
            const s = Atomics.load(c, workField(w, kWorkGen)) === g ? Atomics.load(c, workField(w, kWorkStamp)) : -1;
            if (s === kStampDone) return reported;
            least = Math.min(least, s);
          }
          let k = reported;
          while (k + 1 < steps && k < failed && least >= stampOf(k + 1, kPhaseReduced)) k++;
          return k;
        };
        await this.waitDone(g, () => deliver(committed()));
        const failedAt = Atomics.load(c, kCtlFailedStep);
        const executed = failedAt === kNoFailure ? Atomics.load(c, kCtlExecuted) : failedAt;
        deliver(executed);
        done += executed;
        this.sequence += executed + (failedAt === kNoFailure ? 0 : 1);
        if (failedAt === kNoFailure) {
          if (executed < steps) break; // a stop, or a non-finite step that ends fit()
          continue;
        }
        // A worker failed: the steps before the one it failed in are committed; run the rest again on
        // replacement workers, unless the same shard keeps failing, or a stop was requested (then a
        // worker that hung was stopped, and the run ends at the last complete step).
        if (this.stopAt !== null) {
          this.throwIfBroken();
          await this.loops.settleDeaths();
          break;
        }
        const batch = spec.batch0 + done;
        const start = batch * spec.batchSize;
        await this.recover(failures, `${batch}:`, start, Math.min(start + spec.batchSize, spec.data.rows));
      }
      return done;
    } finally {
      this.clearStop();
    }
  }

  /** Reads step j's row of the ring, and commits it for the pool as the workers did: an update makes
   *  the other half current and moves the optimizer on. Called for each step in order. */
  private result(j: number): StepRecord {
    const record = readStepRow(this.ring, j);
    commitStep(this.progress, record.decision.outcome, this.hyper[hyperField(j, kHypMomentum)], this.adam !== null);
    return record;
  }

  /** Loss stats (when the data has targets) and probabilities or per-sample losses (when the dataset
   *  has room for them) of the rows at positions [start, end), with the current parameters. */
  async forward(data: SharedDataset, start: number, end: number): Promise<BatchSums> {
    const failures = new Map<string, number>();
    const { shards } = cutBatch(end - start, this.slots);
    const c = this.control;
    for (;;) {
      c[kCtlStart] = start;
      c[kCtlEnd] = end;
      const g = this.post(kCmdForward, data, 0);
      await this.waitDone(g, () => {});
      this.sequence++;
      if (Atomics.load(c, kCtlFailedStep) === kNoFailure) return readBatchSums(this.stats, shards);
      if (this.stopAt !== null) {
        // A worker that hung was stopped after a stop request: the caller is stopping, not retrying.
        this.throwIfBroken();
        throw new GradpoolError('a stop was requested, and a worker that made no progress in a forward pass was stopped');
      }
      await this.recover(failures, 'forward:', start, end);
    }
  }

  /** Forward passes over every row of `data` in order, as many rows at a time as the shard slots hold;
   *  returns the summed stats. */
  async forwardAll(data: SharedDataset): Promise<BatchSums> {
    const chunk = this.slots * this.maxShardRows;
    const total = emptySums();
    for (let start = 0; start < data.rows; start += chunk) {
      addSums(total, await this.forward(data, start, Math.min(start + chunk, data.rows)));
    }
    return total;
  }

  /**
   * Posts a command (its fields already written) on `data`, of `steps` steps (0: a forward pass):
   * replaces the workers that died, posts the dataset to the workers that have not seen it, the progress
   * the command starts from, resets the failure report and the ring's times, and bumps the generation.
   * Returns the command's generation.
   */
  private post(command: number, data: SharedDataset, steps: number): number {
    const c = this.control;
    this.throwIfBroken();
    this.loops.restart();
    this.loops.post(data.buffers);
    const id = data.buffers.id;
    c[kCtlCommand] = command;
    c[kCtlDataset] = id;
    c[kCtlSequence] = this.sequence;
    postProgress(c, this.progress);
    Atomics.store(c, kCtlFailedStep, kNoFailure);
    startRun(this.ring, steps, performance.timeOrigin + performance.now());
    // The bump is the release: everything written above is visible to a worker that sees it.
    const g = Atomics.add(c, kCtlGeneration, 1) + 1;
    Atomics.notify(c, kCtlGeneration);
    return g;
  }

  /**
   * After a failed command: waits for the failed workers' tasks to end, counts the failure against the
   * shard they were on (`key` names the step), and gives up with a ShardFailure when one has failed more
   * than shardRetries times; the next post() replaces the workers. [start, end) is the step's batch.
   */
  private async recover(failures: Map<string, number>, key: string, start: number, end: number): Promise<void> {
    this.throwIfBroken();
    await this.loops.settleDeaths();
    const { shardRows } = cutBatch(end - start, this.slots);
    for (const d of this.loops.deaths) {
      const count = (failures.get(key + d.shard) ?? 0) + 1;
      failures.set(key + d.shard, count);
      if (count > this.options.shardRetries) {
        const positions: [number, number] = d.shard < 0 ? [start, end] : [start + d.shard * shardRows, Math.min(start + (d.shard + 1) * shardRows, end)];
        const what = d.shard >= 0 ? `shard ${d.shard}` : 'the gradient reduction and update';
        throw new ShardFailure(`${what} failed ${count} times: ${d.error.message}`, d.shard, positions, count, d.error);
      }
    }
    this.retries += this.loops.deaths.length;
  }

  /** Throws when the pool cannot run: a worker thread could not start. */
  private throwIfBroken(): void {
    const cause = this.loops.startFailure;
    if (cause === null) return;
    const o = this.options;
    const code = (cause as NodeJS.ErrnoException).code;
    throw new GradpoolError(
      `a worker thread could not start: ${cause.message}${code === undefined ? '' : ` (${code})`}; ` +
        (o.workerHeapMb === null ? '' : `options.workerHeapMb is ${o.workerHeapMb} MB, and `) +
        `each worker holds the activations of ${this.maxShardRows} rows (options.batchSize ${o.batchSize} cut into ` +
        `options.shards ${o.shards}) and views of ${this.slots} shard slots`,
      (o.workerHeapMb === null ? '' : 'raise options.workerHeapMb (or leave it unset for Node\'s default), or ') +
        'use a smaller options.batchSize or fewer options.shards; this Trainer cannot run again: close it and make a new one',
      { cause },
    );
  }

  /** After a step over [start, end) came out non-finite: its shards whose loss sum or gradient is. */
  nonfiniteShards(start: number, end: number): { shard: number; positions: [number, number] }[] {
    const { shardRows, shards } = cutBatch(end - start, this.slots);
    const bad: { shard: number; positions: [number, number] }[] = [];
    for (let sh = 0; sh < shards; sh++) {
      const slot = this.slotViews[sh];
      let finite = Number.isFinite(this.stats[sh * STAT_FIELDS + kStatLossSum]);
      for (let i = 0; finite && i < slot.length; i++) finite = Number.isFinite(slot[i]);
      if (!finite) bad.push({ shard: sh, positions: [start + sh * shardRows, Math.min(start + (sh + 1) * shardRows, end)] });
    }
    return bad;
  }

  /**
   * Waits until every worker is done with command g. The main thread sleeps on the bell (rung when a
   * worker finishes a command) in short slices (Node allows Atomics.wait there): a command's end wakes
   * it within microseconds. After each slice `poll` reports what was committed meanwhile and the event
   * loop gets a turn, so that piscina can report a worker that died (then it is stood in for) and
   * signals reach the Trainer. A command during which no worker makes progress for workerTimeout ms has
   * its unfinished workers stopped, which ends it as a failure.
   */
  private async waitDone(g: number, poll: () => void): Promise<void> {
    const c = this.control;
    let progress = Atomics.load(c, kCtlArrivals);
    let since = performance.now();
    let stoodIn = false;
    for (;;) {
      const bell = Atomics.load(c, kCtlBell);
      if (allStamped(c, this.workers, g, kStampDone)) return;
      const woken = Atomics.wait(c, kCtlBell, bell, WAIT_SLICE_MS);
      poll();
      if (woken !== 'timed-out') continue;
      await new Promise((resolve) => setImmediate(resolve));
      if (this.closing) throw new GradpoolError('this Trainer was closed (close()) while the call was running on its workers', 'await fit(), predict() and the others before close()');
      // A thread that could not start will never take its part: stand in for the workers not started,
      // so that the others leave the command, which then fails (and recover() says why).
      if (this.loops.startFailure !== null && !stoodIn) {
        for (const w of this.loops.notStarted()) this.standIn(w);
        stoodIn = true;
        continue;
      }
      // Progress is any stamp; a worker still starting (a replacement loading its code) counts as busy.
      const arrivals = Atomics.load(c, kCtlArrivals);
      const now = performance.now();
      if (arrivals !== progress || (!stoodIn && this.loops.notStarted().length > 0)) {
        progress = arrivals;
        since = now;
      } else if (this.stopAt !== null && now - Math.max(since, this.stopAt) > Math.min(STOP_GRACE_MS, this.options.workerTimeout)) {
        // A stop is honoured within seconds even if a worker hangs: the run ends at the last complete step.
        const ms = Math.min(STOP_GRACE_MS, this.options.workerTimeout);
        await this.stopStuck(g, (w) => `worker ${w} made no progress for ${ms} ms after a stop was requested and was stopped`);
        since = performance.now();
      } else if (now - since > this.options.workerTimeout) {
        await this.stopStuck(g, (w) => `worker ${w} made no progress for ${this.options.workerTimeout} ms (options.workerTimeout) and was stopped`);
        since = performance.now();
      }
    }
  }

  /** Stops the workers holding command g up: those furthest behind (the others wait for them at a
   *  barrier), and waits for their threads to end. */
  private async stopStuck(g: number, why: (w: number) => string): Promise<void> {
    const c = this.control;
    // A worker not yet in the command is furthest behind of all.
    const at = (w: number): number => (Atomics.load(c, workField(w, kWorkGen)) === g ? Atomics.load(c, workField(w, kWorkStamp)) : -1);
    const stamps = Array.from({ length: this.workers }, (_, w) => at(w));
    const behind = Math.min(...stamps);
    if (behind === kStampDone) return;
    const stuck = stamps.flatMap((s, w) => (s === behind ? [w] : []));
    await this.loops.stop(stuck, (w) => new WorkerTimeout(why(w)));
  }

  /** Tells the workers to drop a dataset they will not be asked for again. */
  release(data: SharedDataset): void {
    this.loops.release(data.buffers.id);
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // A run under way ends after the step the workers are on, so that they read the stop below soon.
    this.requestStop();
    const c = this.control;
    c[kCtlCommand] = kCmdStop;
    Atomics.add(c, kCtlGeneration, 1);
    Atomics.notify(c, kCtlGeneration);
    await this.loops.close();
  }
}
