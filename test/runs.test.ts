// Runs of steps: the workers take many optimizer steps per command on their own (fit's stepsPerExecution),
// and the Trainer reports them after the fact. Against runs of one step as the reference: the same bits
// and the same reports for any run length; a stop (an abort, a throw in onStep, a non-finite step) that
// lands in the middle of a run ends it after the step the workers are on, with every step taken recorded,
// so that a save and a resume give the bits of an uninterrupted run.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GradpoolError, NonfiniteError, Trainer, type StepInfo, type TrainerOptions } from '../src/main/index.js';
import { Rng } from '../src/shared/rng.js';
import { sameBits, trainers } from './helpers.js';

const { make, keep } = trainers();
const dir = mkdtempSync(join(tmpdir(), 'gradpool-runs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** n rows of 12 features in 3 classes. */
function dataset(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 12);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let d = 0; d < 12; d++) x[i * 12 + d] = rng.uniform(1) + (d % 3 === y[i] ? 1 : 0);
  }
  return { x, y };
}

// Short epochs (8 steps) for the bit comparisons; a long one (4096 steps of 4 rows, one run) so that a
// stop lands while the run is still going.
const small = dataset(256, 11);
const long = dataset(16384, 12);
const base: TrainerOptions = { layers: [12, 16, 3], batchSize: 32, shards: 4, lr: 0.1, momentum: 0.9, seed: 3, workers: 2 };
const longBase: TrainerOptions = { ...base, batchSize: 4, lr: 0.02 };

/** The long epoch one step per run, trained once for the tests that stop it (4,096 round trips to the
 *  workers: seconds on a busy machine). */
let longReference: Promise<{ params: Float32Array; steps: StepInfo[] }> | undefined;
const referenceOfLong = () => (longReference ??= reference(longBase, long, 1));

/** What onStep reported, without the timings (which differ run to run). */
function reported(steps: StepInfo[]): unknown[] {
  return steps.map(({ timing: _, ...s }) => s);
}

/** Trains `epochs` epochs of `data` one step per run: the reference. */
async function reference(o: TrainerOptions, data: { x: Float32Array; y: Int32Array }, epochs: number): Promise<{ params: Float32Array; steps: StepInfo[] }> {
  const t = make(o);
  const steps: StepInfo[] = [];
  await t.fit(data, { epochs, stepsPerExecution: 1, onStep: (s) => steps.push(s) });
  return { params: t.parameters.slice(), steps };
}

