// evaluate() with many classes (issue 14, row 2): memory grows with rows and classes, not with classes
// squared, and the per-class report is still right. Reference: the counts worked out here from
// predict()'s probabilities, and a child process with a small heap in which a K x K matrix cannot fit.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/shared/rng.js';
import { trainers } from './helpers.js';

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
