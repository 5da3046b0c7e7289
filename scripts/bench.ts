#!/usr/bin/env node
// The benchmark (`npm run bench`): a fixed set of workloads, each at 1 worker and at every CPU, each in
// its own process (so its peak memory is its own), timed with the tuner's windows: medians over
// repetitions after a warm-up. Beside each workload's GFLOP/s, the WebAssembly SIMD ceiling measured on
// this machine; with --vs-pytorch, PyTorch's own training step on the same workload, run alternately with
// gradpool's. With the `loading` row (bench-loading.ts), the MB/s of reading CSV and IDX files, beside
// numpy.loadtxt's. Prints a table and writes JSON Lines. The instrument for performance work: figures in
// issues and notes come from here, never from tests.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { cpuLimit, loadMnist, measure, Trainer, type TrainerOptions } from '../src/main/index.js';
import { median } from '../src/main/tune/measure.js';
import { simdCeiling } from '../src/shared/wasm.js';
import { benchLoading, loadingTable } from './bench-loading.js';

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
}

async function child(name: string, workers: number, windows: number, seconds: number, kernels: 'auto' | 'wasm' | 'js'): Promise<void> {
  const w = WORKLOADS[name];
  const { train } = loadMnist();
  const data = w.options.layers.at(-1) === 1 ? { x: train.x, y: Float32Array.from(train.y, (d) => (d === 0 ? 1 : 0)) } : train;
  const m = await measure((o) => new Trainer(o), { ...w.options, workers, lr: 0.01, kernels }, data, { windows, windowSeconds: seconds, minSteps: 2 });
  const t = m.timing;
  const r: Result = {
    workload: name, layers: m.layers, batchSize: m.batchSize, workers: m.workers, shards: m.shards,
    samplesPerSec: m.samplesPerSec, spread: m.spread, stepMs: t.stepMs, computeMs: t.computeMs,
    overheadUs: 1000 * (t.stepMs - t.computeMs), dispatchUs: 1000 * t.dispatchMs, barrierUs: 1000 * t.barrierMs, waitUs: 1000 * t.waitMs,
    reduceUpdateUs: 1000 * (t.reduceMs + t.updateMs), gflopsPerWorker: m.gflopsPerWorker,
    peakRssMB: process.resourceUsage().maxRSS / 1024, windows, kernels: m.kernels, node: process.version,
  };
  process.stdout.write(JSON.stringify(r) + '\n');
}

