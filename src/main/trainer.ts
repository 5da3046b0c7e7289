// The public Trainer: builds the model and its worker pool from validated options, and runs epochs of
// mini-batch SGD (fit) with an optional learning-rate schedule and gradient clipping, evaluation with a
// confusion matrix and per-class report, prediction, per-sample losses, and checkpoints that hold the
// whole training state. The per-step work happens in the Coordinator; this file is the epoch loop.

import { addSums, Coordinator, emptySums, ShardFailure, type BatchSums, type BatchTiming } from './coordinator.js';
import { shareDataset, shareFeatures, type Dataset, type Features, type SharedDataset } from './data.js';
import {
  assignParameters, CheckpointError, loadCheckpoint, metadataJson, parseMetadataJson, saveCheckpoint, type Checkpoint,
} from './checkpoint.js';
import { classReport, type ClassReport } from './report.js';
import {
  lossSpec, modelConfig, resolveOptions, type ResolvedOptions, type TrainerOptions,
} from './options.js';
import type { LossSpec } from '../shared/losses.js';
import { isSoftmaxLoss, linearViews, type ModelConfig } from '../shared/model.js';
import { Rng } from '../shared/rng.js';
import { scheduleAt } from '../shared/schedule.js';
import { checkNormFinite } from '../shared/clip.js';

export interface FitOptions {
  /** Passes over the training data. Default 1. Continues from the Trainer's epoch count. */
  epochs?: number;
  /** Evaluated after every epoch; its loss and accuracy go into the history. */
  validation?: Dataset;
  /** Called after every optimizer step. */
  onStep?: (step: StepInfo) => void;
  /** Called after every epoch with its record (also returned in the history); may return a promise,
   *  which fit() awaits (to save a checkpoint, say). */
  onEpoch?: (record: EpochRecord) => void | Promise<void>;
  /** Aborting stops training after the current step; fit() then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface StepInfo {
  /** 1-based epoch of this Trainer's life (continues across fit() calls and resumes). */
  epoch: number;
  /** 1-based batch within the epoch, and the epoch's batch count. */
  batch: number;
  batches: number;
  /** Optimizer steps taken so far by this Trainer, this one included. */
  step: number;
  /** The batch's mean loss (per sample, or per element for the sigmoid losses). */
  loss: number;
  rows: number;
  /** The learning rate this step used. */
  lr: number;
  /** The gradient's total norm before clipping, when clipGradNorm is set. */
  gradNorm?: number;
  /** True when every target of the batch was ignored, so no update was made. */
  skipped?: boolean;
  /** Where the step's time went. */
  timing: StepTiming;
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
  /** Posting the command, waking the workers, their barriers and the coordinator's bookkeeping: the
   *  step beyond the compute, the reduction and the update. */
  dispatchMs: number;
  /** Summing the gradient slots: the slowest worker's share. */
  reduceMs: number;
  /** Clipping and the SGD update: the slowest worker's share. */
  updateMs: number;
  /** Tasks the step was spread over (min(workers, shards)). */
  tasks: number;
}

export interface EpochRecord {
  epoch: number;
  /** Mean training loss over the epoch's samples, as the batches saw them (before each update). */
  trainLoss: number;
  trainAccuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  /** The learning rate of the epoch's last step. */
  lr: number;
  /** Training samples per second over the epoch's steps (evaluation excluded). */
  samplesPerSec: number;
  /** Wall time of the epoch's steps, in seconds (evaluation excluded). */
  seconds: number;
  steps: number;
  /** Steps with no update: every target in the batch was ignored, or (onNonfinite 'skip') the loss or
   *  gradient was not finite. */
  skippedSteps: number;
  /** Of those, the steps skipped for a non-finite loss or gradient. */
  nonfiniteSteps: number;
}

