// The training script (`npm run train`, the `gradpool` bin): parses the flags, loads the data, trains with
// a progress bar and one line per epoch, saves a checkpoint after every epoch (and on Ctrl-C or SIGTERM,
// mid-epoch), and evaluates on the test data at the end. The only place that prints and exits; it uses
// the library through its public API alone.

import { resolve } from 'node:path';
import {
  BestMetric, cpuLimit, curvesSvg, defaultLoss, isSoftmaxLoss, loadCheckpoint, loadPreprocessing, metadataJson, reportText,
  RUN_KEY, Trainer, writeFileAtomic, type EpochRecord, type FitOptions, type StepInfo,
} from '../main/index.js';
import { headerText, loadingLine, matrixText } from './output.js';
import { parseFlags } from './parse.js';
import { buildProgram, type Flags } from './program.js';
import { MetricsFile, ProgressBar } from './progress.js';
import { BEST_KEY, resolveRun, savedBest, savedRun } from './resume.js';
import { checkDataFlags, loadRunData, type PreprocessingSource, type RunData } from './run-data.js';
import { optimizerFlags } from './optimizer-flags.js';
import { trainerOptions } from './trainer-options.js';
import { failure, isUsageError, UsageError } from './usage-error.js';
import { checkDistinctFiles, checkRegularFiles, checkWritableFile, fileFlag, sameFile } from './writable.js';

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

/** Runs the training script; returns the process exit code (2 for usage errors, 1 for failures). */
export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const program = buildProgram();
  const parsed = parseFlags<Flags>(program, argv, out, 'gradpool');
  if ('code' in parsed) return parsed.code;
  let run: { flags: Flags; resumed: Trainer | null };
  try {
    const f = parsed.flags;
    checkRegularFiles([['--resume', f.resume], ['--init', f.init], ['--train-images', f.trainImages], ['--train-labels', f.trainLabels],
      ['--test-images', f.testImages], ['--test-labels', f.testLabels]]);
    run = await resolveRun(program, optimizerFlags(program, f));
  } catch (err) {
    if (isUsageError(err)) return failure('gradpool', err);
    throw err;
  }
  const flags = run.flags;
  if (flags.schedule === 'plateau' && flags.scheduleInterval === 'step' && program.getOptionValueSource('scheduleInterval') === 'cli') {
    return failure('gradpool', new UsageError('--schedule plateau steps once per epoch on --monitor; drop --schedule-interval step'));
  }
  const outPath = resolve(flags.out);
  let trainer: Trainer | null = run.resumed;
  let metrics: MetricsFile | null = null;
  try {
    // Where the run writes is checked before any work: a run that cannot save is a usage error.
    checkWritableFile('--out', flags.out);
    if (flags.metrics !== undefined) checkWritableFile('--metrics', flags.metrics);
    if (flags.saveBest !== undefined) checkWritableFile('--save-best', flags.saveBest);
    if (flags.plot !== undefined) checkWritableFile('--plot', flags.plot);
    checkRunFiles(flags);
    metrics = new MetricsFile(flags.metrics);
    checkDataFlags(flags);
    const source = await preprocessingSource(trainer, flags);
    const data = await loadRunData(flags, isSoftmaxLoss(flags.loss ?? defaultLoss(flags.layers[flags.layers.length - 1])), flags.seed, source);
    checkRunFlags(flags, data, trainer);
    if (trainer === null) {
      const preprocessing = source.kind === 'recorded' ? source.preprocessing : data.preprocessing;
      trainer = await Trainer.create({
        ...trainerOptions(flags, data.train.y, Math.ceil(data.train.rows / flags.batchSize)), preprocessing,
      });
      if (flags.init !== undefined) out.write(`init: ${(await trainer.loadParameters(flags.init)).summary}\n`);
    }
    const done = trainer.progress.epoch;
    if (done >= flags.epochs) {
      out.write(`gradpool: ${flags.resume} has trained all ${done} epochs of its run; give --epochs n to train n more\n`);
      return 0;
    }
    out.write(headerText(trainer, data, flags.resume));
    out.write(loadingLine(data.loading));
    return await train(trainer, data, flags, outPath, out, metrics);
  } catch (err) {
    return failure('gradpool', err);
  } finally {
    metrics?.close();
    await trainer?.close();
  }
}

/** No file the run writes is one it reads or writes under another flag. --resume may be the run's own
 *  checkpoint, --out or --save-best (both resumable): it is read whole before either is written. */
function checkRunFiles(flags: Flags): void {
  const own = (path: string): boolean => sameFile(path, flags.out) || (flags.saveBest !== undefined && sameFile(path, flags.saveBest));
  const resume = flags.resume !== undefined && !own(flags.resume) ? flags.resume : undefined;
  checkDistinctFiles(
    [fileFlag('--out', flags.out), fileFlag('--save-best', flags.saveBest), fileFlag('--plot', flags.plot), fileFlag('--metrics', flags.metrics)],
    [
      fileFlag('--train', flags.train), fileFlag('--test', flags.test), fileFlag('--train-images', flags.trainImages), fileFlag('--train-labels', flags.trainLabels),
      fileFlag('--test-images', flags.testImages), fileFlag('--test-labels', flags.testLabels), fileFlag('--init', flags.init), fileFlag('--resume', resume),
    ],
  );
}

