// Learning-rate schedules as torch.optim.lr_scheduler (1.13) puts them in force, written in closed form of
// the number of scheduler.step() calls t, so a resumed run needs only t. Names and defaults are torch's
// (camelCased); validation refuses what torch refuses, and the few things torch accepts but then crashes
// on or runs with a rate that no longer follows its own formula (see validateSchedule).

import { validatePlateau, type PlateauSchedule } from './plateau.js';

export type { PlateauSchedule } from './plateau.js';
import { hinted, OptionRangeError, OptionTypeError, shownQuoted } from './option-errors.js';

/** StepLR: lr = baseLr * gamma^floor(t / stepSize). */
export interface StepSchedule {
  name: 'step';
  /** Period of decay, in scheduler steps. Required; a positive integer. */
  stepSize: number;
  /** Multiplicative factor of decay. Default 0.1. */
  gamma?: number;
}

/** MultiStepLR: lr = baseLr * gamma^(number of milestones <= t); a repeated milestone counts twice, as in torch. */
export interface MultiStepSchedule {
  name: 'multistep';
  /** Scheduler steps at which to decay; integers >= 0. Required. */
  milestones: number[];
  /** Multiplicative factor of decay. Default 0.1. */
  gamma?: number;
}

/** ExponentialLR: lr = baseLr * gamma^t. */
export interface ExponentialSchedule {
  name: 'exponential';
  /** Multiplicative factor of decay per step. Required. */
  gamma: number;
}

/** CosineAnnealingLR: lr = etaMin + (baseLr - etaMin) (1 + cos(pi t / tMax)) / 2, which past tMax rises again. */
export interface CosineSchedule {
  name: 'cosine';
  /** Half period, in scheduler steps (T_max). Required; a positive integer. */
  tMax: number;
  /** Minimum learning rate (eta_min). Default 0. */
  etaMin?: number;
}

/** LinearLR: lr = baseLr * (startFactor + (endFactor - startFactor) * min(t, totalIters) / totalIters). */
export interface LinearSchedule {
  name: 'linear';
  /** Factor at t = 0, in (0, 1]. Default 1/3. */
  startFactor?: number;
  /** Factor from t = totalIters on, in [0, 1]. Default 1. */
  endFactor?: number;
  /** Steps from startFactor to endFactor; a positive integer. Default 5. */
  totalIters?: number;
}

/** OneCycleLR: the optimizer's lr is ignored; the cycle runs from maxLr / divFactor up to maxLr and down. */
export interface OneCycleSchedule {
  name: 'onecycle';
  /** Peak learning rate. Required. */
  maxLr: number;
  /** Scheduler steps in the cycle. Required; a positive integer. */
  totalSteps: number;
  /** Fraction of the cycle spent raising the rate, in [0, 1]. Default 0.3. */
  pctStart?: number;
  /** 'cos' (default) or 'linear'. */
  annealStrategy?: 'cos' | 'linear';
  /** initial lr = maxLr / divFactor. Default 25. */
  divFactor?: number;
  /** minimum lr = initial lr / finalDivFactor. Default 1e4. */
  finalDivFactor?: number;
  /** Three phases (up, back down to the initial lr, then to the minimum) instead of two. Default false. */
  threePhase?: boolean;
  /** Cycle SGD's momentum (Adam's betas[0], as OneCycleLR's use_beta1) inversely to the rate, overriding
   *  options.momentum (even 0) or betas[0]. Default true. */
  cycleMomentum?: boolean;
  /** Momentum at the peak rate. Default 0.85. */
  baseMomentum?: number;
  /** Momentum at the start and end of the cycle. Default 0.95. */
  maxMomentum?: number;
}

/** SequentialLR: schedulers[i] runs from milestones[i - 1] (its own t restarting at 0) until milestones[i]. */
export interface SequentialSchedule {
  name: 'sequential';
  /** One or more of the other schedules (not 'sequential' or 'onecycle'). */
  schedulers: ScheduleSpec[];
  /** Strictly increasing integers >= 1; one fewer than schedulers. */
  milestones: number[];
}

