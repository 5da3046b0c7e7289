// The model's input pipeline travels with it: a Trainer given a preprocessing normalises raw features
// exactly as the data normalised by hand in the test (so training on raw data with it is bit-identical
// to training on data normalised beforehand), save() records it, load() and loadParameters() restore
// it, and predictClasses() answers in the recorded class names. Files without it load as before.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sameBits, trainers } from './helpers.js';
import {
  CheckpointError, DataError, fitPreprocessing, loadCheckpoint, OptionRangeError, OptionTypeError, PREPROCESSING_KEY,
  saveCheckpoint, Trainer, type LoadedData, type TrainerOptions,
} from '../src/main/index.js';
import { Rng } from '../src/shared/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-preprocessing-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { make, keep } = trainers();

/** Three classes over three features of very different scales (as raw tabular data has). */
function tabular(n: number, seed: number): LoadedData {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 3);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.uniform(1);
    const b = rng.uniform(1);
    x[i * 3] = 1000 + 500 * a;
    x[i * 3 + 1] = 0.001 * b;
    x[i * 3 + 2] = -40 + 3 * rng.uniform(1);
    y[i] = a + b > 1 ? 2 : a > b ? 1 : 0;
  }
  return {
    x, y, rows: n, features: 3, targetColumns: 1, rowName: (r) => `row ${r}`,
    featureNames: ['mass', 'ratio', 'temp'], labelNames: ['kind'], classNames: ['ash', 'birch', 'cedar'],
  };
}

/** Mean and population std per feature, in doubles, written here from the formula. */
function stats(d: LoadedData): { mean: number[]; std: number[] } {
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < d.features; c++) {
    let s = 0;
    for (let r = 0; r < d.rows; r++) s += d.x[r * d.features + c];
    const m = s / d.rows;
    let q = 0;
    for (let r = 0; r < d.rows; r++) q += (d.x[r * d.features + c] - m) ** 2;
    mean.push(m);
    std.push(Math.sqrt(q / d.rows));
  }
  return { mean, std };
}

/** x normalised by hand: (fround(x) - fround(mean)) * fround(1 / std), rounded to float32. */
function normalisedByHand(d: LoadedData): Float32Array {
  const { mean, std } = stats(d);
  const out = new Float32Array(d.x.length);
  for (let i = 0; i < d.x.length; i++) {
    const c = i % d.features;
    out[i] = (Math.fround(d.x[i]) - Math.fround(mean[c])) * Math.fround(1 / std[c]);
  }
  return out;
}

const base: TrainerOptions = { layers: [3, 8, 3], lr: 0.1, momentum: 0.9, batchSize: 16, workers: 1, seed: 3 };

