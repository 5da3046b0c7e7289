// ReduceLROnPlateau: plateauStep against torch's own scheduler fed the same metric sequences (1.13 and 2.x,
// recorded by scripts/reference/make_plateau_fixtures.py into test/fixtures/torch-plateau.json), state for
// state; in fit(), against torch's rule written out as a loop over the epochs' metrics; its state through
// save() and load() bit-identically; and the options refused, with messages naming them.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { noisy, sameBits, trainers } from './helpers.js';
import { loadCheckpoint, pytorchScript, Trainer, type EpochRecord, type TrainerOptions } from '../src/main/index.js';
import { plateauStart, plateauStep, type PlateauSchedule, type PlateauState } from '../src/shared/plateau.js';
import { validateSchedule } from '../src/shared/schedule.js';
import { STATE_KEY } from '../src/main/checkpoint/metadata.js';
import type { Monitor } from '../src/shared/monitor.js';

type Num = number | 'nan' | 'inf' | '-inf';
interface PlateauCase {
  name: string;
  monitor: Monitor;
  spec: Omit<PlateauSchedule, 'name' | 'monitor'>;
  lr: number;
  metrics: Num[];
  states: { lr: number; best: Num; numBadEpochs: number; cooldownCounter: number; lastEpoch: number }[];
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/torch-plateau.json', import.meta.url), 'utf8')) as Record<string, PlateauCase[]>;
const num = (v: Num): number => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v);

describe.each(Object.keys(fixture))('ReduceLROnPlateau against torch %s', (version) => {
  it.each(fixture[version].map((c) => [c.name, c] as const))('%s: every step leaves the state torch has', (_n, c) => {
    const spec: PlateauSchedule = { name: 'plateau', monitor: c.monitor, ...c.spec };
    validateSchedule(spec);
    let s: PlateauState = plateauStart(c.lr);
    c.metrics.forEach((m, i) => {
      s = plateauStep(spec, s, num(m));
      const want = c.states[i];
      // torch's mode_worse (inf or -inf) is gradpool's null.
      const wantBest = typeof want.best === 'string' && want.best.endsWith('inf') ? null : num(want.best);
      expect({ ...s }, `after step ${i + 1} (metric ${m})`).toEqual({ ...want, best: wantBest });
      expect(Object.is(s.lr, want.lr), `lr after step ${i + 1}: ${s.lr} vs torch ${want.lr}`).toBe(true);
    });
  });

  it('the fixtures reduce the rate, hit minLr, and leave it alone under eps and in cooldown', () => {
    const byName = new Map(fixture[version].map((c) => [c.name, c]));
    const lrs = (n: string): number[] => (byName.get(n) as PlateauCase).states.map((s) => s.lr);
    expect(new Set(lrs('defaults')).size).toBeGreaterThan(2);
    expect(Math.min(...lrs('minLr'))).toBe(0.004);
    expect(Math.min(...lrs('eps stops small reductions'))).toBeGreaterThan(0.01);
    expect(Math.max(...(byName.get('cooldown') as PlateauCase).states.map((s) => s.cooldownCounter))).toBe(3);
  });
});

