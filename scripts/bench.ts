#!/usr/bin/env node
// The benchmark (`npm run bench`): a fixed set of workloads, each at 1 worker and at every CPU, each in
// its own process (so its peak memory is its own), timed with the tuner's windows: medians over
// repetitions after a warm-up. Beside each workload's GFLOP/s, the WebAssembly SIMD ceiling measured on
// this machine; with --vs-pytorch, PyTorch's own training step on the same workload, run alternately with
// gradpool's. With the `loading` row (bench-loading.ts), the MB/s of reading CSV and IDX files, beside
// numpy.loadtxt's. Prints a table and writes JSON Lines. The instrument for performance work: figures in
// issues and notes come from here, never from tests. Every window is read against /proc/stat's steal and
// measured again while that is above 5%; each row prints it. Each workload's kernels are also timed alone
// at its shard's shape, beside their speed in training and their build's ceiling. --revectorize runs each
// workload alternately without and with V8's --experimental-wasm-revectorize; --write-docs writes the
// table into docs/performance.md (bench-docs.ts).

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { positiveInt, positiveNumber } from '../src/cli/parse.js';
import { cpuLimit, loadMnist, measure, Trainer, type TrainerOptions } from '../src/main/index.js';
import { median } from '../src/main/tune/measure.js';
import { withSteal } from '../src/main/tune/steal.js';
import { simdCeiling, wasmKernelsSupported, type WasmKernels } from '../src/shared/wasm.js';
import { benchLoading, loadingTable, type LoadingResult } from './bench-loading.js';
import { writeDocs } from './bench-docs.js';
import { PRODUCTS, stealText, wasmProducts } from './kernel-timing.js';
import { ignoreClosedOutput } from '../src/cli/closed-output.js';

/** A window with more steal than this is measured again (up to as many times as there are windows). */
const MAX_STEAL_PCT = 5;
const REVECTORIZE = '--experimental-wasm-revectorize';

/** The loading row's name in --only: not a training workload. */
const LOADING = 'loading';

/** The workload set. Changing it changes what numbers mean: add new names rather than edit these. */
const WORKLOADS: Record<string, { describe: string; options: TrainerOptions }> = {
  'mlp-b64': { describe: 'MNIST MLP 784-128-10, batch 64', options: { layers: [784, 128, 10], batchSize: 64 } },
  'mlp-b256': { describe: 'MNIST MLP 784-128-10, batch 256', options: { layers: [784, 128, 10], batchSize: 256 } },
  'mlp-b1024': { describe: 'MNIST MLP 784-128-10, batch 1024', options: { layers: [784, 128, 10], batchSize: 1024 } },
  'wide-b256': { describe: 'wide MLP 784-1024-1024-10, batch 256', options: { layers: [784, 1024, 1024, 10], batchSize: 256 } },
  'logreg-b256': { describe: 'logistic regression 784-1 (BCE, "is it a 0"), batch 256', options: { layers: [784, 1], batchSize: 256 } },
  // Adam beside SGD: its update reads and writes three buffers more per parameter, a larger share of a step.
  'mlp-b64-adam': { describe: 'MNIST MLP 784-128-10, batch 64, Adam', options: { layers: [784, 128, 10], batchSize: 64, optimizer: 'adam' } },
  'wide-b256-adam': { describe: 'wide MLP 784-1024-1024-10, batch 256, Adam', options: { layers: [784, 1024, 1024, 10], batchSize: 256, optimizer: 'adam' } },
};

interface Result {
  workload: string;
  layers: number[];
  batchSize: number;
  workers: number;
  shards: number;
  samplesPerSec: number;
  spread: [number, number];
  stepMs: number;
  computeMs: number;
  overheadUs: number;
  dispatchUs: number;
  barrierUs: number;
  waitUs: number;
  reduceUpdateUs: number;
  gflopsPerWorker: number;
  peakRssMB: number;
  windows: number;
  kernels: string;
  node: string;
  /** V8 flags the run had (--revectorize). */
  v8Flags: string[];
  /** The largest steal of the kept windows, how many were measured again, and whether some kept one is above MAX_STEAL_PCT. */
  stealPct: number | null;
  repeated: number;
  stolen: boolean;
  /** The same kernels alone at the shard's shape (the largest shard's rows), per layer and product, and
   *  together as training weighs them (flopsPerSample's products), with the steal while they ran. */
  alone: { shape: [number, number, number]; product: string; gflops: number }[];
  aloneGflops: number;
  aloneStealPct: number | null;
}

