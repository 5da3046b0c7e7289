// A trained model used from the command line as a new user would: trained on the real-format iris CSV
// (a header, class names, standardised), then in fresh processes `gradpool evaluate` gives the accuracy
// training printed at its end, and so do Trainer.load + evaluate on the raw test file; `gradpool
// predict` writes one row per input row whose classes and probabilities are trainer.predict's.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, runCommand } from './helpers.js';
import { loadCheckpoint, loadCsv, loadMnist, saveCheckpoint, Trainer } from '../src/main/index.js';
import { evaluateMain } from '../src/cli/evaluate.js';
import { predictMain } from '../src/cli/predict.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-model-commands-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const trainCsv = 'examples/iris/iris-train.csv';
const testCsv = 'examples/iris/iris-test.csv';
const model = join(dir, 'iris.safetensors');

/** `gradpool <args>` in a child process, from source, as `npm run` runs it. */
function gradpool(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gradpool.ts', ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** The CSV's rows as cells (no quotes in these files). */
function cells(path: string): string[][] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => l.split(','));
}

describe('a model trained on a CSV of class names, used from the command line', () => {
  let printed = '';

  it('trains on the iris files as the README shows', async () => {
    const r = await runCli(['--data', 'csv', '--train', trainCsv, '--test', testCsv, '--label-column', 'species',
      '--normalize', 'standardize', '--layers', '4,16,3', '--epochs', '40', '--lr', '0.05', '--batch-size', '16', '--out', model]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    printed = /test accuracy (\d+\.\d\d)%\)\n$/.exec(r.out)?.[1] ?? '';
    expect(Number(printed)).toBeGreaterThan(85);
    expect(r.out).toContain('setosa');
  });

  it('gives the printed accuracy again with `gradpool evaluate` in a fresh process', () => {
    const r = gradpool(['evaluate', model, '--test', testCsv]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`accuracy ${printed.replace('.', '\\.')}%\\n$`));
    expect(r.stdout).toContain('; 3 classes "setosa", "versicolor", "virginica"\n');
  });

  it('gives it again with Trainer.load and evaluate on the raw test file, in another order of rows and columns', async () => {
    const t = await Trainer.load(model, { workers: 1 });
    try {
      const p = t.preprocessing;
      expect(p?.classNames).toEqual(['setosa', 'versicolor', 'virginica']);
      // The same rows, columns reversed and rows sorted so that the classes come in another order.
      const [head, ...rows] = cells(testCsv);
      rows.sort((a, b) => (a[4] < b[4] ? 1 : a[4] > b[4] ? -1 : 0));
      const other = join(dir, 'other-order.csv');
      writeFileSync(other, [head, ...rows].map((r) => [...r].reverse().join(',')).join('\n') + '\n');
      const data = await loadCsv(other, {
        labelColumns: p?.labelNames ?? [], featureColumns: p?.featureNames ?? undefined, classNames: p?.classNames ?? undefined,
      });
      const e = await t.evaluate(data);
      expect((100 * e.accuracy).toFixed(2)).toBe(printed);
    } finally {
      await t.close();
    }
  });

  it('predicts one row per input row: the class name and each class\'s probability, as trainer.predict gives them', async () => {
    const out = join(dir, 'preds.csv');
    const r = gradpool(['predict', model, '--input', testCsv, '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [head, ...rows] = cells(out);
    expect(head).toEqual(['predicted', 'p_setosa', 'p_versicolor', 'p_virginica']);
    const input = cells(testCsv).slice(1);
    expect(rows).toHaveLength(input.length);
    const t = await Trainer.load(model, { workers: 1 });
    try {
      const x = Float32Array.from(input.flatMap((c) => c.slice(0, 4).map(Number)));
      const probs = await t.predict(x);
      const names = ['setosa', 'versicolor', 'virginica'];
      rows.forEach((row, i) => {
        const p = row.slice(1).map(Number);
        for (let k = 0; k < 3; k++) expect(Math.fround(p[k])).toBe(probs[i * 3 + k]);
        expect(row[0]).toBe(names[p.indexOf(Math.max(...p))]);
      });
      // and they are the test file's classes as often as the accuracy says
      const right = rows.filter((row, i) => row[0] === input[i][4]).length;
      expect((100 * right / rows.length).toFixed(2)).toBe(printed);
    } finally {
      await t.close();
    }
  });

  it('refuses an --out in a missing folder before loading anything, and a file without the model\'s columns', async () => {
    const r = await runCommand(predictMain, [model, '--input', testCsv, '--out', join(dir, 'no', 'such', 'p.csv')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool predict: --out .*p\.csv: the folder .*such does not exist\n$/);
    const partial = join(dir, 'partial.csv');
    writeFileSync(partial, 'sepal_length,sepal_width,petal_length\n5.1,3.5,1.4\n');
    const m = await runCommand(predictMain, [model, '--input', partial, '--out', join(dir, 'p.csv')]);
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/petal_width/);
  });

  it('notes that a checkpoint without a recorded preprocessing uses the features as given', async () => {
    const ckpt = await loadCheckpoint(model);
    const { 'gradpool.preprocessing': _p, 'gradpool.sha256': _s, 'gradpool.header-sha256': _h, format: _f, 'gradpool.version': _v, config: _c, ...rest } = ckpt.metadata;
    const old = join(dir, 'old.safetensors');
    await saveCheckpoint(old, ckpt.config, ckpt.params, rest, ckpt.tensors);
    const r = await runCommand(evaluateMain, [old, '--test', testCsv, '--label-column', 'species']);
    expect(r.out).toContain(`note: ${old} records no preprocessing`);
  });
});

describe('a model of many classes, and one trained on the bundled digits, from the command line', () => {
  it('names at most 10 of 5,000 classes on the model line, and how many more', async () => {
    const classNames = Array.from({ length: 5000 }, (_, k) => `class ${k}`);
    const t = new Trainer({ layers: [2, 5000], workers: 1, preprocessing: { featureNames: ['a', 'b'], labelNames: ['y'], classNames } });
    const path = join(dir, 'many.safetensors');
    try {
      await t.save(path);
    } finally {
      await t.close();
    }
    const input = join(dir, 'two.csv');
    writeFileSync(input, 'a,b\n0.5,1\n');
    const r = await runCommand(predictMain, [path, '--input', input, '--out', join(dir, 'many-preds.csv')]);
    expect(r.err).toBe('');
    let shown = '';
    for (let k = 0; k < 10; k++) shown += `${k === 0 ? '' : ', '}"class ${k}"`;
    expect(r.out.split('\n')[0]).toBe(`model ${path}: MLP 2-5000 (relu), cross-entropy; no normalisation; 2 feature columns; label y; ` +
      `5000 classes ${shown}, ... (4990 more)`);
  });

  it('evaluates and predicts the bundled digits\' test split (--data mnist) as training evaluated it', async () => {
    const model = join(dir, 'digits.safetensors');
    const trained = await runCli(['--layers', '784,8,10', '--epochs', '1', '--workers', '1', '--no-progress', '--out', model]);
    expect(trained.code).toBe(0);
    const accuracy = /test accuracy (\d+\.\d\d)%\)\n$/.exec(trained.out)?.[1];
    const e = await runCommand(evaluateMain, [model, '--data', 'mnist', '--workers', '1']);
    expect(e.err).toBe('');
    expect(e.out).toContain('data: MNIST digits (bundled), the test split, 1996 rows\n');
    expect(e.out).toMatch(new RegExp(`accuracy ${accuracy?.replace('.', '\\.')}%\\n$`));
    const out = join(dir, 'digits-preds.csv');
    const p = await runCommand(predictMain, [model, '--data', 'mnist', '--out', out, '--workers', '1']);
    expect(p.err).toBe('');
    const rows = cells(out).slice(1);
    const { test } = loadMnist();
    expect(rows).toHaveLength(test.rows);
    const right = rows.filter((row, i) => row[0] === String(test.y[i])).length;
    expect((100 * right / rows.length).toFixed(2)).toBe(accuracy);
    // one source of data, no more, no less
    const both = await runCommand(evaluateMain, [model, '--data', 'mnist', '--test', testCsv]);
    expect([both.code, both.err]).toEqual([2, 'gradpool evaluate: give the data to evaluate on, one of: --test file.csv, --test-images and --test-labels, or --data mnist\n']);
    const none = await runCommand(predictMain, [model, '--out', out]);
    expect([none.code, none.err]).toEqual([2, 'gradpool predict: give the inputs, one of: --input file, or --data mnist\n']);
  });
});
