// predict's output as a stream: rows written block by block (several trainer.predict calls) and piece by
// piece give the rows one predict() call gives, checked cell by cell against it; a slow reader holds
// back the writer (backpressure) instead of the text piling up in memory; --top-k gives the k most
// probable classes as a sort written here gives them, and refuses a k the model cannot have.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, runCommand } from './helpers.js';
import { loadCsv, Trainer } from '../src/main/index.js';
import { streamSink, type OutputSink } from '../src/cli/output-sink.js';
import { mostProbable, predictionTable, predictMain, writePredictions } from '../src/cli/predict.js';
import { Rng } from '../src/shared/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-predict-stream-'));
const TEST = 'examples/iris/iris-test.csv';
const NAMES = ['setosa', 'versicolor', 'virginica'];
const model = join(dir, 'iris.safetensors');
let trainer: Trainer;
let x: Float32Array;
let probs: Float32Array; // one predict() call over every row: the reference

beforeAll(async () => {
  const r = await runCli(['--data', 'csv', '--train', 'examples/iris/iris-train.csv', '--label-column', 'species', '--layers', '4,16,3',
    '--epochs', '5', '--no-progress', '--out', model]);
  expect(r.code, r.err).toBe(0);
  trainer = await Trainer.load(model, { workers: 1 });
  x = (await loadCsv(TEST, { labelColumns: ['species'] })).x;
  probs = await trainer.predict(x);
});
afterAll(async () => {
  await trainer.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The index of the largest of the row's K probabilities (the first of equals). */
function argmax(p: Float32Array, r: number, K: number): number {
  let best = 0;
  for (let k = 1; k < K; k++) if (p[r * K + k] > p[r * K + best]) best = k;
  return best;
}

/** Checks CSV text against the reference: row r's class and its three probabilities, read back. */
function expectRowsOfReference(text: string): void {
  const [head, ...rows] = text.trimEnd().split('\n');
  expect(head).toBe('predicted,p_setosa,p_versicolor,p_virginica');
  expect(rows).toHaveLength(probs.length / 3);
  rows.forEach((line, r) => {
    const cells = line.split(',');
    expect(cells[0]).toBe(NAMES[argmax(probs, r, 3)]);
    for (let k = 0; k < 3; k++) expect(Math.fround(Number(cells[1 + k]))).toBe(probs[r * 3 + k]);
  });
}

describe('rows written block by block', () => {
  it('are the rows of one predict() call, in blocks of 2 rows and pieces of about 50 characters', async () => {
    const pieces: string[] = [];
    const sink: OutputSink = { write: async (t) => void pieces.push(t), end: async () => {}, discard: async () => {} };
    const calls: number[] = [];
    const predict = trainer.predict.bind(trainer);
    trainer.predict = (rows) => (calls.push((rows as Float32Array).length / 4), predict(rows));
    try {
      await writePredictions(trainer, x, predictionTable(trainer, undefined), sink, 7, 50);
    } finally {
      trainer.predict = predict;
    }
    expect(calls).toEqual(Array.from({ length: Math.ceil(x.length / 8) }, (_, i) => Math.min(2, x.length / 4 - 2 * i)));
    expect(pieces.length).toBeGreaterThan(10);
    for (const piece of pieces.slice(0, -1)) expect(piece.length).toBeLessThan(50 + 60); // a piece ends at the first row past 50
    expectRowsOfReference(pieces.join(''));
  });

  it('are the rows of one predict() call when the CLI writes them to a file', async () => {
    const out = join(dir, 'p.csv');
    const r = await runCommand(predictMain, [model, '--input', TEST, '--out', out]);
    expect(r.code, r.err).toBe(0);
    expectRowsOfReference(readFileSync(out, 'utf8'));
  });

  it('wait for a slow reader: what is buffered stays within one piece and the stream\'s buffer', async () => {
    let largest = 0;
    let text = '';
    const slow = new Writable({
      highWaterMark: 64,
      write(chunk: Buffer, _enc, done) {
        largest = Math.max(largest, slow.writableLength);
        text += chunk.toString();
        setTimeout(done, 1);
      },
    });
    await writePredictions(trainer, x, predictionTable(trainer, undefined), streamSink(slow), 1 << 20, 100);
    expectRowsOfReference(text);
    expect(text.length).toBeGreaterThan(1000);
    expect(largest).toBeLessThan(100 + 60 + 64); // without waiting, the whole text would pile up
  });
});

describe('--top-k', () => {
  it('gives the k most probable classes and their probabilities, as a sort of each row gives them', async () => {
    const out = join(dir, 'top2.csv');
    const r = await runCommand(predictMain, [model, '--input', TEST, '--out', out, '--top-k', '2']);
    expect(r.code, r.err).toBe(0);
    const [head, ...rows] = readFileSync(out, 'utf8').trimEnd().split('\n');
    expect(head).toBe('predicted,class_1,p_1,class_2,p_2');
    rows.forEach((line, r) => {
      const order = [0, 1, 2].sort((a, b) => probs[r * 3 + b] - probs[r * 3 + a] || a - b);
      const cells = line.split(',');
      expect(cells[0]).toBe(NAMES[order[0]]);
      expect([cells[1], cells[3]]).toEqual([NAMES[order[0]], NAMES[order[1]]]);
      expect(Math.fround(Number(cells[2]))).toBe(probs[r * 3 + order[0]]);
      expect(Math.fround(Number(cells[4]))).toBe(probs[r * 3 + order[1]]);
    });
  });

  it('refuses a k that is not from 1 to the number of classes, naming --top-k', async () => {
    const out = join(dir, 'refused.csv');
    for (const k of ['4', '0', '1.5', 'two']) {
      const r = await runCommand(predictMain, [model, '--input', TEST, '--out', out, '--top-k', k]);
      expect(r.code, k).toBe(2);
      expect(r.err, k).toMatch(/--top-k/);
    }
    expect((await runCommand(predictMain, [model, '--input', TEST, '--out', out, '--top-k', '4'])).err)
      .toBe('gradpool predict: --top-k 4: the model has 3 classes; give a k from 1 to 3\n');
  });

  it('refuses --top-k for a model with one sigmoid output', async () => {
    const one = join(dir, 'one.safetensors');
    const t = await Trainer.create({ layers: [4, 3, 1], workers: 1 });
    await t.save(one);
    await t.close();
    const r = await runCommand(predictMain, [one, '--input', TEST, '--label-column', 'species', '--out', join(dir, 'o.csv'), '--top-k', '1']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool predict: --top-k: this model has one sigmoid output/);
  });

  it('gives the k most probable of independent sigmoid outputs, labelled by index, with no predicted column', async () => {
    const multi = join(dir, 'multi.safetensors');
    const t = await Trainer.create({ layers: [4, 6, 5], loss: 'bce-with-logits', workers: 1, seed: 3 });
    await t.save(multi);
    const p = await t.predict(x);
    await t.close();
    const out = join(dir, 'multi.csv');
    const r = await runCommand(predictMain, [multi, '--input', TEST, '--label-column', 'species', '--out', out, '--top-k', '3']);
    expect(r.code, r.err).toBe(0);
    const [head, ...rows] = readFileSync(out, 'utf8').trimEnd().split('\n');
    expect(head).toBe('label_1,p_1,label_2,p_2,label_3,p_3');
    rows.forEach((line, r) => {
      const order = [0, 1, 2, 3, 4].sort((a, b) => p[r * 5 + b] - p[r * 5 + a] || a - b).slice(0, 3);
      const cells = line.split(',');
      expect([cells[0], cells[2], cells[4]].map(Number)).toEqual(order);
      expect([cells[1], cells[3], cells[5]].map((c) => Math.fround(Number(c)))).toEqual(order.map((k) => p[r * 5 + k]));
    });
  });

  it('orders classes as a full sort does, equal probabilities by index, for small and large k', () => {
    const rng = new Rng(5);
    const K = 300;
    const p = new Float32Array(K * 20).map(() => Math.fround(Math.floor(rng.nextFloat() * 50) / 50)); // many equal values
    const order = new Int32Array(K);
    for (const k of [1, 2, 7, 32, 33, 150, K]) {
      for (let r = 0; r < 20; r++) {
        const want = Array.from({ length: K }, (_, c) => c).sort((a, b) => p[r * K + b] - p[r * K + a] || a - b).slice(0, k);
        expect(mostProbable(p, r * K, K, k, order), `k ${k}`).toBe(k);
        expect(Array.from(order.subarray(0, k)), `k ${k}, row ${r}`).toEqual(want);
      }
    }
  });
});
