// `npm run bench -- --write-docs`: the benchmark's table in the documentation (docs/performance.md), one
// block per machine (its CPU model and CPU count), inside which each Node major version keeps its latest
// run as a data line, and the table beside them all is written again from those lines. Run the bench once
// per Node version on the same machine and the block shows them side by side; other machines' blocks and
// the text around the blocks are left as they are.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname } from 'node:path';
import { cpuLimit } from '../src/main/index.js';
import type { BenchResult } from './bench.js';

/** What one run keeps in the documentation. */
interface Run {
  node: string;
  date: string;
  ceilings: Record<string, number>;
  rows: { workload: string; workers: number; kernels: string; flags: string; samplesPerSec: number; pytorch: number | null; stealPct: number | null; stolen: boolean }[];
}

const INTRO = `# Performance

Written by the benchmark: \`npm run bench -- --vs-pytorch --write-docs\`, once per Node version on the same
machine (\`PATH=<node 26>/bin:$PATH npm run bench -- --vs-pytorch --write-docs\` for Node 26). Each block is
one machine; its table puts the Node versions side by side: samples/s with 1 and 2 workers, the kernels
\`kernels: 'auto'\` chose, PyTorch's one-thread training step on the same workload, and the largest steal
(CPU time the hypervisor took, /proc/stat) of the windows kept ('!': above 5% even after repeating them).
`;

function machine(): { id: string; title: string } {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const n = cpuLimit().cpus;
  return { id: `${model} x${n}`.replace(/[^A-Za-z0-9@.+-]+/g, '-'), title: `${model}, ${n} CPU${n === 1 ? '' : 's'}` };
}

function sideBySide(runs: Run[]): string {
  runs.sort((a, b) => Number(a.node.slice(1).split('.')[0]) - Number(b.node.slice(1).split('.')[0]));
  const keys = [...new Set(runs.flatMap((r) => r.rows.map((x) => `${x.workload}\t${x.workers}\t${x.flags}`)))];
  const n = (v: number): string => Math.round(v).toLocaleString('en-US');
  const head = ['workload', 'workers', ...runs.flatMap((r) => [`Node ${r.node}`, 'samples/s', 'vs 1 worker', 'PyTorch', 'vs PyTorch', 'steal'])];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const key of keys) {
    const [workload, workers, flags] = key.split('\t');
    const cells = [`${workload}${flags === '' ? '' : ` (${flags})`}`, workers];
    for (const r of runs) {
      const row = r.rows.find((x) => `${x.workload}\t${x.workers}\t${x.flags}` === key);
      const one = r.rows.find((x) => x.workload === workload && x.workers === 1 && x.flags === flags);
      if (row === undefined) {
        cells.push('', '', '', '', '', '');
        continue;
      }
      cells.push(
        `${row.kernels} kernels`, n(row.samplesPerSec),
        one === undefined || row.workers === 1 ? '' : `${(row.samplesPerSec / one.samplesPerSec).toFixed(2)}x`,
        row.pytorch === null ? '' : n(row.pytorch), row.pytorch === null ? '' : `${(row.samplesPerSec / row.pytorch).toFixed(2)}x`,
        `${row.stealPct === null ? '-' : `${row.stealPct.toFixed(1)}%`}${row.stolen ? '!' : ''}`,
      );
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  const about = runs.map((r) => `- Node ${r.node}, ${r.date}: ceilings ${Object.entries(r.ceilings).map(([k, g]) => `${k} ${g.toFixed(1)} GFLOP/s`).join(', ')} per thread`);
  return [...lines, '', ...about].join('\n');
}

/** Writes this run into `file`'s block for this machine (replacing this Node major version's last run). */
export function writeDocs(file: string, results: BenchResult[], pytorch: Map<string, number>, ceilings: Record<string, number>): void {
  const { id, title } = machine();
  const run: Run = {
    node: process.version, date: new Date().toISOString().slice(0, 10), ceilings,
    rows: results.map((r) => ({
      workload: r.workload, workers: r.workers, kernels: r.kernels, flags: r.v8Flags.join(' '), samplesPerSec: r.samplesPerSec,
      pytorch: pytorch.get(r.workload) ?? null, stealPct: r.stealPct, stolen: r.stolen,
    })),
  };
  const text = existsSync(file) ? readFileSync(file, 'utf8') : INTRO;
  const begin = `<!-- bench:begin ${id} -->`;
  const end = `<!-- bench:end ${id} -->`;
  const at = text.indexOf(begin);
  const stop = at < 0 ? -1 : text.indexOf(end, at);
  const old = at < 0 || stop < 0 ? '' : text.slice(at, stop);
  const major = (node: string): string => node.split('.')[0];
  const runs = [...old.matchAll(/^<!-- bench:data (.*) -->$/gm)].map((m) => JSON.parse(m[1]) as Run).filter((r) => major(r.node) !== major(run.node));
  runs.push(run);
  const block = [begin, `## ${title}`, '', sideBySide(runs), '', ...runs.map((r) => `<!-- bench:data ${JSON.stringify(r)} -->`), ''].join('\n');
  const next = at < 0 || stop < 0 ? `${text.trimEnd()}\n\n${block}${end}\n` : text.slice(0, at) + block + text.slice(stop);
  // Written whole, then renamed over the old file: an interrupted run leaves the old file as it was.
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, next);
  renameSync(`${file}.tmp`, file);
}
