// The training script (`npm run train`, the `gradpool` bin): parses the flags, loads the data, trains with
// a progress bar and one line per epoch, saves a checkpoint after every epoch (and on Ctrl-C or SIGTERM,
// mid-epoch), and evaluates on the test data at the end. The only place that prints and exits; it uses
// the library through its public API alone.

import { resolve } from 'node:path';
import {
  CheckpointError, DataError, defaultLoss, isOptionError, isSoftmaxLoss, metadataJson, reportText, RUN_KEY, Trainer,
} from '../main/index.js';
import { epochLine, headerText, matrixText } from './output.js';
import { parseFlags, usageWords } from './parse.js';
import { buildProgram, type Flags } from './program.js';
import { MetricsFile, ProgressBar } from './progress.js';
import { resolveRun, savedRun } from './resume.js';
import { checkDataFlags, loadRunData, type RunData } from './run-data.js';
import { trainerOptions } from './trainer-options.js';
import { UsageError } from './usage-error.js';
import { checkWritableFile } from './writable.js';

/** fit()'s abort reason when a signal interrupts training. */
class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** The parent process when this one started: under `npm run train`, npm's shell. */
const LAUNCHED_BY = process.ppid;
/** How often a run started by npm looks whether its parent is still there. */
const PARENT_POLL_MS = 500;

/**
 * Calls `orphaned` once this process has lost the parent it started with, when npm started it: npm
 * passes a SIGTERM to its shell, not to the shell's child, so the trainer would otherwise go on alone.
 * Not for other parents: a run under nohup is meant to outlive its shell. Returns the stop function.
 */
function watchParent(orphaned: () => void): () => void {
  if (process.env.npm_lifecycle_event === undefined) return () => {};
  const timer = setInterval(() => {
    if (process.ppid === LAUNCHED_BY) return;
    clearInterval(timer);
    orphaned();
  }, PARENT_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Errors that mean the user asked for something that cannot be done: exit 2, as a bad flag. */
function isUsageError(err: unknown): boolean {
  return err instanceof UsageError || err instanceof DataError || err instanceof CheckpointError || isOptionError(err);
}

function fail(message: string, code: number): number {
  process.stderr.write(`gradpool: ${usageWords(message)}\n`);
  return code;
}

/** Runs the training script; returns the process exit code (2 for usage errors, 1 for failures). */
export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const program = buildProgram();
  const parsed = parseFlags<Flags>(program, argv, out, 'gradpool');
  if ('code' in parsed) return parsed.code;
  let run: { flags: Flags; resumed: Trainer | null };
  try {
    run = await resolveRun(program, parsed.flags);
  } catch (err) {
    if (isUsageError(err)) return fail((err as Error).message, 2);
    throw err;
  }
  const flags = run.flags;
  const outPath = resolve(flags.out);
  let trainer: Trainer | null = run.resumed;
  let metrics: MetricsFile | null = null;
  try {
    // Where the run writes is checked before any work: a run that cannot save is a usage error.
    checkWritableFile('--out', flags.out);
    if (flags.metrics !== undefined) checkWritableFile('--metrics', flags.metrics);
    metrics = new MetricsFile(flags.metrics);
    checkDataFlags(flags);
    const data = await loadRunData(flags, isSoftmaxLoss(flags.loss ?? defaultLoss(flags.layers[flags.layers.length - 1])), flags.seed);
    if (trainer === null) {
      trainer = await Trainer.create(trainerOptions(flags, data.train.y, Math.ceil(data.train.rows / flags.batchSize)));
      if (flags.init !== undefined) await trainer.loadParameters(flags.init);
    }
    const done = trainer.progress.epoch;
    if (done >= flags.epochs) {
      out.write(`gradpool: ${flags.resume} has trained ${done} of ${flags.epochs} epochs already; give --epochs more than ${done} to go on\n`);
      return 0;
    }
    out.write(headerText(trainer, data, flags.resume));
    return await train(trainer, data, flags, outPath, out, metrics);
  } catch (err) {
    return fail((err as Error).message, isUsageError(err) ? 2 : 1);
  } finally {
    metrics?.close();
    await trainer?.close();
  }
}

/** The epochs, saved after each; the test evaluation at the end; the interrupt handled on the way. */
async function train(
  trainer: Trainer, data: RunData, flags: Flags, outPath: string, out: NodeJS.WriteStream, metrics: MetricsFile,
): Promise<number> {
  const runMeta = { [RUN_KEY]: metadataJson(savedRun(flags)) };
  const bar = new ProgressBar(out, flags.progress, flags.epochs);
  // Ctrl-C or SIGTERM: the step under way finishes, the run is saved, and the message says how to go
  // on. A second signal ends the process at once (the checkpoint file is replaced atomically).
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => interrupt.abort(new Interrupted(signal));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // npm's SIGTERM reaches its shell, which dies and leaves this process: the same as a SIGTERM here.
  const unwatch = watchParent(() => onSignal('SIGTERM'));
  try {
    await trainer.fit(data.train, {
      signal: interrupt.signal,
      epochs: flags.epochs - trainer.progress.epoch,
      validation: data.validation,
      onStep: (s) => {
        metrics.step(s);
        bar.step(s);
      },
      onEpoch: async (r) => {
        out.write(epochLine(r, flags.epochs, data.validationName));
        metrics.epoch(r);
        await trainer.save(outPath, runMeta);
      },
    });
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
    bar.stop();
    const p = trainer.progress;
    const where = `interrupted by ${err.signal} after step ${p.step} (epoch ${p.epoch + (p.batch > 0 ? 1 : 0)}` +
      `${p.batch > 0 ? `, batch ${p.batch}` : ''})`;
    const code = err.signal === 'SIGINT' ? 130 : 143;
    try {
      await trainer.save(outPath, runMeta);
    } catch (saveErr) {
      // The interrupt is still the outcome: its code, and what is on disk.
      process.stderr.write(`gradpool: ${where}; the save failed: ${(saveErr as Error).message}\n` +
        `whatever was at ${outPath} is as the last save left it\n`);
      return code;
    }
    process.stderr.write(
      `gradpool: ${where}; saved ${outPath}\n` +
      `to go on from there: npm run train -- --resume ${flags.out} (or: gradpool --resume ${flags.out})\n`,
    );
    return code;
  } finally {
    unwatch();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const evaluation = data.test !== undefined ? await trainer.evaluate(data.test) : null;
  if (evaluation !== null) {
    if (evaluation.confusion !== null) {
      out.write(`confusion matrix on the test data (rows: true class, columns: predicted):\n${matrixText(evaluation.confusion)}`);
    }
    out.write(`per-class report on the test data:\n${reportText(evaluation.report)}`);
  }
  out.write(`saved ${outPath}` + (evaluation === null ? '' : ` (test accuracy ${(100 * evaluation.accuracy).toFixed(2)}%)`) + '\n');
  return 0;
}
