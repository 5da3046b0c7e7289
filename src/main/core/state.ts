// The training state a checkpoint carries beyond the parameters, so that a loaded Trainer continues
// bit-identically: epochs and steps done, the schedule's position, where an interrupted epoch stopped and
// its sums so far, and ReduceLROnPlateau's state. Written as JSON under STATE_KEY; read back with every field checked.

import { CheckpointError } from '../errors.js';
import { STATE_KEY } from '../checkpoint/metadata.js';
import { parsePlateauState, type PlateauState } from '../../shared/plateau.js';
import { emptySums, type BatchSums } from '../../shared/step.js';
import type { OptimizerProgress } from '../../shared/ring.js';

export interface TrainingState {
  /** Epochs completed. */
  epoch: number;
  /** Optimizer steps taken (skipped ones included). */
  step: number;
  /** Scheduler steps taken: optimizer steps or epochs, per options.scheduleInterval. */
  schedulerSteps: number;
  /** Batches done of the epoch in progress (0 between epochs: a checkpoint written mid-epoch, on an
   *  interrupt, resumes at the next batch), and that epoch's sums and skipped steps so far. */
  batch: number;
  epochSums: BatchSums;
  epochSkipped: number;
  epochNonfinite: number;
  /** ReduceLROnPlateau's state, under a 'plateau' schedule once its first epoch began; else null. */
  plateau: PlateauState | null;
}

export function freshState(): TrainingState {
  return { epoch: 0, step: 0, schedulerSteps: 0, batch: 0, epochSums: emptySums(), epochSkipped: 0, epochNonfinite: 0, plateau: null };
}

// What the optimizer's state is, beside its tensors: the coordinator's (ring.ts), recorded with the
// training state.
export type { OptimizerProgress } from '../../shared/ring.js';

/** The state as the checkpoint stores it, with the optimizer's progress. */
export function stateJson(state: TrainingState, optimizer: OptimizerProgress): string {
  return JSON.stringify({ ...state, ...optimizer });
}

/** The state a checkpoint's metadata records, or null for a file with none (parameters only). */
export function parseState(metadata: Record<string, string>, path: string): ({ state: TrainingState } & OptimizerProgress) | null {
  const text = metadata[STATE_KEY];
  if (text === undefined) return null;
  const refuse = (what: string, max: number): never => {
    throw new CheckpointError(path, `metadata "${STATE_KEY}" ${what}: ${text.slice(0, max)}`);
  };
  let s: Partial<TrainingState> & { hasMomentumBuffer?: unknown; adamStep?: unknown };
  try {
    s = JSON.parse(text) as typeof s;
  } catch {
    return refuse('is not valid JSON', 80);
  }
  if (typeof s !== 'object' || s === null) return refuse('is not a training state', 120);
  const count = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!count(s.epoch) || !count(s.step) || !count(s.schedulerSteps) || typeof s.hasMomentumBuffer !== 'boolean') {
    return refuse('is not a training state', 120);
  }
  // Files from before Adam have no adamStep: SGD's.
  if (s.adamStep !== undefined && !count(s.adamStep)) return refuse('has no valid Adam step count', 160);
  const adamStep = s.adamStep ?? 0;
  const fresh = freshState();
  // Files from before ReduceLROnPlateau have none; a state that is there must be whole.
  const plateau = s.plateau === undefined || s.plateau === null ? null : parsePlateauState(s.plateau);
  if (plateau === null && s.plateau != null) return refuse('has no valid ReduceLROnPlateau state', 200);
  // Files from before mid-epoch checkpoints have no batch: they are between epochs.
  if (s.batch === undefined || s.batch === 0) {
    return { state: { ...fresh, epoch: s.epoch, step: s.step, schedulerSteps: s.schedulerSteps, plateau }, hasMomentumBuffer: s.hasMomentumBuffer, adamStep };
  }
  const sums = s.epochSums as unknown;
  const sumsValid = typeof sums === 'object' && sums !== null &&
    (Object.keys(fresh.epochSums) as (keyof BatchSums)[]).every((k) => typeof (sums as Record<string, unknown>)[k] === 'number');
  if (!count(s.batch) || !count(s.epochSkipped) || !count(s.epochNonfinite) || !sumsValid) {
    return refuse('has no valid position within its epoch', 160);
  }
  return {
    state: {
      epoch: s.epoch, step: s.step, schedulerSteps: s.schedulerSteps, batch: s.batch,
      epochSums: sums as BatchSums, epochSkipped: s.epochSkipped, epochNonfinite: s.epochNonfinite, plateau,
    },
    hasMomentumBuffer: s.hasMomentumBuffer,
    adamStep,
  };
}