export interface Evaluation {
  /** Mean loss as the 'mean' reduction defines it, whatever the reduction option. */
  loss: number;
  /** Fraction of rows classified right (softmax losses; ignored rows not counted), or of outputs
   *  thresholded right at probability 0.5 (sigmoid losses). */
  accuracy: number;
  rows: number;
  /** counts[true][predicted]: K x K for softmax losses, 2 x 2 for a single sigmoid output, null for
   *  several sigmoid outputs (multi-label: see perClass). */
  confusion: number[][] | null;
  /** Precision, recall, F1 and support per class (per output, of its positive class, for multi-label),
   *  and their macro and support-weighted averages. */
  report: ClassReport;
}

/** The training state a checkpoint carries beyond the parameters, for resuming bit-identically. */
interface TrainingState {
  /** Epochs completed. */
  epoch: number;
  step: number;
  schedulerSteps: number;
  hasMomentumBuffer: boolean;
  /** Batches done of the epoch in progress (0 between epochs: a checkpoint written mid-epoch, on an
   *  interrupt, resumes at the next batch), and that epoch's sums and skipped steps so far. */
  batch: number;
  epochSums: BatchSums;
  epochSkipped: number;
  epochNonfinite: number;
}

function freshState(): TrainingState {
  return { epoch: 0, step: 0, schedulerSteps: 0, hasMomentumBuffer: false, batch: 0, epochSums: emptySums(), epochSkipped: 0, epochNonfinite: 0 };
}

type RowName = (row: number) => string;

/** A step whose loss or gradient was NaN or infinite, with onNonfinite 'stop': nothing was applied. */
export class NonfiniteError extends Error {
  constructor(
    message: string,
    readonly step: number,
    /** The shards whose loss or gradient was not finite, with their positions in the epoch's order. */
    readonly shards: { shard: number; positions: [number, number]; rows: number[] }[],
  ) {
    super(message);
    this.name = 'NonfiniteError';
  }
}

const MOMENTUM_TENSOR = 'optimizer.momentum_buffer';

export class Trainer {
  readonly options: Readonly<ResolvedOptions>;
  readonly config: Readonly<ModelConfig>;
  readonly loss: Readonly<LossSpec>;
  private readonly core: Coordinator;
  private state: TrainingState = freshState();
  /** The call running on the pool, if any: every shard slot is in use by it. */
  private running: string | null = null;
  /** How the worker count was chosen, when it was workers: 'auto'. */
  workersChoice?: { workers: number; reason: string };

  /**
   * Makes a Trainer like `new Trainer(options)`, and also takes workers: 'auto': the worker count is then
   * read from a saved tuning result for this model shape and batch size (`tuneFile`, written by
   * `npm run tune`), or measured by a quick probe; `workersChoice` says which and why.
   */
  static async create(options: TrainerOptions, tuneFile?: string): Promise<Trainer> {
    if (options.workers !== 'auto') return new Trainer(options);
    const { chooseWorkers } = await import('./tune.js'); // the tuner trains Trainers itself
    const choice = await chooseWorkers({ ...options, workers: undefined }, tuneFile);
    const trainer = new Trainer({ ...options, workers: choice.workers });
    trainer.workersChoice = choice;
    return trainer;
  }

  constructor(options: TrainerOptions) {
    this.options = resolveOptions(options);
    this.config = modelConfig(this.options);
    this.loss = lossSpec(this.options);
    const o = this.options;
    this.core = new Coordinator(this.config, this.loss, o, o);
    initParameters(this.core.params, o.layers, o.seed);
  }

  /**
   * Rebuilds a Trainer from a checkpoint written by save(): its model, its options and its training
   * state (epoch, step, schedule position, momentum), so fit() continues exactly where it stopped.
   * `options` override the saved ones (workers, say); layers, activation and loss are the file's.
   */
  static async load(path: string, options: Omit<TrainerOptions, 'layers' | 'activation' | 'loss'> = {}): Promise<Trainer> {
    const ckpt = await loadCheckpoint(path);
    const saved = savedOptions(ckpt, path);
    const trainer = await Trainer.create({ ...saved, ...options, ...ckpt.config });
    assignParameters(trainer.core.params, trainer.options.layers, ckpt, path);
    trainer.restoreState(ckpt, path);
    return trainer;
  }

