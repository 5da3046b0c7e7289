// The learning-rate schedule flags and the schedule they make over the whole run (or, for plateau, the
// ReduceLROnPlateau that steps on --monitor).

import type { Monitor, ScheduleSpec } from '../main/index.js';
import { UsageError } from './usage-error.js';

/** The schedule flags. Lengths are in scheduler steps: optimizer steps, or epochs with --schedule-interval epoch. */
export interface ScheduleFlags {
  schedule: 'none' | 'step' | 'multistep' | 'exponential' | 'cosine' | 'linear' | 'onecycle' | 'plateau';
  stepSize?: number;
  gamma?: number;
  milestones?: number[];
  etaMin?: number;
  endFactor?: number;
  maxLr?: number;
  pctStart?: number;
  warmup?: number;
  warmupStartFactor?: number;
  /** plateau: the metric (shared with early stopping and --save-best) and ReduceLROnPlateau's options. */
  monitor: Monitor;
  plateauFactor?: number;
  plateauPatience?: number;
  plateauThreshold?: number;
  plateauThresholdMode?: 'rel' | 'abs';
  plateauCooldown?: number;
  minLr?: number;
  plateauEps?: number;
}

/**
 * The schedule over the whole run: `total` scheduler steps (every step of every epoch, or every epoch).
 * Cosine anneals over what the warm-up leaves; OneCycle spans the run; a warm-up is a LinearLR chained
 * in front by SequentialLR.
 */
export function buildSchedule(f: ScheduleFlags, lr: number, total: number): ScheduleSpec | null {
  const warmup = f.warmup ?? 0;
  if (warmup >= total && warmup > 0) throw new UsageError(`--warmup ${warmup} leaves nothing of the run's ${total} scheduler steps`);
  const rest = total - warmup;
  let main: ScheduleSpec | null;
  switch (f.schedule) {
    case 'none':
      main = null;
      break;
    case 'step':
      if (f.stepSize === undefined) throw new UsageError('--schedule step needs --step-size');
      main = { name: 'step', stepSize: f.stepSize, gamma: f.gamma ?? 0.1 };
      break;
    case 'multistep':
      if (f.milestones === undefined) throw new UsageError('--schedule multistep needs --milestones');
      main = { name: 'multistep', milestones: f.milestones, gamma: f.gamma ?? 0.1 };
      break;
    case 'exponential':
      if (f.gamma === undefined) throw new UsageError('--schedule exponential needs --gamma');
      main = { name: 'exponential', gamma: f.gamma };
      break;
    case 'cosine':
      main = { name: 'cosine', tMax: rest, etaMin: f.etaMin ?? 0 };
      break;
    case 'linear':
      main = { name: 'linear', startFactor: 1, endFactor: f.endFactor ?? 0, totalIters: rest };
      break;
    case 'plateau':
      if (warmup > 0) {
        throw new UsageError(
          '--schedule plateau cannot follow --warmup: PyTorch\'s SequentialLR does not support ReduceLROnPlateau (it steps on a metric); drop --warmup',
        );
      }
      return {
        name: 'plateau', monitor: f.monitor, factor: f.plateauFactor, patience: f.plateauPatience, threshold: f.plateauThreshold,
        thresholdMode: f.plateauThresholdMode, cooldown: f.plateauCooldown, minLr: f.minLr, eps: f.plateauEps,
      };
    case 'onecycle':
      if (warmup > 0) throw new UsageError('--schedule onecycle has its own warm-up (--pct-start); drop --warmup');
      return { name: 'onecycle', maxLr: f.maxLr ?? lr, totalSteps: total, pctStart: f.pctStart ?? 0.3 };
  }
  if (warmup === 0) return main;
  const warm: ScheduleSpec = { name: 'linear', startFactor: f.warmupStartFactor ?? 1 / 3, endFactor: 1, totalIters: warmup };
  // After the warm-up a constant rate is LinearLR with factor 1 throughout.
  return { name: 'sequential', schedulers: [warm, main ?? { name: 'linear', startFactor: 1, endFactor: 1, totalIters: 1 }], milestones: [warmup] };
}
