// `npm run bench:predict`: `gradpool predict` on 10,000 rows of 20 features, for a model of 10 classes
// and one of 5,000 (an MLP 20-64-K with its initial weights: the time is in the forward pass and the
// text, not in what the weights are). Each case runs in a fresh process, which reports rows/s (the
// predict command from loading the model to the file in place) and its peak resident memory (main
// thread and workers). `-- --rows n` for another row count, `-- --classes 10,100` for other models.

import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { predictMain } from '../src/cli/predict.js';
import { Trainer } from '../src/main/index.js';
import { Rng } from '../src/shared/rng.js';
import { ignoreClosedOutput } from '../src/cli/closed-output.js';

const FEATURES = 20;
const HIDDEN = 64;

interface Result {
  seconds: number;
  peakMb: number;
}

/** In the child: one predict command, timed, and the process's peak resident memory. */
async function child(args: string[]): Promise<void> {
  const start = performance.now();
  const code = await predictMain(args, process.stderr);
  const seconds = (performance.now() - start) / 1000;
  if (code !== 0) process.exit(code);
  const result: Result = { seconds, peakMb: process.resourceUsage().maxRSS / 1024 };
  process.stdout.write(JSON.stringify(result));
}

async function writeInput(path: string, rows: number): Promise<void> {
  const rng = new Rng(7);
  const out = createWriteStream(path);
  const write = (s: string): Promise<void> => new Promise((resolve) => (out.write(s) ? resolve() : out.once('drain', resolve)));
  await write(Array.from({ length: FEATURES }, (_, d) => `f${d}`).join(',') + '\n');
  for (let r = 0; r < rows; r++) await write(Array.from({ length: FEATURES }, () => (4 * rng.nextFloat() - 2).toFixed(4)).join(',') + '\n');
  await new Promise((resolve) => out.end(resolve));
}

async function bench(): Promise<void> {
  const flag = (name: string, fallback: string): string => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : fallback;
  };
  const rows = Number(flag('--rows', '10000'));
  const classes = flag('--classes', '10,5000').split(',').map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'gradpool-bench-predict-'));
  try {
    const input = join(dir, 'input.csv');
    await writeInput(input, rows);
    console.log(`gradpool predict: ${rows.toLocaleString('en-US')} rows x ${FEATURES} features, MLP ${FEATURES}-${HIDDEN}-K, Node ${process.versions.node}`);
    console.log('classes     rows/s   seconds   peak MB   output MB');
    for (const K of classes) {
      const model = join(dir, `k${K}.safetensors`);
      const trainer = await Trainer.create({ layers: [FEATURES, HIDDEN, K], workers: 1 });
      await trainer.save(model);
      await trainer.close();
      const out = join(dir, `k${K}.csv`);
      const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/bench-predict.ts', '--child', model, '--input', input, '--out', out],
        { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (r.status !== 0) throw new Error(`predict with ${K} classes failed (exit ${r.status}): ${r.stderr}`);
      const result = JSON.parse(r.stdout) as Result;
      console.log([
        String(K).padStart(7),
        Math.round(rows / result.seconds).toLocaleString('en-US').padStart(10),
        result.seconds.toFixed(2).padStart(9),
        result.peakMb.toFixed(0).padStart(9),
        (statSync(out).size / 1e6).toFixed(1).padStart(11),
      ].join(' '));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

ignoreClosedOutput(); // `npm run ... | head`: a closed stdout ends nothing
if (process.argv[2] === '--child') await child(process.argv.slice(3));
else await bench();
