// The Trainer's options: an all-optional interface (but `layers`), one filled defaults table, a spread
// merge, and every field validated at construction with a message that names it and the value received.
// SGD's options, names and defaults are torch.optim.SGD's (camelCased); see src/shared/sgd.ts.

import { cpuLimit } from './cpus.js';
import { validateClip } from '../shared/clip.js';
import { defaultLossSpec, type LossSpec } from '../shared/losses.js';
import { ACTIVATIONS, LOSSES, isSoftmaxLoss, type Activation, type LossName, type ModelConfig } from '../shared/model.js';
import { validateSchedule, type ScheduleSpec } from '../shared/schedule.js';
import { wasmSimdSupported } from '../shared/wasm.js';
import { SGD_DEFAULTS, validateSGD, type SGDOptions } from '../shared/sgd.js';

export type Reduction = 'mean' | 'sum';

/** The loss's options, named and defaulted as PyTorch's (camelCased). Each applies to some losses only. */
export interface LossOptions {
  /** cross-entropy: a weight per class; bce-with-logits, bce: a weight per output. Length K. */
  weight?: number[];
  /** cross-entropy, softmax-focal: rows with this class index are skipped. Default -100. */
  ignoreIndex?: number;
  /** cross-entropy: label smoothing in [0, 1]. Default 0. */
  labelSmoothing?: number;
  /** bce-with-logits: weight of the positive examples per output. Length K. */
  posWeight?: number[];
  /** sigmoid-focal, softmax-focal: the focusing parameter gamma >= 0. Default 2. */
  focalGamma?: number;
  /** sigmoid-focal: alpha in [0, 1], or negative for none (default 0.25, as torchvision).
   *  softmax-focal: one alpha per class (length K) or one for all; default none. */
  focalAlpha?: number | number[];
}

/** Learning-rate schedule and gradient clipping. */
export interface ScheduleOptions {
  /** A torch.optim.lr_scheduler equivalent; default none (constant lr). */
  schedule?: ScheduleSpec | null;
  /** When the schedule steps: after every 'epoch' (default, as PyTorch examples do) or every 'step'. */
  scheduleInterval?: 'epoch' | 'step';
  /** Clip the averaged gradient's total norm to this (clip_grad_norm_'s max_norm); default none. */
  clipGradNorm?: number | null;
  /** Order of that norm: 2 (default), any p >= 1, or Infinity. */
  clipNormType?: number;
  /** Throw when the gradient's total norm is NaN or infinite instead of clipping by it. Default false. */
  errorIfNonfinite?: boolean;
}

