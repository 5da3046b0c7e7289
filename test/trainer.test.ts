// The Trainer end to end on real worker pools: bit-identical results across worker counts and runs,
// SGD steps against a one-shard computation done here without the pool, evaluation and prediction
// against a direct forward pass, and a short MNIST run against an accuracy floor.

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { maxAbsDiff, mnistSubset, sameBits, trainers } from './helpers.js';
import { Trainer, loadMnist, type Dataset, type TrainerOptions } from '../src/main/index.js';
import { linearViews, paramLayout, type ModelConfig } from '../src/shared/model.js';
import { createScratch, forward, lossAndBackward } from '../src/worker/shard.js';
import { Rng } from '../src/shared/rng.js';

const { make: trainer, keep } = trainers();
const mnist = loadMnist();

/** Loss sum and gradient sum of rows [r0, r1) of x/y through the model, computed in one shard, here. */
function oneShard(config: ModelConfig, params: Float32Array, x: Float32Array, y: Int32Array, r0: number, r1: number) {
  const B = r1 - r0;
  const D = config.layers[0];
  const s = createScratch(config, B);
  s.x.set(x.subarray(r0 * D, r1 * D));
  s.yIndex.set(y.subarray(r0, r1));
  const grad = new Float32Array(params.length);
  forward(s, config, linearViews(params, config.layers), B);
  const sums = lossAndBackward(s, config, linearViews(params, config.layers), linearViews(grad, config.layers), B);
  return { ...sums, grad };
}

describe('determinism', () => {
  const data = mnistSubset(600);
  const base: TrainerOptions = { layers: [784, 32, 10], lr: 0.05, momentum: 0.9, batchSize: 50, shards: 4, seed: 7 };

  it('gives bit-identical parameters for 1, 2, 3 and 4 workers', async () => {
    const results: Float32Array[] = [];
    for (const workers of [1, 2, 3, 4]) {
      const t = trainer({ ...base, workers });
      await t.fit(data, { epochs: 2 });
      results.push(new Float32Array(t.parameters));
      await t.close();
    }
    for (let w = 1; w < 4; w++) {
      expect(sameBits(results[w], results[0]), `workers ${w + 1} vs 1: max |diff| ${maxAbsDiff(results[w], results[0])}`).toBe(true);
    }
    // and training did move the parameters
    const fresh = trainer({ ...base, workers: 1 });
    expect(maxAbsDiff(fresh.parameters, results[0])).toBeGreaterThan(1e-3);
  });

  it('gives bit-identical parameters when the same seed runs twice, and different ones for another seed', async () => {
    const run = async (seed: number): Promise<Float32Array> => {
      const t = trainer({ ...base, seed, workers: 2 });
      await t.fit(data, { epochs: 1 });
      const p = new Float32Array(t.parameters);
      await t.close();
      return p;
    };
    const a = await run(3);
    const b = await run(3);
    const c = await run(4);
    expect(sameBits(a, b)).toBe(true);
    expect(sameBits(a, c)).toBe(false);
  });
});

