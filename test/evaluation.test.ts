// evaluate() with many classes (issue 14, row 2): memory grows with rows and classes, not with classes
// squared, and the per-class report is still right. Reference: the counts worked out here from
// predict()'s probabilities, and a child process with a small heap in which a K x K matrix cannot fit.
// The report's macro and weighted averages: against a loop over the predictions, and scikit-learn's
// classification_report (/usr/bin/python3, where it has sklearn).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/shared/rng.js';
import type { ClassReport } from '../src/main/index.js';
import { trainers } from './helpers.js';
import { PYTHON } from './torch.js';

const hasSklearn = spawnSync(PYTHON, ['-c', 'import sklearn'], { timeout: 60_000 }).status === 0;

const { make } = trainers();
const dir = mkdtempSync(join(tmpdir(), 'gradpool-evaluation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('evaluation with many classes', () => {
  it('reports precision, recall and support per class from counts above 1,024 classes, with no K x K matrix', async () => {
    const K = 1500;
    const N = 300;
    const rng = new Rng(4);
    const x = Float32Array.from({ length: N * 3 }, () => rng.uniform(1));
    // a few classes take most rows, so that some are predicted right
    const y = Int32Array.from({ length: N }, (_, i) => (i % 3 === 0 ? rng.nextInt(K) : i % 5));
    const t = make({ layers: [3, K], workers: 2, lr: 0.5, batchSize: 50 });
    await t.fit({ x, y }, { epochs: 3 });
    const ev = await t.evaluate({ x, y });
    expect(ev.confusion).toBeNull();
    // the reference: argmax of each row's probabilities, counted here
    const probs = await t.predict(x);
    const tp = new Array<number>(K).fill(0);
    const predicted = new Array<number>(K).fill(0);
    const support = new Array<number>(K).fill(0);
    for (let i = 0; i < N; i++) {
      let p = 0;
      for (let k = 1; k < K; k++) if (probs[i * K + k] > probs[i * K + p]) p = k;
      predicted[p]++;
      support[y[i]]++;
      if (p === y[i]) tp[p]++;
    }
    expect(tp.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(ev.accuracy).toBe(tp.reduce((a, b) => a + b, 0) / N);
    expect(ev.report.classes).toHaveLength(K);
    for (let k = 0; k < K; k++) {
      const c = ev.report.classes[k];
      expect(c.support, `class ${k}`).toBe(support[k]);
      expect(c.precision, `class ${k}`).toBe(predicted[k] === 0 ? 0 : tp[k] / predicted[k]);
      expect(c.recall, `class ${k}`).toBe(support[k] === 0 ? 0 : tp[k] / support[k]);
    }
  });

  it('evaluates 20,000 classes (with validation in fit) in a process whose heap could not hold a 20,000 x 20,000 matrix', () => {
    const index = pathToFileURL(resolve('src/main/index.ts')).href;
    const script = join(dir, 'many-classes.mts');
    writeFileSync(script, `
      import { Trainer } from '${index}';
      const K = 20_000;
      const t = new Trainer({ layers: [2, K], workers: 1, batchSize: 64 });
      const x = new Float32Array(2 * 256).map((_, i) => (i % 7) / 7);
      const y = Int32Array.from({ length: 256 }, (_, i) => (i * 7919) % K);
      const history = await t.fit({ x, y }, { validation: { x, y } });
      const ev = await t.evaluate({ x, y });
      console.log(JSON.stringify({ val: history[0].valAccuracy, classes: ev.report.classes.length, support: ev.report.classes.reduce((s, c) => s + c.support, 0), confusion: ev.confusion }));
      await t.close();
    `);
    const r = spawnSync(process.execPath, ['--max-old-space-size=200', '--import', 'tsx', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ val: expect.any(Number), classes: 20_000, support: 256, confusion: null });
  }, 30_000);
});

describe("the per-class report's averages", () => {
  // Six classes, one of which the model never predicts and one with no true row (zero_division 0).
  const K = 6;
  const N = 240;
  const rng = new Rng(11);
  const x = Float32Array.from({ length: N * 4 }, () => rng.uniform(1));
  const y = Int32Array.from({ length: N }, (_, i) => (i % 7 === 0 ? 4 : Math.floor((Math.abs(x[i * 4]) + Math.abs(x[i * 4 + 1])) * 2) % 4));

  async function evaluated(): Promise<{ report: ClassReport; predicted: number[] }> {
    const t = make({ layers: [4, 8, K], workers: 1, lr: 0.3, momentum: 0.9, batchSize: 16, seed: 2 });
    await t.fit({ x, y }, { epochs: 3 });
    const { report } = await t.evaluate({ x, y });
    const predicted = (await t.predictClasses(x)).map(Number);
    return { report, predicted };
  }

  it('gives macro and weighted precision, recall and F1 as the formulas give them from the predictions', async () => {
    const { report, predicted } = await evaluated();
    // A loop over the rows: per class tp, predicted and true counts, then each ratio (0 for 0/0).
    const tp = new Array<number>(K).fill(0);
    const asK = new Array<number>(K).fill(0);
    const support = new Array<number>(K).fill(0);
    predicted.forEach((p, i) => {
      asK[p]++;
      support[y[i]]++;
      if (p === y[i]) tp[p]++;
    });
    const ratio = (a: number, b: number): number => (b === 0 ? 0 : a / b);
    const precision = tp.map((v, k) => ratio(v, asK[k]));
    const recall = tp.map((v, k) => ratio(v, support[k]));
    const f1 = precision.map((p, k) => ratio(2 * p * recall[k], p + recall[k]));
    const mean = (v: number[], w: number[]): number => v.reduce((s, a, k) => s + a * w[k], 0) / w.reduce((s, a) => s + a, 0);
    const ones = new Array<number>(K).fill(1);
    expect(support[5]).toBe(0);
    expect(asK.filter((n) => n === 0).length).toBeGreaterThan(0);
    for (const [name, got, want] of [
      ['macro', report.macro, { precision: mean(precision, ones), recall: mean(recall, ones), f1: mean(f1, ones) }],
      ['weighted', report.weighted, { precision: mean(precision, support), recall: mean(recall, support), f1: mean(f1, support) }],
    ] as const) {
      for (const key of ['precision', 'recall', 'f1'] as const) expect(got[key], `${name} ${key}`).toBeCloseTo(want[key], 12);
    }
  });

  it.skipIf(!hasSklearn)("gives scikit-learn's classification_report, class by class and on average", async () => {
    const { report, predicted } = await evaluated();
    const script = [
      'import json, sys',
      'from sklearn.metrics import classification_report',
      'd = json.loads(sys.stdin.read())',
      'print(json.dumps(classification_report(d["y"], d["p"], labels=list(range(d["K"])), output_dict=True, zero_division=0)))',
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify({ y: Array.from(y), p: predicted, K }), encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const sk = JSON.parse(r.stdout) as Record<string, { precision: number; recall: number; 'f1-score': number; support: number }>;
    report.classes.forEach((c, k) => {
      const s = sk[String(k)];
      expect([c.precision, c.recall, c.f1, c.support].map((v) => v.toFixed(12)), `class ${k}`)
        .toEqual([s.precision, s.recall, s['f1-score'], s.support].map((v) => v.toFixed(12)));
    });
    for (const [name, got] of [['macro avg', report.macro], ['weighted avg', report.weighted]] as const) {
      const s = sk[name];
      expect([got.precision, got.recall, got.f1].map((v) => v.toFixed(12)), name).toEqual([s.precision, s.recall, s['f1-score']].map((v) => v.toFixed(12)));
    }
  });
});
