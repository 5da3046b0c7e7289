// The types of the Trainer's API beyond its options: what fit() takes besides the data, and what the
// Trainer reports back per step, per epoch and per evaluation. Types only, so that any module (the
// Trainer, the tuner's measurements) can import them without importing the Trainer.

import type { Dataset } from '../data/data.js';
import type { ClassReport } from '../reporting/report.js';
import type { Monitor } from '../../shared/monitor.js';
import type { StepTiming } from '../../shared/ring.js';

export interface FitOptions {
  /** Passes over the training data. Default 1. Continues from the Trainer's epoch count. */
  epochs?: number;
  /** Evaluated after every epoch; its loss and accuracy go into the history. */
  validation?: Dataset;
  /** Called for every optimizer step, in order, soon after it (several at once, when the workers are
   *  quicker than the reports). Within a run of several steps the workers are already on later steps:
   *  read trainer.parameters or save() in onEpoch or after fit(), or set stepsPerExecution to 1. A throw
   *  ends the run at the step the workers are on, and fit() rejects with it. */
  onStep?: (step: StepInfo) => void;
  /** Called after every epoch with its record (also returned in the history); may return a promise,
   *  which fit() awaits (to save a checkpoint, say). Between epochs the pool is still: parameters and
   *  save() are those of the epoch's end. Returning false (or a promise of false) ends fit() there,
   *  cleanly: it resolves with the history, the last record's stopReason saying so. */
  onEpoch?: (record: EpochRecord) => void | boolean | Promise<void | boolean>;
  /** Print one line per epoch (to `log`, standard output by default; Keras' verbose=2): losses, accuracies, lr, speed,
   *  the run's elapsed time and ETA. Default false: fit() is silent. */
  verbose?: boolean;
  /** Where verbose's lines go, each ending in a newline: the training script passes its own writer.
   *  Default: standard output. */
  log?: (text: string) => void;
  /** Stop when a monitored metric stops improving (Keras' EarlyStopping, Lightning's): see
   *  EarlyStoppingOptions. fit() resolves with the history; the last record's stopReason says why. */
  earlyStopping?: EarlyStoppingOptions;
  /** Aborting stops training after the step the workers are on; fit() then rejects with the signal's
   *  reason, and progress and save() record that step. */
  signal?: AbortSignal;
  /** Optimizer steps the workers take on their own per command, as Keras' steps_per_execution: 'auto'
   *  (default) runs to the end of the epoch (at most 4096 steps), so that the coordinator's thread is out
   *  of the steps; 1 gives the workers one step at a time, with onStep called after each before the next
   *  begins (slower: the coordinator wakes every step). The results are the same bits either way. */
  stepsPerExecution?: number | 'auto';
  /** A directory to write TensorBoard scalars to (made if need be), in a new event file per fit(): per
   *  step train/loss, train/lr and train/grad_norm (the 2-norm, or clipNormType's when clipping); per
   *  epoch, at its last step, epoch/train_loss, epoch/train_accuracy, epoch/val_loss, epoch/val_accuracy
   *  and epoch/lr. Written after every epoch and when fit() ends; a resumed run's file replaces any later
   *  points of the same run in TensorBoard. Default none. */
  tensorboard?: string;
  /** The first fit() after Trainer.load() continues the checkpoint's run, and refuses training data
   *  other than the data the checkpoint records (its rows and a SHA-256 of its values): true continues
   *  on this data knowingly. Default false. A checkpoint that records no data (written before gradpool
   *  did) is not checked. */
  allowDataChange?: boolean;
}

export type { Monitor } from '../../shared/monitor.js';

export interface EarlyStoppingOptions {
  /** The metric watched: 'valLoss' (default; needs fit's validation), 'valAccuracy', 'trainLoss' or
   *  'trainAccuracy'. Losses improve downwards, accuracies upwards (Keras' mode 'auto'). */
  monitor?: Monitor;
  /** Epochs without improvement before stopping. Default 3 (Lightning's; Keras' is 0, which stops at
   *  the first epoch that does not improve). */
  patience?: number;
  /** The least change that counts as an improvement. Default 0. */
  minDelta?: number;
  /** When stopping, restore the parameters of the best epoch (Keras' restore_best_weights). Default false. */
  restoreBestWeights?: boolean;
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
  /** The averaged gradient's total norm before clipping: of order clipNormType with clipping, else its
   *  2-norm (the workers compute it every step, to catch a non-finite gradient); NaN for a step whose
   *  every target was ignored (no gradient). */
  gradNorm: number;
  /** True when every target of the batch was ignored, so no update was made. */
  skipped?: boolean;
  /** Where the step's time went. */
  timing: StepTiming;
}

// Defined beside the ring that records it (src/shared/ring.ts), as the coordinator reads it.
export type { StepTiming } from '../../shared/ring.js';

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
  /** On the last record of a fit() that ended before its epochs: why (early stopping, onEpoch). */
  stopReason?: string;
}

export interface Evaluation {
  /** Mean loss as the 'mean' reduction defines it, whatever the reduction option. */
  loss: number;
  /** Fraction of rows classified right (softmax losses; ignored rows not counted), or of outputs
   *  thresholded right at probability 0.5 (sigmoid losses). */
  accuracy: number;
  rows: number;
  /** counts[true][predicted]: K x K for softmax losses (null above 1,024 classes, where the report is
   *  made from per-class counts), 2 x 2 for a single sigmoid output, null for several sigmoid outputs
   *  (multi-label: see report). */
  confusion: number[][] | null;
  /** Precision, recall, F1 and support per class (per output, of its positive class, for multi-label),
   *  and their macro and support-weighted averages. */
  report: ClassReport;
}
