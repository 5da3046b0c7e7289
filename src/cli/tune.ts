// The worker tuner's command line (`npm run tune`, `gradpool tune`): for each batch size, timed training
// windows at 1 ... N workers, a table of samples/s, speed-up, efficiency and where the step time goes,
// the recommended count and why, saved as JSON (read by workers: 'auto') and drawn as an SVG chart.

import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import {
  cpuLimit, loadMnist, LOSSES, measure, recommend, saveTuneEntry, scaling, scalingSvg, syntheticData, Trainer, TUNE_FILE,
  type LossName, type Measurement, type TuneEntry,
} from '../main/index.js';
import { parseFlags, positiveInt, positiveIntList, positiveNumber } from './parse.js';
import { checkDistinctFiles, checkWritableDir, fileFlag } from './writable.js';

/** The scaling curves' picture, beside the results file. */
const TUNE_SVG = 'gradpool-tune.svg';

interface TuneFlags {
  layers: number[];
  loss?: LossName;
  batchSizes: number[];
  maxWorkers: number;
  windows: number;
  windowSeconds: number;
  data: 'mnist' | 'synthetic';
  outDir: string;
}

export function buildTuneProgram(): Command {
  const limit = cpuLimit();
  return new Command('gradpool tune')
    .description('Measure training speed at 1 ... N workers and recommend a worker count.')
    .addOption(new Option('--layers <widths>', 'model layer widths').default([784, 128, 10], '784,128,10').argParser(positiveIntList()))
    .addOption(new Option('--loss <name>', 'loss (default: by output width)').choices(LOSSES))
    .addOption(new Option('--batch-sizes <n,...>', 'batch sizes to tune for').default([64, 256], '64,256').argParser(positiveIntList()))
    .addOption(new Option('--max-workers <n>', `largest worker count tried; more than the CPUs shows oversubscription`).default(limit.cpus).argParser(positiveInt()))
    .addOption(new Option('--windows <n>', 'measured windows per worker count, after a warm-up').default(5).argParser(positiveInt()))
    .addOption(new Option('--window-seconds <s>', 'length of each window').default(0.5).argParser(positiveNumber()))
    .addOption(new Option('--data <source>', 'the bundled MNIST digits, or random inputs of the model\'s width').choices(['mnist', 'synthetic']).default('mnist'))
    .addOption(new Option('--out-dir <dir>', `where ${TUNE_FILE} (results, read by --workers auto) and ${TUNE_SVG} go`).default('.'))
    .showHelpAfterError(false)
    .exitOverride();
}

export async function tuneMain(argv: string[], out: NodeJS.WriteStream = process.stdout): Promise<number> {
  const parsed = parseFlags<TuneFlags>(buildTuneProgram(), argv, out, 'gradpool tune');
  if ('code' in parsed) return parsed.code;
  const f = parsed.flags;
  try {
    checkWritableDir('--out-dir', f.outDir); // before minutes of measuring
    checkDistinctFiles([fileFlag(`--out-dir's ${TUNE_FILE}`, join(f.outDir, TUNE_FILE)), fileFlag(`--out-dir's ${TUNE_SVG}`, join(f.outDir, TUNE_SVG))], []);
  } catch (err) {
    process.stderr.write(`gradpool tune: ${(err as Error).message}\n`);
    return 2;
  }
  const limit = cpuLimit();
  // The digits fit a 784-input model ending in 10 classes or 1 output ("is it a 0"); other shapes time
  // the same arithmetic on random inputs.
  const digits = f.data === 'mnist' && f.layers[0] === 784 && (f.layers.at(-1) === 10 || f.layers.at(-1) === 1);
  const data = digits ? mnistFor(f.layers.at(-1) as number) : syntheticData(f.layers, f.loss, 2048);
  out.write(`gradpool tune: MLP ${f.layers.join('-')}, workers 1 to ${f.maxWorkers}, ${f.windows} windows of ~${f.windowSeconds} s after a warm-up\n` +
    `CPUs: ${limit.cpus} (${limit.source}); data: ${digits ? 'MNIST digits' : 'synthetic'}\n`);
  const series: { label: string; points: TuneEntry['measured'] }[] = [];
  const entries: TuneEntry[] = [];
  try {
    for (const batchSize of f.batchSizes) {
      const ms: Measurement[] = [];
      for (let workers = 1; workers <= f.maxWorkers; workers++) {
        ms.push(await measure((o) => new Trainer(o), { layers: f.layers, loss: f.loss, batchSize, workers, lr: 0.01 }, data, { windows: f.windows, windowSeconds: f.windowSeconds }));
      }
      const points = scaling(ms);
      const choice = recommend(ms.map((m) => ({ workers: m.workers, samplesPerSec: m.samplesPerSec })));
      out.write(`\nbatch ${batchSize}\n${tuneTable(ms, points)}recommended: ${choice.reason}\n`);
      series.push({ label: `batch ${batchSize}`, points });
      entries.push({ layers: f.layers, batchSize, cpus: limit.cpus, recommended: choice.workers, reason: choice.reason, measured: points, date: new Date().toISOString() });
    }
    const dir = resolve(f.outDir);
    for (const e of entries) await saveTuneEntry(join(dir, TUNE_FILE), e);
    const svg = join(dir, TUNE_SVG);
    await writeFile(svg, scalingSvg(`gradpool: MLP ${f.layers.join('-')}, samples/s and efficiency by workers`, series, limit.cpus));
    out.write(`\nsaved ${join(dir, TUNE_FILE)} (read by --workers auto) and ${svg}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`gradpool tune: ${(err as Error).message}\n`);
    return 1;
  }
}

function mnistFor(K: number): { x: Float32Array; y: Int32Array | Float32Array } {
  const { train } = loadMnist();
  return K === 1 ? { x: train.x, y: Float32Array.from(train.y, (d) => (d === 0 ? 1 : 0)) } : train;
}

/** The table: one row per worker count; step-time columns are milliseconds per step (medians). */
export function tuneTable(ms: Measurement[], points: TuneEntry['measured']): string {
  const head = 'workers  samples/s (min-max)        speed-up  efficiency   step ms   compute  barrier  dispatch  reduce+update';
  const rows = ms.map((m, i) => {
    const p = points[i];
    const t = m.timing;
    const n = (v: number): string => Math.round(v).toLocaleString('en-US');
    return [
      String(m.workers).padStart(7),
      `${n(m.samplesPerSec)} (${n(m.spread[0])}-${n(m.spread[1])})`.padStart(26),
      `${(p.samplesPerSec / points[0].samplesPerSec).toFixed(2)}x`.padStart(9),
      `${Math.round(100 * p.efficiency)}%`.padStart(11),
      t.stepMs.toFixed(2).padStart(9),
      t.computeMs.toFixed(2).padStart(9),
      t.barrierMs.toFixed(2).padStart(8),
      t.dispatchMs.toFixed(2).padStart(9),
      (t.reduceMs + t.updateMs).toFixed(2).padStart(14),
    ].join(' ');
  });
  return [head, ...rows].join('\n') + '\n';
}