describe('one SGD step', () => {
  it('applies the batch-mean gradient of uneven shards, as one shard computed without the pool does', async () => {
    const data = mnistSubset(37); // 37 rows in 4 shards: 10, 10, 10, 7
    const config: ModelConfig = { layers: [784, 16, 10], activation: 'tanh', loss: 'cross-entropy' };
    const t = trainer({ ...config, lr: 0.1, batchSize: 37, shards: 4, workers: 2, shuffle: false });
    const before = new Float32Array(t.parameters);
    const ref = oneShard(config, before, data.x, data.y, 0, 37);
    const history = await t.fit(data, { epochs: 1 });
    const expected = before.map((p, i) => p - 0.1 * (ref.grad[i] / 37));
    const d = maxAbsDiff(t.parameters, expected);
    expect(d, `max |diff| ${d}`).toBeLessThan(1e-6);
    expect(history[0].trainLoss).toBeCloseTo(ref.lossSum / 37, 5);
  });

  it('weights the last partial batch by its own rows, as torch DataLoader with drop_last=False', async () => {
    const data = mnistSubset(10); // batches of 4, 4, 2
    const config: ModelConfig = { layers: [784, 8, 10], activation: 'relu', loss: 'cross-entropy' };
    const t = trainer({ ...config, lr: 0.2, batchSize: 4, workers: 2, shuffle: false });
    const p = new Float32Array(t.parameters);
    for (const [r0, r1] of [[0, 4], [4, 8], [8, 10]]) {
      const ref = oneShard(config, p, data.x, data.y, r0, r1);
      for (let i = 0; i < p.length; i++) p[i] = p[i] - 0.2 * (ref.grad[i] / (r1 - r0));
    }
    await t.fit(data, { epochs: 1 });
    const d = maxAbsDiff(t.parameters, p);
    expect(d, `max |diff| ${d}`).toBeLessThan(1e-6);
  });

  // 21 rows in batches of 8, 8, 5 over 4 shards: the full batches cut 2 rows a shard, the last 2, 2, 1,
  // three shards whose nominal size (3 x 2 = 6 rows) is not the batch's 5.
  const shortLast = { rows: 21, batches: [[0, 8], [8, 16], [16, 21]] as [number, number][] };
  const shortConfig: ModelConfig = { layers: [784, 6, 10], activation: 'sigmoid', loss: 'cross-entropy' };
  const shortOptions: TrainerOptions = { ...shortConfig, lr: 0.3, batchSize: 8, shards: 4, workers: 2, shuffle: false, seed: 9 };

  it("divides each batch's gradient sum by that batch's own rows, 5 for a short last batch cut into uneven shards", async () => {
    const data = mnistSubset(shortLast.rows);
    const t = trainer(shortOptions);
    const p = new Float32Array(t.parameters);
    for (const [r0, r1] of shortLast.batches) {
      const ref = oneShard(shortConfig, p, data.x, data.y, r0, r1);
      const rows = r1 - r0;
      for (let i = 0; i < p.length; i++) p[i] -= 0.3 * (ref.grad[i] / rows);
    }
    await t.fit(data, { epochs: 1 });
    const d = maxAbsDiff(t.parameters, p);
    expect(d, `max |diff| ${d}`).toBeLessThan(1e-6);
  });

  it("reports a short last batch's rows and its loss as the mean over those rows", async () => {
    const data = mnistSubset(shortLast.rows);
    const t = trainer(shortOptions);
    const p = new Float32Array(t.parameters);
    const want: { rows: number; loss: number }[] = [];
    for (const [r0, r1] of shortLast.batches) {
      const ref = oneShard(shortConfig, p, data.x, data.y, r0, r1);
      want.push({ rows: r1 - r0, loss: ref.lossSum / (r1 - r0) });
      for (let i = 0; i < p.length; i++) p[i] -= 0.3 * (ref.grad[i] / (r1 - r0));
    }
    const got: { rows: number; loss: number }[] = [];
    const [record] = await t.fit(data, { epochs: 1, onStep: (s) => got.push({ rows: s.rows, loss: s.loss }) });
    expect(got.map((s) => s.rows)).toEqual([8, 8, 5]);
    got.forEach((s, i) => expect(s.loss, `step ${i + 1}`).toBeCloseTo(want[i].loss, 5));
    // the epoch's loss is the mean over all 21 rows, the short batch weighing 5 of them
    expect(record.trainLoss).toBeCloseTo(want.reduce((a, s) => a + s.loss * s.rows, 0) / 21, 5);
  });

  it("with reduction 'sum' applies the gradient sum, not the mean", async () => {
    const data = mnistSubset(12);
    const config: ModelConfig = { layers: [784, 6, 10], activation: 'sigmoid', loss: 'cross-entropy' };
    const t = trainer({ ...config, lr: 0.01, batchSize: 12, reduction: 'sum', workers: 2, shuffle: false });
    const before = new Float32Array(t.parameters);
    const ref = oneShard(config, before, data.x, data.y, 0, 12);
    await t.fit(data, { epochs: 1 });
    const d = maxAbsDiff(t.parameters, before.map((p, i) => p - 0.01 * ref.grad[i]));
    expect(d, `max |diff| ${d}`).toBeLessThan(1e-6);
  });
});