describe('plateau options', () => {
  const bad: [string, PlateauSchedule, RegExp][] = [
    ['factor 1', { name: 'plateau', factor: 1 }, /options\.schedule\.factor must be >= 0 and < 1 .*got 1/],
    ['negative patience', { name: 'plateau', patience: -1 }, /options\.schedule\.patience must be an integer >= 0; got -1/],
    ['fractional cooldown', { name: 'plateau', cooldown: 1.5 }, /options\.schedule\.cooldown must be an integer >= 0; got 1.5/],
    ['thresholdMode', { name: 'plateau', thresholdMode: 'relative' as 'rel' }, /options\.schedule\.thresholdMode must be 'rel' or 'abs'; got "relative"/],
    ['negative minLr', { name: 'plateau', minLr: -1 }, /options\.schedule\.minLr must be >= 0; got -1/],
    ['NaN eps', { name: 'plateau', eps: NaN }, /options\.schedule\.eps must be a finite number; got NaN/],
    ['monitor', { name: 'plateau', monitor: 'loss' as Monitor }, /options\.schedule\.monitor must be one of 'valLoss'.*got "loss"/],
    ['string patience', { name: 'plateau', patience: '3' as unknown as number }, /options\.schedule\.patience must be a finite number; got "3" \(a string\)/],
    ['mode against monitor', { name: 'plateau', monitor: 'valAccuracy', mode: 'min' }, /options\.schedule\.mode 'min' disagrees with monitor 'valAccuracy'.*mode 'max'/],
    ['unknown option', { name: 'plateau', min_lr: 0 } as PlateauSchedule, /options\.schedule\.min_lr is not a ReduceLROnPlateau option/],
  ];
  it.each(bad)('refuses %s, naming it', (_n, spec, message) => {
    expect(() => validateSchedule(spec, 'options.schedule')).toThrow(message);
  });

  it('refuses plateau inside sequential, as SequentialLR does', () => {
    expect(() => validateSchedule({
      name: 'sequential', schedulers: [{ name: 'linear' }, { name: 'plateau' }], milestones: [3],
    })).toThrow(/schedulers\[1\] cannot be 'plateau': SequentialLR does not support ReduceLROnPlateau/);
  });

  it('refuses a per-step schedule interval', () => {
    expect(() => new Trainer({ layers: [2, 2], schedule: { name: 'plateau' }, scheduleInterval: 'step', workers: 1 }))
      .toThrow(/options\.scheduleInterval must be 'epoch' with schedule 'plateau'/);
  });
});

const { make, keep } = trainers();
const train = noisy(64, 1);
const validation = noisy(100, 2);
const schedule: PlateauSchedule = { name: 'plateau', patience: 1, factor: 0.5, threshold: 0.01, cooldown: 1 };
const options: TrainerOptions = { layers: [6, 16, 2], lr: 0.3, momentum: 0.9, batchSize: 8, workers: 1, seed: 3, schedule };

/** torch's step rule written out for min mode, rel threshold: the lr in force after each epoch's metric. */
function torchRule(values: number[], lr: number, o: { patience: number; factor: number; threshold: number; cooldown: number }): number[] {
  let best = Infinity;
  let bad = 0;
  let cool = 0;
  return values.map((v) => {
    if (v < best * (1 - o.threshold)) {
      best = v;
      bad = 0;
    } else {
      bad += 1;
    }
    if (cool > 0) {
      cool -= 1;
      bad = 0;
    }
    if (bad > o.patience) {
      const next = Math.max(lr * o.factor, 0);
      if (lr - next > 1e-8) lr = next;
      cool = o.cooldown;
      bad = 0;
    }
    return lr;
  });
}

