// The training script as Keras and Lightning users expect it: early stopping where the rule (worked out
// here from the printed validation losses) says, the best epoch kept by --save-best, learning curves as
// an SVG that another tool (Python's XML parser) reads, ETAs, --version, flag names from other tools
// pointed at ours, and a warning for more workers than CPUs.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, runCommand } from './helpers.js';
import { cpuLimit, loadCheckpoint } from '../src/main/index.js';
import { plotMain } from '../src/cli/plot.js';
import { Rng } from '../src/shared/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-cli-fit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Two noisy classes over 6 features, few rows: a model of this size overfits them within epochs. */
function writeNoisy(path: string, n: number, seed: number): void {
  const rng = new Rng(seed);
  const lines = ['a,b,c,d,e,f,label'];
  for (let i = 0; i < n; i++) {
    const v = Array.from({ length: 6 }, () => rng.uniform(2) - 1);
    const y = (v.reduce((s, x) => s + x, 0) > 0) !== (rng.uniform(1) < 0.3) ? 1 : 0;
    lines.push(`${v.map((x) => x.toFixed(4)).join(',')},${y}`);
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

/** The polylines of an SVG file by class, as Python's xml.etree reads them: (x, y) points. */
function polylines(svg: string): Record<string, [number, number][]> {
  const script = `
import json, sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
out = {}
for p in root.iter('{http://www.w3.org/2000/svg}polyline'):
    out[p.get('class')] = [[float(v) for v in pt.split(',')] for pt in p.get('points').split()]
print(json.dumps(out))`;
  const r = spawnSync('/usr/bin/python3', ['-c', script, svg], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python could not parse ${svg}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, [number, number][]>;
}

describe('early stopping, the best model, learning curves', () => {
  const train = join(dir, 'noisy.csv');
  writeNoisy(train, 200, 1);
  const out = join(dir, 'last.safetensors');
  const best = join(dir, 'best.safetensors');
  const plot = join(dir, 'curves.svg');
  const metrics = join(dir, 'metrics.jsonl');
  let run: { code: number; out: string; err: string };
  const epochLines = (): string[] => run.out.split('\n').filter((l) => l.startsWith('epoch '));
  const valLosses = (): number[] => epochLines().map((l) => Number(/validation loss (\d+\.\d+)/.exec(l)?.[1]));

  it('stops where early stopping\'s rule says, saying why, with the elapsed time and ETA on each line', async () => {
    run = await runCli(['--data', 'csv', '--train', train, '--label-column', 'label', '--layers', '6,48,2', '--lr', '0.3',
      '--batch-size', '8', '--validation-split', '0.4', '--epochs', '40', '--early-stopping-patience', '3',
      '--save-best', best, '--plot', plot, '--metrics', metrics, '--out', out]);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    // The rule, over the printed losses (4 decimals, so ties of the unrounded values cannot mislead it
    // unless two print the same: then the earlier is the best, as the rule keeps the first).
    const v = valLosses();
    let bestAt = 0;
    let wait = 0;
    let stop = 0;
    for (let i = 0; i < v.length && stop === 0; i++) {
      if (i === 0 || v[i] < v[bestAt]) {
        bestAt = i;
        wait = 0;
      } else if (++wait >= 3) {
        stop = i + 1;
      }
    }
    expect(stop).toBe(v.length);
    expect(stop).toBeLessThan(40);
    expect(run.out).toContain(`early stopping: valLoss did not improve for 3 epochs (best ${v[bestAt]}`);
    const lines = epochLines();
    for (const l of lines.slice(0, -1)) expect(l).toMatch(/, train accuracy \d+\.\d\d%, .*; elapsed \d+\.\d s, ETA \d+(\.\d s| min \d\d s)$/);
    expect(lines.at(-1)).toMatch(/; elapsed \d+\.\d s$/);
    // The checkpoint of the last epoch trained, the best one beside it
    expect(JSON.parse((await loadCheckpoint(out)).metadata['gradpool.state']).epoch).toBe(stop);
    expect(JSON.parse((await loadCheckpoint(best)).metadata['gradpool.state']).epoch).toBe(bestAt + 1);
  });

  it('keeps the best epoch by --monitor in --save-best, resumable', async () => {
    const saves = run.out.split('\n').filter((l) => l.startsWith('saved the best epoch so far'));
    // one save per new best: each printed valLoss below every one before it
    const v = valLosses();
    const records = v.filter((x, i) => v.slice(0, i).every((y) => x < y));
    expect(saves.length).toBe(records.length);
    const bestEpoch = JSON.parse((await loadCheckpoint(best)).metadata['gradpool.state']).epoch as number;
    const r = await runCli(['--resume', best, '--epochs', '1', '--out', join(dir, 'from-best.safetensors')]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`resuming after epoch ${bestEpoch}`);
    // The resumed run (its --save-best is the same file) compares with the best it recorded: the file
    // is replaced only by an epoch better than that one.
    const next = Number(/validation loss (\d+\.\d+)/.exec(r.out)?.[1]);
    const recorded = Math.min(...v);
    const now = JSON.parse((await loadCheckpoint(best)).metadata['gradpool.state']).epoch;
    expect(now).toBe(next < recorded ? bestEpoch + 1 : bestEpoch);
    expect(r.out.includes('saved the best epoch so far')).toBe(next < recorded);
  });

  it('draws both loss curves, both accuracy curves and the lr, one point per epoch, higher values higher up', () => {
    const p = polylines(plot);
    const v = valLosses();
    for (const name of ['train-loss', 'val-loss', 'train-accuracy', 'val-accuracy', 'lr']) expect(p[name]).toHaveLength(v.length);
    // y grows downwards in SVG: a larger loss is a smaller y, epoch by epoch
    const y = p['val-loss'].map(([, yy]) => yy);
    for (let i = 1; i < v.length; i++) {
      if (v[i] > v[i - 1]) expect(y[i]).toBeLessThan(y[i - 1]);
      if (v[i] < v[i - 1]) expect(y[i]).toBeGreaterThan(y[i - 1]);
    }
    const x = p['train-loss'].map(([xx]) => xx);
    expect(x.every((xx, i) => i === 0 || xx > x[i - 1])).toBe(true);
  });

  it('draws the same curves from the --metrics file afterwards (gradpool plot)', async () => {
    const again = join(dir, 'from-metrics.svg');
    const r = await runCommand(plotMain, [metrics, '--out', again]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`wrote ${again}: ${valLosses().length} epochs\n`);
    const a = polylines(plot);
    const b = polylines(again);
    expect(b).toEqual(a);
    // A file appended to by a second run (epochs from 1 again): only the last run is drawn.
    const two = join(dir, 'two-runs.jsonl');
    const second = [1, 2].map((e) => JSON.stringify({ type: 'epoch', epoch: e, trainLoss: 1 / e, trainAccuracy: 0.5, lr: 0.1 })).join('\n');
    writeFileSync(two, `${readFileSync(metrics, 'utf8')}${second}\n`);
    expect((await runCommand(plotMain, [two, '--out', join(dir, 'two.svg')])).out).toBe(`wrote ${join(dir, 'two.svg')}: 2 epochs\n`);
    expect(polylines(join(dir, 'two.svg'))['train-loss']).toHaveLength(2);
    writeFileSync(join(dir, 'bad.jsonl'), '{"type":"epoch","epoch":1,"trainLoss":0.5,"lr":0.1}\nnot json\n');
    const bad = await runCommand(plotMain, [join(dir, 'bad.jsonl')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/bad\.jsonl line 2 is not a JSON line/);
  });

  it('refuses a validation metric without a validation split, before training', async () => {
    const r = await runCli(['--data', 'csv', '--train', train, '--label-column', 'label', '--layers', '6,2', '--validation-split', '0',
      '--save-best', best, '--out', join(dir, 'never.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.err).toBe('gradpool: --monitor valLoss needs validation data, and --validation-split is 0; give a split (e.g. 0.1) or --monitor trainLoss\n');
  });
});

describe('the command line', () => {
  it('prints the version of package.json', async () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gradpool.ts', '--version'], { encoding: 'utf8' });
    expect(r.stdout).toBe(`${JSON.parse(readFileSync('package.json', 'utf8')).version}\n`);
  });

  it.each([['--learning-rate', '--lr'], ['--batch_size', '--batch-size'], ['--num-epochs', '--epochs'], ['--patience', '--early-stopping-patience'], ['--learning_rate', '--lr'], ['--numEpochs', '--epochs']])(
    'points %s at %s', async (given, ours) => {
      const r = await runCli([given, '1']);
      expect(r.code).toBe(2);
      expect(r.err).toBe(`gradpool: unknown option '${given}'\n(Did you mean ${ours}?)\n`);
    });

  it('warns when --workers is more than the CPUs', async () => {
    const n = cpuLimit().cpus + 1;
    const r = await runCli(['--layers', '784,4,10', '--epochs', '1', '--workers', String(n), '--validation-split', '0', '--out', join(dir, 'w.safetensors')]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`gradpool: warning: --workers ${n} is more than the ${cpuLimit().cpus} CPUs this process may use`);
  });
});