describe('a Trainer with a preprocessing', () => {
  const train = tabular(240, 1);
  const test = tabular(90, 2);

  it('fits the standardize statistics of the training split, as the formula gives them', () => {
    const p = fitPreprocessing(train, 'standardize');
    const { mean, std } = stats(train);
    expect(Array.from(p.normalize?.offset ?? [])).toEqual(mean.map(Math.fround));
    expect(Array.from(p.normalize?.scale ?? [])).toEqual(std.map((s) => Math.fround(1 / s)));
    expect(p.featureNames).toEqual(['mass', 'ratio', 'temp']);
    expect(p.classNames).toEqual(['ash', 'birch', 'cedar']);
    expect(fitPreprocessing(train, 'none').normalize).toBeNull();
  });

  it('trains on raw data bit-identically to a Trainer without one on data normalised by hand', async () => {
    const withP = make({ ...base, preprocessing: fitPreprocessing(train, 'standardize') });
    const without = make(base);
    await withP.fit(train, { epochs: 2 });
    await without.fit({ x: normalisedByHand(train), y: train.y }, { epochs: 2 });
    expect(sameBits(withP.parameters, without.parameters)).toBe(true);
    // Other data is normalised by the training statistics, which the model records.
    const { mean, std } = stats(train);
    const byTrain = test.x.map((v, i) => (Math.fround(v) - Math.fround(mean[i % 3])) * Math.fround(1 / std[i % 3]));
    expect(sameBits(await withP.predict(test.x), await without.predict(byTrain))).toBe(true);
    const e1 = await withP.evaluate(test);
    const e2 = await without.evaluate({ x: byTrain, y: test.y });
    expect(e1.loss).toBe(e2.loss);
    expect(e1.accuracy).toBe(e2.accuracy);
    expect(sameBits(await withP.losses(test), await without.losses({ x: byTrain, y: test.y }))).toBe(true);
  });

  it('is recorded by save() and restored by load(): the reloaded model predicts the same from raw features', async () => {
    const t = make({ ...base, preprocessing: fitPreprocessing(train, 'standardize') });
    await t.fit(train, { epochs: 2 });
    const path = join(dir, 'model.safetensors');
    await t.save(path);
    const recorded = JSON.parse((await loadCheckpoint(path)).metadata[PREPROCESSING_KEY]);
    const { mean, std } = stats(train);
    expect(recorded.normalize.mode).toBe('standardize');
    expect(recorded.normalize.offset).toEqual(mean.map(Math.fround));
    expect(recorded.normalize.scale).toEqual(std.map((s) => Math.fround(1 / s)));
    expect(recorded.classNames).toEqual(['ash', 'birch', 'cedar']);
    expect(recorded.labelNames).toEqual(['kind']);
    const back = keep(await Trainer.load(path, { workers: 1 }));
    expect(back.preprocessing).toEqual(t.preprocessing);
    expect(sameBits(await back.predict(test.x), await t.predict(test.x))).toBe(true);
    expect((await back.evaluate(test)).accuracy).toBe((await t.evaluate(test)).accuracy);
  });

  it('answers predictClasses() in the recorded class names, the argmax of predict()', async () => {
    const t = make({ ...base, preprocessing: fitPreprocessing(train, 'standardize') });
    await t.fit(train, { epochs: 3 });
    const p = await t.predict(test.x);
    const names = ['ash', 'birch', 'cedar'];
    const want = Array.from({ length: test.rows }, (_, r) => {
      const row = Array.from(p.subarray(r * 3, r * 3 + 3));
      return names[row.indexOf(Math.max(...row))];
    });
    expect(await t.predictClasses(test.x)).toEqual(want);
    const plain = make({ ...base, preprocessing: { normalize: fitPreprocessing(train, 'standardize').normalize } });
    await plain.fit(train, { epochs: 3 });
    expect(await plain.predictClasses(test.x)).toEqual(want.map((n) => String(names.indexOf(n))));
  });

  it('predicts class 1 for one sigmoid output at a probability of at least 0.5, and refuses several outputs', async () => {
    const y = Float32Array.from(train.y, (v) => (v === 2 ? 1 : 0));
    const t = make({ layers: [3, 1], lr: 0.5, workers: 1, preprocessing: { ...fitPreprocessing(train, 'standardize'), classNames: ['no', 'yes'] } });
    await t.fit({ x: train.x, y }, { epochs: 3 });
    const p = await t.predict(test.x);
    expect(await t.predictClasses(test.x)).toEqual(Array.from(p, (v) => (v >= 0.5 ? 'yes' : 'no')));
    const multi = make({ layers: [3, 2], loss: 'bce-with-logits', workers: 1 });
    await expect(multi.predictClasses(test.x)).rejects.toThrow(/predicts 2 independent labels.*use predict\(\)/s);
  });

  it('refuses loaded data whose feature columns differ from the recorded ones, naming them', async () => {
    const t = make({ ...base, preprocessing: fitPreprocessing(train, 'standardize') });
    const swapped = { ...test, featureNames: ['ratio', 'mass', 'temp'] };
    await expect(t.evaluate(swapped)).rejects.toThrow(DataError);
    await expect(t.evaluate(swapped)).rejects.toThrow(
      /evaluation data has the feature columns 'ratio', 'mass', 'temp', but the model was trained on 'mass', 'ratio', 'temp'; the same columns in another order/);
    await expect(t.fit({ ...train, featureNames: ['mass', 'ratio', 'pressure'] })).rejects.toThrow(/missing: 'temp'/);
  });

  it('names the row and column of a value that normalises beyond float32', async () => {
    const t = make({ ...base, preprocessing: { normalize: { mode: 'standardize', offset: [0, 0, 0], scale: [1, 1e30, 1] } } });
    const x = new Float32Array([1, 0, 1, 1, 1e10, 1]);
    await expect(t.predict(x)).rejects.toThrow(/predict input: x row 1, column 1 is 10000000000, which normalises to Infinity/);
  });

  it('takes the preprocessing of the checkpoint given to loadParameters(), and keeps its own for a file without one', async () => {
    const a = make({ ...base, preprocessing: fitPreprocessing(train, 'standardize') });
    const path = join(dir, 'a.safetensors');
    await a.save(path);
    const b = make(base);
    expect(b.preprocessing).toBeNull();
    await b.loadParameters(path);
    expect(b.preprocessing).toEqual(a.preprocessing);
    expect(sameBits(await b.predict(test.x), await a.predict(test.x))).toBe(true);
    const bare = join(dir, 'bare.safetensors');
    await make(base).save(bare);
    await b.loadParameters(bare);
    expect(b.preprocessing).toEqual(a.preprocessing);
  });
});