export type BenchResult = Result;

/** The WebAssembly kernels of one build alone at a workload's shard shapes, over windows a fifth as long as
 *  training's (100 ms by default): what training can reach. */
function kernelsAlone(kernels: WasmKernels, layers: number[], rows: number, windowSeconds: number): Pick<Result, 'alone' | 'aloneGflops' | 'aloneStealPct'> {
  const alone: Result['alone'] = [];
  let flops = 0;
  let seconds = 0;
  let steal: number | null = 0;
  for (let l = 0; l + 1 < layers.length; l++) {
    const [C, OC] = [layers[l], layers[l + 1]];
    const m = wasmProducts(kernels, rows, C, OC, 3, (1000 * windowSeconds) / 5);
    steal = m.stealPct === null || steal === null ? null : Math.max(steal, m.stealPct);
    for (const product of PRODUCTS) {
      alone.push({ shape: [rows, C, OC], product, gflops: m.gflops[product] });
      if (product === 'backward input' && l === 0) continue; // training skips the first layer's input gradient
      flops += 2 * rows * C * OC;
      seconds += (2 * rows * C * OC) / (m.gflops[product] * 1e9);
    }
  }
  return { alone, aloneGflops: flops / seconds / 1e9, aloneStealPct: steal };
}

async function child(name: string, workers: number, windows: number, seconds: number, kernels: 'auto' | WasmKernels | 'js'): Promise<void> {
  const w = WORKLOADS[name];
  const { train } = loadMnist();
  const data = w.options.layers.at(-1) === 1 ? { x: train.x, y: Float32Array.from(train.y, (d) => (d === 0 ? 1 : 0)) } : train;
  const m = await measure((o) => new Trainer(o), { ...w.options, workers, lr: 0.01, kernels }, data, {
    windows, windowSeconds: seconds, minSteps: 2, maxStealPct: MAX_STEAL_PCT, maxRepeats: windows,
  });
  const t = m.timing;
  const r: Result = {
    workload: name, layers: m.layers, batchSize: m.batchSize, workers: m.workers, shards: m.shards,
    samplesPerSec: m.samplesPerSec, spread: m.spread, stepMs: t.stepMs, computeMs: t.computeMs,
    overheadUs: 1000 * (t.stepMs - t.computeMs), dispatchUs: 1000 * t.dispatchMs, barrierUs: 1000 * t.barrierMs, waitUs: 1000 * t.waitMs,
    reduceUpdateUs: 1000 * (t.reduceMs + t.updateMs), gflopsPerWorker: m.gflopsPerWorker,
    peakRssMB: process.resourceUsage().maxRSS / 1024, windows, kernels: m.kernels, node: process.version,
    v8Flags: process.execArgv.filter((a) => a.startsWith('--experimental-wasm')),
    stealPct: m.stealPct, repeated: m.repeated, stolen: m.stolen,
    ...(m.kernels === 'js' ? { alone: [], aloneGflops: NaN, aloneStealPct: null } : kernelsAlone(m.kernels, m.layers, Math.ceil(m.batchSize / m.shards), seconds)),
  };
  process.stdout.write(JSON.stringify(r) + '\n');
}

interface TorchRunner {
  describe: string;
  run: (o: TrainerOptions, windows: string, seconds: string) => number;
  /** The BLAS kernels of the faster setting, by workload shape, from the last run. */
  chosen: Map<string, string>;
}

