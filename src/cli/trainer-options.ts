// The Trainer's options from the training script's flags: the library's names, the schedule over the
// whole run, and --class-weight balanced worked out from the training labels.

import { balancedClassWeights, type TrainerOptions } from '../main/index.js';
import type { Flags } from './program.js';
import { buildSchedule } from './schedule-flags.js';
import { UsageError } from './usage-error.js';

export function trainerOptions(f: Flags, labels: Int32Array | Float32Array, stepsPerEpoch: number): TrainerOptions {
  const K = f.layers[f.layers.length - 1];
  if (f.classWeight === 'balanced' && !(labels instanceof Int32Array)) {
    throw new UsageError("--class-weight balanced needs class-index targets; for a sigmoid loss, weigh positives with --pos-weight (negatives / positives per output)");
  }
  const weight = f.classWeight === 'balanced' ? balancedClassWeights(labels, K) : f.classWeight;
  const total = f.scheduleInterval === 'step' ? stepsPerEpoch * f.epochs : f.epochs;
  return {
    layers: f.layers, activation: f.activation, loss: f.loss, reduction: f.reduction,
    optimizer: f.optimizer, lr: f.lr, weightDecay: f.weightDecay, maximize: f.maximize,
    // Each optimizer's own flags only: the others' defaults would be refused (optimizer-flags.ts).
    ...(f.optimizer === 'sgd'
      ? { momentum: f.momentum, dampening: f.dampening, nesterov: f.nesterov }
      : { betas: f.betas, eps: f.eps, amsgrad: f.amsgrad }),
    weight, ignoreIndex: f.ignoreIndex, labelSmoothing: f.labelSmoothing, posWeight: f.posWeight, focalGamma: f.focalGamma,
    focalAlpha: f.focalAlpha === undefined ? undefined : f.loss === 'sigmoid-focal' ? f.focalAlpha[0] : f.focalAlpha,
    schedule: buildSchedule(f, f.lr, total),
    // ReduceLROnPlateau steps once per epoch, whatever --schedule-interval's default.
    scheduleInterval: f.schedule === 'plateau' ? 'epoch' : f.scheduleInterval,
    clipGradNorm: f.clipGradNorm, clipNormType: f.clipNormType, errorIfNonfinite: f.errorIfNonfinite, onNonfinite: f.onNonfinite,
    batchSize: f.batchSize, shuffle: f.shuffle, seed: f.seed, workers: f.workers, shards: f.shards, kernels: f.kernels,
    workerTimeout: f.workerTimeout,
  };
}