  /** The flat parameter buffer (P) in PyTorch's order: layers.0.weight (out, in), layers.0.bias, ...
   *  A view of the current parameters: each step writes the next ones elsewhere, so read this again
   *  after fit() rather than keeping an old view (copy it with .slice() to keep values). */
  get parameters(): Float32Array {
    return this.core.params;
  }

  /** Epochs completed and optimizer steps taken so far, and batches done of the epoch in progress (not 0
   *  only after fit() was interrupted mid-epoch); continued by load(). */
  get progress(): { epoch: number; step: number; batch: number } {
    return { epoch: this.state.epoch, step: this.state.step, batch: this.state.batch };
  }

  /** Worker failures (a throw, an exit, running out of memory, a hang) recovered from by re-running
   *  their shards, over this Trainer's life. */
  get recoveredFailures(): number {
    return this.core.retries;
  }

  /** Replaces the parameters (only) with a checkpoint's, refusing one whose tensors do not fit. */
  async loadParameters(path: string): Promise<void> {
    assignParameters(this.core.params, this.options.layers, await loadCheckpoint(path), path);
  }

  /** The learning rate (and any momentum a OneCycle schedule sets) for the next optimizer step. */
  private hyper(): { lr: number; momentum: number } {
    const o = this.options;
    if (o.schedule === null) return { lr: o.lr, momentum: o.momentum };
    const at = scheduleAt(o.schedule, o.lr, this.state.schedulerSteps);
    return { lr: at.lr, momentum: at.momentum ?? o.momentum };
  }

  async fit(train: Dataset, fit: FitOptions = {}): Promise<EpochRecord[]> {
    return this.exclusive('fit', () => this.fitNow(train, fit));
  }

  /** Runs `work` on a shared copy of data, then lets the workers drop it. */
  private async using<T>(data: SharedDataset, work: (d: SharedDataset) => Promise<T>): Promise<T> {
    try {
      return await work(data);
    } finally {
      this.core.release(data);
    }
  }

  private async fitNow(train: Dataset, fit: FitOptions): Promise<EpochRecord[]> {
    const epochs = fit.epochs ?? 1;
    if (!Number.isInteger(epochs) || epochs < 1) {
      throw new TypeError(`fit options.epochs must be a positive integer; got ${String(epochs)}`);
    }
    // Everything is validated and copied before the first step, so bad data costs no training time.
    // Per-sample losses are kept too, to name the samples of a step whose loss is not finite.
    const data = shareDataset(train, this.config, this.loss, 'training data', { losses: true });
    const val = fit.validation === undefined ? undefined
      : shareDataset(fit.validation, this.config, this.loss, 'validation data', { probabilities: true });
    try {
      return await this.epochs(data, val, epochs, fit, train.rowName ?? ((r) => `row ${r}`));
    } finally {
      this.core.release(data);
      if (val !== undefined) this.core.release(val);
    }
  }