/** PyTorch's step on a workload, run by scripts/reference/torch_bench.py; null when torch is missing. */
function torchRunner(): TorchRunner | null {
  const script = fileURLToPath(new URL('./reference/torch_bench.py', import.meta.url));
  const python = '/usr/bin/python3';
  const probe = spawnSync(python, [script, '784,10', '64', '1', '0.05'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    process.stdout.write(`PyTorch: not run (${python} has no torch: install Debian's python3-torch)\n`);
    return null;
  }
  const info = JSON.parse(probe.stdout.trim()) as { blas: string; torch: string };
  // OpenBLAS 0.3.21 does not know some recent CPUs: on Intel ones it falls back to SSE3 kernels, on AMD
  // Zen 5 it picks AVX2 (Haswell) or AVX-512 (Cooperlake) ones depending on the run. On a CPU that has
  // AVX-512, PyTorch runs both with OpenBLAS's own choice and with OPENBLAS_CORETYPE=SkylakeX, and the
  // faster counts: the ratio is against PyTorch's best setting here. Set for PyTorch's child process
  // only (never in tests or CI).
  const avx512 = readFileSync('/proc/cpuinfo', 'utf8').includes(' avx512f');
  const settings: { name: string; env: NodeJS.ProcessEnv }[] = [{ name: "OpenBLAS's own choice", env: process.env }];
  if (avx512) settings.push({ name: 'OPENBLAS_CORETYPE=SkylakeX', env: { ...process.env, OPENBLAS_CORETYPE: 'SkylakeX' } });
  const once = (o: TrainerOptions, windows: string, seconds: string, env: NodeJS.ProcessEnv): { samplesPerSec: number; blas: string } => {
    const r = spawnSync(python, [script, o.layers.join(','), String(o.batchSize), windows, seconds, o.optimizer ?? 'sgd'], { encoding: 'utf8', env });
    if (r.status !== 0) throw new Error(`PyTorch's bench failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim()) as { samplesPerSec: number; blas: string };
  };
  const chosen = new Map<string, string>();
  return {
    describe: `torch ${info.torch}, one thread, ` +
      (settings.length > 1 ? `the faster of ${settings.map((s) => s.name).join(' and ')} on this AVX-512 CPU` : `BLAS kernels ${info.blas}`),
    run: (o, windows, seconds) => {
      let best = { samplesPerSec: 0, blas: '' };
      for (const s of settings) {
        const r = once(o, windows, seconds, s.env);
        if (r.samplesPerSec > best.samplesPerSec) best = { samplesPerSec: r.samplesPerSec, blas: `${r.blas} (${s.name})` };
      }
      chosen.set(`${o.layers.join(',')}/${o.batchSize}`, best.blas);
      return best.samplesPerSec;
    },
    chosen,
  };
}

/** Each build's ceiling (GFLOP/s per thread) and the steal while it was measured. */
type Ceilings = Partial<Record<WasmKernels, { gflops: number; stealPct: number | null }>>;

/** PyTorch's samples/s per workload, each run with its steal. */
type TorchRates = Map<string, { rate: number; stealPct: number | null }[]>;

function table(rs: Result[], ceilings: Ceilings, torch: TorchRates): string {
  const head = 'workload       flags  kernels   workers  samples/s (min-max)        vs 1 worker  step ms  overhead µs  (dispatch  reduce+update)  barrier wait µs' +
    '  GFLOP/s/worker  of ceiling  alone  training/alone  alone of ceiling  steal (repeats)  PyTorch samples/s  vs PyTorch  peak MB';
  const n = (v: number): string => Math.round(v).toLocaleString('en-US');
  const rows = rs.map((r) => {
    const one = rs.find((o) => o.workload === r.workload && o.workers === 1 && o.v8Flags.join() === r.v8Flags.join());
    const runs = torch.get(r.workload);
    const pt = runs === undefined || runs.length === 0 ? undefined : median(runs.map((x) => x.rate));
    const vs = one === undefined || r.workers === 1 ? '' : `${(r.samplesPerSec / one.samplesPerSec).toFixed(2)}x, ${Math.round((100 * r.samplesPerSec) / one.samplesPerSec / r.workers)}%`;
    const ceiling = ceilings[r.kernels as WasmKernels]?.gflops;
    return [
      r.workload.padEnd(14), (r.v8Flags.length > 0 ? 'revec' : '').padStart(5), r.kernels.padStart(8), String(r.workers).padStart(8),
      `${n(r.samplesPerSec)} (${n(r.spread[0])}-${n(r.spread[1])})`.padStart(26),
      vs.padStart(12), r.stepMs.toFixed(2).padStart(8), n(r.overheadUs).padStart(12), n(r.dispatchUs).padStart(11),
      n(r.reduceUpdateUs).padStart(15), n(r.waitUs).padStart(16), r.gflopsPerWorker.toFixed(2).padStart(16),
      (ceiling === undefined ? '-' : `${Math.round((100 * r.gflopsPerWorker) / ceiling)}%`).padStart(11),
      (Number.isNaN(r.aloneGflops) ? '-' : r.aloneGflops.toFixed(2)).padStart(6),
      (Number.isNaN(r.aloneGflops) ? '-' : `${Math.round((100 * r.gflopsPerWorker) / r.aloneGflops)}%`).padStart(15),
      (ceiling === undefined || Number.isNaN(r.aloneGflops) ? '-' : `${Math.round((100 * r.aloneGflops) / ceiling)}%`).padStart(17),
      `${stealText(r.stealPct)}${r.stolen ? '!' : ''} (${r.repeated})`.padStart(16),
      (pt === undefined ? '' : n(pt)).padStart(18), (pt === undefined ? '' : `${(r.samplesPerSec / pt).toFixed(2)}x`).padStart(11), n(r.peakRssMB).padStart(8),
    ].join(' ');
  });
  return [head, ...rows].join('\n') + '\n';
}

/** Each kernel alone at each workload's shard shape beside training's GFLOP/s/worker (all products together). */
function kernelTable(rs: Result[], ceilings: Ceilings): string {
  const lines = ['kernel alone at the shard shape   B x C x OC      product          GFLOP/s  of ceiling'];
  const seen = new Set<string>();
  for (const r of rs) {
    for (const a of r.alone) {
      const key = `${r.kernels} ${r.v8Flags.join()} ${a.shape.join('x')} ${a.product}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const ceiling = ceilings[r.kernels as WasmKernels]?.gflops;
      lines.push(`${`${r.kernels}${r.v8Flags.length > 0 ? ' revec' : ''}`.padEnd(33)} ${a.shape.join(' x ').padEnd(15)} ${a.product.padEnd(16)} ${a.gflops.toFixed(2).padStart(7)}` +
        `  ${ceiling === undefined ? '-' : `${Math.round((100 * a.gflops) / ceiling)}%`}`);
    }
  }
  return lines.join('\n') + '\n';
}

interface BenchFlags {
  only?: string; workers: string; windows: string; windowSeconds: string; jsonl: string; child?: string; kernels: 'auto' | WasmKernels | 'js';
  vsPytorch?: boolean; revectorize?: boolean; writeDocs?: string;
}

/** A flag's text, passed on to the child processes as it is, once `parse` accepts it. */
const checked = (parse: (text: string) => number) => (text: string): string => (parse(text), text);

function parseFlags(argv: string[], cpus: number): BenchFlags {
  const program = new Command('bench')
    .description('Benchmark gradpool on a fixed set of workloads at 1 worker and at every CPU.')
    .addOption(new Option('--only <names>', `comma-separated workloads (${Object.keys(WORKLOADS).join(', ')}, ${LOADING})`))
    .addOption(new Option('--workers <n,...>', 'worker counts to run').default(`1,${cpus}`))
    .addOption(new Option('--windows <n>', 'measured windows per run, after a warm-up').default('5').argParser(checked(positiveInt())))
    .addOption(new Option('--window-seconds <s>', 'length of each window (the kernels alone: a fifth of it; the SIMD ceiling: one)').default('0.5').argParser(checked(positiveNumber())))
    .addOption(new Option('--kernels <which>', 'linear-layer kernels: WebAssembly SIMD (multiply and add, or fused), or the TS loops').choices(['auto', 'wasm', 'wasm-fma', 'js']).default('auto'))
    .addOption(new Option('--revectorize', `run each workload alternately without and with node ${REVECTORIZE} (Node 22+)`))
    .addOption(new Option('--write-docs [file]', 'write the table into the documentation, a dated block per machine and Node version').preset('docs/performance.md'))
    .addOption(new Option('--jsonl <file>', 'JSON Lines output, one record per run').default('bench.jsonl'))
    .addOption(new Option('--vs-pytorch', "also run PyTorch's training step on each workload (one thread, /usr/bin/python3), alternating with gradpool's runs"))
    .addOption(new Option('--child <spec>').hideHelp());
  program.exitOverride((e) => process.exit(e.exitCode === 0 ? 0 : 2)); // a usage error: 2, as the CLI's
  program.parse(argv, { from: 'user' });
  return program.opts<BenchFlags>();
}

async function parent(argv: string[]): Promise<number> {
  const cpus = cpuLimit();
  const o = parseFlags(argv, cpus.cpus);
  if (o.child !== undefined) {
    const [name, workers] = o.child.split(':');
    await child(name, Number(workers), Number(o.windows), Number(o.windowSeconds), o.kernels);
    return 0;
  }
  const only = o.only === undefined ? [...Object.keys(WORKLOADS), LOADING] : o.only.split(',');
  const loading = only.includes(LOADING);
  const names = only.filter((n) => n !== LOADING);
  const unknown = names.filter((n) => !(n in WORKLOADS));
  if (unknown.length > 0) {
    process.stderr.write(`bench: unknown workload ${unknown.join(', ')}; the workloads are ${[...Object.keys(WORKLOADS), LOADING].join(', ')}\n`);
    return 2;
  }
  const loaded = loading ? await benchLoading() : [];
  if (loading) process.stdout.write(`gradpool bench: loading, Node ${process.version}\n${loadingTable(loaded)}\n`);
  if (names.length === 0) {
    writeFileSync(o.jsonl, loaded.map((r) => JSON.stringify(r)).join('\n') + '\n');
    process.stdout.write(`wrote ${loaded.length} records to ${o.jsonl}\n`);
    return 0;
  }
  const counts = [...new Set(o.workers.split(',').map(Number))];
  process.stdout.write(`gradpool bench: ${cpus.cpus} CPUs (${cpus.source}), Node ${process.version}, ${o.kernels} kernels, ${o.windows} windows of ~${o.windowSeconds} s after a warm-up\n`);
  for (const name of names) process.stdout.write(`  ${name}: ${WORKLOADS[name].describe}\n`);
  if (o.revectorize === true && spawnSync(process.execPath, [REVECTORIZE, '-e', '0']).status !== 0) {
    process.stderr.write(`bench: --revectorize: node ${process.version} has no ${REVECTORIZE} (Node 22 and later have it)\n`);
    return 2;
  }
  const ceilings = measureCeilings(Number(o.windowSeconds));
  const torch = o.vsPytorch === true ? torchRunner() : null;
  if (torch !== null) process.stdout.write(`PyTorch: ${torch.describe}\n`);
  const run: Run = { o, names, ceilings, torch, results: [], torchRates: new Map() };
  if (!runWorkloads(run, counts)) return 1;
  report(run, loaded);
  return 0;
}

/** Each WebAssembly build's SIMD ceiling on this machine, over one training window, printed as it is measured. */
function measureCeilings(windowSeconds: number): Ceilings {
  const ceilings: Ceilings = {};
  for (const k of ['wasm', 'wasm-fma'] as const) {
    if (!wasmKernelsSupported(k)) continue;
    const c = withSteal(() => simdCeiling(1000 * windowSeconds, k) as number);
    ceilings[k] = { gflops: c.value, stealPct: c.stealPct };
    process.stdout.write(`WebAssembly SIMD ceiling of the ${k} kernels: ${c.value.toFixed(1)} GFLOP/s per thread ` +
      `(12 independent f32x4 ${k === 'wasm' ? 'mul + add' : 'relaxed_madd'} chains, src/shared/wasm.ts simdCeiling), steal ${stealText(c.stealPct)}\n`);
  }
  if (ceilings.wasm === undefined) process.stdout.write('WebAssembly SIMD: none in this runtime\n');
  return ceilings;
}

/** A benchmark run of training workloads: what was asked, and the figures as they come in. */
interface Run {
  o: BenchFlags;
  names: string[];
  ceilings: Ceilings;
  torch: TorchRunner | null;
  results: Result[];
  torchRates: TorchRates;
}

function runTorch(run: Run, name: string): void {
  const { torch, o } = run;
  if (torch === null) return;
  const r = withSteal(() => torch.run(WORKLOADS[name].options, o.windows, o.windowSeconds));
  run.torchRates.set(name, [...(run.torchRates.get(name) ?? []), { rate: r.value, stealPct: r.stealPct }]);
}

/** Each workload at each worker count (and V8 flag set) in its own process, into run.results; false, having
 *  said why, when one fails. */
function runWorkloads(run: Run, counts: number[]): boolean {
  const { o, names } = run;
  const flagSets = o.revectorize === true ? [[], [REVECTORIZE]] : [[]];
  const self = fileURLToPath(import.meta.url);
  for (const name of names) {
    for (const workers of counts) {
      // PyTorch and gradpool alternate, so that both see the same state of the machine.
      runTorch(run, name);
      for (const flags of flagSets) {
        const args = [...process.execArgv, ...flags, self, '--child', `${name}:${workers}`, '--windows', o.windows, '--window-seconds', o.windowSeconds, '--kernels', o.kernels];
        const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
        if (r.status !== 0) {
          process.stderr.write(`bench: ${name} at ${workers} workers${flags.length > 0 ? ` with ${flags.join(' ')}` : ''} failed:\n${r.stderr}`);
          return false;
        }
        run.results.push(JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Result);
      }
    }
  }
  if (run.torch !== null) for (const name of names) runTorch(run, name);
  return true;
}

/** Prints the tables, writes the JSON Lines and, with --write-docs, the documentation's table. */
function report(run: Run, loaded: LoadingResult[]): void {
  const { o, names, ceilings, torch, results, torchRates } = run;
  process.stdout.write('\n' + table(results, ceilings, torchRates) + '\n' + kernelTable(results, ceilings));
  const torchSteal = [...torchRates.entries()].map(([name, runs]) => `${name} ${runs.map((r) => stealText(r.stealPct)).join(', ')}`);
  if (torchSteal.length > 0) process.stdout.write(`PyTorch's runs, steal: ${torchSteal.join('; ')}\n`);
  if (torch !== null) {
    const kernels = names.map((n) => `${n} ${torch.chosen.get(`${WORKLOADS[n].options.layers.join(',')}/${WORKLOADS[n].options.batchSize}`) ?? '?'}`);
    process.stdout.write(`PyTorch's faster BLAS setting in its last run: ${kernels.join('; ')}\n`);
  }
  writeFileSync(o.jsonl, [...loaded, ...results].map((r) => JSON.stringify(r)).join('\n') + '\n');
  process.stdout.write(`\nwrote ${loaded.length + results.length} records to ${o.jsonl}; overhead = step time - slowest worker's shard compute; ` +
    `steal: the most of the kept windows' (repeats: windows measured again for more than ${MAX_STEAL_PCT}%; '!': still above)\n`);
  if (o.writeDocs !== undefined) {
    const torchMedians = new Map([...torchRates.entries()].map(([name, runs]) => [name, median(runs.map((r) => r.rate))]));
    writeDocs(o.writeDocs, results, torchMedians, Object.fromEntries(Object.entries(ceilings).map(([k, c]) => [k, c.gflops])));
    process.stdout.write(`wrote the table into ${o.writeDocs}\n`);
  }
}

ignoreClosedOutput(); // `npm run ... | head`: a closed stdout ends nothing
process.exitCode = await parent(process.argv.slice(2));
