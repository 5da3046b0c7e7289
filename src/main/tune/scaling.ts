// The tuner's results drawn and summed up: per worker count the speed-up and parallel efficiency over one
// worker, and the scaling chart as a standalone SVG.

import type { Measurement } from './measure.js';
import type { TuneEntry } from './choose.js';
import { escapeXml as escape, niceCeil } from '../reporting/svg.js';

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
 * and parallel efficiency (dashed, right axis).
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
