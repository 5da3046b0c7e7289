// The benchmark's loading row (`npm run bench -- --only loading`): a numeric CSV of 200,000 rows x 50
// features and a label (about 85 MB, five decimals a cell, as numpy.savetxt('%.5f') writes) and an IDX
// pair of 60,000 28 x 28 images, written to a temporary folder, then read by loadCsv and loadIdx, and the
// CSV by numpy.loadtxt (float32) when /usr/bin/python3 has numpy, the two alternating so that both see
// the same state of the machine. Medians of the repetitions; MB/s of the file sizes.

import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCsv, loadIdx } from '../src/main/index.js';
import { median } from '../src/main/tune/measure.js';
import { Rng } from '../src/shared/rng.js';

export interface LoadingResult {
  workload: string;
  describe: string;
  megabytes: number;
  seconds: number;
  mbPerSec: number;
  numpySeconds: number | null;
  numpyMbPerSec: number | null;
  repetitions: number;
  node: string;
}

const PYTHON = '/usr/bin/python3';
const NUMPY = 'import sys, time, numpy\nt = time.perf_counter()\nnumpy.loadtxt(sys.argv[1], delimiter=",", skiprows=1, dtype=numpy.float32)\nprint(time.perf_counter() - t)';

async function writeCsv(path: string, rows: number, features: number): Promise<void> {
  const rng = new Rng(12);
  const out = createWriteStream(path);
  const write = (s: string): Promise<void> => new Promise((resolve) => (out.write(s) ? resolve() : out.once('drain', resolve)));
  await write(Array.from({ length: features }, (_, d) => `f${d}`).join(',') + ',label\n');
  for (let r = 0; r < rows; r += 1000) {
    const lines: string[] = [];
    for (let i = r; i < Math.min(rows, r + 1000); i++) {
      const cells = Array.from({ length: features }, () => (4 * rng.nextFloat() - 2).toFixed(5));
      lines.push(`${cells.join(',')},${rng.nextInt(10)}`);
    }
    await write(lines.join('\n') + '\n');
  }
  await new Promise<void>((resolve) => out.end(resolve));
}

function writeIdx(images: string, labels: string, n: number): void {
  const rng = new Rng(13);
  const img = Buffer.alloc(16 + n * 784);
  img.writeUInt32BE(0x00000803, 0);
  [n, 28, 28].forEach((d, i) => img.writeUInt32BE(d, 4 + 4 * i));
  for (let i = 16; i < img.length; i++) img[i] = rng.nextInt(256);
  const lab = Buffer.alloc(8 + n);
  lab.writeUInt32BE(0x00000801, 0);
  lab.writeUInt32BE(n, 4);
  for (let i = 8; i < lab.length; i++) lab[i] = rng.nextInt(10);
  writeFileSync(images, img);
  writeFileSync(labels, lab);
}

/** numpy.loadtxt's seconds on `path`, or null when /usr/bin/python3 has no numpy. */
function numpySeconds(path: string): number | null {
  const r = spawnSync(PYTHON, ['-c', NUMPY, path], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.trim()) : null;
}

async function seconds(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return (performance.now() - start) / 1000;
}

export async function benchLoading(repetitions = 3): Promise<LoadingResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'gradpool-bench-loading-'));
  try {
    const csv = join(dir, 'numeric.csv');
    const images = join(dir, 'images-idx3-ubyte');
    const labels = join(dir, 'labels-idx1-ubyte');
    await writeCsv(csv, 200_000, 50);
    writeIdx(images, labels, 60_000);
    const ours: number[] = [];
    const numpy: number[] = [];
    for (let i = 0; i < repetitions; i++) {
      const n = numpySeconds(csv);
      if (n !== null) numpy.push(n);
      ours.push(await seconds(() => loadCsv(csv, { labelColumns: ['label'] })));
    }
    const idx: number[] = [];
    for (let i = 0; i < repetitions; i++) idx.push(await seconds(() => loadIdx(images, labels)));
    const mb = (p: string): number => statSync(p).size / 1e6;
    const result = (workload: string, describe: string, megabytes: number, times: number[], np: number[]): LoadingResult => ({
      workload, describe, megabytes, seconds: median(times), mbPerSec: megabytes / median(times),
      numpySeconds: np.length === 0 ? null : median(np), numpyMbPerSec: np.length === 0 ? null : megabytes / median(np),
      repetitions, node: process.version,
    });
    return [
      result('loading-csv', 'loadCsv: 200,000 rows x 50 features + label, %.5f cells', mb(csv), ours, numpy),
      result('loading-idx', 'loadIdx: 60,000 x 28 x 28 u8 images + labels', mb(images) + mb(labels), idx, []),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function loadingTable(rs: LoadingResult[]): string {
  const head = 'loading        MB     seconds    MB/s  numpy.loadtxt s  numpy MB/s  vs numpy';
  const rows = rs.map((r) => [
    r.workload.padEnd(12), r.megabytes.toFixed(1).padStart(6), r.seconds.toFixed(3).padStart(11), r.mbPerSec.toFixed(1).padStart(7),
    (r.numpySeconds === null ? '' : r.numpySeconds.toFixed(3)).padStart(16), (r.numpyMbPerSec === null ? '' : r.numpyMbPerSec.toFixed(1)).padStart(11),
    (r.numpyMbPerSec === null ? '' : `${(r.mbPerSec / r.numpyMbPerSec).toFixed(2)}x`).padStart(9),
  ].join(' '));
  const numpy = rs.some((r) => r.numpySeconds !== null) ? 'numpy.loadtxt(dtype=float32) in /usr/bin/python3, timed inside Python' :
    `numpy.loadtxt: not run (${PYTHON} has no numpy: install Debian's python3-numpy)`;
  return [head, ...rows].join('\n') + `\n${rs.map((r) => `  ${r.workload}: ${r.describe}`).join('\n')}\n  ${numpy}; medians of ${rs[0].repetitions}, alternating\n`;
}
