// The worker tuner, workers: 'auto' and the benchmark. No timing thresholds (the machines are shared):
// the CPU limit against cgroup files written here, the recommendation rule against cases worked by hand,
// the step-time breakdown against its own definition, and the scripts run end to end for their outputs.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cpuLimit } from '../src/main/system/cpus.js';
import { measure } from '../src/main/tune/measure.js';
import { cpuTicks, stealPercent, type CpuTicks } from '../src/main/tune/steal.js';
import { recommend, TUNE_FILE, type TuneEntry } from '../src/main/tune/choose.js';
import { scaling } from '../src/main/tune/scaling.js';
import { tuneMain } from '../src/cli/tune.js';
import { Trainer, type StepTiming } from '../src/main/index.js';
import { mnistSubset, runCli } from './helpers.js';
import { expectedAutoKernels } from './fma.js';
import { writeDocs } from '../scripts/bench-docs.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-tune-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function files(map: Record<string, string>) {
  return (path: string): string | null => map[path] ?? null;
}

describe('CPU limit', () => {
  it('lowers the CPU count to a cgroup v2 quota, rounding a fraction of a CPU up', () => {
    const read = files({ '/proc/self/cgroup': '0::/box\n', '/sys/fs/cgroup/box/cpu.max': '150000 100000\n' });
    expect(cpuLimit(read, 8)).toEqual({ cpus: 2, source: 'cgroup v2 cpu.max: a quota of 1.50 CPUs (of 8 available)' });
  });

  it('reads a cgroup v1 quota, and ignores an unlimited one', () => {
    const v1 = files({
      '/proc/self/cgroup': '4:memory:/x\n2:cpu,cpuacct:/job\n',
      '/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us': '50000', '/sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us': '100000',
    });
    expect(cpuLimit(v1, 4).cpus).toBe(1);
    const unlimited = files({ '/proc/self/cgroup': '1:cpu:/\n', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' });
    expect(cpuLimit(unlimited, 4)).toEqual({ cpus: 4, source: 'os.availableParallelism() = 4, no cgroup CPU quota' });
    const max = files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': 'max 100000' });
    expect(cpuLimit(max, 3).cpus).toBe(3);
  });

  it('keeps the available parallelism when the quota is larger', () => {
    const read = files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/cpu.max': '800000 100000' });
    expect(cpuLimit(read, 2).cpus).toBe(2);
  });
});

describe('recommendation', () => {
  it('picks the fewest workers within 5% of the fastest, and says why', () => {
    const c = recommend([{ workers: 1, samplesPerSec: 5000 }, { workers: 2, samplesPerSec: 9000 }, { workers: 3, samplesPerSec: 9300 }, { workers: 4, samplesPerSec: 8000 }]);
    expect(c.workers).toBe(2); // 9000 >= 0.95 * 9300
    expect(c.reason).toBe('2 workers: 9,000 samples/s, 1.80x one worker (90% efficiency); up to 4 workers gain at most 3%');
  });

  it('keeps one worker when more are no faster', () => {
    const c = recommend([{ workers: 1, samplesPerSec: 5000 }, { workers: 2, samplesPerSec: 4000 }]);
    expect(c).toEqual({ workers: 1, reason: '1 worker: 5,000 samples/s, 1.00x one worker (100% efficiency); 2 workers gain nothing' });
  });

  it('computes speed-up and parallel efficiency against one worker', () => {
    const fake = (workers: number, samplesPerSec: number) => ({ workers, samplesPerSec, spread: [samplesPerSec, samplesPerSec] as [number, number] });
    const points = scaling([fake(1, 4000), fake(2, 6000), fake(4, 8000)] as never);
    expect(points.map((p) => p.efficiency)).toEqual([1, 0.75, 0.5]);
  });
});

describe('measurement', () => {
  it('reports windows whose step time is exactly compute + dispatch + reduce + update', async () => {
    const m = await measure((o) => new Trainer(o), { layers: [784, 16, 10], batchSize: 32, workers: 2 }, mnistSubset(256), { windows: 3, windowSeconds: 0.05 });
    expect(m.windows).toHaveLength(3);
    expect(m.workers).toBe(2);
    for (const w of m.windows) {
      const t = w.timing;
      expect(t.computeMs + t.dispatchMs + t.reduceMs + t.updateMs).toBeCloseTo(t.stepMs, 9);
      expect(t.computeTotalMs).toBeGreaterThanOrEqual(t.computeMs);
      expect(t.barrierMs).toBeGreaterThanOrEqual(0);
      expect(t.tasks).toBe(2);
      expect(w.samplesPerSec).toBeCloseTo((32 * 1000) / t.stepMs, 6);
    }
    expect(m.spread[0]).toBeLessThanOrEqual(m.samplesPerSec);
    expect(m.spread[1]).toBeGreaterThanOrEqual(m.samplesPerSec);
    expect(m.gflopsPerWorker).toBeGreaterThan(0);
  });
});

describe('steal', () => {
  it("reads /proc/stat's first line: every field of the ten but the guest times, and steal, the eighth", () => {
    const stat = (first: string) => (path: string): string | null => (path === '/proc/stat' ? `${first}\ncpu0 1 2 3 4 5 6 7 8 0 0\n` : null);
    // user nice system idle iowait irq softirq steal guest guest_nice: 100+5+40+800+10+0+5+40 = 1000
    expect(cpuTicks(stat('cpu  100 5 40 800 10 0 5 40 30 0'))).toEqual({ total: 1000, steal: 40 });
    expect(cpuTicks(stat('cpu  100 5 40 800'))).toBeNull(); // no steal field
    expect(cpuTicks(() => null)).toBeNull();
    // 40 of 1000 ticks stolen in between: 4%.
    expect(stealPercent({ total: 1000, steal: 10 }, { total: 2000, steal: 50 })).toBe(4);
    expect(stealPercent(null, { total: 2000, steal: 50 })).toBeNull();
  });

  it('measures a window again while its steal is above maxStealPct, up to maxRepeats, then flags the measurement', async () => {
    // Counters that advance 100 ticks a reading, 50 of them stolen for the first `stolenReads` readings.
    const fakeTicks = (stolenReads: number): (() => CpuTicks) => {
      let reads = 0;
      let t = { total: 0, steal: 0 };
      return () => {
        reads++;
        t = { total: t.total + 100, steal: t.steal + (reads <= stolenReads ? 50 : 0) };
        return t;
      };
    };
    const run = (stolenReads: number, maxRepeats: number) => measure((o) => new Trainer(o), { layers: [784, 8, 10], batchSize: 16, workers: 1 },
      mnistSubset(64), { windows: 2, windowSeconds: 0.01, maxSteps: 3, maxStealPct: 5, maxRepeats, ticks: fakeTicks(stolenReads) });
    // 2 windows and a warm-up read the counters 4 times (each epoch's first step, and the end); the windows
    // span readings 2-3 and 3-4: 50% stolen for both with 4 stolen readings, so both are measured again,
    // and those 2 (readings 5-8) have no steal.
    const clean = await run(4, 2);
    expect(clean.repeated).toBe(2);
    expect(clean.stolen).toBe(false);
    expect(clean.windows.map((w) => w.stealPct)).toEqual([0, 0]);
    expect(clean.stealPct).toBe(0);
    // Every reading stolen: repeats stop at maxRepeats and the measurement says so.
    const flagged = await run(1e9, 1);
    expect(flagged.repeated).toBe(1);
    expect(flagged.stolen).toBe(true);
    expect(flagged.stealPct).toBe(50);
  });
});

// The breakdown above holds by construction (dispatch is what the other parts leave of the step); these
// bounds do not: each part is a time measured on its own, in a worker or around a step.
const PARTS = ['stepMs', 'computeMs', 'computeTotalMs', 'barrierMs', 'dispatchMs', 'reduceMs', 'updateMs'] as const;

describe('measured step times', () => {
  // 3 workers and 2 shards: only 2 tasks can have rows; every part measured, none derived from another
  let measured: ReturnType<typeof measure> | undefined;
  const windows = () => (measured ??= measure((o) => new Trainer(o), { layers: [784, 16, 10], batchSize: 32, workers: 3, shards: 2 }, mnistSubset(256), { windows: 3, windowSeconds: 0.05 }));

  it('reports every part of a window\'s step time as a finite, non-negative number of milliseconds', async () => {
    for (const w of (await windows()).windows) {
      for (const part of PARTS) {
        expect(Number.isFinite(w.timing[part]), part).toBe(true);
        expect(w.timing[part], part).toBeGreaterThanOrEqual(0);
      }
    }
  });

  it('reports the slowest task\'s compute time within the step time, and the wait at the barrier within that', async () => {
    for (const w of (await windows()).windows) {
      const t = w.timing;
      expect(t.computeMs).toBeGreaterThan(0);
      expect(t.computeMs).toBeLessThanOrEqual(t.stepMs);
      expect(t.barrierMs).toBeLessThanOrEqual(t.computeMs);
      // the tasks' total is at least the slowest one's and at most every task as slow as it
      expect(t.computeTotalMs).toBeGreaterThanOrEqual(t.computeMs);
      expect(t.computeTotalMs).toBeLessThanOrEqual(t.tasks * t.computeMs * (1 + 1e-12));
    }
  });

  it('runs as many tasks as the fewer of workers and shards', async () => {
    const m = await windows();
    expect([m.workers, m.shards]).toEqual([3, 2]);
    for (const w of m.windows) expect(w.timing.tasks).toBe(2);
  });

  it('reports the median window, between the slowest and the fastest', async () => {
    const m = await windows();
    const steps = m.windows.map((w) => w.timing.stepMs);
    expect(m.timing.stepMs).toBeGreaterThanOrEqual(Math.min(...steps));
    expect(m.timing.stepMs).toBeLessThanOrEqual(Math.max(...steps));
    expect(m.samplesPerSec).toBeGreaterThanOrEqual(m.spread[0]);
    expect(m.samplesPerSec).toBeLessThanOrEqual(m.spread[1]);
  });

  // fit() itself, timed here: 5 full batches of 32 rows and a last one of 1 row, 2 workers, 4 shards
  let fitted: Promise<{ wallMs: number; timings: StepTiming[]; rows: number[] }> | undefined;
  const fitRun = () => (fitted ??= (async () => {
    const t = new Trainer({ layers: [784, 16, 10], batchSize: 32, workers: 2, shards: 4, shuffle: false });
    try {
      const timings: StepTiming[] = [];
      const rows: number[] = [];
      const data = mnistSubset(161);
      const t0 = performance.now();
      await t.fit(data, { onStep: (s) => (timings.push(s.timing), rows.push(s.rows)) });
      return { wallMs: performance.now() - t0, timings, rows };
    } finally {
      await t.close();
    }
  })());

  it('times steps that together take no longer than the fit() call around them', async () => {
    const { wallMs, timings } = await fitRun();
    expect(timings).toHaveLength(6);
    const total = timings.reduce((s, t) => s + t.stepMs, 0);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(wallMs);
  });

  it('times every step of fit() in finite, non-negative parts, compute within the step', async () => {
    for (const [i, t] of (await fitRun()).timings.entries()) {
      for (const part of PARTS) {
        expect(Number.isFinite(t[part]), `step ${i + 1} ${part}`).toBe(true);
        expect(t[part], `step ${i + 1} ${part}`).toBeGreaterThanOrEqual(0);
      }
      expect(t.computeMs, `step ${i + 1}`).toBeLessThanOrEqual(t.stepMs);
      expect(t.barrierMs, `step ${i + 1}`).toBeLessThanOrEqual(t.computeMs);
    }
  });

  it('runs min(workers, shards) tasks for a full batch and one task for a last batch of one row', async () => {
    const { timings, rows } = await fitRun();
    expect(rows).toEqual([32, 32, 32, 32, 32, 1]);
    expect(timings.map((t) => t.tasks)).toEqual([2, 2, 2, 2, 2, 1]);
  });
});

describe('tuner', () => {
  it('prints a table per batch size, recommends, and saves JSON and an SVG chart', async () => {
    let out = '';
    const stream = { write: (s: string) => ((out += s), true), isTTY: false } as unknown as NodeJS.WriteStream;
    const code = await tuneMain(['--layers', '784,16,10', '--batch-sizes', '32,64', '--max-workers', '3', '--windows', '2', '--window-seconds', '0.05', '--out-dir', dir], stream);
    expect(code).toBe(0);
    expect(out).toMatch(/^gradpool tune: MLP 784-16-10, workers 1 to 3, 2 windows of ~0\.05 s after a warm-up\nCPUs: \d+ \(/);
    for (const b of [32, 64]) expect(out).toMatch(new RegExp(`\\nbatch ${b}\\nworkers  samples/s \\(min-max\\) +speed-up  efficiency +step ms +compute  barrier  dispatch  reduce\\+update\\n +1 .*\\n +2 .*\\n +3 .*\\nrecommended: \\d workers?: `));
    const saved = JSON.parse(readFileSync(join(dir, TUNE_FILE), 'utf8')) as TuneEntry[];
    expect(saved.map((e) => e.batchSize)).toEqual([32, 64]);
    expect(saved[0].measured.map((p) => p.workers)).toEqual([1, 2, 3]);
    expect(saved[0].measured[0].efficiency).toBe(1);
    const svg = readFileSync(join(dir, 'gradpool-tune.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.match(/<polyline /g)).toHaveLength(4); // samples/s and efficiency per batch size
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });

  it("makes workers: 'auto' use the saved result for the same model shape and batch size", async () => {
    const entries = JSON.parse(readFileSync(join(dir, TUNE_FILE), 'utf8')) as TuneEntry[];
    entries[0].recommended = 1; // an answer the probe could not give by chance on 2 CPUs: read, not measured
    entries[0].reason = 'written by this test';
    writeFileSync(join(dir, TUNE_FILE), JSON.stringify(entries));
    const t = await Trainer.create({ layers: [784, 16, 10], batchSize: 32, workers: 'auto' }, join(dir, TUNE_FILE));
    try {
      expect(t.options.workers).toBe(1);
      expect(t.workersChoice?.reason).toMatch(/^saved tuning result in .*gradpool-tune\.json \(.*\): written by this test$/);
    } finally {
      await t.close();
    }
  });

  it("probes when there is no saved result, and new Trainer() refuses 'auto'", async () => {
    const t = await Trainer.create({ layers: [784, 8, 10], batchSize: 16, workers: 'auto' }, join(dir, 'none.json'));
    try {
      expect(t.options.workers).toBeGreaterThanOrEqual(1);
      expect(t.options.workers).toBeLessThanOrEqual(cpuLimit().cpus);
      expect(t.workersChoice?.reason).toMatch(/^(quick probe \(run npm run tune for a full measurement\): \d workers?: [\d,]+ samples\/s|one CPU available)/);
    } finally {
      await t.close();
    }
    expect(() => new Trainer({ layers: [4, 2], workers: 'auto' })).toThrow("options.workers 'auto' is measured when the Trainer is made: use await Trainer.create(options)");
  });

  it('reports the choice of --workers auto on the command line', async () => {
    const r = await runCli(['--layers', '784,8,10', '--epochs', '1', '--workers', 'auto', '--out', join(dir, 'auto.safetensors')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/\nworkers: auto chose \d: (quick probe|saved tuning result|one CPU)/);
  });
});

describe('benchmark', () => {
  it('writes its table into the documentation: one block per machine, a Node version replaced by its next run, others kept beside it', () => {
    const file = join(dir, 'docs', 'performance.md');
    const row = (workers: number, samplesPerSec: number) => ({ workload: 'mlp-b64', workers, kernels: 'wasm', v8Flags: [], samplesPerSec, stealPct: 1.25, stolen: workers === 2 }) as never;
    writeDocs(file, [row(1, 1000), row(2, 1500)], new Map([['mlp-b64', 2000]]), { wasm: 30 });
    // The same machine's run on another Node version, as its data line would read.
    const other = readFileSync(file, 'utf8').replace(/"node":"v[\d.]+"/, '"node":"v99.1.0"').replace(/"samplesPerSec":1500/, '"samplesPerSec":1800');
    writeFileSync(file, `${other}\nA line the user wrote.\n`);
    writeDocs(file, [row(1, 1100), row(2, 1650)], new Map([['mlp-b64', 2200]]), { wasm: 31 });
    writeDocs(file, [row(1, 1200), row(2, 1800)], new Map([['mlp-b64', 2400]]), { wasm: 32 }); // replaces the one before
    const text = readFileSync(file, 'utf8');
    expect(text.match(/<!-- bench:begin /g)).toHaveLength(1);
    expect(text.match(/<!-- bench:data /g)).toHaveLength(2);
    expect(text).toContain('A line the user wrote.');
    expect(text).toContain(`| workload | workers | Node ${process.version} | samples/s | vs 1 worker | PyTorch | vs PyTorch | steal | Node v99.1.0 |`);
    // This Node's last run (1,200 and 1,800: 1.50x; PyTorch 2,400: 0.50x and 0.75x), then v99's (1.80x; 0.90x).
    expect(text).toContain('| mlp-b64 | 1 | wasm kernels | 1,200 |  | 2,400 | 0.50x | 1.3% | wasm kernels | 1,000 |  | 2,000 | 0.50x | 1.3% |');
    expect(text).toContain('| mlp-b64 | 2 | wasm kernels | 1,800 | 1.50x | 2,400 | 0.75x | 1.3%! | wasm kernels | 1,800 | 1.80x | 2,000 | 0.90x | 1.3%! |');
  });

  it('refuses windows that are not positive, with exit code 2, before measuring anything', () => {
    const jsonl = join(dir, 'refused.jsonl');
    for (const [flag, value, expected] of [['--windows', '0', 'a positive integer'], ['--window-seconds', '-1', 'a positive number']]) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', '--only', 'logreg-b256', flag, value, '--jsonl', jsonl], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(new RegExp(`^error: option '${flag} <[a-z]+>' argument '${value}' is invalid\\. expected ${expected}\\n$`));
    }
    expect(existsSync(jsonl)).toBe(false);
  });

  it('runs a workload in its own process and writes a JSON Lines record with every figure', () => {
    const jsonl = join(dir, 'bench.jsonl');
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', '--only', 'logreg-b256', '--workers', '1,2', '--windows', '1', '--window-seconds', '0.05', '--jsonl', jsonl],
      { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\nworkload +flags  kernels   workers  samples\/s \(min-max\) +vs 1 worker  step ms  overhead µs/);
    expect(r.stdout).toMatch(new RegExp(`\\nlogreg-b256 +${expectedAutoKernels()} +2 .* \\d\\.\\d\\dx, \\d+% `));
    expect(r.stdout).toMatch(/\nWebAssembly SIMD ceiling of the wasm kernels: \d+\.\d GFLOP\/s per thread \(12 independent f32x4 mul \+ add chains/);
    expect(existsSync(jsonl)).toBe(true);
    const records = readFileSync(jsonl, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(records.map((x) => x.workers)).toEqual([1, 2]);
    for (const x of records) {
      expect(Object.keys(x).sort()).toEqual(['alone', 'aloneGflops', 'aloneStealPct', 'barrierUs', 'batchSize', 'computeMs', 'dispatchUs', 'gflopsPerWorker', 'kernels',
        'layers', 'node', 'overheadUs', 'peakRssMB', 'reduceUpdateUs', 'repeated', 'samplesPerSec', 'shards', 'spread', 'stealPct', 'stepMs', 'stolen', 'v8Flags',
        'waitUs', 'windows', 'workers', 'workload'].sort());
      expect(x.peakRssMB).toBeGreaterThan(10);
      expect(x.kernels).toBe(expectedAutoKernels());
      // The kernels alone at the shard's shape: batch 256 in 4 shards of 64 rows, the one layer 784 -> 1.
      expect(x.alone.map((a: { shape: number[]; product: string }) => `${a.shape.join('x')} ${a.product}`))
        .toEqual(['64x784x1 forward', '64x784x1 backward weight', '64x784x1 backward input']);
    }
  });
});
