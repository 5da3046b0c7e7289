// The Trainer's PyTorch options end to end on real pools: weighted means across shards, ignored rows,
// soft targets, per-sample losses, the per-class report, schedules stepped per step or per epoch,
// gradient clipping, and a resumed run that ends bit-identical to an uninterrupted one. References: a
// one-shard computation done here without the pool, scheduleAt, and values worked out by hand.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, type StepInfo, type TrainerOptions } from '../src/main/index.js';
import { maxAbsDiff, mnistSubset, oneShard as shardSums, sameBits, trainers } from './helpers.js';
import { balancedClassWeights, classReport } from '../src/main/reporting/report.js';
import { lossSpec } from '../src/main/options/loss-options.js';
import { resolveOptions } from '../src/main/options/options.js';
import type { ModelConfig } from '../src/shared/model.js';
import { scheduleAt, type ScheduleSpec } from '../src/shared/schedule.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { make: trainer, keep } = trainers();

/** The loss sum, divisor and gradient sum of rows [r0, r1) in one shard, with the Trainer's loss. */
function oneShard(o: TrainerOptions, params: Float32Array, x: Float32Array, y: Int32Array, r0: number, r1: number) {
  const resolved = resolveOptions({ ...o, workers: 1 });
  const config: ModelConfig = { layers: resolved.layers, activation: resolved.activation, loss: resolved.loss };
  return shardSums(config, lossSpec(resolved), params, x, y, r0, r1);
}

describe('losses across shards', () => {
  it('divides a weighted cross-entropy by the sum of the weights of the batch targets, across uneven shards', async () => {
    const data = mnistSubset(37);
    const o: TrainerOptions = { layers: [784, 12, 10], lr: 0.3, batchSize: 37, shards: 4, workers: 2, shuffle: false, weight: [1, 2, 3, 4, 5, 0.5, 1, 1, 2, 0.25] };
    const t = trainer(o);
    const before = new Float32Array(t.parameters);
    const ref = oneShard(o, before, data.x, data.y, 0, 37);
    expect(ref.weightSum).toBeCloseTo(Array.from(data.y, (c) => (o.weight as number[])[c]).reduce((a, b) => a + b, 0), 5);
    const [record] = await t.fit(data);
    const d = maxAbsDiff(t.parameters, before.map((p, i) => p - 0.3 * (ref.grad[i] / ref.weightSum)));
    expect(d, `max |diff| ${d}`).toBeLessThan(1e-6);
    expect(record.trainLoss).toBeCloseTo(ref.lossSum / ref.weightSum, 5);
  });

  it('divides a weighted cross-entropy once by the total weight when one shard holds nearly all of it', async () => {
    // 40 rows grouped by digit in 4 shards of 10: shard 0 (digits 0, 1 and one 2) weighs ~450, the others ~1
    const data = mnistSubset(40);
    const weight = [50, 50, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];
    const o: TrainerOptions = { layers: [784, 8, 10], lr: 0.5, batchSize: 40, shards: 4, workers: 3, shuffle: false, seed: 4, weight };
    const t = trainer(o);
    const before = new Float32Array(t.parameters);
    const shardWeight = (r0: number, r1: number): number => Array.from(data.y.subarray(r0, r1), (c) => Math.fround(weight[c])).reduce((a, b) => a + b, 0);
    const total = shardWeight(0, 40);
    // the reference: each shard's sums, added, divided once by the weight of every target in the batch
    const shards = [0, 10, 20, 30].map((r0) => oneShard(o, before, data.x, data.y, r0, r0 + 10));
    expect(shards.map((s) => s.weightSum)).toEqual(shards.map((_, i) => expect.closeTo(shardWeight(10 * i, 10 * i + 10), 5)));
    expect(shards[0].weightSum).toBeGreaterThan(100 * shards[1].weightSum);
    const grad = new Float64Array(before.length);
    for (const s of shards) for (let i = 0; i < grad.length; i++) grad[i] += s.grad[i];
    const expected = before.map((p, i) => p - 0.5 * (grad[i] / total));
    // which is the one-shard weighted mean, and not the average of the shards' own means
    const whole = oneShard(o, before, data.x, data.y, 0, 40);
    expect(maxAbsDiff(expected, before.map((p, i) => p - 0.5 * (whole.grad[i] / whole.weightSum)))).toBeLessThan(1e-6);
    expect(maxAbsDiff(expected, before.map((p, i) => p - 0.5 * shards.reduce((a, s) => a + s.grad[i] / s.weightSum, 0) / 4))).toBeGreaterThan(1e-3);
    const [record] = await t.fit(data);
    const d = maxAbsDiff(t.parameters, expected);
    expect(d, `max |diff| ${d}`).toBeLessThan(1e-6);
    expect(record.trainLoss).toBeCloseTo(shards.reduce((a, s) => a + s.lossSum, 0) / total, 5);
  });

  it('skips the update of a batch whose targets are all ignored, momentum included, and says so', async () => {
    const data = mnistSubset(8);
    const y = Int32Array.from(data.y);
    y.fill(-100, 0, 4); // the first batch of 4 is all ignored
    const t = trainer({ layers: [784, 6, 10], lr: 0.1, momentum: 0.9, batchSize: 4, workers: 2, shuffle: false });
    const steps: StepInfo[] = [];
    const before = new Float32Array(t.parameters);
    const o: TrainerOptions = { layers: [784, 6, 10], lr: 0.1, momentum: 0.9 };
    const ref = oneShard(o, before, data.x, y, 4, 8);
    const [record] = await t.fit({ x: data.x, y }, { onStep: (s) => steps.push(s) });
    expect(steps.map((s) => s.skipped === true)).toEqual([true, false]);
    expect(record.skippedSteps).toBe(1);
    // the only update is the second batch's, a first momentum step (buffer = gradient)
    const d = maxAbsDiff(t.parameters, before.map((p, i) => p - 0.1 * (ref.grad[i] / 4)));
    expect(d, `max |diff| ${d}`).toBeLessThan(1e-6);
  });

  it('trains on one-hot probability targets bit-identically to the same class indices', async () => {
    const data = mnistSubset(64);
    const oneHot = new Float32Array(64 * 10);
    data.y.forEach((c, i) => (oneHot[i * 10 + c] = 1));
    const o: TrainerOptions = { layers: [784, 16, 10], lr: 0.1, momentum: 0.9, batchSize: 16, workers: 2 };
    const a = trainer(o);
    const b = trainer(o);
    const ha = await a.fit(data, { epochs: 2 });
    const hb = await b.fit({ x: data.x, y: oneHot }, { epochs: 2 });
    expect(sameBits(a.parameters, b.parameters)).toBe(true);
    expect(hb.map((r) => r.trainLoss)).toEqual(ha.map((r) => r.trainLoss));
  });

  it("gives per-sample losses (reduction 'none') equal to a one-shard computation, 0 for ignored rows", async () => {
    const data = mnistSubset(23);
    const y = Int32Array.from(data.y);
    y[5] = -100;
    const o: TrainerOptions = { layers: [784, 8, 10], labelSmoothing: 0.1, workers: 2, batchSize: 8 };
    const t = trainer(o);
    const losses = await t.losses({ x: data.x, y });
    const ref = oneShard(o, t.parameters, data.x, y, 0, 23);
    expect(losses.length).toBe(23);
    expect(losses[5]).toBe(0);
    expect(maxAbsDiff(losses, ref.losses)).toBeLessThan(1e-6);
    const ev = await t.evaluate({ x: data.x, y });
    expect(ev.loss).toBeCloseTo(ref.lossSum / ref.weightSum, 5);
    expect(ev.confusion?.flat().reduce((a, b) => a + b, 0)).toBe(22); // the ignored row is not scored
  });
});