/**
 * What the flags ask that the data cannot give, in the terms of the flags (the library would word it
 * for the API): a first layer that is not the data's feature count, a last layer with fewer outputs
 * than the labels have classes, a validation metric without a validation split. And a warning for more
 * workers than CPUs.
 */
function checkRunFlags(flags: Flags, data: RunData, resumed: Trainer | null): void {
  const layers = resumed?.options.layers ?? flags.layers;
  const what = flags.data === 'mnist' ? 'the MNIST digits have' : `this data has`;
  if (resumed === null && layers[0] !== data.train.features) {
    throw new UsageError(
      `--layers ${layers.join(',')} starts with ${layers[0]} inputs, but ${what} ${data.train.features} features per row; ` +
        `start --layers with ${data.train.features} (e.g. --layers ${[data.train.features, ...layers.slice(1)].join(',')})`,
    );
  }
  const K = layers[layers.length - 1];
  if (resumed === null && data.train.y instanceof Int32Array && data.train.targetColumns === 1 && K > 1) {
    // A row holding the largest label, in the training or the held-out rows: as likely a typo in
    // the data as a wrong --layers.
    let top = -1;
    let at = '';
    for (const part of [data.train, data.validation]) {
      part?.y.forEach((v, r) => {
        if (v > top) [top, at] = [v, part.rowName(r)];
      });
    }
    if (top >= K) {
      const names = data.train.classNames;
      const classes = names?.length ?? top + 1;
      const label = names === undefined ? `${top}` : `'${names[top]}'`;
      throw new UsageError(
        `--layers ${layers.join(',')} ends in ${K} outputs, but the training labels go up to class ${top} (${classes} classes; ` +
          `label ${label} at ${at}); end --layers in ${classes} (e.g. --layers ${[...layers.slice(0, -1), classes].join(',')}), ` +
          'or correct the label there',
      );
    }
  }
  const watched = flags.earlyStoppingPatience !== undefined || flags.saveBest !== undefined || flags.schedule === 'plateau';
  if (watched && flags.monitor.startsWith('val') && data.validation === undefined) {
    throw new UsageError(`--monitor ${flags.monitor} needs validation data, and --validation-split is 0; give a split (e.g. 0.1) or --monitor trainLoss`);
  }
  const cpus = cpuLimit().cpus;
  const workers = resumed?.options.workers ?? flags.workers;
  if (typeof workers === 'number' && workers > cpus) {
    process.stderr.write(
      `gradpool: warning: --workers ${workers} is more than the ${cpus} CPUs this process may use: the workers will take turns ` +
        `on them and wait for each other at every step, which is slower than ${cpus} (npm run tune measures it)\n`,
    );
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

/** The epochs, saved after each (and the best by --monitor, with --save-best); the test evaluation at the
 *  end; the interrupt handled on the way. */
async function train(
  trainer: Trainer, data: RunData, flags: Flags, outPath: string, out: NodeJS.WriteStream, metrics: MetricsFile,
): Promise<number> {
  const saves = await runSaves(trainer, flags, outPath, out);
  const epochs = flags.epochs - trainer.progress.epoch;
  const bar = new ProgressBar(out, flags.progress, flags.epochs, epochs);
  const interrupt = new Interrupt(bar, outPath);
  if (flags.tensorboard !== undefined) out.write(`TensorBoard scalars: ${flags.tensorboard} (view them with: tensorboard --logdir ${flags.tensorboard})\n`);
  try {
    await trainer.fit(data.train, fitOptions(flags, data, epochs, interrupt.signal, {
      step: (s) => {
        metrics.step(s);
        bar.step(s);
      },
      line: (text) => {
        bar.epochDone();
        out.write(text);
      },
      epoch: async (r) => {
        metrics.epoch(r);
        await saves.epoch(r);
      },
    }));
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
    return await saveInterrupted(trainer, err, flags, outPath, saves.meta());
  } finally {
    interrupt.dispose();
    bar.stop();
  }
  await testReport(trainer, data, outPath, out);
  return 0;
}

/** What the run does with each epoch's record: fit()'s onStep, its verbose lines, and onEpoch. */
interface EpochHandlers {
  step: (s: StepInfo) => void;
  line: (text: string) => void;
  epoch: (r: EpochRecord) => Promise<void>;
}

/** fit()'s options from the flags: the epochs, the validation split, early stopping, TensorBoard, and
 *  the run's handlers (the epoch lines are fit()'s verbose ones, written by the run). */
function fitOptions(flags: Flags, data: RunData, epochs: number, signal: AbortSignal, on: EpochHandlers): FitOptions {
  const early = flags.earlyStoppingPatience === undefined ? undefined
    : { monitor: flags.monitor, patience: flags.earlyStoppingPatience, minDelta: flags.minDelta, restoreBestWeights: flags.restoreBestWeights };
  return {
    signal, tensorboard: flags.tensorboard, epochs, allowDataChange: flags.allowDataChange, validation: data.validation,
    earlyStopping: early, verbose: true, log: on.line, onStep: on.step, onEpoch: on.epoch,
  };
}

/**
 * The run's saves: after every epoch to --out, and with --save-best the best epoch by --monitor (a
 * resumed run goes on comparing with the best epoch its checkpoint records), and the --plot; `meta` is
 * what each save records of the run.
 */
async function runSaves(
  trainer: Trainer, flags: Flags, outPath: string, out: NodeJS.WriteStream,
): Promise<{ epoch: (r: EpochRecord) => Promise<void>; meta: () => Record<string, string> }> {
  const run = { [RUN_KEY]: metadataJson(savedRun(flags)) };
  const best = flags.saveBest === undefined ? null : new BestMetric(flags.monitor, flags.minDelta);
  const before = flags.resume === undefined ? null : savedBest(await loadCheckpoint(flags.resume));
  if (best !== null && before !== null && before.monitor === flags.monitor) {
    best.best = before.value;
    best.bestEpoch = before.epoch;
  }
  const meta = (): Record<string, string> => (best === null || best.bestEpoch === 0 ? run
    : { ...run, [BEST_KEY]: metadataJson({ monitor: best.monitor, value: best.best, epoch: best.bestEpoch }) });
  const history: EpochRecord[] = [];
  const epoch = async (r: EpochRecord): Promise<void> => {
    history.push(r);
    const improved = best !== null && best.update(r);
    await trainer.save(outPath, meta());
    if (best !== null && improved) {
      await trainer.save(flags.saveBest as string, meta());
      out.write(`saved the best epoch so far (${flags.monitor} ${Number(best.best.toPrecision(6))}) to ${flags.saveBest}\n`);
    }
    if (flags.plot !== undefined) await writeFileAtomic(flags.plot, curvesSvg(history, `gradpool: MLP ${trainer.options.layers.join('-')}, ${trainer.options.loss}`));
  };
  return { epoch, meta };
}

/**
 * Ctrl-C or SIGTERM: aborts fit() (the step under way finishes, and the run is saved by the caller). A
 * second signal ends the process at once (the checkpoint file is replaced atomically), after putting the
 * terminal's line and cursor back. npm's SIGTERM reaches its shell, which dies and leaves this process:
 * the same as a SIGTERM here.
 */
class Interrupt {
  private readonly controller = new AbortController();
  private readonly unwatch: () => void;

  constructor(private readonly bar: ProgressBar, private readonly outPath: string) {
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
    this.unwatch = watchParent(() => this.onSignal('SIGTERM'));
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private readonly again = (signal: NodeJS.Signals): void => {
    this.bar.close();
    process.stderr.write(`gradpool: ${signal} again: stopped without saving; ${this.outPath} holds the last complete save\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.bar.close();
    process.once('SIGINT', this.again);
    process.once('SIGTERM', this.again);
    this.controller.abort(new Interrupted(signal));
  };

  dispose(): void {
    this.unwatch();
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('SIGINT', this.again);
    process.off('SIGTERM', this.again);
  }
}

/** After an interrupt: saves the run where it stopped and says how to go on; returns the signal's exit code. */
async function saveInterrupted(trainer: Trainer, err: Interrupted, flags: Flags, outPath: string, meta: Record<string, string>): Promise<number> {
  const p = trainer.progress;
  const where = `interrupted by ${err.signal} after step ${p.step} (epoch ${p.epoch + (p.batch > 0 ? 1 : 0)}` +
    `${p.batch > 0 ? `, batch ${p.batch}` : ''})`;
  const code = err.signal === 'SIGINT' ? 130 : 143;
  try {
    await trainer.save(outPath, meta);
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
}

/** The test data, evaluated once at the end: its confusion matrix and per-class report, and the save. */
async function testReport(trainer: Trainer, data: RunData, outPath: string, out: NodeJS.WriteStream): Promise<void> {
  const evaluation = data.test !== undefined ? await trainer.evaluate(data.test) : null;
  const names = trainer.preprocessing?.classNames ?? undefined;
  if (evaluation !== null) {
    out.write(`the test data, evaluated once, now (${data.test?.rows} rows):\n`);
    if (evaluation.confusion !== null) {
      out.write(`confusion matrix on the test data (rows: true class, columns: predicted):\n${matrixText(evaluation.confusion, names)}`);
    }
    out.write(`per-class report on the test data:\n${reportText(evaluation.report, names)}`);
  }
  out.write(`saved ${outPath}` + (evaluation === null ? '' : ` (test accuracy ${(100 * evaluation.accuracy).toFixed(2)}%)`) + '\n');
}
