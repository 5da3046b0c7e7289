// The model's input pipeline, which travels with it: the per-feature normalisation fitted on the training
// split, the names of the feature and label columns it was trained on, and the class name of each output
// unit. A Trainer given one (or loaded from a checkpoint that records one) takes raw features everywhere
// (fit, evaluate, predict, losses) and normalises them as it copies them into shared memory, so a model
// saved and loaded in another program predicts exactly as it did at the end of training. As a scikit-learn
// Pipeline of a fitted StandardScaler and a classifier, or a Keras model with a Normalization layer.
//
// In a checkpoint it is one JSON metadata entry (PREPROCESSING_KEY); read back with every field checked.

import { CheckpointError } from '../errors.js';
import type { LoadedData } from '../loaders/loaded.js';
import { fitNormalization, type Normalization, type NormalizeMode } from '../loaders/prepare.js';
import { knownKeys, oneOf, shown } from '../options/validate.js';
import { loadSafetensors } from '../checkpoint/file.js';
import { PREPROCESSING_KEY } from '../checkpoint/metadata.js';
import { isSoftmaxLoss, type ModelConfig } from '../../shared/model.js';
import { OptionRangeError, OptionTypeError } from '../../shared/option-errors.js';

/** What a Trainer applies to raw inputs, and the names it reports results in. Every field is optional. */
export interface Preprocessing {
  /** x' = (x - offset) * scale per feature, on the float32 value of x, before the first layer: the
   *  statistics fitNormalization fits on the training split. Absent or null: features used as given. */
  normalize?: { mode: NormalizeMode; offset: ArrayLike<number>; scale: ArrayLike<number> } | null;
  /** The input columns the model was trained on, in the order of its input features. */
  featureNames?: readonly string[] | null;
  /** The label column(s) the targets came from. */
  labelNames?: readonly string[] | null;
  /** The class of each output unit, in order (softmax losses: one per output; one sigmoid output: the
   *  names of its classes 0 and 1). predictClasses() answers with them. */
  classNames?: readonly string[] | null;
}

/** A checked Preprocessing: null where nothing is recorded; 'none' normalisation is null. */
export interface ResolvedPreprocessing {
  normalize: Normalization | null;
  featureNames: string[] | null;
  labelNames: string[] | null;
  classNames: string[] | null;
}

const KEYS = ['normalize', 'featureNames', 'labelNames', 'classNames'] as const;

/**
 * The preprocessing of a loaded training split: the normalisation `mode` fitted on it (see
 * fitNormalization) and the column and class names its loader recorded. Give it to the Trainer as
 * `preprocessing` and pass the same raw data to fit().
 */
export function fitPreprocessing(train: LoadedData, normalize: NormalizeMode): ResolvedPreprocessing {
  const n = fitNormalization(train, normalize);
  return {
    normalize: n.mode === 'none' ? null : n,
    featureNames: train.featureNames?.slice() ?? null,
    labelNames: train.labelNames?.slice() ?? null,
    classNames: train.classNames?.slice() ?? null,
  };
}

/** `p` checked against the model, in the terms of `name` ('options.preprocessing'); null for none. */
export function resolvePreprocessing(name: string, p: unknown, model: ModelConfig): ResolvedPreprocessing | null {
  if (p === undefined || p === null) return null;
  if (typeof p !== 'object' || Array.isArray(p)) {
    throw new OptionTypeError(`${name} must be an object { normalize, featureNames, labelNames, classNames }; got ${shown(p)}`);
  }
  knownKeys(name, p, KEYS, 'a preprocessing field');
  const o = p as Preprocessing;
  const D = model.layers[0];
  const K = model.layers[model.layers.length - 1];
  const classes = isSoftmaxLoss(model.loss) ? K : K === 1 ? 2 : 0;
  const resolved: ResolvedPreprocessing = {
    normalize: resolveNormalize(`${name}.normalize`, o.normalize, D),
    featureNames: names(`${name}.featureNames`, o.featureNames, D, `${D}, one per input feature (layers[0])`),
    labelNames: names(`${name}.labelNames`, o.labelNames, null, 'the label columns'),
    classNames: null,
  };
  if (o.classNames !== undefined && o.classNames !== null) {
    if (classes === 0) {
      throw new OptionRangeError(
        `${name}.classNames is for one class per row; loss '${model.loss}' with ${K} outputs predicts ${K} independent labels`,
        'name the outputs with labelNames instead',
      );
    }
    const classNames = names(`${name}.classNames`, o.classNames, classes,
      isSoftmaxLoss(model.loss) ? `${K}, one per output (the model has ${K})` : '2, the classes of the one sigmoid output (0 and 1)');
    resolved.classNames = classNames;
    const seen = new Set<string>();
    for (const c of classNames ?? []) {
      if (seen.has(c)) throw new OptionRangeError(`${name}.classNames names class ${JSON.stringify(c)} twice`);
      seen.add(c);
    }
  }
  return resolved;
}