describe('files and options', () => {
  const train = tabular(60, 4);

  it('loads a checkpoint without a recorded preprocessing (as earlier versions wrote) with none, features as given', async () => {
    const t = make(base);
    const path = join(dir, 'old.safetensors');
    await t.save(path);
    const ckpt = await loadCheckpoint(path);
    expect(ckpt.metadata[PREPROCESSING_KEY]).toBeUndefined();
    const back = keep(await Trainer.load(path, { workers: 1 }));
    expect(back.preprocessing).toBeNull();
    expect(sameBits(await back.predict(train.x), await t.predict(train.x))).toBe(true);
  });

  it("Trainer.load(path, { preprocessing }) uses the given preprocessing over the recorded one, and over a file's none", async () => {
    // Statistics of another split, so the two preprocessings normalise differently.
    const other = tabular(60, 9);
    const given = { ...fitPreprocessing(other, 'scale'), classNames: ['x', 'y', 'z'] };
    // (x - min) / (max - min) per feature, by hand, of the given split's range
    const byHand = new Float32Array(train.x.length);
    for (let c = 0; c < 3; c++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let r = 0; r < other.rows; r++) {
        lo = Math.min(lo, other.x[r * 3 + c]);
        hi = Math.max(hi, other.x[r * 3 + c]);
      }
      for (let r = 0; r < train.rows; r++) byHand[r * 3 + c] = (Math.fround(train.x[r * 3 + c]) - Math.fround(lo)) * Math.fround(1 / (hi - lo));
    }
    const recorded = make({ ...base, preprocessing: fitPreprocessing(train, 'standardize') });
    const none = make(base);
    const plain = make(base); // the same initial weights (same seed), fed the data normalised by hand
    for (const [name, t] of [['recorded', recorded], ['none', none]] as const) {
      const path = join(dir, `override-${name}.safetensors`);
      await t.save(path);
      const back = keep(await Trainer.load(path, { workers: 1, preprocessing: given }));
      expect(back.preprocessing?.classNames, name).toEqual(['x', 'y', 'z']);
      expect(back.preprocessing?.normalize?.mode, name).toBe('scale');
      expect(sameBits(await back.predict(train.x), await plain.predict(byHand)), `${name}: predictions from the given preprocessing`).toBe(true);
      // without the option, the file's own: recorded statistics, or none (raw features)
      const own = keep(await Trainer.load(path, { workers: 1 }));
      expect(own.preprocessing, name).toEqual(t.preprocessing);
    }
  });

  it('refuses a recorded preprocessing that does not fit the model, naming the file and the field', async () => {
    const t = make({ ...base, preprocessing: fitPreprocessing(train, 'standardize') });
    const path = join(dir, 'edited.safetensors');
    await t.save(path);
    const ckpt = await loadCheckpoint(path);
    const write = async (text: string): Promise<void> => {
      const { 'gradpool.sha256': _, 'gradpool.header-sha256': _h, format: _f, 'gradpool.version': _v, config: _c, ...rest } = ckpt.metadata;
      await saveCheckpoint(path, ckpt.config, ckpt.params, { ...rest, [PREPROCESSING_KEY]: text });
    };
    await write('{"normalize":{"mode":"standardize","offset":[1,2],"scale":[1,1,1]}}');
    await expect(Trainer.load(path)).rejects.toThrow(CheckpointError);
    await expect(Trainer.load(path)).rejects.toThrow(/edited\.safetensors.*normalize\.offset must be 3 finite float32 numbers.*got 2 values/);
    await write('{"normalize":null');
    await expect(Trainer.load(path)).rejects.toThrow(/metadata "gradpool.preprocessing" is not valid JSON/);
  });

  it.each([
    [{ normalize: { mode: 'standardize', offset: [0, 0, 0], scale: [1, 0, 1] } }, OptionRangeError, /options\.preprocessing\.normalize\.scale\[1\] is 0; .* other than 0/],
    [{ normalize: { mode: 'standardize', offset: [0, NaN, 0], scale: [1, 1, 1] } }, OptionRangeError, /normalize\.offset\[1\] is NaN/],
    [{ normalize: { mode: 'standardize', offset: [0, 1e39, 0], scale: [1, 1, 1] } }, OptionRangeError, /normalize\.offset\[1\] is 1e\+39/],
    [{ normalize: { mode: 'zscore', offset: [0, 0, 0], scale: [1, 1, 1] } }, OptionRangeError, /normalize\.mode must be one of 'none', 'scale', 'standardize'/],
    [{ featureNames: ['a', 'b'] }, OptionRangeError, /featureNames must name 3, one per input feature \(layers\[0\]\); got 2 names/],
    [{ classNames: ['a', 'b'] }, OptionRangeError, /classNames must name 3, one per output \(the model has 3\); got 2 names/],
    [{ classNames: ['a', 'b', 'a'] }, OptionRangeError, /classNames names class "a" twice/],
    [{ classNames: [1, 2, 3] }, OptionTypeError, /classNames must be an array of strings/],
    [{ mean: [0, 0, 0] }, OptionTypeError, /options\.preprocessing\.mean is not a preprocessing field/],
    ['standardize', OptionTypeError, /options\.preprocessing must be an object/],
  ])('refuses preprocessing %j', (preprocessing, type, message) => {
    expect(() => new Trainer({ ...base, preprocessing: preprocessing as never })).toThrow(type);
    expect(() => new Trainer({ ...base, preprocessing: preprocessing as never })).toThrow(message);
  });

  it('refuses class names for independent sigmoid outputs', () => {
    expect(() => new Trainer({ layers: [3, 2], loss: 'bce-with-logits', preprocessing: { classNames: ['a', 'b'] } }))
      .toThrow(/classNames is for one class per row; loss 'bce-with-logits' with 2 outputs predicts 2 independent labels/);
  });
});
