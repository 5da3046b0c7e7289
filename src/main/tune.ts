// Choosing the worker count by measurement: the recommendation rule, the saved tuning results that
// workers: 'auto' reads, the quick probe it runs when there is none, and the scaling chart (SVG).

import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { cpuLimit } from './cpus.js';
import { measure, type Measurement } from './measure.js';
import type { TrainerOptions } from './options.js';
import { isSoftmaxLoss, type LossName } from '../shared/model.js';
import { Rng } from '../shared/rng.js';

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
  throw new Error(`${path}: not a gradpool tuning file (expected a JSON array of results); delete it or run npm run tune again`);
}

/** Saves `entry` in the file, replacing a result for the same shape, batch size and CPUs; atomically. */
export async function saveTuneEntry(path: string, entry: TuneEntry): Promise<void> {
  const entries = readTuneFile(path).filter((e) => !sameSetting(e, entry.layers, entry.batchSize, entry.cpus));
  entries.push(entry);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(entries, null, 1) + '\n');
  await rename(tmp, path);
}

function sameSetting(e: TuneEntry, layers: number[], batchSize: number, cpus: number): boolean {
  return e.batchSize === batchSize && e.cpus === cpus && e.layers.length === layers.length && e.layers.every((w, i) => w === layers[i]);
}

/**
 * workers: 'auto': a saved result for this model shape, batch size and CPU limit if there is one, else
 * a quick probe (two short windows per worker count, a few seconds in all) on synthetic data.
 */
export async function chooseWorkers(options: TrainerOptions, tuneFile = TUNE_FILE): Promise<WorkersChoice> {
  const { cpus } = cpuLimit();
  const batchSize = options.batchSize ?? 64;
  const saved = readTuneFile(tuneFile).find((e) => sameSetting(e, options.layers, batchSize, cpus));
  if (saved !== undefined) {
    return { workers: saved.recommended, reason: `saved tuning result in ${tuneFile} (${saved.date}): ${saved.reason}` };
  }
  if (cpus === 1) return { workers: 1, reason: 'one CPU available' };
  const data = syntheticData(options.layers, options.loss, 512);
  const rates: { workers: number; samplesPerSec: number }[] = [];
  for (let workers = 1; workers <= cpus; workers++) {
    const m = await measure({ ...options, workers, shards: options.shards }, data, { windows: 2, windowSeconds: 0.2, maxSteps: 50 });
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
  const softmax = isSoftmaxLoss(loss ?? (K === 1 ? 'bce-with-logits' : 'cross-entropy'));
  const y = softmax ? Int32Array.from({ length: rows }, () => rng.nextInt(K)) : Float32Array.from({ length: rows * K }, () => rng.nextInt(2));
  return { x, y };
}

/** Per worker count: median samples/s, spread, speed-up over one worker and parallel efficiency. */
export function scaling(ms: Measurement[]): TuneEntry['measured'] {
  const one = ms.find((m) => m.workers === 1)?.samplesPerSec ?? ms[0].samplesPerSec;
  return ms.map((m) => ({
    workers: m.workers,
    samplesPerSec: m.samplesPerSec,
    spread: m.spread,
    efficiency: m.samplesPerSec / one / m.workers,
  }));
}

/**
 * The scaling curve as a standalone SVG: samples/s against workers (one line per batch size, left axis)
 * and parallel efficiency (dashed, right axis). Written by hand: a chart library would outweigh it.
 */
export function scalingSvg(title: string, series: { label: string; points: TuneEntry['measured'] }[], cpus: number): string {
  const W = 720, H = 420, L = 70, R = 70, T = 50, B = 60;
  const maxW = Math.max(...series.flatMap((s) => s.points.map((p) => p.workers)));
  const maxS = niceCeil(Math.max(...series.flatMap((s) => s.points.map((p) => p.spread[1]))) * 1.05);
  const x = (w: number): number => L + ((w - 1) / Math.max(1, maxW - 1)) * (W - L - R);
  const yS = (v: number): number => H - B - (v / maxS) * (H - T - B);
  const yE = (e: number): number => H - B - Math.min(e, 1.2) / 1.2 * (H - T - B);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15">${escape(title)}</text>`,
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="black"/>`,
    `<line x1="${W - R}" y1="${T}" x2="${W - R}" y2="${H - B}" stroke="black"/>`,
    `<text x="${W / 2}" y="${H - 20}" text-anchor="middle">workers (${cpus} CPUs available; beyond that, oversubscribed)</text>`,
    `<text x="18" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(T + H - B) / 2})">samples/s (median; bars: spread)</text>`,
    `<text x="${W - 18}" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(90 ${W - 18} ${(T + H - B) / 2})">parallel efficiency (dashed)</text>`,
  ];
  for (let w = 1; w <= maxW; w++) out.push(`<text x="${x(w)}" y="${H - B + 18}" text-anchor="middle">${w}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (maxS * i) / 4;
    out.push(`<text x="${L - 6}" y="${yS(v) + 4}" text-anchor="end">${Math.round(v).toLocaleString('en-US')}</text>`);
    out.push(`<text x="${W - R + 6}" y="${yE(0.3 * i) + 4}">${Math.round(30 * i)}%</text>`);
    out.push(`<line x1="${L}" y1="${yS(v)}" x2="${W - R}" y2="${yS(v)}" stroke="#ddd"/>`);
  }
  if (cpus < maxW) out.push(`<line x1="${x(cpus)}" y1="${T}" x2="${x(cpus)}" y2="${H - B}" stroke="#999" stroke-dasharray="2 3"/>`);
  series.forEach((s, i) => {
    const c = colors[i % colors.length];
    const line = s.points.map((p) => `${x(p.workers)},${yS(p.samplesPerSec)}`).join(' ');
    const eff = s.points.map((p) => `${x(p.workers)},${yE(p.efficiency)}`).join(' ');
    out.push(`<polyline points="${line}" fill="none" stroke="${c}" stroke-width="2"/>`);
    out.push(`<polyline points="${eff}" fill="none" stroke="${c}" stroke-width="1.5" stroke-dasharray="6 4"/>`);
    for (const p of s.points) {
      out.push(`<line x1="${x(p.workers)}" y1="${yS(p.spread[0])}" x2="${x(p.workers)}" y2="${yS(p.spread[1])}" stroke="${c}"/>`);
      out.push(`<circle cx="${x(p.workers)}" cy="${yS(p.samplesPerSec)}" r="3.5" fill="${c}"/>`);
    }
    out.push(`<text x="${L + 12}" y="${T + 16 + 16 * i}" fill="${c}">${escape(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The next of 1, 2, 2.5, 5 times a power of ten at or above v, so the axis ticks are round. */
function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 2.5, 5, 10].find((m) => m * p >= v) as number) * p;
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
