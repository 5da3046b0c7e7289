// The training script with a user's own data and runs that stop: CSV and IDX files through the flags,
// --init, --metrics, and --resume after the process is killed mid-run, which must end bit-identical to
// the run that was never interrupted.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, signalAfterSteps } from './helpers.js';
import { balancedClassWeights } from '../src/main/reporting/report.js';
import { loadCheckpoint, loadMnist, saveCheckpoint } from '../src/main/index.js';
import { Rng } from '../src/shared/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-cli-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Three classes separated by two linear rules over four features of different scales. */
function writeCsv(path: string, n: number, seed: number): void {
  const rng = new Rng(seed);
  const lines = ['height,weight,age,noise,species'];
  for (let i = 0; i < n; i++) {
    const h = rng.uniform(1);
    const w = rng.uniform(1);
    const species = h + w > 0.5 ? 2 : h - w > 0 ? 1 : 0;
    lines.push(`${(170 + 20 * h).toFixed(3)},${(70 + 15 * w).toFixed(3)},${(40 + 30 * rng.uniform(1)).toFixed(2)},${rng.uniform(1).toFixed(4)},${species}`);
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

function writeIdx(path: string, dims: number[], bytes: Uint8Array, gzip: boolean): void {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt8(0x08, 2);
  header.writeUInt8(dims.length, 3);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const file = Buffer.concat([header, bytes]);
  writeFileSync(path, gzip ? gzipSync(file) : file);
}

describe('own data', () => {
  it('trains on CSV files with a named label column, standardised with training statistics', async () => {
    writeCsv(join(dir, 'train.csv'), 600, 1);
    writeCsv(join(dir, 'test.csv'), 200, 2);
    const r = await runCli(['--data', 'csv', '--train', join(dir, 'train.csv'), '--test', join(dir, 'test.csv'), '--label-column', 'species',
      '--layers', '4,16,3', '--epochs', '15', '--lr', '0.1', '--batch-size', '32', '--out', join(dir, 'csv.safetensors')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/data: CSV .*train\.csv, 600 train \/ 200 test; 60 of the training rows held out for validation \(--validation-split 0\.1, seed 0\); the test data is evaluated at the end only; features normalised \(standardize, training statistics\)/);
    expect(r.out).toMatch(/per-class report on the test data:\n +precision +recall +f1 +support\n/);
    const accuracy = Number(/test accuracy (\d+\.\d\d)%\)\n$/.exec(r.out)?.[1]);
    expect(accuracy).toBeGreaterThan(90);
  });

  it('trains on gzipped MNIST-format IDX files, pixels scaled to [0, 1]', async () => {
    const { train, test } = loadMnist();
    const pick = (d: { x: Float32Array; y: Int32Array }, n: number, prefix: string): void => {
      const stride = Math.floor(d.y.length / n);
      const images = new Uint8Array(n * 784);
      const labels = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < 784; c++) images[i * 784 + c] = Math.round(255 * d.x[i * stride * 784 + c]);
        labels[i] = d.y[i * stride];
      }
      writeIdx(join(dir, `${prefix}-images-idx3-ubyte.gz`), [n, 28, 28], images, true);
      writeIdx(join(dir, `${prefix}-labels-idx1-ubyte`), [n], labels, false);
    };
    pick(train, 2000, 'train');
    pick(test, 500, 't10k');
    const r = await runCli(['--data', 'idx', '--train-images', join(dir, 'train-images-idx3-ubyte.gz'), '--train-labels', join(dir, 'train-labels-idx1-ubyte'),
      '--test-images', join(dir, 't10k-images-idx3-ubyte.gz'), '--test-labels', join(dir, 't10k-labels-idx1-ubyte'),
      '--layers', '784,32,10', '--epochs', '3', '--out', join(dir, 'idx.safetensors')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/data: IDX .*, 2000 train \/ 500 test; 200 of the training rows .*; features normalised \(scale, training statistics\)/);
    expect(Number(/test accuracy (\d+\.\d\d)%\)\n$/.exec(r.out)?.[1])).toBeGreaterThan(80);
  });

  it('names the file and line of a bad CSV cell, exit code 2, before training', async () => {
    writeFileSync(join(dir, 'bad.csv'), 'a,b,label\n1,2,0\n3,x,1\n');
    const r = await runCli(['--data', 'csv', '--train', join(dir, 'bad.csv'), '--label-column', 'label', '--layers', '2,2']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.csv line 3, column 'b': 'x' is not a number/);
    expect(r.out).not.toMatch(/^epoch/m);
  });

  it("trains on semicolon files of class names, the test file's classes in another order, an id column ignored", async () => {
    // Classes by the rule of writeCsv, named; the test file has only the last two, so alone it would
    // number them 0 and 1.
    const write = (path: string, n: number, seed: number, keep: (k: number) => boolean): void => {
      const rng = new Rng(seed);
      const names = ['cat', 'dog', 'emu'];
      const lines = ['id;height;weight;species'];
      for (let i = 0; lines.length <= n; i++) {
        const h = rng.uniform(1);
        const w = rng.uniform(1);
        const k = h + w > 0.5 ? 2 : h - w > 0 ? 1 : 0;
        if (keep(k)) lines.push(`row${i};${(170 + 20 * h).toFixed(3)};${(70 + 15 * w).toFixed(3)};${names[k]}`);
      }
      writeFileSync(path, lines.join('\n') + '\n');
    };
    write(join(dir, 'named-train.csv'), 600, 3, () => true);
    write(join(dir, 'named-test.csv'), 150, 4, (k) => k > 0);
    const r = await runCli(['--data', 'csv', '--train', join(dir, 'named-train.csv'), '--test', join(dir, 'named-test.csv'),
      '--label-column', 'species', '--delimiter', ';', '--ignore-columns', 'id', '--layers', '2,16,3', '--epochs', '15', '--lr', '0.1',
      '--batch-size', '32', '--out', join(dir, 'named.safetensors')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/data: CSV .*named-train\.csv, 600 train \/ 150 test; 3 classes by name \("cat", "dog", "emu"\) as 0\.\.2;/);
    expect(r.out).toMatch(/^data loaded in \d+\.\d\d s \(\d+\.\d kB, \d+\.\d MB\/s\)$/m);
    expect(Number(/test accuracy (\d+\.\d\d)%\)\n$/.exec(r.out)?.[1])).toBeGreaterThan(90);
  });

  it('refuses an unknown --delimiter and the CSV flags with another source', async () => {
    const r = await runCli(['--data', 'csv', '--train', join(dir, 'train.csv'), '--label-column', 'species', '--delimiter', ':']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--delimiter.*expected ',', ';', 'tab' or '\|'/);
    const s = await runCli(['--ignore-columns', 'id']);
    expect(s.err).toBe('gradpool: --ignore-columns applies to another --data than mnist\n');
  });

  it('says which flags a data source needs', async () => {
    const r = await runCli(['--data', 'csv', '--train', join(dir, 'train.csv')]);
    expect(r.code).toBe(2);
    expect(r.err).toBe('gradpool: --data csv needs --label-column (the training file and its label column)\n');
    const s = await runCli(['--train-images', 'x']);
    expect(s.err).toBe('gradpool: --train-images applies to another --data than mnist\n');
  });

  it("derives --class-weight balanced from the training labels, as scikit-learn's n / (K * count)", async () => {
    const out = join(dir, 'balanced.safetensors');
    const r = await runCli(['--layers', '784,8,10', '--epochs', '1', '--class-weight', 'balanced', '--validation-split', '0', '--out', out]);
    expect(r.code).toBe(0);
    const saved = JSON.parse((await loadCheckpoint(out)).metadata['gradpool.options']);
    expect(saved.weight).toEqual(balancedClassWeights(loadMnist().train.y, 10));
  });

  it('starts from --init weights: with lr 0 the saved model is the initial one', async () => {
    const init = join(dir, 'balanced.safetensors');
    const out = join(dir, 'init.safetensors');
    const r = await runCli(['--layers', '784,8,10', '--epochs', '1', '--lr', '0', '--init', init, '--out', out]);
    expect(r.code).toBe(0);
    expect(Buffer.from((await loadCheckpoint(out)).params.buffer).equals(Buffer.from((await loadCheckpoint(init)).params.buffer))).toBe(true);
    const bad = await runCli(['--layers', '784,9,10', '--init', init, '--out', out]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/tensor 'layers\.0\.weight' has shape \(8, 784\) but this model needs \(9, 784\)/);
  });
});

