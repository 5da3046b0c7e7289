// What the training script shows and records while it trains: a progress bar per epoch on a terminal
// (nothing otherwise), with elapsed time and ETAs, and a JSON Lines metrics file with one line per step
// and per epoch.

import { closeSync, openSync, writeSync } from 'node:fs';
import cliProgress from 'cli-progress';
import { duration, type EpochRecord, type StepInfo } from '../main/index.js';

/** The epoch's progress bar, with the epoch's elapsed time and ETA and the whole run's ETA, or nothing
 *  when `out` is not a terminal or the bar is turned off. */
export class ProgressBar {
  private readonly bar: cliProgress.SingleBar | null;
  private epochStart = 0;
  private seen = 0;
  private readonly runStart = performance.now();
  private epochsDone = 0;
  private active = false;
  private closed = false;
  private startBatch = 0; // batches already done when the bar started (a resumed epoch)

  /** `lastEpoch` is the run's last epoch number; `epochs` how many this invocation trains. */
  constructor(out: NodeJS.WriteStream, enabled: boolean, private readonly lastEpoch: number, private readonly epochs: number) {
    this.bar = enabled && out.isTTY ? new cliProgress.SingleBar({
      format: 'epoch {epoch} |{bar}| {value}/{total} batches, loss {loss}, {rate} samples/s, {elapsed} elapsed, ETA {epochEta}, run ETA {runEta}',
      stream: out, hideCursor: true, clearOnComplete: true,
    }, cliProgress.Presets.shades_classic) : null;
  }

  step(s: StepInfo): void {
    const bar = this.bar;
    if (bar === null || this.closed) return;
    const now = performance.now();
    if (!this.active) {
      this.epochStart = now;
      this.seen = 0;
      this.active = true;
      this.startBatch = s.batch - 1;
      bar.start(s.batches, s.batch - 1, { epoch: `${s.epoch}/${this.lastEpoch}`, loss: '-', rate: '-', elapsed: '-', epochEta: '-', runEta: '-' });
    }
    this.seen += s.rows;
    const elapsed = (now - this.epochStart) / 1000;
    const eta = (elapsed / (s.batch - this.startBatch)) * (s.batches - s.batch);
    const perEpoch = this.epochsDone > 0 ? (this.epochStart - this.runStart) / 1000 / this.epochsDone : elapsed + eta;
    const runEta = eta + perEpoch * Math.max(0, this.epochs - this.epochsDone - 1);
    bar.update(s.batch, {
      loss: s.loss.toFixed(4), rate: Math.round(this.seen / Math.max(elapsed, 1e-3)),
      elapsed: duration(elapsed), epochEta: duration(eta), runEta: duration(runEta),
    });
    if (s.batch === s.batches) this.stop();
  }

  /** After each epoch's evaluation: the next epoch's bar starts afresh. */
  epochDone(): void {
    this.epochsDone++;
    this.stop();
  }

  /** Ends the bar, putting the line and the cursor back. */
  stop(): void {
    if (this.active) this.bar?.stop();
    this.active = false;
  }

  /** Ends the bar for good (an interrupt): steps still reported after it draw nothing. */
  close(): void {
    this.stop();
    this.closed = true;
  }
}

/** The --metrics file: appended to, one write per line, so a crash can lose the last line but never
 *  garble an earlier one. */
export class MetricsFile {
  private fd: number | null;

  constructor(path: string | undefined) {
    this.fd = path === undefined ? null : openSync(path, 'a');
  }

  step(s: StepInfo): void {
    // JSON has no NaN: a step with no gradient (every target ignored) writes gradNorm null.
    this.line({ type: 'step', epoch: s.epoch, step: s.step, loss: s.loss, lr: s.lr, gradNorm: s.gradNorm });
  }

  epoch(r: EpochRecord): void {
    this.line({ type: 'epoch', ...r });
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private line(value: object): void {
    if (this.fd !== null) writeSync(this.fd, JSON.stringify(value) + '\n');
  }
}
