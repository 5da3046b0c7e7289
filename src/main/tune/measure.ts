// Timed training windows, the one instrument behind the tuner, the benchmark and workers: 'auto'.
// A short probe sizes the windows to a time budget; then one fit() runs a warm-up epoch and `windows`
// measured epochs over the same shared data, and each window reports samples/s (rows over the summed
// wall time of its steps) and where the mean step's time went.

import type { Dataset } from '../data/data.js';
import { TRAINER_DEFAULTS, type ResolvedOptions, type TrainerOptions } from '../options/options.js';
import type { FitOptions, StepTiming } from '../options/types.js';
import { flopsPerSample } from '../../shared/model.js';
import type { WasmKernels } from '../../shared/wasm.js';
import { cpuTicks, stealPercent, type CpuTicks } from './steal.js';

/** What measure() needs of a Trainer. It is handed a way to make one (`(o) => new Trainer(o)`) rather
 *  than importing the Trainer, whose workers: 'auto' runs measure() itself. */
export interface MeasuredTrainer {
  readonly options: Readonly<ResolvedOptions>;
  fit(train: Dataset, fit?: FitOptions): Promise<unknown>;
  close(): Promise<void>;
}

export type MakeTrainer = (options: TrainerOptions) => MeasuredTrainer;

export interface WindowResult {
  samplesPerSec: number;
  steps: number;
  /** The mean step of the window. */
  timing: StepTiming;
  /** Percent of the machine's CPU time the hypervisor took during the window (/proc/stat steal); null
   *  where it is not known. */
  stealPct: number | null;
}

export interface Measurement {
  layers: number[];
  batchSize: number;
  workers: number;
  shards: number;
  kernels: WasmKernels | 'js';
  windows: WindowResult[];
  /** Medians over the windows. */
  samplesPerSec: number;
  timing: StepTiming;
  /** Smallest and largest window samples/s. */
  spread: [number, number];
  /** Matrix-product GFLOP/s per worker: forward, weight and input gradients over shard compute time. */
  gflopsPerWorker: number;
  /** The largest steal of the windows kept (null where not known), how many windows were measured again
   *  for more steal than MeasureOptions.maxStealPct, and whether some kept window still had more. */
  stealPct: number | null;
  repeated: number;
  stolen: boolean;
}

export interface MeasureOptions {
  /** Measured windows after the warm-up. Default 5. */
  windows?: number;
  /** Each window lasts about this long. Default 0.5 s. */
  windowSeconds?: number;
  /** Fewest and most steps in a window. Defaults 3 and 200. */
  minSteps?: number;
  maxSteps?: number;
  /** A window with more steal than this percentage is measured again, up to maxRepeats windows in all;
   *  then the least stolen are kept and the measurement is flagged `stolen`. Default: none repeated. */
  maxStealPct?: number;
  /** Default: as many as `windows`. */
  maxRepeats?: number;
  /** Reads the machine's CPU counters (default: /proc/stat); replaceable for tests. */
  ticks?: () => CpuTicks | null;
}

/**
 * Trains a fresh model made by `make` with `options` on `source` rows (repeated as needed) and measures it. The data
 * only needs features of the model's input width and targets for its loss.
 */