describe('initialisation', () => {
  it("draws every tensor uniformly within nn.Linear's bound 1/sqrt(fan_in)", () => {
    const t = trainer({ layers: [784, 128, 10], workers: 1 });
    for (const e of paramLayout([784, 128, 10]).entries) {
      const bound = 1 / Math.sqrt(e.name.startsWith('layers.0') ? 784 : 128);
      const v = t.parameters.subarray(e.offset, e.offset + e.size);
      const max = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      expect(max, e.name).toBeLessThanOrEqual(bound);
      // Spread over the whole range: for n >= 100 draws, P(max < 0.9 bound) = 0.9^n < 3e-5.
      if (v.length >= 100) expect(max, e.name).toBeGreaterThan(0.9 * bound);
      const mean = v.reduce((s, x) => s + x, 0) / v.length;
      expect(Math.abs(mean), `${e.name} mean`).toBeLessThan(4 * bound / Math.sqrt(3 * v.length)); // 4 sigma
    }
  });
});

describe('evaluation and prediction', () => {
  it('predicts softmax probabilities equal to a forward pass done here, and evaluates them', async () => {
    const data = mnistSubset(45);
    const config: ModelConfig = { layers: [784, 12, 10], activation: 'relu', loss: 'cross-entropy' };
    const t = trainer({ ...config, workers: 2, seed: 5 });
    const probs = await t.predict(data.x);
    const ref = oneShard(config, t.parameters, data.x, data.y, 0, 45);
    const s = createScratch(config, 45);
    s.x.set(data.x);
    const logits = forward(s, config, linearViews(t.parameters, config.layers), 45);
    let correct = 0;
    for (let b = 0; b < 45; b++) {
      const row = Array.from(logits.subarray(b * 10, b * 10 + 10));
      const m = Math.max(...row);
      const z = row.reduce((acc, v) => acc + Math.exp(v - m), 0);
      const d = maxAbsDiff(probs.subarray(b * 10, b * 10 + 10), row.map((v) => Math.exp(v - m) / z));
      expect(d, `row ${b} max |diff| ${d}`).toBeLessThan(1e-6);
      if (row.indexOf(m) === data.y[b]) correct++;
    }
    const ev = await t.evaluate(data);
    expect(ev.loss).toBeCloseTo(ref.lossSum / 45, 5);
    expect(ev.accuracy).toBe(correct / 45);
    const confusion = ev.confusion as number[][];
    expect(confusion.flat().reduce((a, b) => a + b, 0)).toBe(45);
    expect(confusion.reduce((a, row, k) => a + row[k], 0)).toBe(correct);
    for (let k = 0; k < 10; k++) {
      expect(confusion[k].reduce((a, b) => a + b, 0), `row ${k}`).toBe(data.y.filter((v) => v === k).length);
    }
  });
});

describe('training', () => {
  it('reaches 90% test accuracy on MNIST in two epochs of the recipe', async () => {
    const t = trainer({ layers: [784, 128, 10], lr: 0.05, momentum: 0.9, batchSize: 64, workers: 2 });
    const history = await t.fit(mnist.train, { epochs: 2, validation: mnist.test });
    expect(history).toHaveLength(2);
    expect(history[1].trainLoss).toBeLessThan(history[0].trainLoss);
    expect(history[1].valAccuracy).toBeGreaterThan(0.9);
    const ev = await t.evaluate(mnist.test);
    expect(ev.accuracy).toBe(history[1].valAccuracy);
  });

  it('learns logistic regression ([D, 1], sigmoid + binary cross-entropy) on separable data', async () => {
    const rng = new Rng(1);
    const n = 400;
    const x = new Float32Array(n * 3);
    const y = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) x[i * 3 + c] = rng.uniform(1);
      y[i] = 2 * x[i * 3] - x[i * 3 + 1] + 0.5 * x[i * 3 + 2] > 0.1 ? 1 : 0;
    }
    const t = trainer({ layers: [3, 1], lr: 0.5, momentum: 0.9, batchSize: 32, workers: 2 });
    expect(t.options.loss).toBe('bce-with-logits');
    await t.fit({ x, y }, { epochs: 30 });
    const ev = await t.evaluate({ x, y });
    expect(ev.accuracy).toBeGreaterThan(0.95);
    const m = ev.confusion as number[][];
    expect(m[0][0] + m[1][1]).toBe(Math.round(ev.accuracy * n));
    // the learned direction is the generating one: w0 > 0, w1 < 0
    expect(t.parameters[0]).toBeGreaterThan(0);
    expect(t.parameters[1]).toBeLessThan(0);
  });

  it('stops after the current step when the signal aborts, rejecting with its reason', async () => {
    const data = mnistSubset(200);
    const t = trainer({ layers: [784, 8, 10], batchSize: 20, workers: 2 });
    const ac = new AbortController();
    let steps = 0;
    // One step per run: the abort in onStep lands before the workers take step 4.
    const run = t.fit(data, { epochs: 5, stepsPerExecution: 1, signal: ac.signal, onStep: () => { if (++steps === 3) ac.abort(new Error('stop here')); } });
    await expect(run).rejects.toThrow('stop here');
    expect(steps).toBe(3);
  });
});