export interface TrainerOptions extends Partial<SGDOptions>, LossOptions, ScheduleOptions {
  /** Layer widths from input to output, e.g. [784, 128, 10]. Required. [D, 1] is logistic regression. */
  layers: number[];
  /** Nonlinearity between linear layers: 'relu' (default), 'tanh' or 'sigmoid'. */
  activation?: Activation;
  /** Softmax over K >= 2 outputs: 'cross-entropy' (nn.CrossEntropyLoss; class indices or class
   *  probabilities) or 'softmax-focal'. Independent sigmoid outputs with targets in [0, 1] of the output's
   *  shape: 'bce-with-logits' (nn.BCEWithLogitsLoss), 'bce' (nn.Sigmoid + nn.BCELoss) or 'sigmoid-focal'
   *  (torchvision.ops.sigmoid_focal_loss). Default: 'bce-with-logits' when the last layer has one
   *  output, 'cross-entropy' otherwise. */
  loss?: LossName;
  /** How per-sample losses combine, as nn.CrossEntropyLoss's reduction: 'mean' (default) or 'sum'. */
  reduction?: Reduction;
  /** Rows per mini-batch. Default 64. The last, smaller batch of an epoch is kept (drop_last=False). */
  batchSize?: number;
  /** Reshuffle the training rows every epoch, from `seed`. Default true. */
  shuffle?: boolean;
  /** Seeds the initial parameters and every epoch's shuffle. Default 0. */
  seed?: number;
  /** Worker threads in the pool. Default: the CPUs this process may use (os.availableParallelism(),
   *  lowered to a cgroup CPU quota). 'auto' measures (or reads a saved tuning result) and needs the
   *  async factory, Trainer.create(). */
  workers?: number | 'auto';
  /** Shards each batch is cut into, whatever the worker count: results are bit-identical across worker
   *  counts for the same value. Default max(4, workers), so 1 to 4 workers give the same bits. */
  shards?: number;
  /** The linear layers' kernels: 'wasm' (WebAssembly SIMD), 'js' (the TS reference loops), or 'auto'
   *  (default: 'wasm' where WebAssembly SIMD is available). The two round differently: results are
   *  bit-identical run to run for one choice, not across them. */
  kernels?: 'auto' | 'wasm' | 'js';
  /** A step whose loss or gradient is NaN or infinite is never applied; then 'stop' (default) ends
   *  fit() with an error naming the step, the shard and its samples, and 'skip' goes on to the next
   *  batch and counts it in the epoch's skippedSteps. */
  onNonfinite?: 'stop' | 'skip';
  /** Times a shard is re-run on a live worker after its worker failed (threw, exited, ran out of memory,
   *  or was stopped by workerTimeout) before fit() gives up with an error naming the shard. Default 3. */
  shardRetries?: number;
  /** Milliseconds a command may go without any worker making progress before the stuck workers are
   *  stopped and their shards re-run (torch.distributed's timeout, in ms). Default 600000 (10 minutes). */
  workerTimeout?: number;
  /** Each worker's V8 heap limit in MB (piscina's resourceLimits.maxOldGenerationSizeMb): a worker that
   *  exceeds it is ended and its shard re-run. Default: none (Node's own). Shared buffers do not count. */
  workerHeapMb?: number | null;
}

export interface ResolvedOptions extends SGDOptions, LossOptions {
  schedule: ScheduleSpec | null;
  scheduleInterval: 'epoch' | 'step';
  clipGradNorm: number | null;
  clipNormType: number;
  errorIfNonfinite: boolean;
  layers: number[];
  activation: Activation;
  loss: LossName;
  reduction: Reduction;
  batchSize: number;
  shuffle: boolean;
  seed: number;
  workers: number;
  shards: number;
  kernels: 'wasm' | 'js';
  onNonfinite: 'stop' | 'skip';
  shardRetries: number;
  workerTimeout: number;
  workerHeapMb: number | null;
}

const LOSS_OPTION_NAMES = ['weight', 'ignoreIndex', 'labelSmoothing', 'posWeight', 'focalGamma', 'focalAlpha'] as const;
const OPTION_NAMES = [
  'layers', 'activation', 'loss', 'reduction', 'batchSize', 'shuffle', 'seed', 'workers', 'shards', 'kernels',
  ...(Object.keys(SGD_DEFAULTS) as (keyof SGDOptions)[]),
  ...LOSS_OPTION_NAMES,
  'schedule', 'scheduleInterval', 'clipGradNorm', 'clipNormType', 'errorIfNonfinite',
  'onNonfinite', 'shardRetries', 'workerTimeout', 'workerHeapMb',
] as const;

/** Which losses each loss option applies to. */
const APPLIES_TO: Record<(typeof LOSS_OPTION_NAMES)[number], readonly LossName[]> = {
  weight: ['cross-entropy', 'bce-with-logits', 'bce'],
  ignoreIndex: ['cross-entropy', 'softmax-focal'],
  labelSmoothing: ['cross-entropy'],
  posWeight: ['bce-with-logits'],
  focalGamma: ['sigmoid-focal', 'softmax-focal'],
  focalAlpha: ['sigmoid-focal', 'softmax-focal'],
};