describe('the preprocessing in the checkpoint', () => {
  /** Mean and population std of each feature column of a CSV file written by writeCsv, in doubles. */
  function columnStats(path: string): { mean: number[]; std: number[] } {
    const rows = readFileSync(path, 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').slice(0, 4).map(Number));
    const mean = [0, 1, 2, 3].map((c) => rows.reduce((a, r) => a + Math.fround(r[c]), 0) / rows.length);
    const std = [0, 1, 2, 3].map((c) => Math.sqrt(rows.reduce((a, r) => a + (Math.fround(r[c]) - mean[c]) ** 2, 0) / rows.length));
    return { mean, std };
  }
  const csvFlags = (train: string, out: string, epochs: number): string[] => ['--data', 'csv', '--train', train, '--label-column', 'species',
    '--layers', '4,8,3', '--epochs', String(epochs), '--lr', '0.1', '--validation-split', '0', '--no-progress', '--out', out];

  it('records the training statistics and column names, and --resume uses them rather than fitting them again', async () => {
    const train = join(dir, 'pp-train.csv');
    const out = join(dir, 'pp.safetensors');
    writeCsv(train, 300, 7);
    expect((await runCli(csvFlags(train, out, 1))).code).toBe(0);
    const first = JSON.parse((await loadCheckpoint(out)).metadata['gradpool.preprocessing']);
    const { mean, std } = columnStats(train);
    expect(first.normalize.mode).toBe('standardize');
    expect(first.normalize.offset).toEqual(mean.map(Math.fround));
    expect(first.normalize.scale).toEqual(std.map((v) => Math.fround(1 / v)));
    expect(first.featureNames).toEqual(['height', 'weight', 'age', 'noise']);
    expect(first.labelNames).toEqual(['species']);
    // The training file changes (other rows, other statistics); the resumed model keeps its own. Other
    // data is refused on resume unless accepted knowingly (issue 22): accepted here.
    writeCsv(train, 300, 8);
    const r = await runCli(['--resume', out, '--epochs', '1', '--allow-data-change']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`features normalised (standardize, statistics recorded in ${out})`);
    expect(JSON.parse((await loadCheckpoint(out)).metadata['gradpool.preprocessing'])).toEqual(first);
  });

  it('fits the statistics again on --resume of a checkpoint that records none, as earlier versions did, and says so', async () => {
    const train = join(dir, 'legacy-train.csv');
    const out = join(dir, 'legacy.safetensors');
    writeCsv(train, 300, 9);
    expect((await runCli(csvFlags(train, out, 1))).code).toBe(0);
    const ckpt = await loadCheckpoint(out);
    const { 'gradpool.preprocessing': _p, 'gradpool.sha256': _s, 'gradpool.header-sha256': _h, format: _f, 'gradpool.version': _v, config: _c, ...rest } = ckpt.metadata;
    await saveCheckpoint(out, ckpt.config, ckpt.params, rest, ckpt.tensors);
    const r = await runCli(['--resume', out, '--epochs', '1']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`features normalised (standardize, training statistics), fitted again: ${out} records no preprocessing`);
    expect((await loadCheckpoint(out)).metadata['gradpool.preprocessing']).toBeUndefined();
    // The same two epochs uninterrupted: the data normalised by the Trainer gives the same bits.
    const whole = join(dir, 'legacy-whole.safetensors');
    expect((await runCli(csvFlags(train, whole, 2))).code).toBe(0);
    expect(Buffer.from((await loadCheckpoint(out)).params.buffer).equals(Buffer.from((await loadCheckpoint(whole)).params.buffer))).toBe(true);
  });

  it('takes the statistics of an --init checkpoint that records them', async () => {
    const a = join(dir, 'pp-a.csv');
    const b = join(dir, 'pp-b.csv');
    writeCsv(a, 300, 10);
    writeCsv(b, 300, 11);
    const initPath = join(dir, 'pp-init.safetensors');
    expect((await runCli(csvFlags(a, initPath, 1))).code).toBe(0);
    const out = join(dir, 'pp-from-init.safetensors');
    const r = await runCli([...csvFlags(b, out, 1), '--init', initPath]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`statistics recorded in ${initPath}`);
    expect((await loadCheckpoint(out)).metadata['gradpool.preprocessing']).toBe((await loadCheckpoint(initPath)).metadata['gradpool.preprocessing']);
  });
});

describe('resume', () => {
  const flags = ['--layers', '784,24,10', '--epochs', '3', '--schedule', 'cosine', '--warmup', '20', '--clip-grad-norm', '2',
    '--label-smoothing', '0.1', '--weight-decay', '1e-4', '--no-progress'];

  it('ends bit-identical to the uninterrupted run after the process is killed mid-run and resumed', async () => {
    const whole = join(dir, 'whole.safetensors');
    expect((await runCli([...flags, '--out', whole])).code).toBe(0);

    // The same run in a child process, killed (SIGKILL) as soon as its first checkpoint exists.
    const out = join(dir, 'crashed.safetensors');
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/train.ts', ...flags, '--out', out], { stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (existsSync(out)) {
          clearInterval(poll);
          child.kill('SIGKILL');
        }
      }, 5);
      child.on('exit', () => {
        clearInterval(poll);
        resolve();
      });
      child.on('error', reject);
    });
    const crashed = await loadCheckpoint(out);
    const stoppedAt = JSON.parse(crashed.metadata['gradpool.state']).epoch as number;
    expect(stoppedAt).toBeLessThan(3);

    const metrics = join(dir, 'resumed.jsonl');
    const r = await runCli(['--resume', out, '--metrics', metrics]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`resuming after epoch ${stoppedAt}`);
    const a = await loadCheckpoint(whole);
    const b = await loadCheckpoint(out);
    expect(Buffer.from(b.params.buffer).equals(Buffer.from(a.params.buffer))).toBe(true);
    const momentum = 'optimizer.momentum_buffer';
    expect(Buffer.from(b.tensors[momentum].buffer).equals(Buffer.from(a.tensors[momentum].buffer))).toBe(true);
    expect(b.metadata['gradpool.state']).toBe(a.metadata['gradpool.state']);

    // the metrics file goes on from the saved step: one line per step, then the epoch's line
    const lines = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const steps = lines.filter((l) => l.type === 'step');
    const stepsPerEpoch = Math.ceil((8004 - Math.round(0.1 * 8004)) / 64); // the default validation split held out
    expect(steps[0].step).toBe(stoppedAt * stepsPerEpoch + 1);
    expect(steps.at(-1).step).toBe(3 * stepsPerEpoch);
    expect(lines.filter((l) => l.type === 'epoch').map((l) => l.epoch)).toEqual([3, 2, 1].filter((e) => e > stoppedAt).reverse());
    expect(steps.every((l) => typeof l.loss === 'number' && typeof l.lr === 'number' && typeof l.gradNorm === 'number')).toBe(true);
  }, 120_000);

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`on ${signal} mid-epoch saves, says how to resume, exits ${signal === 'SIGINT' ? 130 : 143}, and resumes bit-identically`, async () => {
      // Small batches, so that the first epoch is long enough to be interrupted in; two epochs, so that the
      // resumed run crosses an epoch boundary.
      const slow = [...flags, '--batch-size', '8', '--epochs', '2'];
      const whole = join(dir, 'whole-b8.safetensors');
      if (!existsSync(whole)) expect((await runCli([...slow, '--out', whole])).code).toBe(0);
      const out = join(dir, `${signal}.safetensors`);
      const metrics = join(dir, `${signal}.jsonl`);
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/train.ts', ...slow, '--out', out, '--metrics', metrics], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      // Signalled once it has taken some steps of its first epoch.
      const code = await signalAfterSteps(child, metrics, signal);
      expect(code).toBe(signal === 'SIGINT' ? 130 : 143);
      expect(err).toMatch(new RegExp(`^gradpool: interrupted by ${signal} after step (\\d+) \\(epoch 1, batch \\1\\); saved .*${signal}\\.safetensors\\n`));
      expect(err).toContain(`to go on from there: npm run train -- --resume ${out}`);
      const state = JSON.parse((await loadCheckpoint(out)).metadata['gradpool.state']);
      expect(state.epoch).toBe(0);
      expect(state.batch).toBeGreaterThan(0);

      const r = await runCli(['--resume', out]);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toContain(`resuming after epoch 0 and ${state.batch} batches of epoch 1 (step ${state.step})`);
      const a = await loadCheckpoint(whole);
      const b = await loadCheckpoint(out);
      expect(Buffer.from(b.params.buffer).equals(Buffer.from(a.params.buffer))).toBe(true);
      expect(b.metadata['gradpool.state']).toBe(a.metadata['gradpool.state']);
    }, 120_000);
  }

  it('refuses flags that would change the resumed run', async () => {
    const r = await runCli(['--resume', join(dir, 'whole.safetensors'), '--lr', '0.1', '--batch-size', '32']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool: --resume continues the saved run with its own options; --lr, --batch-size cannot be given with it/);
  });

  it('says when a resumed run has nothing left to do', async () => {
    const r = await runCli(['--resume', join(dir, 'whole.safetensors')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/has trained all 3 epochs of its run; give --epochs n to train n more\n$/);
  });

  it('runs the script from the command line with a schedule, as a user types it', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/train.ts', '--layers', '784,8,10', '--epochs', '1',
      '--schedule', 'onecycle', '--max-lr', '0.2', '--out', join(dir, 'onecycle.safetensors')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/schedule: \{"name":"onecycle","maxLr":0\.2,"totalSteps":113,"pctStart":0\.3\} per step/);
  });
});