describe('multi-label BCE', () => {
  it('trains K independent sigmoid outputs against (N, K) targets, accuracy per output', async () => {
    const rng = new Rng(2);
    const n = 300;
    const x: number[][] = [];
    const y: number[][] = [];
    for (let i = 0; i < n; i++) {
      const row = [rng.uniform(1), rng.uniform(1)];
      x.push(row);
      y.push([row[0] > 0 ? 1 : 0, row[1] > 0 ? 1 : 0, row[0] + row[1] > 0 ? 1 : 0]);
    }
    const data: Dataset = { x, y };
    const t = trainer({ layers: [2, 3], loss: 'bce-with-logits', lr: 1, momentum: 0.9, batchSize: 30, workers: 2 });
    await t.fit(data, { epochs: 40 });
    const ev = await t.evaluate(data);
    expect(ev.confusion).toBeNull();
    expect(ev.accuracy).toBeGreaterThan(0.95);
    const probs = await t.predict(x);
    expect(probs.length).toBe(n * 3);
  });
});

describe('one call at a time', () => {
  it('refuses evaluate() while fit() is running on the same Trainer, and runs it after', async () => {
    const data = mnistSubset(100);
    const t = trainer({ layers: [784, 8, 10], batchSize: 10, workers: 2 });
    const fitting = t.fit(data, { epochs: 1 });
    await expect(t.evaluate(data)).rejects.toThrow('evaluate() was called while fit() is still running on this Trainer; await it first');
    await fitting;
    expect((await t.evaluate(data)).rows).toBe(100);
  });
});

describe('checkpoints through the Trainer', () => {
  it('reloads a saved model that predicts the same probabilities, bit for bit', async () => {
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp(join(tmpdir(), 'gradpool-trainer-')));
    const data = mnistSubset(30);
    const t = trainer({ layers: [784, 16, 10], activation: 'tanh', lr: 0.1, workers: 2 });
    await t.fit(data, { epochs: 1 });
    await t.save(join(dir, 'a.safetensors'));
    const u = await Trainer.load(join(dir, 'a.safetensors'), { workers: 1 });
    keep(u);
    expect(u.config).toEqual(t.config);
    expect(sameBits(await u.predict(data.x), await t.predict(data.x))).toBe(true);
  });

  it('refuses parameters whose shapes do not fit, naming the tensor, and keeps its own', async () => {
    const dir = await import('node:fs/promises').then((fs) => fs.mkdtemp(join(tmpdir(), 'gradpool-trainer-')));
    const a = trainer({ layers: [784, 32, 10], workers: 1 });
    await a.save(join(dir, 'a.safetensors'));
    const b = trainer({ layers: [784, 16, 10], workers: 1 });
    const before = new Float32Array(b.parameters);
    await expect(b.loadParameters(join(dir, 'a.safetensors'))).rejects.toThrow(
      /a\.safetensors: tensor 'layers\.0\.weight' has shape \(32, 784\) but this model needs \(16, 784\)/,
    );
    expect(sameBits(b.parameters, before)).toBe(true);
  });
});