export type ScheduleSpec =
  | StepSchedule
  | MultiStepSchedule
  | ExponentialSchedule
  | CosineSchedule
  | LinearSchedule
  | OneCycleSchedule
  | SequentialSchedule
  | PlateauSchedule;

const STEP_GAMMA = 0.1;
const LINEAR_DEFAULTS = { startFactor: 1 / 3, endFactor: 1, totalIters: 5 } as const;
const ONECYCLE_DEFAULTS = {
  pctStart: 0.3,
  annealStrategy: 'cos',
  divFactor: 25,
  finalDivFactor: 1e4,
  threePhase: false,
  cycleMomentum: true,
  baseMomentum: 0.85,
  maxMomentum: 0.95,
} as const;

type Filled<T> = { [K in keyof T]-?: Exclude<T[K], undefined> };

/** spec over defaults, where a field left out or set to undefined takes its default. */
function filled<T extends object>(defaults: object, spec: T): Filled<T> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(spec)) if (v !== undefined) out[k] = v;
  return out as Filled<T>;
}

const NAMES = ['step', 'multistep', 'exponential', 'cosine', 'linear', 'onecycle', 'sequential', 'plateau'] as const;

function finite(where: string, field: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new OptionTypeError(`${where}.${field} must be a finite number; got ${shownQuoted(v)}`);
  }
}

/** Rates, factors and momenta are >= 0, as torch.optim.SGD requires of lr and momentum. */
function nonNegative(where: string, field: string, v: unknown): void {
  finite(where, field, v);
  if (v < 0) throw new OptionRangeError(`${where}.${field} must be >= 0; got ${v}`);
}

function positiveInteger(where: string, field: string, v: unknown): void {
  finite(where, field, v);
  if (!Number.isInteger(v) || v < 1) throw new OptionRangeError(`${where}.${field} must be a positive integer; got ${v}`);
}

function boolean(where: string, field: string, v: unknown): void {
  if (typeof v !== 'boolean') throw new OptionTypeError(`${where}.${field} must be a boolean; got ${shownQuoted(v)}`);
}

function integerList(where: string, field: string, v: unknown): asserts v is number[] {
  if (!Array.isArray(v) || !v.every((m) => typeof m === 'number' && Number.isInteger(m))) {
    throw new OptionTypeError(`${where}.${field} must be an array of integers; got ${shownQuoted(v)}`);
  }
}

/** Where each phase of a OneCycle ends, as torch computes it: float(pct_start * total_steps) - 1, ... */
function oneCyclePhaseEnds(T: number, pct: number, threePhase: boolean): number[] {
  return threePhase ? [pct * T - 1, 2 * pct * T - 2, T - 1] : [pct * T - 1, T - 1];
}

/**
 * Throws TypeError/RangeError naming the field as `${where}.stepSize` etc. with the value received. Refuses
 * what torch refuses, and also: integer fields that are not integers (torch would silently never reach a
 * fractional milestone), negative rates, factors and momenta, LinearLR startFactor 0 and OneCycles with a
 * reachable phase of zero steps (torch divides by zero: ZeroDivisionError), and inside 'sequential', a
 * nested 'sequential' (torch 1.13 fails at its milestone, or double-steps it in first position), 'onecycle'
 * (it overwrites the optimizer's initial_lr and momentum for the other schedulers), milestone 0 and
 * milestones out of order (torch then runs schedulers on each other's rates, not on their own formula).
 */
export function validateSchedule(spec: ScheduleSpec, where = 'options.schedule'): void {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new OptionTypeError(`${where} must be an object with a name; got ${shownQuoted(spec)}`);
  }
  const name: unknown = spec.name;
  if (typeof name !== 'string' || !Object.hasOwn(VALIDATORS, name)) {
    throw new OptionTypeError(`${where}.name must be one of ${NAMES.map(shownQuoted).join(', ')}; got ${shownQuoted(name)}`);
  }
  (VALIDATORS[name as ScheduleSpec['name']] as (spec: ScheduleSpec, where: string) => void)(spec, where);
}

