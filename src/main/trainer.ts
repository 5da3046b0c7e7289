// The public Trainer: builds the model and its worker pool from validated options, and runs epochs of
// mini-batch SGD (fit), evaluation with a confusion matrix, prediction, and checkpoints. The per-step
// work happens in the Coordinator; this file is the epoch loop and the user-facing API.

import { Coordinator, type BatchSums } from './coordinator.js';
import { shareDataset, shareFeatures, type Dataset, type Features, type SharedDataset } from './data.js';
import { assignParameters, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { modelConfig, resolveOptions, type ResolvedOptions, type TrainerOptions } from './options.js';
import { linearViews, type ModelConfig } from '../shared/model.js';
import { Rng } from '../shared/rng.js';

export interface FitOptions {
  /** Passes over the training data. Default 1. */
  epochs?: number;
  /** Evaluated after every epoch; its loss and accuracy go into the history. */
  validation?: Dataset;
  /** Called after every optimizer step. */
  onStep?: (step: StepInfo) => void;
  /** Called after every epoch with its record (also returned in the history). */
  onEpoch?: (record: EpochRecord) => void;
  /** Aborting stops training after the current step; fit() then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface StepInfo {
  /** 1-based epoch of this Trainer's life (continues across fit() calls). */
  epoch: number;
  /** 1-based batch within the epoch, and the epoch's batch count. */
  batch: number;
  batches: number;
  /** Optimizer steps taken so far by this Trainer, this one included. */
  step: number;
  /** The batch's mean loss per sample (per element for BCE). */
  loss: number;
  rows: number;
  lr: number;
}

export interface EpochRecord {
  epoch: number;
  /** Mean training loss over the epoch's samples, as the batches saw them (before each update). */
  trainLoss: number;
  trainAccuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Training samples per second over the epoch's steps (evaluation excluded). */
  samplesPerSec: number;
  /** Wall time of the epoch's steps, in seconds (evaluation excluded). */
  seconds: number;
  steps: number;
}

export interface Evaluation {
  /** Mean loss per sample (per element for BCE), whatever the reduction option. */
  loss: number;
  /** Fraction of rows classified right; for BCE, of outputs thresholded right at probability 0.5. */
  accuracy: number;
  rows: number;
  /** counts[true][predicted], K x K for cross-entropy, 2 x 2 for a single BCE output; null for
   *  multi-label BCE. */
  confusion: number[][] | null;
}

export class Trainer {
  readonly options: Readonly<ResolvedOptions>;
  readonly config: Readonly<ModelConfig>;
  private readonly core: Coordinator;
  private epochsDone = 0;
  private stepsDone = 0;
  /** The call running on the pool, if any: every shard slot is in use by it. */
  private running: string | null = null;

  constructor(options: TrainerOptions) {
    this.options = resolveOptions(options);
    this.config = modelConfig(this.options);
    const o = this.options;
    this.core = new Coordinator(this.config, o.workers, o.shards, o.batchSize, o.reduction);
    initParameters(this.core.params, o.layers, o.seed);
  }

  /** Reads a checkpoint written by save(); options (but layers, activation and loss) may be given. */
  static async load(path: string, options: Omit<TrainerOptions, 'layers' | 'activation' | 'loss'> = {}): Promise<Trainer> {
    const ckpt = await loadCheckpoint(path);
    const trainer = new Trainer({ ...options, ...ckpt.config });
    assignParameters(trainer.core.params, trainer.options.layers, ckpt, path);
    return trainer;
  }

  /** The flat parameter buffer (P) in PyTorch's order: layers.0.weight (out, in), layers.0.bias, ... */
  get parameters(): Float32Array {
    return this.core.params;
  }

  /** Replaces the parameters with a checkpoint's, refusing one whose tensors do not fit this model. */
  async loadParameters(path: string): Promise<void> {
    assignParameters(this.core.params, this.options.layers, await loadCheckpoint(path), path);
  }

  async fit(train: Dataset, fit: FitOptions = {}): Promise<EpochRecord[]> {
    return this.exclusive('fit', () => this.fitNow(train, fit));
  }

  private async fitNow(train: Dataset, fit: FitOptions): Promise<EpochRecord[]> {
    const epochs = fit.epochs ?? 1;
    if (!Number.isInteger(epochs) || epochs < 1) {
      throw new TypeError(`fit options.epochs must be a positive integer; got ${String(epochs)}`);
    }
    // Everything is validated and copied before the first step, so bad data costs no training time.
    const data = shareDataset(train, this.config, 'training data', false);
    const val = fit.validation === undefined ? undefined : shareDataset(fit.validation, this.config, 'validation data', true);
    const o = this.options;
    const batches = Math.ceil(data.rows / o.batchSize);
    const history: EpochRecord[] = [];
    for (let e = 0; e < epochs; e++) {
      const epoch = ++this.epochsDone;
      setOrder(data.order, o.shuffle ? o.seed : null, epoch);
      const total: BatchSums = { lossSum: 0, weightSum: 0, correct: 0, rows: 0 };
      const t0 = performance.now();
      for (let b = 0; b < batches; b++) {
        if (fit.signal?.aborted) throw fit.signal.reason;
        const start = b * o.batchSize;
        const sums = await this.core.runBatch('grad', data, start, Math.min(start + o.batchSize, data.rows));
        this.core.update(o, o.lr);
        this.stepsDone++;
        addSums(total, sums);
        fit.onStep?.({
          epoch, batch: b + 1, batches, step: this.stepsDone, loss: sums.lossSum / sums.weightSum, rows: sums.rows, lr: o.lr,
        });
      }
      const seconds = (performance.now() - t0) / 1000;
      const record: EpochRecord = {
        epoch,
        trainLoss: total.lossSum / total.weightSum,
        trainAccuracy: total.correct / total.weightSum,
        samplesPerSec: data.rows / seconds,
        seconds,
        steps: batches,
      };
      if (val !== undefined) {
        const ev = await this.evaluateShared(val);
        record.valLoss = ev.loss;
        record.valAccuracy = ev.accuracy;
      }
      history.push(record);
      fit.onEpoch?.(record);
    }
    return history;
  }

  /** Loss, accuracy and confusion matrix of the current parameters on `data`. */
  async evaluate(data: Dataset): Promise<Evaluation> {
    return this.exclusive('evaluate', () => this.evaluateShared(shareDataset(data, this.config, 'evaluation data', true)));
  }

  /** Probabilities (N, K), row-major: softmax rows for cross-entropy, elementwise sigmoid for BCE. */
  async predict(x: Features): Promise<Float32Array> {
    return this.exclusive('predict', async () => {
      const data = shareFeatures(x, this.config, 'predict input');
      await this.forwardAll(data);
      return new Float32Array(data.out as Float32Array);
    });
  }

  /** Writes a safetensors checkpoint of the current parameters atomically (see checkpoint.ts). */
  async save(path: string): Promise<void> {
    // The copy is taken now, synchronously, so it is the model between two steps even if fit() goes on
    // while the file is written (as when save() is called from onEpoch).
    await saveCheckpoint(path, this.config, new Float32Array(this.core.params), {
      'gradpool.epoch': String(this.epochsDone),
      'gradpool.step': String(this.stepsDone),
    });
  }

  async close(): Promise<void> {
    await this.core.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
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
    const total: BatchSums = { lossSum: 0, weightSum: 0, correct: 0, rows: 0 };
    for (let start = 0; start < data.rows; start += chunk) {
      addSums(total, await this.core.runBatch('forward', data, start, Math.min(start + chunk, data.rows)));
    }
    return total;
  }

  private async evaluateShared(data: SharedDataset): Promise<Evaluation> {
    const sums = await this.forwardAll(data);
    return {
      loss: sums.lossSum / sums.weightSum,
      accuracy: sums.correct / sums.weightSum,
      rows: data.rows,
      confusion: confusionMatrix(data, this.config),
    };
  }
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

function addSums(total: BatchSums, s: BatchSums): void {
  total.lossSum += s.lossSum;
  total.weightSum += s.weightSum;
  total.correct += s.correct;
  total.rows += s.rows;
}

function confusionMatrix(data: SharedDataset, model: ModelConfig): number[][] | null {
  const K = model.layers[model.layers.length - 1];
  const out = data.out as Float32Array;
  if (model.loss === 'cross-entropy') {
    const m = Array.from({ length: K }, () => new Array<number>(K).fill(0));
    const labels = data.labels as Int32Array;
    for (let i = 0; i < data.rows; i++) {
      let best = 0;
      for (let k = 1; k < K; k++) if (out[i * K + k] > out[i * K + best]) best = k;
      m[labels[data.order[i]]][best]++;
    }
    return m;
  }
  if (K !== 1) return null;
  const y = new Float32Array(data.buffers.y as SharedArrayBuffer);
  const m = [[0, 0], [0, 0]];
  for (let i = 0; i < data.rows; i++) m[y[data.order[i]] >= 0.5 ? 1 : 0][out[i] > 0.5 ? 1 : 0]++;
  return m;
}
