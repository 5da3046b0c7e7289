// A TensorBoard event file, as PyTorch's SummaryWriter and Keras' TensorBoard callback write one: TFRecords
// of Event protos in `<dir>/events.out.tfevents.<seconds>.<host>`, the first a file_version. Scalars are
// encoded when given and kept in memory; flush() appends them with one write that training does not wait
// for (the next flush waits for it, an epoch later, and reports its error), so a crash loses at most what
// came after the last flush.

import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { FileError } from '../errors.js';
import { tfRecord } from './crc32c.js';
import { fileVersionEvent, scalarsEvent, sessionStartEvent } from './event.js';

const seconds = (): number => Date.now() / 1000;

/** The tags fit() writes: per optimizer step, and per epoch at the step that ends it (Lightning's way), so
 *  that both share TensorBoard's step axis. */
export const TENSORBOARD_TAGS = {
  loss: 'train/loss',
  lr: 'train/lr',
  gradNorm: 'train/grad_norm',
  epochTrainLoss: 'epoch/train_loss',
  epochTrainAccuracy: 'epoch/train_accuracy',
  epochValLoss: 'epoch/val_loss',
  epochValAccuracy: 'epoch/val_accuracy',
  epochLr: 'epoch/lr',
} as const;

export class EventFile {
  private pending: Buffer[] = [];
  private writing: Promise<void> = Promise.resolve();

  private constructor(readonly path: string, private readonly file: FileHandle) {}

  /**
   * Makes `dir` if need be and a new event file in it (never an existing one: in the same second, the
   * name takes a suffix .1, .2, ...). A run that continues from step `after` (> 0) starts with a SessionLog
   * START at step after + 1, so that TensorBoard shows its curves in place of any later points an earlier
   * file of the run holds (a crash after its last checkpoint), as SummaryWriter's purge_step does.
   */
  static async create(dir: string, after: number): Promise<EventFile> {
    const base = join(dir, `events.out.tfevents.${Math.floor(seconds())}.${hostname()}`);
    let path = base;
    try {
      await mkdir(dir, { recursive: true });
      for (let n = 1; ; n++) {
        try {
          const writer = new EventFile(path, await open(path, 'wx'));
          writer.pending.push(tfRecord(fileVersionEvent(seconds(), after > 0 ? after + 1 : 0)));
          if (after > 0) writer.pending.push(tfRecord(sessionStartEvent(seconds(), after + 1)));
          await writer.flush();
          return writer;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          path = `${base}.${n}`;
        }
      }
    } catch (err) {
      throw new FileError(path, err as Error);
    }
  }

  /** Scalars at one step; non-finite values are left out. Written by the next flush(). */
  scalars(step: number, values: readonly (readonly [string, number | undefined])[]): void {
    const finite = values.filter((v): v is [string, number] => v[1] !== undefined && Number.isFinite(v[1]));
    if (finite.length > 0) this.pending.push(tfRecord(scalarsEvent(seconds(), step, finite)));
  }

  /** Waits for the previous write (throwing its error), then starts writing what is pending; the promise
   *  returned is for the wait, not for the new write. */
  async flush(): Promise<void> {
    await this.writing;
    if (this.pending.length === 0) return;
    const bytes = Buffer.concat(this.pending);
    this.pending = [];
    this.writing = this.file.write(bytes).then(
      () => undefined,
      (err: Error) => { throw new FileError(this.path, err); },
    );
    // Kept for the next flush or close to report; not an unhandled rejection meanwhile.
    this.writing.catch(() => {});
  }

  /** Writes what is pending and closes the file; throws the first write error. */
  async close(): Promise<void> {
    try {
      await this.flush();
      await this.writing;
    } finally {
      await this.file.close();
    }
  }
}