describe('ReduceLROnPlateau in fit()', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('each epoch trains at the rate torch sets after the previous epoch\'s validation loss', async () => {
    const lrs: number[] = [];
    const history = await make(options).fit(train, { epochs: 12, validation, onEpoch: (r: EpochRecord) => void lrs.push(r.lr) });
    const after = torchRule(history.map((r) => r.valLoss as number), 0.3, { patience: 1, factor: 0.5, threshold: 0.01, cooldown: 1 });
    // Epoch 1 runs at the initial rate; epoch e + 1 at the rate after epoch e's metric.
    expect(lrs).toEqual([0.3, ...after.slice(0, -1)]);
    expect(new Set(lrs).size, 'the run reduces the rate at least twice').toBeGreaterThanOrEqual(3);
  });

  it('a run saved after 5 epochs and loaded trains on as the uninterrupted run, to the bit, with the same state', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradpool-plateau-'));
    dirs.push(dir);
    const whole = make(options);
    const wholeHistory = await whole.fit(train, { epochs: 11, validation });
    await whole.save(join(dir, 'whole.safetensors'));

    const first = make(options);
    await first.fit(train, { epochs: 5, validation });
    await first.save(join(dir, 'half.safetensors'));
    const second = keep(await Trainer.load(join(dir, 'half.safetensors')));
    const rest = await second.fit(train, { epochs: 6, validation });
    await second.save(join(dir, 'resumed.safetensors'));

    expect(rest.map((r) => [r.lr, r.valLoss])).toEqual(wholeHistory.slice(5).map((r) => [r.lr, r.valLoss]));
    expect(sameBits(second.parameters, whole.parameters)).toBe(true);
    const state = async (f: string): Promise<unknown> => JSON.parse((await loadCheckpoint(join(dir, f))).metadata[STATE_KEY]).plateau;
    const want = await state('whole.safetensors');
    expect(want).toMatchObject({ lastEpoch: 11 });
    expect(await state('resumed.safetensors')).toEqual(want);
    expect(new Set(wholeHistory.map((r) => r.lr)).size, 'the rate changes within the run').toBeGreaterThanOrEqual(3);
  });

  it('a run interrupted mid-epoch after the rate was reduced, saved and loaded, ends with the uninterrupted run\'s bits', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradpool-plateau-'));
    dirs.push(dir);
    const whole = make(options);
    const wholeHistory = await whole.fit(train, { epochs: 9, validation });
    const reducedBy = wholeHistory.findIndex((r) => r.lr < 0.3) + 1; // the first epoch run at a reduced rate
    expect(reducedBy).toBeGreaterThan(1);
    const abort = new AbortController();
    const first = make(options);
    // 8 batches per epoch: stop at the third batch of that epoch.
    const at = (reducedBy - 1) * 8 + 3;
    await expect(first.fit(train, {
      epochs: 9, validation, stepsPerExecution: 1, signal: abort.signal,
      onStep: (s) => { if (s.step === at) abort.abort(new Error('stop')); },
    })).rejects.toThrow('stop');
    expect(first.progress).toMatchObject({ step: at, batch: 3 });
    await first.save(join(dir, 'mid.safetensors'));
    const second = keep(await Trainer.load(join(dir, 'mid.safetensors')));
    const rest = await second.fit(train, { epochs: 9 - (reducedBy - 1), validation });
    expect(rest.map((r) => r.lr)).toEqual(wholeHistory.slice(reducedBy - 1).map((r) => r.lr));
    expect(sameBits(second.parameters, whole.parameters)).toBe(true);
  });

  it('a run that ends with an error at the last step of the epoch whose validation loss reduces the rate steps on it when resumed, bit for bit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradpool-plateau-'));
    dirs.push(dir);
    const whole = make(options);
    const wholeHistory = await whole.fit(train, { epochs: 9, validation });
    const cut = wholeHistory.findIndex((r) => r.lr < 0.3) - 1; // 0-based: the epoch whose metric first reduced the rate
    const first = make(options);
    // A throw in onStep at the epoch's last step ends fit() with the epoch counted but not validated.
    await expect(first.fit(train, {
      epochs: 9, validation, onStep: (s) => { if (s.step === (cut + 1) * 8) throw new Error('stop'); },
    })).rejects.toThrow('stop');
    expect(first.progress).toMatchObject({ epoch: cut + 1, batch: 0 });
    await first.save(join(dir, 'end.safetensors'));
    const second = keep(await Trainer.load(join(dir, 'end.safetensors')));
    const rest = await second.fit(train, { epochs: 9 - (cut + 1), validation });
    expect(rest.map((r) => r.lr)).toEqual(wholeHistory.slice(cut + 1).map((r) => r.lr));
    expect(sameBits(second.parameters, whole.parameters)).toBe(true);
  });

  it('is refused by the PyTorch script export, which has no validation metric to step it on', async () => {
    const t = make(options);
    expect(() => pytorchScript({
      checkpoint: 'm.safetensors', config: t.config, options: t.options, preprocessing: null, data: { format: 'idx', images: 'i', labels: 'l' }, epochs: 3,
    })).toThrow(/schedule 'plateau' cannot be exported as a PyTorch script/);
  });

  it('monitoring the validation loss without validation data is refused before training', async () => {
    const t = make(options);
    await expect(t.fit(train, { epochs: 1 })).rejects.toThrow(/options\.schedule\.monitor 'valLoss' needs validation data/);
    expect(t.progress.step).toBe(0);
  });

  it('monitoring the training loss needs no validation data, and steps on it', async () => {
    const o = { ...options, schedule: { ...schedule, monitor: 'trainLoss' as const } };
    const lrs: number[] = [];
    const history = await make(o).fit(train, { epochs: 10, onEpoch: (r) => void lrs.push(r.lr) });
    const after = torchRule(history.map((r) => r.trainLoss), 0.3, { patience: 1, factor: 0.5, threshold: 0.01, cooldown: 1 });
    expect(lrs).toEqual([0.3, ...after.slice(0, -1)]);
  });
});
