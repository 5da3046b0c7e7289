// One line per epoch, as Keras' fit prints with verbose=2: the epoch's training loss and accuracy, the
// validation figures, the learning rate, the speed, the epoch's time, and the run's elapsed time and
// ETA. fit({ verbose: true }) hands it to fit options.log, by default writeStdout: the library's one
// console writer. The training script gives its own log.

import type { EpochRecord } from '../options/types.js';

/** Where fit({ verbose: true })'s lines go when fit options.log is not given: standard output. */
export function writeStdout(text: string): void {
  process.stdout.write(text);
}

export interface EpochTextOptions {
  /** The last epoch of the run (for 'epoch 3/10'). */
  epochs: number;
  /** What the validation data is called ('validation', 'test'). Default 'validation'. */
  valName?: string;
  /** Seconds since the run started, evaluation included; with etaSeconds, shown after the figures. */
  elapsedSeconds?: number;
  /** Seconds the run's remaining epochs should take, at the mean pace so far. */
  etaSeconds?: number;
}

/** The shortest epoch (its steps' wall time) whose samples/s is printed. Below it the epoch's fixed
 *  costs (waking the workers, a scheduler's tick of the other processes on the machine) outweigh its rows,
 *  and the rate of identical epochs swings by two orders of magnitude (1,088 to 273,913 samples/s for
 *  120 rows); the rate stays in the history (samplesPerSec). */
export const MIN_RATE_SECONDS = 0.1;

/** 'epoch 3/10: train loss 0.1234, train accuracy 96.12%, ..., 0.27 s; elapsed 0.8 s, ETA 1.9 s'. */
export function epochText(r: EpochRecord, o: EpochTextOptions): string {
  const name = o.valName ?? 'validation';
  const val = r.valLoss === undefined ? '' :
    `, ${name} loss ${r.valLoss.toFixed(4)}, ${name} accuracy ${percent(r.valAccuracy)}`;
  const clock = o.elapsedSeconds === undefined ? '' :
    `; elapsed ${duration(o.elapsedSeconds)}${o.etaSeconds === undefined || r.epoch >= o.epochs || r.stopReason !== undefined ? '' : `, ETA ${duration(o.etaSeconds)}`}`;
  return `epoch ${r.epoch}/${o.epochs}: train loss ${r.trainLoss.toFixed(4)}, train accuracy ${percent(r.trainAccuracy)}${val}, ` +
    `lr ${Number(r.lr.toPrecision(4))}, ${r.seconds >= MIN_RATE_SECONDS ? `${Math.round(r.samplesPerSec)} samples/s, ` : ''}` +
    `${r.seconds.toFixed(2)} s${clock}` +
    (r.stopReason === undefined ? '' : `\n${r.stopReason}`) + '\n';
}

/** A fraction as a percentage with two decimals ('-' when there is none, as with no counted rows). */
function percent(v: number | undefined): string {
  return v === undefined || Number.isNaN(v) ? '-' : `${(100 * v).toFixed(2)}%`;
}

/** '0.8 s', '1 min 05 s', '2 h 03 min'. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** The run's clock: elapsed seconds and the ETA at the mean pace of the epochs done in this run. */
export class RunClock {
  private readonly t0 = performance.now();
  private done = 0;

  constructor(private readonly remainingAtStart: number) {}

  /** Call after each epoch: { elapsedSeconds, etaSeconds }. */
  epoch(): { elapsedSeconds: number; etaSeconds: number } {
    this.done++;
    const elapsedSeconds = (performance.now() - this.t0) / 1000;
    return { elapsedSeconds, etaSeconds: (elapsedSeconds / this.done) * Math.max(0, this.remainingAtStart - this.done) };
  }
}