export function resolveOptions(options: TrainerOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`options must be an object with at least { layers }; got ${String(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!(OPTION_NAMES as readonly string[]).includes(key)) {
      throw new TypeError(`options.${key} is not a Trainer option; the options are: ${OPTION_NAMES.join(', ')}`);
    }
  }
  const layers = validateLayers(options.layers);
  const K = layers[layers.length - 1];
  if (options.workers === 'auto') {
    throw new TypeError("options.workers 'auto' is measured when the Trainer is made: use await Trainer.create(options)");
  }
  const workers = options.workers ?? cpuLimit().cpus;
  positiveInteger('workers', workers);
  const o: ResolvedOptions = {
    ...SGD_DEFAULTS,
    activation: 'relu',
    loss: K === 1 ? 'bce-with-logits' : 'cross-entropy',
    reduction: 'mean',
    batchSize: 64,
    shuffle: true,
    seed: 0,
    shards: Math.max(4, workers),
    schedule: null,
    scheduleInterval: 'epoch',
    clipGradNorm: null,
    clipNormType: 2,
    errorIfNonfinite: false,
    onNonfinite: 'stop',
    shardRetries: 3,
    workerTimeout: 600_000,
    workerHeapMb: null,
    ...stripUndefined(options),
    layers,
    workers,
    kernels: resolveKernels(options.kernels),
  };
  oneOf('activation', o.activation, ACTIVATIONS);
  oneOf('loss', o.loss, LOSSES);
  oneOf('reduction', o.reduction, ['mean', 'sum']);
  positiveInteger('batchSize', o.batchSize);
  positiveInteger('shards', o.shards);
  if (typeof o.shuffle !== 'boolean') throw new TypeError(`options.shuffle must be a boolean; got ${String(o.shuffle)}`);
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > 0xffffffff) {
    throw new RangeError(`options.seed must be an integer from 0 to 4294967295; got ${String(o.seed)}`);
  }
  validateSGD(o);
  if (isSoftmaxLoss(o.loss) && K < 2) {
    throw new RangeError(
      `options.loss '${o.loss}' needs at least 2 outputs; layers ends in ${K}` +
        `\nhint: a single output is logistic regression: use loss 'bce-with-logits', or end layers in the class count`,
    );
  }
  validateLossOptions(o, K);
  if (o.schedule !== null) validateSchedule(o.schedule, 'options.schedule');
  oneOf('scheduleInterval', o.scheduleInterval, ['epoch', 'step']);
  validateClip(o);
  oneOf('onNonfinite', o.onNonfinite, ['stop', 'skip']);
  if (!Number.isInteger(o.shardRetries) || o.shardRetries < 0) {
    throw new RangeError(`options.shardRetries must be a non-negative integer; got ${String(o.shardRetries)}`);
  }
  if (typeof o.workerTimeout !== 'number' || !(o.workerTimeout > 0)) {
    throw new RangeError(`options.workerTimeout must be a positive number of milliseconds (Infinity: no limit); got ${String(o.workerTimeout)}`);
  }
  if (o.workerHeapMb !== null) positiveInteger('workerHeapMb', o.workerHeapMb);
  return o;
}

function validateLossOptions(o: ResolvedOptions, K: number): void {
  for (const name of LOSS_OPTION_NAMES) {
    if (o[name] !== undefined && !APPLIES_TO[name].includes(o.loss)) {
      throw new TypeError(
        `options.${name} applies to loss ${APPLIES_TO[name].map((l) => `'${l}'`).join(' or ')}; loss is '${o.loss}'`,
      );
    }
  }
  const perOutput = (name: 'weight' | 'posWeight'): void => {
    const v = o[name];
    if (v === undefined) return;
    if (!Array.isArray(v) || v.length !== K || !v.every((w) => typeof w === 'number' && Number.isFinite(w) && w >= 0)) {
      const what = isSoftmaxLoss(o.loss) ? 'class' : 'output';
      throw new TypeError(
        `options.${name} must be ${K} finite numbers >= 0, one per ${what} (layers ends in ${K}); got ${JSON.stringify(v)}`,
      );
    }
  };
  perOutput('weight');
  perOutput('posWeight');
  if (o.ignoreIndex !== undefined && !Number.isInteger(o.ignoreIndex)) {
    throw new TypeError(`options.ignoreIndex must be an integer; got ${String(o.ignoreIndex)}`);
  }
  const ls = o.labelSmoothing;
  if (ls !== undefined && (typeof ls !== 'number' || !(ls >= 0 && ls <= 1))) {
    throw new RangeError(`options.labelSmoothing must be between 0.0 and 1.0; got ${String(ls)}`);
  }
  const g = o.focalGamma;
  if (g !== undefined && (typeof g !== 'number' || !Number.isFinite(g) || g < 0)) {
    throw new RangeError(`options.focalGamma must be a finite number >= 0; got ${String(g)}`);
  }
  const a = o.focalAlpha;
  if (a === undefined) return;
  if (o.loss === 'sigmoid-focal') {
    if (typeof a !== 'number' || !Number.isFinite(a) || a > 1) {
      throw new RangeError(`options.focalAlpha for 'sigmoid-focal' must be a number in [0, 1], or negative for none; got ${JSON.stringify(a)}`);
    }
  } else if (typeof a === 'number' ? !(Number.isFinite(a) && a >= 0) : !Array.isArray(a) || a.length !== K || !a.every((v) => Number.isFinite(v) && v >= 0)) {
    throw new TypeError(`options.focalAlpha for 'softmax-focal' must be a number >= 0 or ${K} of them, one per class; got ${JSON.stringify(a)}`);
  }
}

/** The loss as the workers take it: options resolved to typed arrays and PyTorch's defaults. */
export function lossSpec(o: ResolvedOptions): LossSpec {
  const spec = defaultLossSpec(o.loss);
  const K = o.layers[o.layers.length - 1];
  const f32 = (v: number[] | undefined): Float32Array | null => (v === undefined ? null : Float32Array.from(v));
  spec.weight = f32(o.weight);
  spec.posWeight = f32(o.posWeight);
  if (o.ignoreIndex !== undefined) spec.ignoreIndex = o.ignoreIndex;
  if (o.labelSmoothing !== undefined) spec.labelSmoothing = o.labelSmoothing;
  if (o.focalGamma !== undefined) spec.focalGamma = o.focalGamma;
  if (o.focalAlpha !== undefined) {
    const a = o.focalAlpha;
    spec.focalAlpha = o.loss === 'sigmoid-focal' ? (a as number) : typeof a === 'number' ? new Float32Array(K).fill(a) : Float32Array.from(a);
  }
  return spec;
}

export function modelConfig(o: ResolvedOptions): ModelConfig {
  return { layers: o.layers, activation: o.activation, loss: o.loss };
}

function resolveKernels(k: unknown): 'wasm' | 'js' {
  oneOf('kernels', k ?? 'auto', ['auto', 'wasm', 'js']);
  if (k === 'js') return 'js';
  if (wasmSimdSupported()) return 'wasm';
  if (k === 'wasm') throw new RangeError("options.kernels 'wasm' needs WebAssembly SIMD, which this runtime lacks; use 'auto' or 'js'");
  return 'js';
}

function validateLayers(layers: unknown): number[] {
  if (!Array.isArray(layers) || layers.length < 2 || !layers.every((w) => Number.isInteger(w) && w > 0)) {
    throw new TypeError(
      `options.layers must be an array of at least two positive integers, input width first (e.g. [784, 128, 10]); got ${JSON.stringify(layers)}`,
    );
  }
  return [...layers];
}

function positiveInteger(name: string, v: unknown): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new TypeError(`options.${name} must be a positive integer; got ${String(v)}`);
  }
}

function oneOf(name: string, v: unknown, allowed: readonly string[]): void {
  if (typeof v !== 'string' || !allowed.includes(v)) {
    throw new TypeError(`options.${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}; got ${JSON.stringify(v)}`);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
