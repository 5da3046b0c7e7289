// The Trainer's options: an all-optional interface (but `layers`), one filled defaults table, a spread
// merge, and every field validated at construction with a message that names it and the value received
// (the checks in validate.ts). SGD's options, names and defaults are torch.optim.SGD's (camelCased; see
// src/shared/sgd.ts); the loss's are in loss-options.ts.

import { cpuLimit } from '../system/cpus.js';
import type { Preprocessing } from '../data/preprocessing.js';
import { APPLIES_TO, validateLossOptions, type LossOptions } from './loss-options.js';
import {
  boolean, definedEntries, integerIn, knownKeys, nonNegativeInteger, numberWhere, oneOf, positiveInteger, shown,
} from './validate.js';
import { validateClip } from '../../shared/clip.js';
import {
  ACTIVATIONS, defaultLoss, LOSSES, isSoftmaxLoss, type Activation, type LossName, type ModelConfig,
} from '../../shared/model.js';
import { OptionRangeError, OptionTypeError } from '../../shared/option-errors.js';
import { validateSchedule, type ScheduleSpec } from '../../shared/schedule.js';
import { wasmRelaxedSimdSupported, wasmSimdSupported, type WasmKernels } from '../../shared/wasm.js';
import { SGD_DEFAULTS, validateSGD, type SGDOptions } from '../../shared/sgd.js';
import { ADAM_DEFAULTS, defaultWeightDecay, validateAdam, type AdamOptions } from '../../shared/adam.js';

export type { LossOptions } from './loss-options.js';

export type Reduction = 'mean' | 'sum';

export const OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

/** The options only SGD takes, and those only Adam and AdamW take: each is refused with the other. */
const SGD_ONLY = ['momentum', 'dampening', 'nesterov'] as const;
const ADAM_ONLY = ['betas', 'eps', 'amsgrad'] as const;

/** Adam's and AdamW's options beyond those they share with SGD (lr, weightDecay, maximize). */
export interface AdamOnlyOptions {
  /** torch.optim.Adam's betas: the running averages' coefficients. Default [0.9, 0.999]. */
  betas: [number, number];
  /** Added to Adam's denominator. Default 1e-8. */
  eps: number;
  /** AMSGrad's running maximum of the second moment. Default false. */
  amsgrad: boolean;
}

/** Learning-rate schedule and gradient clipping. */
export interface ScheduleOptions {
  /** A torch.optim.lr_scheduler equivalent; default none (constant lr). */
  schedule?: ScheduleSpec | null;
  /** When the schedule steps: after every 'epoch' (default, as PyTorch examples do) or every 'step'.
   *  'plateau' steps per epoch only. */
  scheduleInterval?: 'epoch' | 'step';
  /** Clip the averaged gradient's total norm to this (clip_grad_norm_'s max_norm); default none. */
  clipGradNorm?: number | null;
  /** Order of that norm: 2 (default), any p >= 1, or Infinity. */
  clipNormType?: number;
  /** Throw when the gradient's total norm is NaN or infinite instead of clipping by it. Default false. */
  errorIfNonfinite?: boolean;
}