  private async epochs(
    data: SharedDataset, val: SharedDataset | undefined, epochs: number, fit: FitOptions, rowName: RowName,
  ): Promise<EpochRecord[]> {
    const o = this.options;
    const batches = Math.ceil(data.rows / o.batchSize);
    const history: EpochRecord[] = [];
    const st = this.state;
    if (st.batch >= batches) {
      throw new RangeError(`this Trainer stopped after batch ${st.batch} of an epoch, but the training data has only ${batches} batches; resume with the same data`);
    }
    for (let e = 0; e < epochs; e++) {
      const epoch = st.epoch + 1;
      setOrder(data.order, o.shuffle ? o.seed : null, epoch);
      let lr = o.lr;
      const t0 = performance.now();
      const first = st.batch; // 0, or where an interrupted epoch stopped
      let turn = performance.now();
      for (let b = first; b < batches; b++) {
        // A step that ends quickly never leaves the microtask queue: every few milliseconds the event loop
        // gets a turn, so that signals, timers and abort() reach this loop within a step or so.
        if (performance.now() - turn > 10) {
          await new Promise((resolve) => setImmediate(resolve));
          turn = performance.now();
        }
        if (fit.signal?.aborted) throw fit.signal.reason;
        const start = b * o.batchSize;
        const end = Math.min(start + o.batchSize, data.rows);
        const tStep = performance.now();
        const h = this.hyper();
        lr = h.lr;
        const { sums, decision } = await this.core.step(data, start, end, {
          ...h, maxNorm: o.clipGradNorm, normType: o.clipNormType,
        }).catch((err: unknown) => {
          throw err instanceof ShardFailure ? this.shardError(err, data, rowName, `step ${st.step + 1} (epoch ${epoch}, batch ${b + 1} of ${batches})`) : err;
        });
        if (decision.outcome === 'nonfinite') {
          if (o.clipGradNorm !== null && o.errorIfNonfinite) checkNormFinite(decision.gradNorm, o.clipNormType);
          if (o.onNonfinite === 'stop') throw this.nonfiniteError(data, rowName, start, end, sums, decision.gradNorm, epoch, b + 1, batches);
          st.epochNonfinite++;
        }
        if (decision.outcome !== 'update') st.epochSkipped++;
        else st.hasMomentumBuffer = this.core.hasMomentumBuffer;
        const timing = stepTiming(this.core.timing, performance.now() - tStep);
        st.step++;
        st.batch = b + 1;
        if (o.schedule !== null && o.scheduleInterval === 'step') st.schedulerSteps++;
        if (decision.outcome !== 'nonfinite') addSums(st.epochSums, sums);
        fit.onStep?.({
          epoch, batch: b + 1, batches, step: st.step, loss: sums.lossSum / sums.weightSum, rows: sums.rows, lr,
          ...(o.clipGradNorm === null ? {} : { gradNorm: decision.gradNorm }),
          ...(decision.outcome === 'update' ? {} : { skipped: true }), timing,
        });
      }
      const seconds = (performance.now() - t0) / 1000;
      const total = st.epochSums;
      const record: EpochRecord = {
        epoch,
        trainLoss: total.lossSum / total.weightSum,
        trainAccuracy: total.correct / total.counted,
        lr,
        samplesPerSec: (data.rows - first * o.batchSize) / seconds,
        seconds,
        steps: batches,
        skippedSteps: st.epochSkipped,
        nonfiniteSteps: st.epochNonfinite,
      };
      st.epoch = epoch;
      st.batch = 0;
      st.epochSums = emptySums();
      st.epochSkipped = 0;
      st.epochNonfinite = 0;
      if (o.schedule !== null && o.scheduleInterval === 'epoch') st.schedulerSteps++;
      if (val !== undefined) {
        const ev = await this.evaluateShared(val);
        record.valLoss = ev.loss;
        record.valAccuracy = ev.accuracy;
      }
      history.push(record);
      await fit.onEpoch?.(record);
    }
    return history;
  }

