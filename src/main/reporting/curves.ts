// Learning curves as a standalone SVG, as TensorBoard's scalars or Keras' history plots show them: per
// epoch, the training and validation loss (left panel), the training and validation accuracy (middle) and
// the learning rate (right). Drawn from fit()'s history or from the epoch lines of a --metrics file.
// Each curve is a <polyline> with a class naming it (train-loss, val-loss, train-accuracy,
// val-accuracy, lr), so that a program can find it.

import { DataError } from '../errors.js';
import { escapeXml, niceCeil, tickText } from './svg.js';
import type { EpochRecord } from '../options/types.js';

interface Curve {
  name: string;
  label: string;
  color: string;
  dashed: boolean;
  values: (number | undefined)[];
}

const PANEL = 300;
const GAP = 40;
const LEFT = 60;
const W = LEFT + 3 * PANEL + 2 * GAP + 30;
const H = 380;
const TOP = 50;
const BOTTOM = 60;

/** The SVG text of the learning curves of `history` (one record per epoch, in order). */
export function curvesSvg(history: readonly EpochRecord[], title: string): string {
  const epochs = history.map((r) => r.epoch);
  const panels: { title: string; curves: Curve[]; fromZero: boolean; percent: boolean }[] = [
    { title: 'loss', fromZero: true, percent: false, curves: [
      { name: 'train-loss', label: 'train', color: '#1f77b4', dashed: false, values: history.map((r) => r.trainLoss) },
      { name: 'val-loss', label: 'validation', color: '#d62728', dashed: true, values: history.map((r) => r.valLoss) },
    ] },
    { title: 'accuracy', fromZero: false, percent: true, curves: [
      { name: 'train-accuracy', label: 'train', color: '#1f77b4', dashed: false, values: history.map((r) => r.trainAccuracy) },
      { name: 'val-accuracy', label: 'validation', color: '#d62728', dashed: true, values: history.map((r) => r.valAccuracy) },
    ] },
    { title: 'learning rate', fromZero: true, percent: false, curves: [
      { name: 'lr', label: 'lr (last step of the epoch)', color: '#2ca02c', dashed: false, values: history.map((r) => r.lr) },
    ] },
  ];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
  panels.forEach((p, i) => out.push(...panel(LEFT + i * (PANEL + GAP), p, epochs)));
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function panel(x0: number, p: { title: string; curves: Curve[]; fromZero: boolean; percent: boolean }, epochs: number[]): string[] {
  const finite = p.curves.flatMap((c) => c.values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const hi = p.percent ? 1 : niceCeil(Math.max(...finite, 0) * 1.05);
  const lo = p.percent ? Math.max(0, Math.floor(Math.min(...finite, 1) * 10) / 10) : 0;
  const first = epochs[0] ?? 1;
  const last = Math.max(epochs.at(-1) ?? 1, first + 1);
  const x = (e: number): number => x0 + ((e - first) / (last - first)) * PANEL;
  const y = (v: number): number => H - BOTTOM - ((v - lo) / (hi - lo || 1)) * (H - TOP - BOTTOM);
  const out = [
    `<text x="${x0 + PANEL / 2}" y="${TOP - 10}" text-anchor="middle" font-size="13">${p.title}</text>`,
    `<line x1="${x0}" y1="${H - BOTTOM}" x2="${x0 + PANEL}" y2="${H - BOTTOM}" stroke="black"/>`,
    `<line x1="${x0}" y1="${TOP}" x2="${x0}" y2="${H - BOTTOM}" stroke="black"/>`,
    `<text x="${x0 + PANEL / 2}" y="${H - BOTTOM + 34}" text-anchor="middle">epoch</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    out.push(`<line x1="${x0}" y1="${y(v)}" x2="${x0 + PANEL}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${x0 - 6}" y="${y(v) + 4}" text-anchor="end">${p.percent ? `${tickText(100 * v)}%` : tickText(v)}</text>`);
  }
  const step = Math.max(1, Math.ceil((last - first) / 8));
  for (let e = first; e <= last; e += step) out.push(`<text x="${x(e)}" y="${H - BOTTOM + 16}" text-anchor="middle">${e}</text>`);
  p.curves.forEach((c, i) => {
    const pts = c.values.map((v, k) => (v === undefined || !Number.isFinite(v) ? null : `${x(epochs[k]).toFixed(1)},${y(v).toFixed(1)}`))
      .filter((s): s is string => s !== null);
    if (pts.length === 0) return;
    const dash = c.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(`<polyline class="${c.name}" points="${pts.join(' ')}" fill="none" stroke="${c.color}" stroke-width="2"${dash}/>`);
    if (pts.length === 1) {
      const [cx, cy] = pts[0].split(',');
      out.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${c.color}"/>`);
    }
    out.push(`<text x="${x0 + 8}" y="${TOP + 14 + 15 * i}" fill="${c.color}">${escapeXml(c.label)}</text>`);
  });
  return out;
}

/** The epoch records of a --metrics file's text (its lines of type 'epoch'), in order. The file is
 *  appended to by every run: an epoch number not above the one before starts a new run, and only the
 *  last run is kept (a resumed run continues the numbers, so it stays one run). */
export function epochsFromMetrics(text: string, path: string): EpochRecord[] {
  const records: EpochRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new DataError(`${path} line ${i + 1} is not a JSON line: ${line.slice(0, 80)}`, 'give the file that --metrics wrote');
    }
    const r = v as Partial<EpochRecord> & { type?: string };
    if (r.type !== 'epoch') return;
    if (typeof r.epoch !== 'number' || typeof r.trainLoss !== 'number' || typeof r.lr !== 'number') {
      throw new DataError(`${path} line ${i + 1}: an epoch line needs the numbers epoch, trainLoss and lr`, 'give the file that --metrics wrote');
    }
    if (records.length > 0 && r.epoch <= (records.at(-1) as EpochRecord).epoch) records.length = 0;
    records.push(r as EpochRecord);
  });
  if (records.length === 0) throw new DataError(`${path} has no epoch lines`, 'plot a --metrics file of a run that finished an epoch');
  return records;
}