export interface TrainerOptions extends Partial<SGDOptions>, Partial<AdamOnlyOptions>, LossOptions, ScheduleOptions {
  /** Layer widths from input to output, e.g. [784, 128, 10]. Required. [D, 1] is logistic regression. */
  layers: number[];
  /** 'sgd' (default; torch.optim.SGD), 'adam' (torch.optim.Adam) or 'adamw' (torch.optim.AdamW, whose
   *  weightDecay defaults to 0.01 and is decoupled). momentum, dampening and nesterov are SGD's only;
   *  betas, eps and amsgrad Adam's and AdamW's only. */
  optimizer?: OptimizerName;
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
   *  counts for the same value. Default 4 (so 1 to 4 workers give the same bits), fewer when a shard would
   *  have under 32 rows (batch 64: 2), at least the workers (defaultShards). */
  shards?: number;
  /** The linear layers' kernels: 'wasm' (WebAssembly SIMD, a multiply and an add per step), 'wasm-fma'
   *  (the same with relaxed SIMD's fused multiply-add), 'js' (the TS reference loops), or 'auto' (default:
   *  'wasm-fma' where the runtime validates relaxed SIMD, as Node 22+ does, else 'wasm' where it has SIMD,
   *  else 'js'). They round differently: results are bit-identical run to run for one choice, not across them. */
  kernels?: 'auto' | WasmKernels | 'js';
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
  /** The model's input pipeline: normalisation statistics, feature, label and class names
   *  (fitPreprocessing fits one on a loaded training split). fit, evaluate, predict and losses then take
   *  raw features and normalise them; save() records it and load() restores it. Default none. */
  preprocessing?: Preprocessing | null;
}

export interface ResolvedOptions extends SGDOptions, AdamOnlyOptions, LossOptions {
  optimizer: OptimizerName;
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
  kernels: WasmKernels | 'js';
  onNonfinite: 'stop' | 'skip';
  shardRetries: number;
  workerTimeout: number;
  workerHeapMb: number | null;
}

/**
 * The defaults of every option that has a fixed one (the others depend on the machine or the model:
 * workers, shards, loss, kernels). Each default is written here once; the docs above restate them.
 */
export const TRAINER_DEFAULTS = {
  ...SGD_DEFAULTS,
  optimizer: 'sgd',
  betas: ADAM_DEFAULTS.betas,
  eps: ADAM_DEFAULTS.eps,
  amsgrad: ADAM_DEFAULTS.amsgrad,
  activation: 'relu',
  reduction: 'mean',
  batchSize: 64,
  shuffle: true,
  seed: 0,
  schedule: null,
  scheduleInterval: 'epoch',
  clipGradNorm: null,
  clipNormType: 2,
  errorIfNonfinite: false,
  onNonfinite: 'stop',
  shardRetries: 3,
  workerTimeout: 600_000,
  workerHeapMb: null,
} as const satisfies Partial<ResolvedOptions>;

/** The most shards a batch may be cut into: each shard slot is a view in every thread's heap and a
 *  gradient in shared memory that the reduction reads every step. */
export const MAX_SHARDS = 65_536;
/** The least heap (MB) a worker thread starts in. Measured on Node 20.20 (the MNIST MLP, from dist/ and
 *  from source's bundle alike): a worker starts with 6 MB and not with 5. */
export const MIN_WORKER_HEAP_MB = 6;

/** The fewest rows a default shard has when the batch allows: a worker pays per shard for its gather,
 *  its gradient slot and a weight-gradient product as short as the shard, and the reduction reads every
 *  slot. Measured on the MNIST MLP at batch 64 (scratch runs alternating, medians of 7): 2 shards of 32
 *  rows train 37% faster than 4 of 16 on one worker and 25% faster on two. */
export const MIN_SHARD_ROWS = 32;

/**
 * Shards per batch when none is given: 4 (so that 1 to 4 workers give the same bits), fewer when the
 * batch has too few rows for 4 shards of MIN_SHARD_ROWS (batch 64: 2, batch 63 or less: 1), never fewer
 * than the workers (each worker has a shard). An invalid batchSize gives 4; resolveOptions refuses it.
 */
export function defaultShards(workers: number, batchSize: number): number {
  const byRows = Number.isInteger(batchSize) && batchSize > 0 ? Math.floor(batchSize / MIN_SHARD_ROWS) : 4;
  return Math.max(workers, Math.min(4, Math.max(1, byRows)));
}

/** Every option name, tied to TrainerOptions by its type: adding an option without listing it here, or
 *  listing one that is not an option, does not compile. */
