// --resume: the saved run's flags (but the few a resume may change) and its Trainer, from the checkpoint
// the training script wrote; and what a checkpoint records of a run.

import type { Command } from 'commander';
import { loadCheckpoint, parseMetadataJson, RUN_KEY, Trainer } from '../main/index.js';
import { RESUMABLE, type Flags } from './program.js';
import { UsageError } from './usage-error.js';

/** With --resume, the saved run's flags (but the few a resume may change) and its Trainer. */
export async function resolveRun(program: Command, flags: Flags): Promise<{ flags: Flags; resumed: Trainer | null }> {
  if (flags.resume === undefined) return { flags, resumed: null };
  const changed = Object.keys(flags).filter((k) => program.getOptionValueSource(k) === 'cli' && !RESUMABLE.has(k));
  if (changed.length > 0) {
    const names = changed.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    throw new UsageError(`--resume continues the saved run with its own options; ${names.join(', ')} cannot be given with it (only --epochs, --workers, --worker-timeout, --out, --metrics, --plot, --tensorboard, --no-progress, --allow-data-change)`);
  }
  const ckpt = await loadCheckpoint(flags.resume);
  const text = ckpt.metadata[RUN_KEY];
  if (text === undefined) {
    throw new UsageError(`--resume ${flags.resume}: this checkpoint has no saved run (it was not written by the training script); use --init to start from its weights`);
  }
  const saved = parseMetadataJson(text) as Partial<Flags>;
  const explicit = (k: keyof Flags): boolean => program.getOptionValueSource(k) === 'cli';
  const workerTimeout = explicit('workerTimeout') ? flags.workerTimeout : (saved.workerTimeout ?? flags.workerTimeout);
  const trainer = await Trainer.load(flags.resume, { workers: flags.workers, workerTimeout });
  // --epochs with --resume means more epochs, as fit()'s epochs does (the interrupted one counts);
  // without it, the rest of the saved run. Inside the script, epochs is the run's last epoch.
  const lastEpoch = explicit('epochs') ? trainer.progress.epoch + flags.epochs : (saved.epochs ?? flags.epochs);
  const merged: Flags = {
    ...flags,
    ...saved,
    // A run saved before the validation split became the default had none: it keeps none.
    validationSplit: saved.validationSplit ?? 0,
    epochs: lastEpoch,
    workers: flags.workers,
    workerTimeout,
    out: explicit('out') ? flags.out : flags.resume,
    metrics: flags.metrics,
    // The saved run's TensorBoard directory, where its curves go on, unless another is given.
    tensorboard: explicit('tensorboard') ? flags.tensorboard : saved.tensorboard,
    progress: flags.progress,
    resume: flags.resume,
    allowDataChange: flags.allowDataChange,
  };
  return { flags: merged, resumed: trainer };
}

/** What a checkpoint records of the run, for --resume: every flag but the per-invocation ones. */
export function savedRun(flags: Flags): Partial<Flags> {
  const { workers: _w, out: _o, metrics: _m, plot: _pl, progress: _p, resume: _r, init: _i, allowDataChange: _a, ...run } = flags;
  return run;
}

/** The metadata entry of the best epoch so far by --monitor, for --save-best across resumes. */
export const BEST_KEY = 'gradpool.run.best';

export interface SavedBest {
  monitor: string;
  value: number;
  epoch: number;
}

/** The best epoch a checkpoint records (written with --save-best), or null. */
export function savedBest(ckpt: { metadata: Record<string, string> }): SavedBest | null {
  const text = ckpt.metadata[BEST_KEY];
  if (text === undefined) return null;
  const v = parseMetadataJson(text) as Partial<SavedBest>;
  return typeof v.monitor === 'string' && typeof v.value === 'number' && typeof v.epoch === 'number'
    ? { monitor: v.monitor, value: v.value, epoch: v.epoch } : null;
}
