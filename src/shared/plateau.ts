// ReduceLROnPlateau as torch.optim.lr_scheduler has it (1.13 and 2.x agree): stepped once per epoch with
// the monitored metric, it multiplies the rate by `factor` once the metric has not improved for more than
// `patience` epochs. Unlike the other schedules its rate is not a function of the step count but of the
// metrics seen, so its state (PlateauState) travels in the checkpoint.

import { MONITORS, monitorMode, type Monitor } from './monitor.js';
import { OptionRangeError, OptionTypeError, shown } from './option-errors.js';

export interface PlateauSchedule {
  name: 'plateau';
  /** The metric stepped on: 'valLoss' (default; needs validation data), 'valAccuracy', 'trainLoss' or
   *  'trainAccuracy'. */
  monitor?: Monitor;
  /** torch's mode: 'min' for a loss, 'max' for an accuracy; derived from monitor, and refused if given
   *  otherwise. */
  mode?: 'min' | 'max';
  /** new lr = lr * factor, in [0, 1). Default 0.1. */
  factor?: number;
  /** Epochs without improvement that are tolerated; the next one reduces the rate. Default 10. */
  patience?: number;
  /** How much better than the best counts as an improvement: relatively (best * (1 -+ threshold)) or
   *  absolutely (best -+ threshold), per thresholdMode. Default 1e-4. */
  threshold?: number;
  /** 'rel' (default) or 'abs'. */
  thresholdMode?: 'rel' | 'abs';
  /** Epochs after a reduction during which bad epochs are not counted. Default 0. */
  cooldown?: number;
  /** The rate is never reduced below this. Default 0. */
  minLr?: number;
  /** A reduction smaller than this is not made. Default 1e-8. */
  eps?: number;
}

export const PLATEAU_DEFAULTS = {
  monitor: 'valLoss', factor: 0.1, patience: 10, threshold: 1e-4, thresholdMode: 'rel', cooldown: 0, minLr: 0, eps: 1e-8,
} as const;

/** torch's best, num_bad_epochs, cooldown_counter, the param group's lr and last_epoch. best is null
 *  until a metric improves on torch's mode_worse (inf for 'min', -inf for 'max'): JSON has no infinity. */
export interface PlateauState {
  best: number | null;
  numBadEpochs: number;
  cooldownCounter: number;
  lr: number;
  lastEpoch: number;
  /** An epoch ended (a run stopped at its last step) before its metric was taken: the step is owed, and
   *  made before the next epoch begins. */
  owed?: boolean;
}

type FilledPlateau = Required<Omit<PlateauSchedule, 'mode'>> & { mode: 'min' | 'max' };

export function filledPlateau(spec: PlateauSchedule): FilledPlateau {
  const o = { ...PLATEAU_DEFAULTS, ...Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) } as PlateauSchedule & typeof PLATEAU_DEFAULTS;
  return { ...o, mode: monitorMode(o.monitor) };
}

const KEYS = ['name', 'mode', ...Object.keys(PLATEAU_DEFAULTS)];

/** Throws naming `${where}.field`: what torch refuses (factor >= 1, an unknown mode or threshold mode)
 *  and also what torch accepts but makes no sense of (a negative factor, threshold, eps or minLr, a
 *  fractional patience or cooldown, a mode against the monitored metric's direction). */