describe('class weights and the per-class report', () => {
  it("derives scikit-learn's balanced weights n / (K * count)", () => {
    // 6 labels over 3 classes: counts 3, 2, 1
    expect(balancedClassWeights([0, 0, 0, 1, 1, 2], 3)).toEqual([6 / 9, 6 / 6, 6 / 3]);
    expect(() => balancedClassWeights([0, 0, 2], 3)).toThrow('balanced class weights need every class in the training labels; class 1 of 3 has none');
  });

  it('reports precision, recall, F1 and support per class from a confusion matrix, worked by hand', () => {
    // true 0: 3 predicted 0, 1 predicted 1; true 1: 2 predicted 1; true 2: 1 predicted 0, 1 predicted 2
    const r = classReport([[[3, 1, 0], [0, 2, 0], [1, 0, 1]]]);
    expect(r.classes[0]).toEqual({ precision: 3 / 4, recall: 3 / 4, f1: 3 / 4, support: 4 });
    expect(r.classes[1]).toEqual({ precision: 2 / 3, recall: 1, f1: 0.8, support: 2 });
    expect(r.classes[2]).toEqual({ precision: 1, recall: 0.5, f1: 2 / 3, support: 2 });
    expect(r.macro.recall).toBeCloseTo((0.75 + 1 + 0.5) / 3, 12);
    expect(r.weighted.recall).toBeCloseTo((0.75 * 4 + 2 + 0.5 * 2) / 8, 12);
  });

  it('reports each output of a multi-label model by its positive class', async () => {
    const t = trainer({ layers: [2, 2], loss: 'bce-with-logits', workers: 1 });
    const ev = await t.evaluate({ x: [[1, 0], [0, 1], [1, 1]], y: [[1, 0], [0, 1], [1, 1]] });
    expect(ev.confusion).toBeNull();
    expect(ev.report.classes).toHaveLength(2);
    expect(ev.report.classes.map((c) => c.support)).toEqual([2, 2]);
  });
});