const OPTION_REGISTRY: { readonly [K in keyof TrainerOptions]-?: true } = {
  layers: true, activation: true, loss: true, reduction: true, batchSize: true, shuffle: true, seed: true,
  workers: true, shards: true, kernels: true,
  optimizer: true, lr: true, momentum: true, dampening: true, weightDecay: true, nesterov: true, maximize: true,
  betas: true, eps: true, amsgrad: true,
  ...(Object.fromEntries(Object.keys(APPLIES_TO).map((k) => [k, true])) as { [K in keyof LossOptions]-?: true }),
  schedule: true, scheduleInterval: true, clipGradNorm: true, clipNormType: true, errorIfNonfinite: true,
  onNonfinite: true, shardRetries: true, workerTimeout: true, workerHeapMb: true, preprocessing: true,
};
export const OPTION_NAMES = Object.keys(OPTION_REGISTRY) as (keyof TrainerOptions)[];

/** The options filled with their defaults and validated; throws OptionTypeError or OptionRangeError. */
export function resolveOptions(options: TrainerOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new OptionTypeError(`options must be an object with at least { layers }; got ${shown(options)}`);
  }
  knownKeys('options', options, OPTION_NAMES, 'a Trainer option');
  const layers = validateLayers(options.layers);
  const K = layers[layers.length - 1];
  if (options.workers === 'auto') {
    throw new OptionTypeError("options.workers 'auto' is measured when the Trainer is made: use await Trainer.create(options)");
  }
  const workers = options.workers ?? cpuLimit().cpus;
  positiveInteger('options.workers', workers);
  // The preprocessing is the model's, not an option of the run: the Trainer keeps it apart (preprocessing.ts).
  const { preprocessing: _, ...given } = options;
  const o: ResolvedOptions = {
    ...TRAINER_DEFAULTS,
    loss: defaultLoss(K),
    shards: defaultShards(workers, options.batchSize ?? TRAINER_DEFAULTS.batchSize),
    ...definedEntries(given),
    layers,
    workers,
    kernels: resolveKernels(options.kernels),
  };
  oneOf('options.optimizer', o.optimizer, OPTIMIZERS);
  if (options.weightDecay === undefined) o.weightDecay = defaultWeightDecay(o.optimizer === 'adamw');
  o.betas = Array.isArray(o.betas) ? [...o.betas] as [number, number] : o.betas;
  oneOf('options.activation', o.activation, ACTIVATIONS);
  oneOf('options.loss', o.loss, LOSSES);
  oneOf('options.reduction', o.reduction, ['mean', 'sum']);
  positiveInteger('options.batchSize', o.batchSize);
  positiveInteger('options.shards', o.shards);
  if (o.shards > MAX_SHARDS) {
    throw new OptionRangeError(`options.shards must be at most ${MAX_SHARDS}, the most shard slots a pool makes; got ${o.shards}`,
      'a few shards per worker are enough: results are bit-identical across worker counts for one value');
  }
  boolean('options.shuffle', o.shuffle);
  integerIn('options.seed', o.seed, 0, 0xffffffff);
  validateOptimizer(o, options);
  if (isSoftmaxLoss(o.loss) && K < 2) {
    throw new OptionRangeError(
      `options.loss '${o.loss}' needs at least 2 outputs; layers ends in ${K}`,
      "a single output is logistic regression: use loss 'bce-with-logits', or end layers in the class count",
    );
  }
  validateLossOptions(o, o.loss, K);
  if (o.schedule !== null) validateSchedule(o.schedule, 'options.schedule');
  oneOf('options.scheduleInterval', o.scheduleInterval, ['epoch', 'step']);
  if (o.schedule?.name === 'plateau' && o.scheduleInterval !== 'epoch') {
    throw new OptionRangeError(
      "options.scheduleInterval must be 'epoch' with schedule 'plateau': ReduceLROnPlateau steps once per epoch on the monitored metric; got 'step'",
      "leave scheduleInterval out, or set it to 'epoch'",
    );
  }
  validateClip(o);
  oneOf('options.onNonfinite', o.onNonfinite, ['stop', 'skip']);
  nonNegativeInteger('options.shardRetries', o.shardRetries);
  numberWhere('options.workerTimeout', o.workerTimeout, 'a positive number of milliseconds (Infinity: no limit)', (v) => v > 0);
  if (o.workerHeapMb !== null) {
    positiveInteger('options.workerHeapMb', o.workerHeapMb);
    if (o.workerHeapMb < MIN_WORKER_HEAP_MB) {
      throw new OptionRangeError(
        `options.workerHeapMb must be at least ${MIN_WORKER_HEAP_MB} (MB), the heap a worker thread needs to start; got ${o.workerHeapMb}`,
        'leave it unset for Node\'s default heap limit',
      );
    }
  }
  return o;
}