/** Each schedule's own checks, by name (validateSchedule has checked it is an object with one). */
const VALIDATORS: { readonly [N in ScheduleSpec['name']]: (spec: Extract<ScheduleSpec, { name: N }>, where: string) => void } = {
  step: (spec, where) => {
    positiveInteger(where, 'stepSize', spec.stepSize);
    if (spec.gamma !== undefined) nonNegative(where, 'gamma', spec.gamma);
  },
  multistep: (spec, where) => {
    integerList(where, 'milestones', spec.milestones);
    // Order does not matter to torch (it counts them); a negative one is never reached.
    for (const m of spec.milestones) {
      if (m < 0) throw new OptionRangeError(`${where}.milestones must be integers >= 0; got ${shownQuoted(spec.milestones)}`);
    }
    if (spec.gamma !== undefined) nonNegative(where, 'gamma', spec.gamma);
  },
  exponential: (spec, where) => nonNegative(where, 'gamma', spec.gamma),
  cosine: (spec, where) => {
    positiveInteger(where, 'tMax', spec.tMax);
    if (spec.etaMin !== undefined) nonNegative(where, 'etaMin', spec.etaMin);
  },
  linear: validateLinear,
  onecycle: validateOneCycle,
  sequential: validateSequential,
  plateau: validatePlateau,
};

function validateLinear(spec: LinearSchedule, where: string): void {
  const o = filled(LINEAR_DEFAULTS, spec);
  finite(where, 'startFactor', o.startFactor);
  finite(where, 'endFactor', o.endFactor);
  if (!(o.startFactor > 0 && o.startFactor <= 1)) {
    throw new OptionRangeError(
      `${where}.startFactor must be > 0 and <= 1 (LinearLR's starting multiplicative factor); got ${o.startFactor}` +
      (o.startFactor === 0 ? ' (torch accepts 0, then divides by zero on the first step)' : ''),
    );
  }
  if (!(o.endFactor >= 0 && o.endFactor <= 1)) {
    throw new OptionRangeError(
      `${where}.endFactor must be >= 0 and <= 1 (LinearLR's ending multiplicative factor); got ${o.endFactor}`,
    );
  }
  positiveInteger(where, 'totalIters', o.totalIters);
}

function validateOneCycle(spec: OneCycleSchedule, where: string): void {
  const o = filled(ONECYCLE_DEFAULTS, spec);
  nonNegative(where, 'maxLr', o.maxLr);
  positiveInteger(where, 'totalSteps', o.totalSteps);
  finite(where, 'pctStart', o.pctStart);
  if (o.pctStart < 0 || o.pctStart > 1) {
    throw new OptionRangeError(`${where}.pctStart must be between 0 and 1; got ${o.pctStart}`);
  }
  if (o.annealStrategy !== 'cos' && o.annealStrategy !== 'linear') {
    throw new OptionRangeError(`${where}.annealStrategy must be 'cos' or 'linear'; got ${shownQuoted(o.annealStrategy)}`);
  }
  finite(where, 'divFactor', o.divFactor);
  if (o.divFactor <= 0) throw new OptionRangeError(`${where}.divFactor must be > 0; got ${o.divFactor}`);
  finite(where, 'finalDivFactor', o.finalDivFactor);
  if (o.finalDivFactor <= 0) throw new OptionRangeError(`${where}.finalDivFactor must be > 0; got ${o.finalDivFactor}`);
  boolean(where, 'threePhase', o.threePhase);
  boolean(where, 'cycleMomentum', o.cycleMomentum);
  nonNegative(where, 'baseMomentum', o.baseMomentum);
  nonNegative(where, 'maxMomentum', o.maxMomentum);
  // torch reaches a phase of zero length, and divides by it, in two cases: a first phase ending at step 0
  // (at construction), and a last phase starting where it ends, at T - 1 (on the last scheduler.step()).
  const ends = oneCyclePhaseEnds(o.totalSteps, o.pctStart, o.threePhase);
  const emptyFirst = ends[0] === 0;
  const emptyLast = ends[ends.length - 1] === ends[ends.length - 2];
  if (emptyFirst || emptyLast) {
    throw new OptionRangeError(
      `${where}.pctStart ${o.pctStart} with totalSteps ${o.totalSteps} gives OneCycleLR a ` +
      `${emptyFirst ? 'first' : 'last'} phase of zero steps, which torch divides by (ZeroDivisionError ` +
      `${emptyFirst ? 'at construction' : 'on the last scheduler.step()'})`,
      'change pctStart or totalSteps',
    );
  }
}