  /** The error for a step whose loss or gradient was not finite: which shards, which samples, why. */
  private nonfiniteError(
    data: SharedDataset, rowName: RowName, start: number, end: number, sums: BatchSums, gradNorm: number,
    epoch: number, batch: number, batches: number,
  ): NonfiniteError {
    const step = this.state.step + 1;
    const bad = this.core.nonfiniteShards(start, end).map((sh) => {
      const rows = Array.from(data.order.subarray(sh.positions[0], sh.positions[1]));
      const perSample = data.lossOut;
      const K = perSample !== null && perSample.length > data.rows ? perSample.length / data.rows : 1;
      const named: string[] = [];
      for (let p = sh.positions[0]; p < sh.positions[1] && perSample !== null; p++) {
        for (let k = 0; k < K; k++) {
          const v = perSample[p * K + k];
          if (!Number.isFinite(v)) named.push(`${rowName(data.order[p])} (loss ${v}${K > 1 ? ` at output ${k}` : ''})`);
        }
      }
      const what = named.length > 0
        ? `non-finite loss in ${named.length} sample${named.length > 1 ? 's' : ''}: ${named.slice(0, 5).join(', ')}${named.length > 5 ? ', ...' : ''}`
        : `a finite loss but a non-finite gradient, over samples ${rows.slice(0, 5).map(rowName).join(', ')}${rows.length > 5 ? ', ...' : ''}`;
      return { shard: sh.shard, positions: sh.positions, rows, text: `shard ${sh.shard} (positions ${sh.positions[0]}-${sh.positions[1] - 1} of the epoch's order): ${what}` };
    });
    const o = this.options;
    const message =
      `step ${step} (epoch ${epoch}, batch ${batch} of ${batches}) gave a non-finite ` +
      `${Number.isFinite(sums.lossSum) ? 'gradient' : `loss (${sums.lossSum})`} (gradient norm ${gradNorm}); the update was not ` +
      `applied, so the parameters keep their values from before this step\n` +
      bad.map((b) => `  ${b.text}\n`).join('') +
      `hint: the usual causes are a learning rate too high for this model (options.lr, now ${o.lr}), inputs ` +
      `that are not normalised (standardize them, or scale them to about [-1, 1]), or an extreme class or positive ` +
      `weight; options.clipGradNorm bounds the steps. To skip such steps and go on, set options.onNonfinite to 'skip'`;
    return new NonfiniteError(message, step, bad.map(({ shard, positions, rows }) => ({ shard, positions, rows })));
  }

  /** A ShardFailure with its samples named. */
  private shardError(err: ShardFailure, data: SharedDataset, rowName: RowName, where: string): Error {
    const [p0, p1] = err.positions;
    const rows = Array.from(data.order.subarray(p0, p1), rowName);
    const what = err.shard >= 0 ? `shard ${err.shard} of ${where}` : `the gradient reduction and update of ${where}`;
    const e = new Error(
      `${what} failed on ${err.attempts} workers in a row (options.shardRetries is ${this.options.shardRetries}), so it ` +
      `is not bad luck but something in the shard or the code; its samples: positions ${p0}-${p1 - 1} of the order, ` +
      `${rows.slice(0, 8).join(', ')}${rows.length > 8 ? `, ... (${rows.length} in all)` : ''}. The last worker error: ` +
      `${err.cause.stack ?? err.cause.message}`,
      { cause: err.cause },
    );
    e.name = 'ShardFailure';
    return e;
  }

  /** Loss, accuracy, confusion matrix and per-class report of the current parameters on `data`. */
  async evaluate(data: Dataset): Promise<Evaluation> {
    return this.exclusive('evaluate', () =>
      this.using(shareDataset(data, this.config, this.loss, 'evaluation data', { probabilities: true }), (d) => this.evaluateShared(d)));
  }

  /** Probabilities (N, K), row-major: softmax rows for the softmax losses, sigmoids otherwise. */
  async predict(x: Features): Promise<Float32Array> {
    return this.exclusive('predict', () =>
      this.using(shareFeatures(x, this.config, 'predict input'), async (d) => {
        await this.forwardAll(d);
        return new Float32Array(d.out as Float32Array);
      }));
  }

  /** Per-sample losses, PyTorch's reduction='none': (N) for softmax losses (0 for ignored rows), (N, K)
   *  row-major for the sigmoid losses. */
  async losses(data: Dataset): Promise<Float32Array> {
    return this.exclusive('losses', () =>
      this.using(shareDataset(data, this.config, this.loss, 'loss data', { losses: true }), async (d) => {
        await this.forwardAll(d);
        return new Float32Array(d.lossOut as Float32Array);
      }));
  }