/** SGD's or Adam's checks, after refusing an option of the other one. */
function validateOptimizer(o: ResolvedOptions, given: TrainerOptions): void {
  const sgd = o.optimizer === 'sgd';
  for (const name of sgd ? ADAM_ONLY : SGD_ONLY) {
    if (given[name] === undefined) continue;
    throw new OptionRangeError(
      sgd
        ? `options.${name} is an option of Adam and AdamW; torch.optim.SGD has no ${name}`
        : `options.${name} is an option of SGD; torch.optim.${o.optimizer === 'adam' ? 'Adam' : 'AdamW'} has no ${name}`,
      sgd
        ? "set options.optimizer to 'adam' or 'adamw' to use it"
        : `remove it, or set options.optimizer to 'sgd'${name === 'momentum' ? "; Adam's counterpart is options.betas[0]" : ''}`,
    );
  }
  if (sgd) validateSGD(o);
  else validateAdam(adamOptions(o));
}

/** Adam's (AdamW's) options from the resolved ones. */
export function adamOptions(o: ResolvedOptions): AdamOptions {
  return {
    lr: o.lr, betas: o.betas, eps: o.eps, weightDecay: o.weightDecay, amsgrad: o.amsgrad, maximize: o.maximize,
    decoupled: o.optimizer === 'adamw',
  };
}

/** The resolved options without those of the optimizer not in use: what a checkpoint records, so that
 *  loading it does not give SGD's momentum to Adam (which refuses it) or the other way round. */
export function appliedOptions(o: ResolvedOptions): Partial<ResolvedOptions> {
  const applied: Partial<ResolvedOptions> = { ...o };
  for (const name of o.optimizer === 'sgd' ? ADAM_ONLY : SGD_ONLY) delete applied[name];
  return applied;
}

export function modelConfig(o: ResolvedOptions): ModelConfig {
  return { layers: o.layers, activation: o.activation, loss: o.loss };
}

function resolveKernels(k: unknown): WasmKernels | 'js' {
  oneOf('options.kernels', k ?? 'auto', ['auto', 'wasm', 'wasm-fma', 'js']);
  if (k === 'js') return 'js';
  if (k === 'wasm-fma' && !wasmRelaxedSimdSupported()) {
    throw new OptionRangeError(
      `options.kernels 'wasm-fma' needs WebAssembly relaxed SIMD, which Node ${process.versions.node} does not validate`,
      "Node 22 and later have it; Node 20 with node --experimental-wasm-relaxed-simd; or use 'auto' or 'wasm'",
    );
  }
  if (k !== 'wasm' && wasmRelaxedSimdSupported()) return 'wasm-fma';
  if (wasmSimdSupported()) return 'wasm';
  if (k === 'wasm') throw new OptionRangeError("options.kernels 'wasm' needs WebAssembly SIMD, which this runtime lacks; use 'auto' or 'js'");
  return 'js';
}

function validateLayers(layers: unknown): number[] {
  if (!Array.isArray(layers) || layers.length < 2 || !layers.every((w) => Number.isInteger(w) && w > 0)) {
    throw new OptionTypeError(
      `options.layers must be an array of at least two positive integers, input width first (e.g. [784, 128, 10]); got ${shown(layers)}`,
    );
  }
  return [...layers];
}