describe('multi-label data', () => {
  it('trains a sigmoid loss on several CSV label columns, with --pos-weight and a validation split', async () => {
    const rng = new Rng(9);
    const lines = ['x0,x1,x2,hot,cold,wet'];
    for (let i = 0; i < 400; i++) {
      const v = [rng.uniform(1), rng.uniform(1), rng.uniform(1)];
      lines.push(`${v.map((a) => a.toFixed(4)).join(',')},${v[0] > 0.3 ? 1 : 0},${v[0] < -0.3 ? 1 : 0},${v[1] + v[2] > 0 ? 1 : 0}`);
    }
    writeFileSync(join(dir, 'tags.csv'), lines.join('\n'));
    const r = await runCli(['--data', 'csv', '--train', join(dir, 'tags.csv'), '--label-column', 'hot,cold,wet', '--loss', 'bce-with-logits',
      '--pos-weight', '2,2,1', '--layers', '3,16,3', '--epochs', '20', '--lr', '0.1', '--validation-split', '0.25', '--out', join(dir, 'tags.safetensors')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/100 of the training rows held out for validation \(--validation-split 0\.25, seed 0\)/);
    const last = r.out.split('\n').filter((l) => l.startsWith('epoch 20/20'))[0];
    const accuracy = Number(/validation accuracy (\d+\.\d\d)%/.exec(last)?.[1]);
    expect(accuracy).toBeGreaterThan(90);
  });

  it('refuses --class-weight balanced for a sigmoid loss, pointing at --pos-weight', async () => {
    const r = await runCli(['--data', 'csv', '--train', join(dir, 'tags.csv'), '--label-column', 'hot,cold,wet', '--loss', 'bce-with-logits',
      '--layers', '3,3', '--class-weight', 'balanced']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--class-weight balanced needs class-index targets; for a sigmoid loss, weigh positives with --pos-weight/);
  });
});
