// What the training script shows and records while it trains: a progress bar per epoch on a terminal
// (nothing otherwise), and a JSON Lines metrics file with one line per step and per epoch.

import { closeSync, openSync, writeSync } from 'node:fs';
import cliProgress from 'cli-progress';
import type { EpochRecord, StepInfo } from '../main/index.js';

/** The epoch's progress bar, or nothing when `out` is not a terminal or the bar is turned off. */
export class ProgressBar {
  private readonly bar: cliProgress.SingleBar | null;
  private epochStart = 0;
  private seen = 0;

  constructor(out: NodeJS.WriteStream, enabled: boolean, private readonly epochs: number) {
    this.bar = enabled && out.isTTY ? new cliProgress.SingleBar({
      format: 'epoch {epoch} |{bar}| {value}/{total} batches, loss {loss}, {rate} samples/s',
      stream: out, hideCursor: true, clearOnComplete: true,
    }, cliProgress.Presets.shades_classic) : null;
  }

  step(s: StepInfo): void {
    const bar = this.bar;
    if (bar === null) return;
    if (s.batch === 1) {
      this.epochStart = performance.now();
      this.seen = 0;
      bar.start(s.batches, 0, { epoch: `${s.epoch}/${this.epochs}`, loss: '-', rate: '-' });
    }
    this.seen += s.rows;
    bar.update(s.batch, { loss: s.loss.toFixed(4), rate: Math.round(this.seen / ((performance.now() - this.epochStart) / 1000)) });
    if (s.batch === s.batches) bar.stop();
  }

  stop(): void {
    this.bar?.stop();
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
    this.line({ type: 'step', epoch: s.epoch, step: s.step, loss: s.loss, lr: s.lr, ...(s.gradNorm === undefined ? {} : { gradNorm: s.gradNorm }) });
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
