// The Trainer's options: an all-optional interface (but `layers`), one filled defaults table, a spread
// merge, and every field validated at construction with a message that names it and the value received.
// SGD's options, names and defaults are torch.optim.SGD's (camelCased); see src/shared/sgd.ts.

import { availableParallelism } from 'node:os';
import { ACTIVATIONS, LOSSES, type Activation, type LossName, type ModelConfig } from '../shared/model.js';
import { SGD_DEFAULTS, validateSGD, type SGDOptions } from '../shared/sgd.js';

export type Reduction = 'mean' | 'sum';

export interface TrainerOptions extends Partial<SGDOptions> {
  /** Layer widths from input to output, e.g. [784, 128, 10]. Required. [D, 1] is logistic regression. */
  layers: number[];
  /** Nonlinearity between linear layers: 'relu' (default), 'tanh' or 'sigmoid'. */
  activation?: Activation;
  /** 'cross-entropy' (softmax over K >= 2 outputs, integer class targets) or 'bce-with-logits'
   *  (independent sigmoid outputs, targets in [0, 1] of the output's shape). Default: 'bce-with-logits'
   *  when the last layer has one output, 'cross-entropy' otherwise. */
  loss?: LossName;
  /** How per-sample losses combine, as nn.CrossEntropyLoss's reduction: 'mean' (default) or 'sum'. */
  reduction?: Reduction;
  /** Rows per mini-batch. Default 64. The last, smaller batch of an epoch is kept (drop_last=False). */
  batchSize?: number;
  /** Reshuffle the training rows every epoch, from `seed`. Default true. */
  shuffle?: boolean;
  /** Seeds the initial parameters and every epoch's shuffle. Default 0. */
  seed?: number;
  /** Worker threads in the pool. Default os.availableParallelism(). */
  workers?: number;
  /** Shards each batch is cut into, whatever the worker count: results are bit-identical across worker
   *  counts for the same value. Default max(4, workers), so 1 to 4 workers give the same bits. */
  shards?: number;
}

export interface ResolvedOptions extends SGDOptions {
  layers: number[];
  activation: Activation;
  loss: LossName;
  reduction: Reduction;
  batchSize: number;
  shuffle: boolean;
  seed: number;
  workers: number;
  shards: number;
}

const OPTION_NAMES = [
  'layers', 'activation', 'loss', 'reduction', 'batchSize', 'shuffle', 'seed', 'workers', 'shards',
  ...(Object.keys(SGD_DEFAULTS) as (keyof SGDOptions)[]),
] as const;

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
  const workers = options.workers ?? availableParallelism();
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
    ...stripUndefined(options),
    layers,
    workers,
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
  if (o.loss === 'cross-entropy' && K < 2) {
    throw new RangeError(
      `options.loss 'cross-entropy' needs at least 2 outputs; layers ends in ${K}` +
        `\nhint: a single output is logistic regression: use loss 'bce-with-logits', or end layers in the class count`,
    );
  }
  return o;
}

export function modelConfig(o: ResolvedOptions): ModelConfig {
  return { layers: o.layers, activation: o.activation, loss: o.loss };
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
