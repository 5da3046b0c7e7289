// Early stopping, as Keras' EarlyStopping callback and PyTorch Lightning's EarlyStopping: after each
// epoch a monitored metric is compared with the best so far; when it has not improved by more than
// minDelta for `patience` epochs in a row, fit() ends cleanly after that epoch and resolves with its
// history, the last record saying why. restoreBestWeights (Keras' restore_best_weights) puts back the
// parameters of the best epoch when it stops.

import { OptionRangeError, OptionTypeError } from '../../shared/option-errors.js';
import type { EpochRecord } from '../options/types.js';
import { MONITORS, monitorMode, type Monitor } from '../../shared/monitor.js';
import { boolean, knownKeys, nonNegativeInteger, numberWhere, oneOf, shown } from '../options/validate.js';

export const EARLY_STOPPING_DEFAULTS = { monitor: 'valLoss', patience: 3, minDelta: 0, restoreBestWeights: false } as const;

/**
 * The best value of a metric so far, epoch by epoch: losses improve downwards, accuracies upwards (Keras'
 * mode 'auto'), by more than minDelta; a value that is not a number (NaN) never improves. What early
 * stopping and the training script's --save-best (Keras' ModelCheckpoint with save_best_only) compare by.
 */
export class BestMetric {
  best = NaN;
  bestEpoch = 0;

  constructor(readonly monitor: Monitor, readonly minDelta = 0) {}

  /** Takes an epoch's record; true when it is the best so far. */
  update(r: EpochRecord): boolean {
    const v = r[this.monitor];
    if (v === undefined || Number.isNaN(v)) return false;
    const lower = monitorMode(this.monitor) === 'min';
    const improved = Number.isNaN(this.best) || (lower ? v < this.best - this.minDelta : v > this.best + this.minDelta);
    if (improved) {
      this.best = v;
      this.bestEpoch = r.epoch;
    }
    return improved;
  }
}

/** Tracks the monitored metric epoch by epoch and says when to stop. */
export class EarlyStopping {
  readonly patience: number;
  readonly restoreBestWeights: boolean;
  private readonly metric: BestMetric;
  private wait = 0;

  /** Validates `spec` (named `name` in errors); `validation` says whether fit has validation data. */
  constructor(name: string, spec: unknown, validation: boolean) {
    if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
      throw new OptionTypeError(`${name} must be an object { monitor, patience, minDelta, restoreBestWeights }; got ${shown(spec)}`);
    }
    knownKeys(name, spec, Object.keys(EARLY_STOPPING_DEFAULTS), 'an early stopping option');
    const o = { ...EARLY_STOPPING_DEFAULTS, ...Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) };
    oneOf(`${name}.monitor`, o.monitor, MONITORS);
    nonNegativeInteger(`${name}.patience`, o.patience);
    numberWhere(`${name}.minDelta`, o.minDelta, 'a finite number >= 0', (v) => Number.isFinite(v) && v >= 0);
    boolean(`${name}.restoreBestWeights`, o.restoreBestWeights);
    if (o.monitor.startsWith('val') && !validation) {
      throw new OptionRangeError(
        `${name}.monitor '${o.monitor}' needs validation data, and fit() was given none`,
        "pass fit options.validation, or monitor 'trainLoss'",
      );
    }
    this.metric = new BestMetric(o.monitor, o.minDelta);
    this.patience = o.patience;
    this.restoreBestWeights = o.restoreBestWeights;
  }

  /**
   * Takes an epoch's record: whether it is the best so far (its parameters are then worth keeping) and,
   * when the patience has run out, why training stops.
   */
  update(r: EpochRecord): { improved: boolean; stop: string | null } {
    const m = this.metric;
    const improved = m.update(r);
    this.wait = improved ? 0 : this.wait + 1;
    // Keras' and Lightning's rule: the `patience`-th epoch in a row without an improvement is the last
    // (patience 0 stops at the first, as Keras' does).
    if (improved || this.wait < this.patience) return { improved, stop: null };
    const by = m.minDelta > 0 ? ` by more than ${m.minDelta}` : '';
    return {
      improved,
      stop: `early stopping: ${m.monitor} did not improve${by} for ${this.wait} epoch${this.wait === 1 ? '' : 's'} ` +
        `(best ${Number(m.best.toPrecision(6))} at epoch ${m.bestEpoch})` +
        (this.restoreBestWeights ? `; parameters restored from epoch ${m.bestEpoch}` : ''),
    };
  }
}