  /**
   * Writes a safetensors checkpoint atomically (see checkpoint.ts): the model's tensors (what PyTorch
   * loads), the momentum buffer, and in its metadata the options and the training state.
   */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    // Everything is copied now, synchronously, so the file is the model between two steps even if
    // fit() goes on while it is written (as when save() is called from onEpoch).
    const state: TrainingState = { ...this.state };
    const tensors = state.hasMomentumBuffer ? { [MOMENTUM_TENSOR]: new Float32Array(this.core.momentumBuffer) } : undefined;
    await saveCheckpoint(path, this.config, new Float32Array(this.core.params), {
      ...metadata,
      'gradpool.options': metadataJson(this.options),
      'gradpool.state': JSON.stringify(state),
    }, tensors);
  }

  async close(): Promise<void> {
    await this.core.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private restoreState(ckpt: Checkpoint, path: string): void {
    const text = ckpt.metadata['gradpool.state'];
    if (text === undefined) return; // parameters only: a fresh run starting from them
    let s: TrainingState;
    try {
      s = JSON.parse(text) as TrainingState;
    } catch {
      throw new CheckpointError(path, `metadata "gradpool.state" is not valid JSON: ${text.slice(0, 80)}`);
    }
    if (typeof s !== 'object' || s === null) {
      throw new CheckpointError(path, `metadata "gradpool.state" is not a training state: ${text.slice(0, 120)}`);
    }
    const count = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
    if (!count(s.epoch) || !count(s.step) || !count(s.schedulerSteps) || typeof s.hasMomentumBuffer !== 'boolean') {
      throw new CheckpointError(path, `metadata "gradpool.state" is not a training state: ${text.slice(0, 120)}`);
    }
    if (s.hasMomentumBuffer) {
      const m = ckpt.tensors[MOMENTUM_TENSOR];
      if (m === undefined || m.length !== this.core.P) {
        throw new CheckpointError(path, `tensor '${MOMENTUM_TENSOR}' is missing or not ${this.core.P} floats, but the state says SGD momentum had started`);
      }
      this.core.momentumBuffer.set(m);
    }
    this.core.hasMomentumBuffer = s.hasMomentumBuffer;
    const sums = s.epochSums;
    const partial = s.batch === undefined ? { batch: 0 } : {
      batch: s.batch, epochSums: sums, epochSkipped: s.epochSkipped, epochNonfinite: s.epochNonfinite,
    };
    if (!count(partial.batch) || (partial.batch > 0 && !(count(s.epochSkipped) && count(s.epochNonfinite) && typeof sums === 'object' && sums !== null &&
      ['lossSum', 'weightSum', 'correct', 'counted', 'rows'].every((k) => typeof (sums as unknown as Record<string, unknown>)[k] === 'number')))) {
      throw new CheckpointError(path, `metadata "gradpool.state" has no valid position within its epoch: ${text.slice(0, 160)}`);
    }
    this.state = { ...freshState(), epoch: s.epoch, step: s.step, schedulerSteps: s.schedulerSteps, hasMomentumBuffer: s.hasMomentumBuffer, ...partial };
  }

  /** Runs one pool call at a time: the shard slots belong to the running call until it ends. */
  private async exclusive<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (this.running !== null) {
      throw new Error(`${name}() was called while ${this.running}() is still running on this Trainer; await it first`);
    }
    this.running = name;
    try {
      return await work();
    } finally {
      this.running = null;
    }
  }

  /** Forward passes over every row in order, batch by batch; returns the summed stats. */
  private async forwardAll(data: SharedDataset): Promise<BatchSums> {
    const chunk = this.core.slots * this.core.maxShardRows;
    const total = emptySums();
    for (let start = 0; start < data.rows; start += chunk) {
      addSums(total, await this.core.forward(data, start, Math.min(start + chunk, data.rows)));
    }
    return total;
  }

  private async evaluateShared(data: SharedDataset): Promise<Evaluation> {
    const sums = await this.forwardAll(data);
    const K = this.config.layers[this.config.layers.length - 1];
    const confusions = confusionMatrices(data, this.config, this.loss, K);
    return {
      loss: sums.lossSum / sums.weightSum,
      accuracy: sums.correct / sums.counted,
      rows: data.rows,
      confusion: confusions.length === 1 ? confusions[0] : null,
      report: classReport(confusions),
    };
  }
}