/** What a SequentialLR cannot hold, and why: each refusal's reason and hint. */
const NOT_CHAINABLE: Readonly<Record<string, { why: string; hint: string }>> = {
  sequential: {
    why: "torch 1.13's SequentialLR cannot be nested (at its milestone it is called as step(0), which it does not accept)",
    hint: "list all the schedulers in one 'sequential'",
  },
  plateau: {
    why: 'SequentialLR does not support ReduceLROnPlateau, as it requires the metric to be passed when calling step ' +
      '(torch 2.x refuses it at construction)',
    hint: "use 'plateau' on its own",
  },
  onecycle: {
    why: "OneCycleLR is not chainable; it overwrites the optimizer's initial_lr and momentum, which the other schedulers read",
    hint: "use 'onecycle' on its own, it has its own warm-up",
  },
};

function validateSequential(spec: SequentialSchedule, where: string): void {
  if (!Array.isArray(spec.schedulers)) {
    throw new OptionTypeError(`${where}.schedulers must be an array of schedules; got ${shownQuoted(spec.schedulers)}`);
  }
  integerList(where, 'milestones', spec.milestones);
  const S = spec.schedulers.length;
  const M = spec.milestones.length;
  if (M !== S - 1) {
    throw new OptionRangeError(
      `${where}.milestones must have one entry fewer than ${where}.schedulers, as SequentialLR requires; ` +
      `got ${M} milestones for ${S} schedulers`,
    );
  }
  spec.milestones.forEach((m, i) => {
    if (m < 1 || (i > 0 && m <= spec.milestones[i - 1])) {
      throw new OptionRangeError(`${where}.milestones must be strictly increasing integers >= 1; got ${shownQuoted(spec.milestones)}`);
    }
  });
  spec.schedulers.forEach((child, i) => {
    const at = `${where}.schedulers[${i}]`;
    const childName: unknown = typeof child === 'object' && child !== null ? child.name : undefined;
    if (typeof childName === 'string' && Object.hasOwn(NOT_CHAINABLE, childName)) {
      const { why, hint } = NOT_CHAINABLE[childName];
      throw new OptionRangeError(`${at} cannot be '${childName}': ${why}`, hint);
    }
    validateSchedule(child, at);
  });
}

/** Number of entries of the (ascending or not) list that are <= t: bisect_right on a sorted one. */
function countAtMost(list: readonly number[], t: number): number {
  let n = 0;
  for (const m of list) if (m <= t) n++;
  return n;
}

/** torch's OneCycleLR._annealing_cos and _annealing_linear, operation for operation. */
function anneal(strategy: 'cos' | 'linear', start: number, end: number, pct: number): number {
  return strategy === 'cos' ? end + (start - end) / 2 * (Math.cos(Math.PI * pct) + 1) : (end - start) * pct + start;
}

function oneCycleAt(spec: OneCycleSchedule, t: number): { lr: number; momentum?: number } {
  const o = filled(ONECYCLE_DEFAULTS, spec);
  const T = o.totalSteps;
  // torch checks last_epoch > total_steps, so t = T is allowed (the cycle's formula, past its end).
  if (t > T) {
    throw hinted(
      (m) => new RangeError(m), `Tried to step ${t + 1} times. The specified number of total steps is ${T}`,
      "make the OneCycle schedule's totalSteps at least the number of scheduler steps",
    );
  }
  const initialLr = o.maxLr / o.divFactor;
  const minLr = initialLr / o.finalDivFactor;
  const lrs = o.threePhase ? [initialLr, o.maxLr, initialLr, minLr] : [initialLr, o.maxLr, minLr];
  const moms = o.threePhase
    ? [o.maxMomentum, o.baseMomentum, o.maxMomentum, o.maxMomentum]
    : [o.maxMomentum, o.baseMomentum, o.maxMomentum];
  const ends = oneCyclePhaseEnds(T, o.pctStart, o.threePhase);
  // Phase i runs from the previous phase's end_step (not one past it) to its own, as torch measures pct.
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    const end = ends[i];
    if (t <= end || i === ends.length - 1) {
      if (end === start) {
        throw new RangeError(`OneCycleLR phase ${i + 1} spans zero steps at step ${t}: torch divides by zero here`);
      }
      const pct = (t - start) / (end - start);
      const lr = anneal(o.annealStrategy, lrs[i], lrs[i + 1], pct);
      return o.cycleMomentum ? { lr, momentum: anneal(o.annealStrategy, moms[i], moms[i + 1], pct) } : { lr };
    }
    start = end;
  }
  throw new Error('unreachable: the last OneCycle phase always matches');
}