/** PyTorch's step on a workload, run by scripts/reference/torch_bench.py; null when torch is missing. */
function torchRunner(): {
  describe: string;
  run: (o: TrainerOptions, windows: string, seconds: string) => number;
  /** The BLAS kernels of the faster setting, by workload shape, from the last run. */
  chosen: Map<string, string>;
} | null {
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

function table(rs: Result[], ceiling: number | null, torch: Map<string, number[]>): string {
  const head = 'workload       workers  samples/s (min-max)        vs 1 worker  step ms  overhead µs  (dispatch  reduce+update)  barrier wait µs  GFLOP/s/worker  of ceiling  PyTorch samples/s  vs PyTorch  peak MB';
  const n = (v: number): string => Math.round(v).toLocaleString('en-US');
  const rows = rs.map((r) => {
    const one = rs.find((o) => o.workload === r.workload && o.workers === 1);
    const rates = torch.get(r.workload);
    const pt = rates === undefined || rates.length === 0 ? undefined : median(rates);
    const vs = one === undefined || r.workers === 1 ? '' : `${(r.samplesPerSec / one.samplesPerSec).toFixed(2)}x, ${Math.round((100 * r.samplesPerSec) / one.samplesPerSec / r.workers)}%`;
    return [
      r.workload.padEnd(14), String(r.workers).padStart(7), `${n(r.samplesPerSec)} (${n(r.spread[0])}-${n(r.spread[1])})`.padStart(26),
      vs.padStart(12), r.stepMs.toFixed(2).padStart(8), n(r.overheadUs).padStart(12), n(r.dispatchUs).padStart(11),
      n(r.reduceUpdateUs).padStart(15), n(r.waitUs).padStart(16), r.gflopsPerWorker.toFixed(2).padStart(16),
      (ceiling === null ? '' : `${Math.round((100 * r.gflopsPerWorker) / ceiling)}%`).padStart(11),
      (pt === undefined ? '' : n(pt)).padStart(18), (pt === undefined ? '' : `${(r.samplesPerSec / pt).toFixed(2)}x`).padStart(11), n(r.peakRssMB).padStart(8),
    ].join(' ');
  });
  return [head, ...rows].join('\n') + '\n';
}

async function parent(argv: string[]): Promise<number> {
  const cpus = cpuLimit();
  const program = new Command('bench')
    .description('Benchmark gradpool on a fixed set of workloads at 1 worker and at every CPU.')
    .addOption(new Option('--only <names>', `comma-separated workloads (${Object.keys(WORKLOADS).join(', ')}, ${LOADING})`))
    .addOption(new Option('--workers <n,...>', 'worker counts to run').default(`1,${cpus.cpus}`))
    .addOption(new Option('--windows <n>', 'measured windows per run, after a warm-up').default('5'))
    .addOption(new Option('--window-seconds <s>', 'length of each window').default('0.5'))
    .addOption(new Option('--kernels <which>', 'linear-layer kernels: WebAssembly SIMD or the TS loops').choices(['auto', 'wasm', 'js']).default('auto'))
    .addOption(new Option('--jsonl <file>', 'JSON Lines output, one record per run').default('bench.jsonl'))
    .addOption(new Option('--vs-pytorch', "also run PyTorch's training step on each workload (one thread, /usr/bin/python3), alternating with gradpool's runs"))
    .addOption(new Option('--child <spec>').hideHelp());
  program.parse(argv, { from: 'user' });
  const o = program.opts<{ only?: string; workers: string; windows: string; windowSeconds: string; jsonl: string; child?: string; kernels: 'auto' | 'wasm' | 'js'; vsPytorch?: boolean }>();
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
  const ceiling = simdCeiling(500);
  process.stdout.write(`WebAssembly SIMD ceiling on this machine: ${ceiling === null ? 'no SIMD' : `${ceiling.toFixed(1)} GFLOP/s`} per thread (12 independent f32x4 multiply-add chains, src/shared/wasm.ts simdCeiling)\n`);
  const torch = o.vsPytorch === true ? torchRunner() : null;
  if (torch !== null) process.stdout.write(`PyTorch: ${torch.describe}\n`);
  const results: Result[] = [];
  const torchRates = new Map<string, number[]>();
  const self = fileURLToPath(import.meta.url);
  for (const name of names) {
    for (const workers of counts) {
      // PyTorch and gradpool alternate, so that both see the same state of the machine.
      if (torch !== null) torchRates.set(name, [...(torchRates.get(name) ?? []), torch.run(WORKLOADS[name].options, o.windows, o.windowSeconds)]);
      const r = spawnSync(process.execPath, [...process.execArgv, self, '--child', `${name}:${workers}`, '--windows', o.windows, '--window-seconds', o.windowSeconds, '--kernels', o.kernels], { encoding: 'utf8' });
      if (r.status !== 0) {
        process.stderr.write(`bench: ${name} at ${workers} workers failed:\n${r.stderr}`);
        return 1;
      }
      results.push(JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Result);
    }
  }
  if (torch !== null) for (const name of names) torchRates.get(name)?.push(torch.run(WORKLOADS[name].options, o.windows, o.windowSeconds));
  process.stdout.write('\n' + table(results, ceiling, torchRates));
  if (torch !== null) {
    const kernels = names.map((n) => `${n} ${torch.chosen.get(`${WORKLOADS[n].options.layers.join(',')}/${WORKLOADS[n].options.batchSize}`) ?? '?'}`);
    process.stdout.write(`PyTorch's faster BLAS setting in its last run: ${kernels.join('; ')}\n`);
  }
  writeFileSync(o.jsonl, [...loaded, ...results].map((r) => JSON.stringify(r)).join('\n') + '\n');
  process.stdout.write(`\nwrote ${loaded.length + results.length} records to ${o.jsonl}; overhead = step time - slowest worker's shard compute\n`);
  return 0;
}

process.exitCode = await parent(process.argv.slice(2));