function stepTiming(t: BatchTiming, stepMs: number): StepTiming {
  return {
    stepMs,
    computeMs: t.computeMaxMs,
    computeTotalMs: t.computeSumMs,
    barrierMs: t.computeMaxMs - t.computeSumMs / t.tasks,
    dispatchMs: stepMs - t.computeMaxMs - t.reduceMs - t.updateMs,
    reduceMs: t.reduceMs,
    updateMs: t.updateMs,
    tasks: t.tasks,
  };
}

/** nn.Linear's default initialisation: weight and bias uniform in +-1/sqrt(fan_in), in layout order. */
function initParameters(params: Float32Array, layers: readonly number[], seed: number): void {
  const rng = new Rng(seed);
  for (const layer of linearViews(params, layers)) {
    const bound = 1 / Math.sqrt(layer.C);
    for (let i = 0; i < layer.weight.length; i++) layer.weight[i] = rng.uniform(bound);
    for (let i = 0; i < layer.bias.length; i++) layer.bias[i] = rng.uniform(bound);
  }
}

/** The epoch's visiting order: identity, or a shuffle seeded by (seed, epoch) so any epoch can be redone. */
function setOrder(order: Int32Array, seed: number | null, epoch: number): void {
  for (let i = 0; i < order.length; i++) order[i] = i;
  if (seed !== null) new Rng((seed ^ Math.imul(epoch, 0x9e3779b1)) >>> 0).shuffle(order);
}

/**
 * Confusion matrices counts[true][predicted]: one K x K for softmax losses (true class: the index, or the
 * argmax of probability targets; ignored rows skipped), one 2 x 2 per output for sigmoid losses.
 */
function confusionMatrices(data: SharedDataset, model: ModelConfig, loss: LossSpec, K: number): number[][][] {
  const out = data.out as Float32Array;
  const argmax = (a: Float32Array, r: number): number => {
    let best = 0;
    for (let k = 1; k < K; k++) if (a[r * K + k] > a[r * K + best]) best = k;
    return best;
  };
  if (isSoftmaxLoss(model.loss)) {
    const m = Array.from({ length: K }, () => new Array<number>(K).fill(0));
    for (let i = 0; i < data.rows; i++) {
      const row = data.order[i];
      const t = data.labels !== null ? data.labels[row] : argmax(data.values as Float32Array, row);
      if (data.labels !== null && t === loss.ignoreIndex) continue;
      m[t][argmax(out, i)]++;
    }
    return [m];
  }
  const y = data.values as Float32Array;
  const ms = Array.from({ length: K }, () => [[0, 0], [0, 0]]);
  for (let i = 0; i < data.rows; i++) {
    const row = data.order[i];
    for (let k = 0; k < K; k++) ms[k][y[row * K + k] >= 0.5 ? 1 : 0][out[i * K + k] > 0.5 ? 1 : 0]++;
  }
  return ms;
}

function savedOptions(ckpt: Checkpoint, path: string): Partial<TrainerOptions> {
  const text = ckpt.metadata['gradpool.options'];
  if (text === undefined) return {};
  try {
    // The worker count is the machine's, not the run's: results do not depend on it (shards do).
    const { workers: _, ...options } = parseMetadataJson(text) as TrainerOptions;
    return options;
  } catch {
    throw new CheckpointError(path, `metadata "gradpool.options" is not valid JSON: ${text.slice(0, 80)}`);
  }
}