/**
 * The learning rate (and, for OneCycle with cycleMomentum, the SGD momentum) in force after `t` scheduler
 * steps: t = 0 is before the first scheduler.step(), what the first optimizer step uses. A pure function
 * of t for an optimizer whose initial lr is baseLr; spec must have passed validateSchedule. OneCycle
 * ignores baseLr (torch sets initial_lr = maxLr / divFactor) and throws past totalSteps as torch does.
 * Where torch steps recursively (lr *= factor), this closed form agrees to float rounding (~1e-15).
 * 'plateau' has no closed form (its rate follows the metrics: see plateau.ts) and throws.
 */
export function scheduleAt(spec: ScheduleSpec, baseLr: number, t: number): { lr: number; momentum?: number } {
  if (!Number.isInteger(t) || t < 0) throw new RangeError(`t must be a scheduler step count, an integer >= 0; got ${t}`);
  switch (spec.name) {
    case 'step': {
      const { gamma, stepSize } = filled({ gamma: STEP_GAMMA }, spec);
      return { lr: baseLr * gamma ** Math.floor(t / stepSize) };
    }
    case 'multistep': {
      const { gamma, milestones } = filled({ gamma: STEP_GAMMA }, spec);
      return { lr: baseLr * gamma ** countAtMost(milestones, t) };
    }
    case 'exponential':
      return { lr: baseLr * spec.gamma ** t };
    case 'cosine': {
      // Past tMax torch's recursive form keeps following this cosine (period 2 tMax): the rate rises again.
      const { etaMin, tMax } = filled({ etaMin: 0 }, spec);
      return { lr: etaMin + (baseLr - etaMin) * (1 + Math.cos(Math.PI * t / tMax)) / 2 };
    }
    case 'linear': {
      const { startFactor, endFactor, totalIters } = filled(LINEAR_DEFAULTS, spec);
      return { lr: baseLr * (startFactor + (endFactor - startFactor) * Math.min(totalIters, t) / totalIters) };
    }
    case 'onecycle':
      return oneCycleAt(spec, t);
    case 'plateau':
      throw hinted(
        (m) => new RangeError(m), "ReduceLROnPlateau's rate depends on the metrics it was stepped with, not on the step count",
        "read it from plateauStep's state",
      );
    case 'sequential': {
      // At milestone m torch calls schedulers[i].step(0), restarting it at its own closed form for 0, on
      // the same initial lr; every scheduler's base_lrs is the optimizer's initial_lr.
      const i = countAtMost(spec.milestones, t);
      return scheduleAt(spec.schedulers[i], baseLr, i === 0 ? t : t - spec.milestones[i - 1]);
    }
  }
}

/**
 * The largest t at which scheduleAt is defined, or null if it is defined for every t. A run whose
 * optimizer steps are each followed by a scheduler step can take this many optimizer steps, as in torch.
 */
export function scheduleLength(spec: ScheduleSpec): number | null {
  switch (spec.name) {
    case 'onecycle':
      return spec.totalSteps;
    case 'sequential': {
      const last = scheduleLength(spec.schedulers[spec.schedulers.length - 1]);
      return last === null ? null : (spec.milestones.length === 0 ? 0 : spec.milestones[spec.milestones.length - 1]) + last;
    }
    default:
      return null;
  }
}
