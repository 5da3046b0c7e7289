// Trainer.fit() with Adam and AdamW against PyTorch: one epoch from the same initial weights on the same
// batches, in fixtures written by scripts/reference/make_adam_fixtures.py with torch 1.13 and with torch
// 2.13. gradpool computes the first moment as 2.x's lerp_ does and takes correctly rounded square roots;
// 1.13's mul_/add_ first moment and 2.13's CPU sqrt (which is not always correctly rounded) each leave
// float32 ulps of difference, so the tolerance applies: losses within 1e-5 relative, weights 1e-5.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { StepInfo, TrainerOptions } from '../src/main/index.js';
import { maxAbsDiff, trainers } from './helpers.js';

const { make } = trainers();

interface AdamCase {
  name: string;
  optimizer: 'adam' | 'adamw';
  options: Partial<TrainerOptions>;
  maxLr: number | null;
  clip: number | null;
  losses: number[];
  params: number[];
  step: number;
}
interface Fixture {
  torch: string;
  layers: number[];
  batchSize: number;
  x: number[];
  y: number[];
  initial: number[];
  cases: AdamCase[];
}

const TOL = { loss: 1e-5, params: 1e-5 };

function load(version: string): Fixture {
  return JSON.parse(readFileSync(new URL(`./fixtures/torch-adam-${version}.json`, import.meta.url), 'utf8')) as Fixture;
}

/** The largest of |a - b| / |b| over the two lists. */
function maxRelDiff(a: number[], b: number[]): number {
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]) / Math.abs(b[i])));
}

describe.each(['1.13', '2.13'])('Adam and AdamW match torch %s over an epoch', (version) => {
  const f = load(version);
  it.each(f.cases.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const steps = f.y.length / f.batchSize;
    const t = make({
      layers: f.layers, optimizer: c.optimizer, ...c.options, batchSize: f.batchSize, shuffle: false, workers: 2, shards: 2,
      clipGradNorm: c.clip,
      ...(c.maxLr === null ? {} : { schedule: { name: 'onecycle', maxLr: c.maxLr, totalSteps: steps }, scheduleInterval: 'step' }),
    });
    t.parameters.set(f.initial);
    const losses: number[] = [];
    await t.fit({ x: Float32Array.from(f.x), y: Int32Array.from(f.y) }, { epochs: 1, onStep: (s: StepInfo) => void losses.push(s.loss) });
    expect(losses.length).toBe(c.losses.length);
    const lossDiff = maxRelDiff(losses, c.losses);
    const weightDiff = maxAbsDiff(t.parameters, c.params);
    expect(lossDiff, `per-step losses: max relative diff ${lossDiff}`).toBeLessThan(TOL.loss);
    expect(weightDiff, `final weights: max |diff| ${weightDiff}`).toBeLessThan(TOL.params);
    // The weights moved well beyond the tolerance, so the comparison is of the steps taken.
    expect(maxAbsDiff(t.parameters, f.initial)).toBeGreaterThan(100 * TOL.params);
  });
});
