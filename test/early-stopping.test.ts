// Early stopping as Keras' EarlyStopping defines it: stop after the epoch at which the monitored metric
// has gone `patience` epochs without improving on the best by more than minDelta. The epoch fit() stops
// at is worked out here by a loop over the metric's values from an uninterrupted run, and the early
// stopped run must be that run cut at that epoch (early stopping does not change the training).

import { describe, expect, it } from 'vitest';
import { noisy, sameBits, trainers } from './helpers.js';
import { OptionRangeError, OptionTypeError, type EpochRecord, type TrainerOptions } from '../src/main/index.js';

const { make } = trainers();

/** The epoch Keras' rule stops at (1-based), or null: a loop over the metric per epoch. */
function kerasStop(values: number[], lower: boolean, patience: number, minDelta: number): { stop: number | null; best: number } {
  let best = lower ? Infinity : -Infinity;
  let bestEpoch = 0;
  let wait = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (lower ? v < best - minDelta : v > best + minDelta) {
      best = v;
      bestEpoch = i + 1;
      wait = 0;
    } else if (++wait >= patience) { // keras/callbacks/early_stopping.py: `if self.wait >= self.patience`
      return { stop: i + 1, best: bestEpoch };
    }
  }
  return { stop: null, best: bestEpoch };
}

const options: TrainerOptions = { layers: [6, 32, 2], lr: 0.3, momentum: 0.9, batchSize: 8, workers: 1, seed: 5 };
const train = noisy(64, 1);
const validation = noisy(200, 2);

describe('early stopping', () => {
  it.each([
    ['valLoss', 2, 0],
    ['valLoss', 0, 0.06],
    ['valAccuracy', 1, 0],
    ['trainLoss', 1, 0.03],
  ] as const)('monitoring %s with patience %i and minDelta %f stops where the rule says, with the uninterrupted run\'s history', async (monitor, patience, minDelta) => {
    const whole = await make(options).fit(train, { epochs: 25, validation });
    const values = whole.map((r) => r[monitor] as number);
    const want = kerasStop(values, monitor.endsWith('Loss'), patience, minDelta);
    expect(want.stop).not.toBeNull(); // the data is made to overfit: the rule fires within 25 epochs
    // A minDelta given here changes where the rule stops on this run, so it is tested, not ignored.
    if (minDelta > 0) expect(kerasStop(values, monitor.endsWith('Loss'), patience, 0).stop).not.toBe(want.stop);
    const t = make(options);
    const history = await t.fit(train, { epochs: 25, validation, earlyStopping: { monitor, patience, minDelta } });
    expect(history.length).toBe(want.stop);
    const strip = (r: EpochRecord): unknown => ({ ...r, samplesPerSec: 0, seconds: 0, stopReason: undefined });
    expect(history.map(strip)).toEqual(whole.slice(0, want.stop as number).map(strip));
    expect(history.at(-1)?.stopReason).toMatch(
      new RegExp(`^early stopping: ${monitor} did not improve.* for ${Math.max(patience, 1)} epochs? \\(best .* at epoch ${want.best}\\)$`));
    expect(history.slice(0, -1).every((r) => r.stopReason === undefined)).toBe(true);
    expect(t.progress.epoch).toBe(want.stop);
  });

  it('restores the best epoch\'s parameters with restoreBestWeights, and keeps the last ones without', async () => {
    const seen = new Map<number, Float32Array>();
    const t = make(options);
    const history = await t.fit(train, {
      epochs: 25, validation, earlyStopping: { patience: 2, restoreBestWeights: true },
      onEpoch: (r) => void (r.stopReason === undefined && seen.set(r.epoch, t.parameters.slice())),
    });
    const want = kerasStop(history.map((r) => r.valLoss as number), true, 2, 0);
    expect(history.at(-1)?.stopReason).toMatch(new RegExp(`parameters restored from epoch ${want.best}$`));
    expect(want.best).toBeLessThan(history.length);
    expect(sameBits(t.parameters, seen.get(want.best) as Float32Array)).toBe(true);

    const last = new Map<number, Float32Array>();
    const u = make(options);
    const h2 = await u.fit(train, { epochs: 25, validation, earlyStopping: { patience: 2 }, onEpoch: (r) => void last.set(r.epoch, u.parameters.slice()) });
    expect(sameBits(u.parameters, last.get(h2.length) as Float32Array)).toBe(true);
    expect(sameBits(u.parameters, seen.get(want.best) as Float32Array)).toBe(false);
  });

  it('ends fit() cleanly when onEpoch returns false, resolving with the history so far', async () => {
    const t = make(options);
    const history = await t.fit(train, { epochs: 10, onEpoch: async (r) => r.epoch < 3 });
    expect(history.map((r) => r.epoch)).toEqual([1, 2, 3]);
    expect(history[2].stopReason).toBe('stopped by onEpoch after epoch 3');
    expect(t.progress.epoch).toBe(3);
  });

  it.each([
    [{ monitor: 'valLoss' }, false, OptionRangeError, /fit options\.earlyStopping\.monitor 'valLoss' needs validation data/],
    [{ monitor: 'loss' }, true, OptionRangeError, /fit options\.earlyStopping\.monitor must be one of 'valLoss', 'valAccuracy', 'trainLoss', 'trainAccuracy'/],
    [{ patience: -1 }, true, OptionRangeError, /fit options\.earlyStopping\.patience must be a non-negative integer; got -1/],
    [{ minDelta: NaN }, true, OptionRangeError, /fit options\.earlyStopping\.minDelta must be a finite number >= 0; got NaN/],
    [{ restoreBest: true }, true, OptionTypeError, /fit options\.earlyStopping\.restoreBest is not an early stopping option; the options are: monitor, patience, minDelta, restoreBestWeights/],
    [3, true, OptionTypeError, /fit options\.earlyStopping must be an object/],
  ])('refuses earlyStopping %j before any work', async (spec, withValidation, type, message) => {
    const t = make(options);
    const p = t.fit(train, { epochs: 2, validation: withValidation ? validation : undefined, earlyStopping: spec as never });
    await expect(p).rejects.toThrow(type);
    await expect(t.fit(train, { validation: withValidation ? validation : undefined, earlyStopping: spec as never })).rejects.toThrow(message);
    expect(t.progress.step).toBe(0);
  });

  it('prints one line per epoch with verbose, the figures of the history, silent without', async () => {
    const lines: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((t: string) => (lines.push(t), true)) as typeof process.stdout.write;
    let history: EpochRecord[];
    try {
      history = await make(options).fit(train, { epochs: 3, validation, verbose: true });
      await make(options).fit(train, { epochs: 1 });
    } finally {
      process.stdout.write = write;
    }
    expect(lines).toHaveLength(3);
    history.forEach((r, i) => {
      expect(lines[i]).toMatch(new RegExp(`^epoch ${i + 1}/3: train loss ${r.trainLoss.toFixed(4)}, train accuracy ${(100 * r.trainAccuracy).toFixed(2)}%, ` +
        `validation loss ${(r.valLoss as number).toFixed(4)}, validation accuracy ${(100 * (r.valAccuracy as number)).toFixed(2)}%, lr 0.3, .*; elapsed [0-9.]+ s${i < 2 ? ', ETA [0-9.]+ s' : ''}\n$`));
    });
    await expect(make(options).fit(train, { verbose: 1 as never })).rejects.toThrow(/fit options\.verbose must be a boolean; got 1/);
  });
});