describe('runs of steps', () => {
  it('gives the bits and the step reports of one step per run, for runs of 3 steps and of whole epochs', async () => {
    const want = await reference(base, small, 3);
    for (const stepsPerExecution of [3, 'auto'] as const) {
      const t = make(base);
      const steps: StepInfo[] = [];
      await t.fit(small, { epochs: 3, stepsPerExecution, onStep: (s) => steps.push(s) });
      expect(sameBits(t.parameters, want.params), `stepsPerExecution ${stepsPerExecution}`).toBe(true);
      expect(reported(steps)).toEqual(reported(want.steps));
    }
  });

  it('gives the bits of one step per run with a per-step schedule, clipping and class weights', async () => {
    const o: TrainerOptions = {
      ...base, schedule: { name: 'onecycle', maxLr: 0.2, totalSteps: 24 }, scheduleInterval: 'step', clipGradNorm: 0.5,
      weight: [1, 2, 0.5], nesterov: true,
    };
    const want = await reference(o, small, 3);
    const t = make(o);
    const steps: StepInfo[] = [];
    await t.fit(small, { epochs: 3, onStep: (s) => steps.push(s) });
    expect(sameBits(t.parameters, want.params)).toBe(true);
    expect(reported(steps)).toEqual(reported(want.steps));
    expect(new Set(steps.map((s) => s.lr)).size).toBeGreaterThan(10);
  });

  it('reports every step of a run in order, each with its own timing', async () => {
    const t = make(base);
    const steps: StepInfo[] = [];
    await t.fit(small, { epochs: 2, onStep: (s) => steps.push(s) });
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(steps.map((s) => s.batch)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    for (const s of steps) {
      expect(s.timing.stepMs).toBeGreaterThan(0);
      expect(s.timing.computeMs).toBeLessThanOrEqual(s.timing.stepMs);
    }
  });

  it('stops a run after the step the workers are on when the signal aborts, recording every step taken; a resume gives the same bits', async () => {
    const want = await referenceOfLong();
    const t = make(longBase);
    const stop = new AbortController();
    const reason = new Error('stop here');
    let calls = 0;
    const err = await t.fit(long, {
      signal: stop.signal,
      onStep: (s) => {
        calls++;
        if (s.step === 5) stop.abort(reason);
      },
    }).then(() => null, (e: unknown) => e);
    expect(err).toBe(reason);
    const p = t.progress;
    // The stop landed inside the epoch's one run, and every step the workers took was reported.
    expect(p.epoch).toBe(0);
    expect(p.batch).toBeGreaterThanOrEqual(5);
    expect(p.batch).toBeLessThan(4096);
    expect(p.step).toBe(p.batch);
    expect(calls).toBe(p.step);
    const path = join(dir, 'aborted.safetensors');
    await t.save(path);
    const resumed = keep(await Trainer.load(path, { workers: 1 }));
    expect(resumed.progress).toEqual(p);
    await resumed.fit(long);
    expect(resumed.progress).toEqual({ epoch: 1, step: 4096, batch: 0 });
    expect(sameBits(resumed.parameters, want.params)).toBe(true);
  });

  it('ends fit() with what onStep threw, after the step the workers are on, every step taken recorded', async () => {
    const want = await referenceOfLong();
    const t = make(longBase);
    const thrown = new Error('from onStep');
    let calls = 0;
    const err = await t.fit(long, {
      onStep: (s) => {
        calls++;
        if (s.step === 5) throw thrown;
      },
    }).then(() => null, (e: unknown) => e);
    expect(err).toBe(thrown);
    expect(calls).toBe(5);
    expect(t.progress.batch).toBeGreaterThanOrEqual(5);
    expect(t.progress.batch).toBeLessThan(4096);
    const path = join(dir, 'thrown.safetensors');
    await t.save(path);
    const resumed = keep(await Trainer.load(path));
    await resumed.fit(long);
    expect(sameBits(resumed.parameters, want.params)).toBe(true);
  });

  it('refuses trainer.parameters and save() from onStep while a run goes on, saying what to do instead', async () => {
    // Each from a fresh Trainer, so that the run is the whole epoch's 8 steps.
    const first = make(base);
    await expect(first.fit(small, { onStep: () => first.parameters })).rejects.toThrow(GradpoolError);
    const reading = make(base);
    await expect(reading.fit(small, { onStep: () => reading.parameters })).rejects.toThrow(
      /^trainer\.parameters was read while the workers run several steps on their own \(from onStep\): the parameters are in motion\nhint: read them in onEpoch or after fit\(\), or give fit\(\) stepsPerExecution: 1/,
    );
    const saver = make(base);
    let saving: Promise<void> | undefined;
    await saver.fit(small, {
      onStep: () => {
        saving ??= saver.save(join(dir, 'never.safetensors'));
        saving.catch(() => undefined); // looked at below, after fit()
      },
    });
    await expect(saving).rejects.toThrow(/^save\(\) was called while the workers run several steps on their own/);
    // between epochs and with one step per run they are still
    const still = make(base);
    await still.fit(small, { onEpoch: () => void still.parameters, stepsPerExecution: 1, onStep: () => void still.parameters });
  });

  it('ends a run at a non-finite step with nothing of it applied: the parameters of the step before', async () => {
    const wild: TrainerOptions = { ...base, lr: 1e18, momentum: 0 };
    const t = make(wild);
    const err = await t.fit(small, { epochs: 2 }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(NonfiniteError);
    const bad = (err as NonfiniteError).step;
    expect(t.progress.step).toBe(bad - 1);
    // the reference: the same run, stopped after the step before, one step at a time
    const r = make(wild);
    const stop = new AbortController();
    await r.fit(small, { epochs: 2, stepsPerExecution: 1, signal: stop.signal, onStep: (s) => s.step === bad - 1 && stop.abort() }).catch(() => undefined);
    expect(r.progress.step).toBe(bad - 1);
    expect(sameBits(t.parameters, r.parameters)).toBe(true);
  });

  it('refuses a stepsPerExecution that is not an integer from 1 to 4096 or auto', async () => {
    const t = make(base);
    await expect(t.fit(small, { stepsPerExecution: 0 })).rejects.toThrow('fit options.stepsPerExecution must be an integer from 1 to 4096; got 0');
    await expect(t.fit(small, { stepsPerExecution: 5000 })).rejects.toThrow('fit options.stepsPerExecution must be an integer from 1 to 4096; got 5000');
    await expect(t.fit(small, { stepsPerExecution: 'all' as unknown as number })).rejects.toThrow('fit options.stepsPerExecution must be an integer from 1 to 4096; got "all"');
  });
});