function resolveNormalize(name: string, v: unknown, D: number): Normalization | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new OptionTypeError(`${name} must be an object { mode, offset, scale } (fitNormalization's result) or null; got ${shown(v)}`);
  }
  knownKeys(name, v, ['mode', 'offset', 'scale'], 'a normalize field');
  const { mode, offset, scale } = v as { mode: unknown; offset: unknown; scale: unknown };
  oneOf(`${name}.mode`, mode, ['none', 'scale', 'standardize']);
  if (mode === 'none') return null;
  return { mode, offset: floats(`${name}.offset`, offset, D, false), scale: floats(`${name}.scale`, scale, D, true) };
}

/** D float32 values, finite (and not 0 for a scale), as a Float32Array copy. */
function floats(name: string, v: unknown, D: number, nonzero: boolean): Float32Array {
  const what = `${D} finite float32 numbers${nonzero ? ' other than 0' : ''}, one per input feature (layers[0] = ${D})`;
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<unknown>).length !== 'number') {
    throw new OptionTypeError(`${name} must be ${what}; got ${shown(v)}`);
  }
  const a = v as ArrayLike<unknown>;
  if (a.length !== D) throw new OptionRangeError(`${name} must be ${what}; got ${a.length} values`);
  const out = new Float32Array(D);
  for (let d = 0; d < D; d++) {
    const x = a[d];
    if (typeof x !== 'number') throw new OptionTypeError(`${name}[${d}] must be a number; got ${shown(x)}`);
    out[d] = x;
    if (!Number.isFinite(out[d]) || (nonzero && out[d] === 0)) {
      throw new OptionRangeError(`${name}[${d}] is ${shown(x)}; ${name} must be ${what}`);
    }
  }
  return out;
}

function names(name: string, v: unknown, length: number | null, what: string): string[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
    throw new OptionTypeError(`${name} must be an array of strings (${what}); got ${shown(v)}`);
  }
  if (length !== null && v.length !== length) {
    throw new OptionRangeError(`${name} must name ${what}; got ${v.length} names`);
  }
  return [...(v as string[])];
}

/** The metadata entry a checkpoint records it in. */
export function preprocessingJson(p: ResolvedPreprocessing): string {
  return JSON.stringify({
    normalize: p.normalize === null ? null : { mode: p.normalize.mode, offset: [...p.normalize.offset], scale: [...p.normalize.scale] },
    featureNames: p.featureNames,
    labelNames: p.labelNames,
    classNames: p.classNames,
  });
}

/** The preprocessing a checkpoint records, checked against its model; null when it records none (files
 *  written before gradpool recorded it, or trained on arrays without one). */
export function parsePreprocessing(metadata: Record<string, string>, model: ModelConfig, path: string): ResolvedPreprocessing | null {
  const text = metadata[PREPROCESSING_KEY];
  if (text === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CheckpointError(path, `metadata "${PREPROCESSING_KEY}" is not valid JSON: ${text.slice(0, 80)}`);
  }
  try {
    return resolvePreprocessing(`metadata "${PREPROCESSING_KEY}"`, value, model);
  } catch (err) {
    throw new CheckpointError(path, (err as Error).message);
  }
}

/** The preprocessing recorded in the safetensors file at `path` (a gradpool checkpoint or any other),
 *  checked against `model`, the one its weights are to be loaded into; null when it records none. */
export async function loadPreprocessing(path: string, model: ModelConfig): Promise<ResolvedPreprocessing | null> {
  return parsePreprocessing((await loadSafetensors(path)).metadata, model, path);
}