export function validatePlateau(spec: PlateauSchedule, where: string): void {
  for (const k of Object.keys(spec)) {
    if (!KEYS.includes(k)) throw new OptionTypeError(`${where}.${k} is not a ReduceLROnPlateau option; they are ${KEYS.slice(1).join(', ')}`);
  }
  const o = { ...PLATEAU_DEFAULTS, ...Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) } as Record<string, unknown>;
  if (!MONITORS.includes(o.monitor as Monitor)) {
    throw new OptionRangeError(`${where}.monitor must be one of ${MONITORS.map((m) => `'${m}'`).join(', ')}; got ${shown(o.monitor)}`);
  }
  const mode = monitorMode(o.monitor as Monitor);
  if (spec.mode !== undefined && spec.mode !== mode) {
    throw new OptionRangeError(
      `${where}.mode '${String(spec.mode)}' disagrees with monitor '${String(o.monitor)}', which improves ${mode === 'min' ? 'downwards' : 'upwards'} (mode '${mode}')`,
      'leave mode out: it follows the monitored metric',
    );
  }
  const num = (k: string, ok: (v: number) => boolean, what: string): void => {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new OptionTypeError(`${where}.${k} must be a finite number; got ${shown(v)}`);
    if (!ok(v)) throw new OptionRangeError(`${where}.${k} must be ${what}; got ${v}`);
  };
  num('factor', (v) => v >= 0 && v < 1, '>= 0 and < 1 (torch: Factor should be < 1.0.)');
  num('patience', (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  num('threshold', (v) => v >= 0, '>= 0');
  if (o.thresholdMode !== 'rel' && o.thresholdMode !== 'abs') {
    throw new OptionRangeError(`${where}.thresholdMode must be 'rel' or 'abs'; got ${shown(o.thresholdMode)}`);
  }
  num('cooldown', (v) => Number.isInteger(v) && v >= 0, 'an integer >= 0');
  num('minLr', (v) => v >= 0, '>= 0');
  num('eps', (v) => v >= 0, '>= 0');
}

/** The state before the first step, on an optimizer whose rate is lr. */
export function plateauStart(lr: number): PlateauState {
  return { best: null, numBadEpochs: 0, cooldownCounter: 0, lr, lastEpoch: 0 };
}

/** torch's is_better(a, best), with best null standing for mode_worse. */
function isBetter(o: FilledPlateau, a: number, best: number | null): boolean {
  const b = best ?? (o.mode === 'min' ? Infinity : -Infinity);
  if (o.mode === 'min') return o.thresholdMode === 'rel' ? a < b * (1 - o.threshold) : a < b - o.threshold;
  return o.thresholdMode === 'rel' ? a > b * (o.threshold + 1) : a > b + o.threshold;
}

/** ReduceLROnPlateau.step(metric), operation for operation: the state after it (s is not changed). A
 *  metric that is NaN is never better, so it counts as a bad epoch, as in torch. */
export function plateauStep(spec: PlateauSchedule, s: PlateauState, metric: number): PlateauState {
  const o = filledPlateau(spec);
  const next: PlateauState = { best: s.best, numBadEpochs: s.numBadEpochs, cooldownCounter: s.cooldownCounter, lr: s.lr, lastEpoch: s.lastEpoch + 1 };
  if (isBetter(o, metric, s.best)) {
    next.best = metric;
    next.numBadEpochs = 0;
  } else {
    next.numBadEpochs++;
  }
  if (next.cooldownCounter > 0) {
    next.cooldownCounter--;
    next.numBadEpochs = 0; // bad epochs in cooldown are ignored
  }
  if (next.numBadEpochs > o.patience) {
    const newLr = Math.max(next.lr * o.factor, o.minLr);
    if (next.lr - newLr > o.eps) next.lr = newLr;
    next.cooldownCounter = o.cooldown;
    next.numBadEpochs = 0;
  }
  return next;
}

/** The state a checkpoint recorded, checked field by field; null if it is not one. */
export function parsePlateauState(v: unknown): PlateauState | null {
  if (typeof v !== 'object' || v === null) return null;
  const s = v as Record<string, unknown>;
  const count = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) >= 0;
  const ok = (s.best === null || (typeof s.best === 'number' && Number.isFinite(s.best))) &&
    count(s.numBadEpochs) && count(s.cooldownCounter) && count(s.lastEpoch) &&
    typeof s.lr === 'number' && Number.isFinite(s.lr) && s.lr >= 0 && (s.owed === undefined || typeof s.owed === 'boolean');
  if (!ok) return null;
  const state: PlateauState = {
    best: s.best as number | null, numBadEpochs: s.numBadEpochs as number, cooldownCounter: s.cooldownCounter as number,
    lr: s.lr as number, lastEpoch: s.lastEpoch as number,
  };
  return s.owed === true ? { ...state, owed: true } : state;
}
