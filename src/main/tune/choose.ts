// Choosing the worker count by measurement: the recommendation rule, the saved tuning results that
// workers: 'auto' reads, and the quick probe it runs when there is none.

import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../system/atomic-file.js';
import { cpuLimit } from '../system/cpus.js';
import { GradpoolError } from '../errors.js';
import { measure, type MakeTrainer } from './measure.js';
import { TRAINER_DEFAULTS, type TrainerOptions } from '../options/options.js';
import { defaultLoss, isSoftmaxLoss, type LossName } from '../../shared/model.js';
import { Rng } from '../../shared/rng.js';

export const TUNE_FILE = 'gradpool-tune.json';

/** A tuning result for one model shape and batch size on one machine. */
export interface TuneEntry {
  layers: number[];
  batchSize: number;
  /** The CPU limit it was measured under: a result is reused only on the same. */
  cpus: number;
  recommended: number;
  reason: string;
  measured: { workers: number; samplesPerSec: number; spread: [number, number]; efficiency: number }[];
  date: string;
}

export interface WorkersChoice {
  workers: number;
  reason: string;
}

/**
 * The fewest workers within 5% of the fastest: more threads than that cost CPU for no measurable gain.
 * `rates` are samples/s by worker count, 1 first.
 */
export function recommend(rates: { workers: number; samplesPerSec: number }[]): WorkersChoice {
  const one = rates.find((r) => r.workers === 1)?.samplesPerSec ?? rates[0].samplesPerSec;
  const best = rates.reduce((a, b) => (b.samplesPerSec > a.samplesPerSec ? b : a));
  const pick = rates.filter((r) => r.samplesPerSec >= 0.95 * best.samplesPerSec).reduce((a, b) => (b.workers < a.workers ? b : a));
  const speedup = pick.samplesPerSec / one;
  const more = rates.filter((r) => r.workers > pick.workers);
  const fmt = (v: number): string => Math.round(v).toLocaleString('en-US');
  let reason = `${pick.workers} worker${pick.workers > 1 ? 's' : ''}: ${fmt(pick.samplesPerSec)} samples/s, ` +
    `${speedup.toFixed(2)}x one worker (${Math.round((100 * speedup) / pick.workers)}% efficiency)`;
  if (more.length > 0) {
    const fastest = more.reduce((a, b) => (b.samplesPerSec > a.samplesPerSec ? b : a));
    reason += `; ${more.length > 1 ? `up to ${more[more.length - 1].workers}` : fastest.workers} workers ` +
      `gain ${fastest.samplesPerSec > pick.samplesPerSec ? `at most ${Math.round(100 * (fastest.samplesPerSec / pick.samplesPerSec - 1))}%` : 'nothing'}`;
  }
  return { workers: pick.workers, reason };
}

/** Reads the saved results, or [] when the file is missing; a damaged file is an error naming it. */
export function readTuneFile(path: string): TuneEntry[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  try {
    const entries = JSON.parse(text) as unknown;
    if (Array.isArray(entries)) return entries as TuneEntry[];
  } catch {
    // fall through
  }
  throw new GradpoolError(`${path}: not a gradpool tuning file (expected a JSON array of results)`, 'delete it or run npm run tune again');
}

/** Saves `entry` in the file, replacing a result for the same shape, batch size and CPUs; atomically. */
export async function saveTuneEntry(path: string, entry: TuneEntry): Promise<void> {
  const entries = readTuneFile(path).filter((e) => !sameSetting(e, entry.layers, entry.batchSize, entry.cpus));
  entries.push(entry);
  await writeFileAtomic(path, JSON.stringify(entries, null, 1) + '\n');
}

function sameSetting(e: TuneEntry, layers: number[], batchSize: number, cpus: number): boolean {
  return e.batchSize === batchSize && e.cpus === cpus && e.layers.length === layers.length && e.layers.every((w, i) => w === layers[i]);
}

/**
 * workers: 'auto': a saved result for this model shape, batch size and CPU limit if there is one, else
 * a quick probe (two short windows per worker count, a few seconds in all) on synthetic data.
 */
export async function chooseWorkers(make: MakeTrainer, options: TrainerOptions, tuneFile = TUNE_FILE): Promise<WorkersChoice> {
  const { cpus } = cpuLimit();
  const batchSize = options.batchSize ?? TRAINER_DEFAULTS.batchSize;
  const saved = readTuneFile(tuneFile).find((e) => sameSetting(e, options.layers, batchSize, cpus));
  if (saved !== undefined) {
    return { workers: saved.recommended, reason: `saved tuning result in ${tuneFile} (${saved.date}): ${saved.reason}` };
  }
  if (cpus === 1) return { workers: 1, reason: 'one CPU available' };
  const data = syntheticData(options.layers, options.loss, 512);
  const rates: { workers: number; samplesPerSec: number }[] = [];
  for (let workers = 1; workers <= cpus; workers++) {
    const m = await measure(make, { ...options, workers, shards: options.shards }, data, { windows: 2, windowSeconds: 0.2, maxSteps: 50 });
    rates.push({ workers, samplesPerSec: m.samplesPerSec });
  }
  const choice = recommend(rates);
  return { workers: choice.workers, reason: `quick probe (run npm run tune for a full measurement): ${choice.reason}` };
}

/** Random inputs in [0, 1) and random targets of the loss's kind: enough to time the arithmetic. */
export function syntheticData(layers: number[], loss: LossName | undefined, rows: number): { x: Float32Array; y: Int32Array | Float32Array } {
  const rng = new Rng(12345);
  const D = layers[0];
  const K = layers[layers.length - 1];
  const x = Float32Array.from({ length: rows * D }, () => rng.nextFloat());
  const softmax = isSoftmaxLoss(loss ?? defaultLoss(K));
  const y = softmax ? Int32Array.from({ length: rows }, () => rng.nextInt(K)) : Float32Array.from({ length: rows * K }, () => rng.nextInt(2));
  return { x, y };
}
