// Adam and AdamW inside fit(): the same bits for any worker count (fixed shards), with AMSGrad, clipping
// and a OneCycle schedule cycling betas[0], and through worker failures; a run saved and loaded
// (moments, AMSGrad's maximum and the step count in the checkpoint) continues bit for bit as if never
// stopped; and a checkpoint's Adam state is refused when it does not fit the options.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../src/main/checkpoint/file.js';
import { RESERVED_KEYS } from '../src/main/checkpoint/metadata.js';
import { Trainer, type StepInfo, type TrainerOptions } from '../src/main/index.js';
import type { Fault } from '../src/shared/faults.js';
import { mnistSubset, sameBits, trainers } from './helpers.js';

const { make, keep } = trainers();
const data = mnistSubset(200);
const STEPS_PER_EPOCH = 4; // 200 rows in batches of 50
let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradpool-adam-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const OPTIONS: TrainerOptions = {
  layers: [784, 16, 10], optimizer: 'adamw', amsgrad: true, lr: 3e-3, batchSize: 50, shards: 4, clipGradNorm: 0.5,
  schedule: { name: 'onecycle', maxLr: 1e-2, totalSteps: 3 * STEPS_PER_EPOCH }, scheduleInterval: 'step',
};

async function train(o: TrainerOptions, epochs: number): Promise<{ params: Float32Array; losses: number[] }> {
  const t = make(o);
  const losses: number[] = [];
  await t.fit(data, { epochs, onStep: (s: StepInfo) => void losses.push(s.loss) });
  return { params: t.parameters.slice(), losses };
}

describe.each(['js', 'wasm'] as const)('Adam in fit() with the %s kernels', (kernels) => {
  it('gives the same bits on 1, 2 and 3 workers', async () => {
    const runs = await Promise.all([1, 2, 3].map((workers) => train({ ...OPTIONS, kernels, workers }, 2)));
    for (const r of runs.slice(1)) {
      expect(sameBits(r.params, runs[0].params)).toBe(true);
      expect(r.losses).toEqual(runs[0].losses);
    }
  });

  it('continues a saved run bit for bit: moments, their maximum and the step count are in the checkpoint', async () => {
    const o = { ...OPTIONS, kernels, workers: 2 };
    const whole = await train(o, 3);
    const first = make(o);
    const losses: number[] = [];
    const onStep = (s: StepInfo): void => void losses.push(s.loss);
    await first.fit(data, { epochs: 1, onStep });
    const path = join(dir, `adam-${kernels}.safetensors`);
    await first.save(path);
    const ckpt = await loadCheckpoint(path);
    expect(JSON.parse(ckpt.metadata['gradpool.state']).adamStep).toBe(STEPS_PER_EPOCH);
    for (const name of ['optimizer.exp_avg', 'optimizer.exp_avg_sq', 'optimizer.max_exp_avg_sq']) {
      expect(ckpt.tensors[name]?.length).toBe(first.parameters.length);
    }
    const resumed = keep(await Trainer.load(path, { workers: 3 }));
    await resumed.fit(data, { epochs: 2, onStep });
    expect(losses).toEqual(whole.losses);
    expect(sameBits(resumed.parameters, whole.params)).toBe(true);
  });
});

describe('Adam under worker failures', () => {
  it("re-runs the steps of workers that fail while writing their share of the next moments, with the same bits", async () => {
    const o = { ...OPTIONS, kernels: 'wasm' as const, workers: 2 };
    const want = await train(o, 2);
    // Steps are numbered from 1 over the run (a re-run is a new number): faults before, inside and after
    // a worker's share of the update, once in each of four steps.
    const faults: Fault[] = [
      { kind: 'throw', phase: 'update', generation: 2, worker: 1 },
      { kind: 'exit', phase: 'updated', generation: 4, worker: 0 },
      { kind: 'throw', phase: 'updated', generation: 6, worker: 1 },
      { kind: 'exit', phase: 'update', generation: 8, worker: 0 },
    ];
    process.env.GRADPOOL_FAULTS = JSON.stringify(faults);
    try {
      const t = make(o);
      await t.fit(data, { epochs: 2 });
      expect(t.recoveredFailures).toBe(4);
      expect(sameBits(t.parameters, want.params)).toBe(true);
    } finally {
      delete process.env.GRADPOOL_FAULTS;
    }
  }, 60_000);
});

describe('Adam state in a checkpoint', () => {
  it('is refused when a tensor is missing', async () => {
    const t = make({ layers: [784, 8, 10], optimizer: 'adam', batchSize: 50, workers: 1 });
    await t.fit(data, { epochs: 1 });
    const path = join(dir, 'no-moments.safetensors');
    await t.save(path);
    // Re-save the same checkpoint without its second moment, through the library's own writer.
    const ckpt = await loadCheckpoint(path);
    const { ['optimizer.exp_avg_sq']: _, ...rest } = ckpt.tensors;
    const meta = Object.fromEntries(Object.entries(ckpt.metadata).filter(([k]) => !RESERVED_KEYS.includes(k)));
    await saveCheckpoint(path, ckpt.config, ckpt.params, meta, rest);
    await expect(Trainer.load(path, { workers: 1 })).rejects.toThrow(
      /tensor 'optimizer\.exp_avg_sq' is missing or not 6370 floats, but the state says Adam took 4 steps/);
  });
});