describe('schedules and clipping', () => {
  const data = mnistSubset(40);

  it('steps the schedule after every optimizer step, each step using scheduleAt(t)', async () => {
    const schedule: ScheduleSpec = { name: 'sequential', schedulers: [{ name: 'linear', startFactor: 0.1, totalIters: 3 }, { name: 'cosine', tMax: 7 }], milestones: [3] };
    const t = trainer({ layers: [784, 6, 10], lr: 0.2, batchSize: 8, workers: 2, schedule, scheduleInterval: 'step' });
    const lrs: number[] = [];
    await t.fit(data, { epochs: 2, onStep: (s) => lrs.push(s.lr) });
    expect(lrs).toHaveLength(10);
    expect(lrs).toEqual(lrs.map((_, i) => scheduleAt(schedule, 0.2, i).lr));
    expect(lrs[0]).toBeCloseTo(0.02, 12);
  });

  it('steps the schedule after every epoch when asked, as PyTorch examples do', async () => {
    const schedule: ScheduleSpec = { name: 'step', stepSize: 1, gamma: 0.5 };
    const t = trainer({ layers: [784, 6, 10], lr: 0.2, batchSize: 8, workers: 2, schedule, scheduleInterval: 'epoch' });
    const lrs: number[] = [];
    const history = await t.fit(data, { epochs: 3, onStep: (s) => lrs.push(s.lr) });
    expect(history.map((r) => r.lr)).toEqual([0.2, 0.1, 0.05]);
    expect(new Set(lrs.slice(0, 5))).toEqual(new Set([0.2]));
  });

  it('clips the averaged gradient to the global norm as clip_grad_norm_, reporting the norm before', async () => {
    const o: TrainerOptions = { layers: [784, 6, 10], lr: 0.5, batchSize: 40, workers: 2, shuffle: false, clipGradNorm: 0.01 };
    const t = trainer(o);
    const before = new Float32Array(t.parameters);
    const ref = oneShard(o, before, data.x, data.y, 0, 40);
    const g = Array.from(ref.grad, (v) => v / 40);
    const norm = Math.sqrt(g.reduce((s, v) => s + v * v, 0));
    const steps: StepInfo[] = [];
    await t.fit(data, { onStep: (s) => steps.push(s) });
    expect(steps[0].gradNorm).toBeCloseTo(norm, 5);
    const coef = 0.01 / (norm + 1e-6);
    const d = maxAbsDiff(t.parameters, before.map((p, i) => p - 0.5 * g[i] * coef));
    expect(d, `max |diff| ${d}`).toBeLessThan(1e-6);
  });
});

describe('resume', () => {
  it('ends bit-identical to an uninterrupted run: momentum, nesterov, weight decay, a per-step schedule, clipping', async () => {
    const data = mnistSubset(96);
    const o: TrainerOptions = {
      layers: [784, 16, 10], lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-4, batchSize: 20, seed: 3, workers: 2,
      labelSmoothing: 0.05, clipGradNorm: 1, schedule: { name: 'cosine', tMax: 20, etaMin: 0.001 }, scheduleInterval: 'step',
    };
    const whole = trainer(o);
    const wholeHistory = await whole.fit(data, { epochs: 4 });

    const first = trainer(o);
    await first.fit(data, { epochs: 2 });
    await first.save(join(dir, 'half.safetensors'));
    const resumed = await Trainer.load(join(dir, 'half.safetensors'), { workers: 1 });
    keep(resumed);
    expect(resumed.progress).toEqual({ epoch: 2, step: 10, batch: 0 });
    const rest = await resumed.fit(data, { epochs: 2 });

    expect(sameBits(resumed.parameters, whole.parameters), `max |diff| ${maxAbsDiff(resumed.parameters, whole.parameters)}`).toBe(true);
    expect(rest.map((r) => [r.epoch, r.trainLoss, r.lr])).toEqual(wholeHistory.slice(2).map((r) => [r.epoch, r.trainLoss, r.lr]));
  });

  it('keeps the options of the saved run, but the worker count', async () => {
    const t = trainer({ layers: [784, 4, 10], lr: 0.2, momentum: 0.5, focalGamma: 1, loss: 'softmax-focal', workers: 2, shards: 3 });
    await t.save(join(dir, 'opts.safetensors'));
    const u = await Trainer.load(join(dir, 'opts.safetensors'), { workers: 1 });
    keep(u);
    expect(u.options).toMatchObject({ lr: 0.2, momentum: 0.5, focalGamma: 1, loss: 'softmax-focal', shards: 3, workers: 1 });
  });
});
