// The training script (`npm run train`, the `gradpool` bin): parses the flags, loads the data, trains with
// a progress bar and one line per epoch, saves a checkpoint after every epoch (and on Ctrl-C or SIGTERM,
// mid-epoch), and evaluates on the test data at the end. The only place that prints and exits; it uses
// the library through its public API alone.

import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  defaultLoss, isSoftmaxLoss, loadPreprocessing, metadataJson, reportText, RUN_KEY, Trainer,
} from '../main/index.js';
import { epochLine, headerText, matrixText } from './output.js';
import { parseFlags } from './parse.js';
import { buildProgram, type Flags } from './program.js';
import { MetricsFile, ProgressBar } from './progress.js';
import { resolveRun, savedRun } from './resume.js';
import { checkDataFlags, loadRunData, type PreprocessingSource, type RunData } from './run-data.js';
import { trainerOptions } from './trainer-options.js';
import { failure, isUsageError, UsageError } from './usage-error.js';

/** fit()'s abort reason when a signal interrupts training. */
class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
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
    if (isUsageError(err)) return failure('gradpool', err);
    throw err;
  }
  const flags = run.flags;
  const outPath = resolve(flags.out);
  if (!existsSync(dirname(outPath)) || !statSync(dirname(outPath)).isDirectory()) {
    await run.resumed?.close();
    return failure('gradpool', new UsageError(`--out ${flags.out}: the folder ${dirname(outPath)} does not exist`));
  }
  let trainer: Trainer | null = run.resumed;
  try {
    checkDataFlags(flags);
    const source = await preprocessingSource(trainer, flags);
    const data = await loadRunData(flags, isSoftmaxLoss(flags.loss ?? defaultLoss(flags.layers[flags.layers.length - 1])), flags.seed, source);
    if (trainer === null) {
      const preprocessing = source.kind === 'recorded' ? source.preprocessing : data.preprocessing;
      trainer = await Trainer.create({
        ...trainerOptions(flags, data.train.y, Math.ceil(data.train.rows / flags.batchSize)), preprocessing,
      });
      if (flags.init !== undefined) out.write(`init: ${(await trainer.loadParameters(flags.init)).summary}\n`);
    }
    const done = trainer.progress.epoch;
    if (done >= flags.epochs) {
      out.write(`gradpool: ${flags.resume} has trained ${done} of ${flags.epochs} epochs already; give --epochs more than ${done} to go on\n`);
      return 0;
    }
    out.write(headerText(trainer, data, flags.resume));
    return await train(trainer, data, flags, outPath, out);
  } catch (err) {
    return failure('gradpool', err);
  } finally {
    await trainer?.close();
  }
}

/** The model's preprocessing: the resumed checkpoint's or the --init file's when it records one (the
 *  weights were trained on inputs prepared so), else fitted on this run's training split. */
async function preprocessingSource(resumed: Trainer | null, flags: Flags): Promise<PreprocessingSource> {
  if (resumed !== null) {
    const p = resumed.preprocessing;
    const path = flags.resume as string;
    return p === null ? { kind: 'legacy', path } : { kind: 'recorded', path, preprocessing: p };
  }
  if (flags.init === undefined) return { kind: 'fit' };
  const model = { layers: flags.layers, activation: flags.activation, loss: flags.loss ?? defaultLoss(flags.layers[flags.layers.length - 1]) };
  const p = await loadPreprocessing(flags.init, model);
  return p === null ? { kind: 'fit' } : { kind: 'recorded', path: flags.init, preprocessing: p };
}

/** The epochs, saved after each; the test evaluation at the end; the interrupt handled on the way. */
async function train(trainer: Trainer, data: RunData, flags: Flags, outPath: string, out: NodeJS.WriteStream): Promise<number> {
  const runMeta = { [RUN_KEY]: metadataJson(savedRun(flags)) };
  const bar = new ProgressBar(out, flags.progress, flags.epochs);
  const metrics = new MetricsFile(flags.metrics);
  // Ctrl-C or SIGTERM: the step under way finishes, the run is saved, and the message says how to go
  // on. A second signal ends the process at once (the checkpoint file is replaced atomically).
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => interrupt.abort(new Interrupted(signal));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
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
    await trainer.save(outPath, runMeta);
    process.stderr.write(
      `gradpool: interrupted by ${err.signal} after step ${p.step} (epoch ${p.epoch + (p.batch > 0 ? 1 : 0)}` +
      `${p.batch > 0 ? `, batch ${p.batch}` : ''}); saved ${outPath}\n` +
      `to go on from there: npm run train -- --resume ${flags.out} (or: gradpool --resume ${flags.out})\n`,
    );
    return err.signal === 'SIGINT' ? 130 : 143;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    metrics.close();
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
