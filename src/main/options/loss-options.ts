// The loss's options as the Trainer takes them, named and defaulted as PyTorch's (camelCased): which loss
// each applies to, their validation, and their resolution into the LossSpec the workers receive.

import { defaultLossSpec, type LossSpec } from '../../shared/losses.js';
import { isSoftmaxLoss, type LossName } from '../../shared/model.js';
import { OptionTypeError } from '../../shared/option-errors.js';
import { integer, numberArray, numberWhere } from './validate.js';

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

/** Which losses each loss option applies to; its keys are every loss option (the compiler checks). */
export const APPLIES_TO: { readonly [K in keyof LossOptions]-?: readonly LossName[] } = {
  weight: ['cross-entropy', 'bce-with-logits', 'bce'],
  ignoreIndex: ['cross-entropy', 'softmax-focal'],
  labelSmoothing: ['cross-entropy'],
  posWeight: ['bce-with-logits'],
  focalGamma: ['sigmoid-focal', 'softmax-focal'],
  focalAlpha: ['sigmoid-focal', 'softmax-focal'],
};

export const LOSS_OPTION_NAMES = Object.keys(APPLIES_TO) as (keyof LossOptions)[];

/** Throws for a loss option given to a loss it does not apply to, or of the wrong shape or range. */
export function validateLossOptions(o: LossOptions, loss: LossName, K: number): void {
  for (const name of LOSS_OPTION_NAMES) {
    if (o[name] !== undefined && !APPLIES_TO[name].includes(loss)) {
      throw new OptionTypeError(`options.${name} applies to loss ${APPLIES_TO[name].map((l) => `'${l}'`).join(' or ')}; loss is '${loss}'`);
    }
  }
  const perOutput = `${K} finite numbers >= 0, one per ${isSoftmaxLoss(loss) ? 'class' : 'output'} (layers ends in ${K})`;
  const weightLike = (w: number): boolean => Number.isFinite(w) && w >= 0;
  if (o.weight !== undefined) numberArray('options.weight', o.weight, K, perOutput, weightLike);
  if (o.posWeight !== undefined) numberArray('options.posWeight', o.posWeight, K, perOutput, weightLike);
  if (o.ignoreIndex !== undefined) integer('options.ignoreIndex', o.ignoreIndex);
  if (o.labelSmoothing !== undefined) numberWhere('options.labelSmoothing', o.labelSmoothing, 'between 0.0 and 1.0', (v) => v >= 0 && v <= 1);
  if (o.focalGamma !== undefined) numberWhere('options.focalGamma', o.focalGamma, 'a finite number >= 0', (v) => Number.isFinite(v) && v >= 0);
  const a = o.focalAlpha;
  if (a === undefined) return;
  if (loss === 'sigmoid-focal') {
    numberWhere("options.focalAlpha for 'sigmoid-focal'", a, 'a number in [0, 1], or negative for none', (v) => Number.isFinite(v) && v <= 1);
  } else if (typeof a === 'number') {
    numberWhere("options.focalAlpha for 'softmax-focal'", a, `a number >= 0 or ${K} of them, one per class`, weightLike);
  } else {
    numberArray("options.focalAlpha for 'softmax-focal'", a, K, `a number >= 0 or ${K} of them, one per class`, weightLike);
  }
}

/** The loss as the workers take it: options resolved to typed arrays and PyTorch's defaults. */
export function lossSpec(o: LossOptions & { loss: LossName; layers: readonly number[] }): LossSpec {
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