export async function measure(
  make: MakeTrainer, options: TrainerOptions, source: { x: Float32Array; y: Int32Array | Float32Array }, m: MeasureOptions = {},
): Promise<Measurement> {
  const windows = m.windows ?? 5;
  const batch = options.batchSize ?? TRAINER_DEFAULTS.batchSize;
  const trainer = make({ ...options, shuffle: false });
  try {
    // Probe: a few steps give the step time that sizes the windows.
    const probeSteps = 3;
    let probeMs = 0;
    await trainer.fit(repeatRows(source, trainer.options.layers, probeSteps * batch), {
      onStep: (s) => (probeMs = s.timing.stepMs), // the last probe step: warm
    });
    const wanted = Math.ceil(((m.windowSeconds ?? 0.5) * 1000) / Math.max(probeMs, 1e-3));
    const steps = Math.min(m.maxSteps ?? 200, Math.max(m.minSteps ?? 3, wanted));
    const rows = repeatRows(source, trainer.options.layers, steps * batch);
    const readTicks = m.ticks ?? (() => cpuTicks());
    /** `n` windows, each an epoch of `steps` steps, after one warm-up epoch. */
    const run = async (n: number): Promise<WindowResult[]> => {
      const timings: StepTiming[][] = Array.from({ length: n + 1 }, () => []);
      const ticks: (CpuTicks | null)[] = [];
      let first = -1; // fit() continues the Trainer's epoch count
      await trainer.fit(rows, {
        epochs: n + 1,
        onStep: (s) => {
          if (first < 0) first = s.epoch;
          const e = s.epoch - first;
          if (ticks.length === e) ticks.push(readTicks()); // epoch e's first step: the one before it ends
          timings[e].push(s.timing);
        },
      });
      ticks.push(readTicks());
      return timings.slice(1).map((t, i): WindowResult => {
        const mean = meanTiming(t);
        // Window i is epoch i + 1 (0 warms up); its steal is read from after its first step to after the next
        // epoch's first (or the end): a step's shift, the same for every window.
        return { samplesPerSec: (batch * 1000) / mean.stepMs, steps: t.length, timing: mean, stealPct: stealPercent(ticks[i + 1], ticks[i + 2]) };
      });
    };
    const limit = m.maxStealPct ?? Infinity;
    const stolen = (w: WindowResult): boolean => w.stealPct !== null && w.stealPct > limit;
    let measured = await run(windows);
    let repeated = 0;
    const maxRepeats = m.maxRepeats ?? windows;
    const missing = (): number => windows - measured.filter((w) => !stolen(w)).length;
    while (missing() > 0 && repeated < maxRepeats) {
      const n = Math.min(missing(), maxRepeats - repeated);
      repeated += n;
      measured = [...measured, ...(await run(n))];
    }
    // The least stolen `windows` of all measured.
    const results = [...measured].sort((a, b) => (a.stealPct ?? 0) - (b.stealPct ?? 0)).slice(0, windows);
    const rates = results.map((r) => r.samplesPerSec);
    const timing = medianTiming(results.map((r) => r.timing));
    const o = trainer.options;
    return {
      layers: o.layers,
      batchSize: batch,
      workers: o.workers,
      shards: o.shards,
      kernels: o.kernels,
      windows: results,
      samplesPerSec: median(rates),
      timing,
      spread: [Math.min(...rates), Math.max(...rates)],
      gflopsPerWorker: (flopsPerSample(o.layers) * batch) / (timing.computeTotalMs * 1e6),
      stealPct: results.some((r) => r.stealPct === null) ? null : Math.max(...results.map((r) => r.stealPct as number)),
      repeated,
      stolen: results.some(stolen),
    };
  } finally {
    await trainer.close();
  }
}

/** The first `rows` rows of `source`, cycling through it; targets follow the loss's shape. */
function repeatRows(source: { x: Float32Array; y: Int32Array | Float32Array }, layers: number[], rows: number): Dataset {
  const D = layers[0];
  const n = source.x.length / D;
  const perRow = source.y.length / n;
  const x = new Float32Array(rows * D);
  const y = source.y instanceof Int32Array ? new Int32Array(rows * perRow) : new Float32Array(rows * perRow);
  for (let r = 0; r < rows; r++) {
    x.set(source.x.subarray((r % n) * D, (r % n + 1) * D), r * D);
    y.set(source.y.subarray((r % n) * perRow, (r % n + 1) * perRow), r * perRow);
  }
  return { x, y };
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

const FIELDS = ['stepMs', 'computeMs', 'computeTotalMs', 'barrierMs', 'waitMs', 'dispatchMs', 'reduceMs', 'updateMs', 'tasks'] as const;

function meanTiming(ts: StepTiming[]): StepTiming {
  return Object.fromEntries(FIELDS.map((f) => [f, ts.reduce((s, t) => s + t[f], 0) / ts.length])) as unknown as StepTiming;
}

function medianTiming(ts: StepTiming[]): StepTiming {
  return Object.fromEntries(FIELDS.map((f) => [f, median(ts.map((t) => t[f]))])) as unknown as StepTiming;
}
