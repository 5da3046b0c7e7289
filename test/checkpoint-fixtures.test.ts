// Checkpoints written by an earlier build (test/fixtures/checkpoints/, by main at the commit in its
// manifest.json, scripts/reference/make_checkpoint_fixtures.sh): a user's files must go on loading,
// evaluating and resuming whatever the code becomes. The metadata keys are pinned here; the evaluation
// is the accuracy that build printed; the resume for one epoch is that build's uninterrupted run to one
// epoch more (within 1e-6: the arithmetic of the kernels may change, the run's state must not).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateMain } from '../src/cli/evaluate.js';
import {
  CONFIG_KEY, MOMENTUM_TENSOR, OPTIONS_KEY, PREPROCESSING_KEY, RUN_KEY, STATE_KEY,
} from '../src/main/checkpoint/metadata.js';
import { loadCheckpoint, loadCsv, Trainer } from '../src/main/index.js';
import { maxAbsDiff, runCli, runCommand, trainers } from './helpers.js';

const FIXTURES = 'test/fixtures/checkpoints';
const manifest = JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as {
  commit: string; runs: { name: string; epochs: number; flags: string; printed: string }[];
};
const dir = mkdtempSync(join(tmpdir(), 'gradpool-fixtures-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { keep } = trainers();

/** Every __metadata__ key a checkpoint of the training script holds, as the fixtures' build wrote them. */
const METADATA_KEYS = [
  'config', 'format', 'gradpool.header-sha256', 'gradpool.options', 'gradpool.preprocessing', 'gradpool.run', 'gradpool.sha256',
  'gradpool.state', 'gradpool.version',
];
const STATE_FIELDS = ['batch', 'epoch', 'epochNonfinite', 'epochSkipped', 'epochSums', 'hasMomentumBuffer', 'schedulerSteps', 'step'];

/** Options added since the fixtures' build, with the value an old run continues with. */
const OPTIONS_ADDED_SINCE = { optimizer: 'sgd' };

/** The header of a safetensors file, read here from the format's definition. */
function header(path: string): Record<string, unknown> & { __metadata__: Record<string, string> } {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  return JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
}

describe(`checkpoints written by main at ${manifest.commit}`, () => {
  it('hold the metadata keys and tensors the code reads, under the names it exports', () => {
    expect([CONFIG_KEY, OPTIONS_KEY, STATE_KEY, PREPROCESSING_KEY, RUN_KEY, MOMENTUM_TENSOR])
      .toEqual(['config', 'gradpool.options', 'gradpool.state', 'gradpool.preprocessing', 'gradpool.run', 'optimizer.momentum_buffer']);
    for (const { name } of manifest.runs) {
      const h = header(join(FIXTURES, `${name}.safetensors`));
      expect(Object.keys(h.__metadata__).sort(), name).toEqual(METADATA_KEYS);
      expect(Object.keys(JSON.parse(h.__metadata__['gradpool.state'])).sort(), name).toEqual(STATE_FIELDS);
      expect(Object.keys(h).filter((k) => k !== '__metadata__'), name)
        .toEqual(['layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias', 'optimizer.momentum_buffer']);
    }
  });

  it('load with their options, training state and preprocessing', async () => {
    const iris = keep(await Trainer.load(join(FIXTURES, 'iris-momentum-steplr.safetensors'), { workers: 1 }));
    expect(iris.progress).toEqual({ epoch: 3, step: 21, batch: 0 });
    expect([iris.options.momentum, iris.options.scheduleInterval, iris.options.schedule]).toEqual([0.9, 'epoch', { name: 'step', stepSize: 2, gamma: 0.5 }]);
    expect(iris.preprocessing?.classNames).toEqual(['setosa', 'versicolor', 'virginica']);
    expect(iris.preprocessing?.featureNames).toEqual(['sepal_length', 'sepal_width', 'petal_length', 'petal_width']);
    expect(iris.preprocessing?.normalize?.mode).toBe('standardize');
    const bce = keep(await Trainer.load(join(FIXTURES, 'multilabel-bce.safetensors'), { workers: 1 }));
    expect([bce.options.loss, bce.options.nesterov, bce.options.weightDecay, bce.options.clipGradNorm]).toEqual(['bce-with-logits', true, 0.01, 1]);
    expect(bce.preprocessing?.labelNames).toEqual(['a', 'b']);
    expect(bce.progress).toEqual({ epoch: 2, step: 12, batch: 0 });
  });

  it('predict what their tensors and recorded normalisation give by hand (sigmoid outputs)', async () => {
    const path = join(FIXTURES, 'multilabel-bce.safetensors');
    const h = header(path);
    const bytes = readFileSync(path);
    const data = bytes.subarray(8 + Number(bytes.readBigUInt64LE(0)));
    const tensor = (name: string): Float32Array => {
      const [b, e] = (h[name] as { data_offsets: [number, number] }).data_offsets;
      return new Float32Array(data.buffer.slice(data.byteOffset + b, data.byteOffset + e));
    };
    const [w0, b0, w1, b1] = ['layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias'].map(tensor);
    const { offset, scale } = JSON.parse(h.__metadata__['gradpool.preprocessing']).normalize as { offset: number[]; scale: number[] };
    const csv = await loadCsv(join(FIXTURES, 'multilabel.csv'), { labelColumns: ['a', 'b'] });
    const want: number[] = [];
    for (let r = 0; r < csv.rows; r++) {
      const x = [0, 1, 2].map((j) => Math.fround((csv.x[r * 3 + j] - offset[j]) * scale[j]));
      const hidden = Array.from({ length: 6 }, (_, i) => Math.max(0, b0[i] + x.reduce((s, v, j) => s + w0[i * 3 + j] * v, 0)));
      for (let k = 0; k < 2; k++) want.push(1 / (1 + Math.exp(-(b1[k] + hidden.reduce((s, v, i) => s + w1[k * 6 + i] * v, 0)))));
    }
    const t = keep(await Trainer.load(path, { workers: 1 }));
    const got = await t.predict(csv.x);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-6);
  });

  it('evaluate to the test accuracy their build printed (gradpool evaluate)', async () => {
    const printed = (name: string): string => /test accuracy (\d+\.\d\d)%/.exec(manifest.runs.find((r) => r.name === name)?.printed ?? '')?.[1] ?? 'none';
    const iris = await runCommand(evaluateMain, [join(FIXTURES, 'iris-momentum-steplr.safetensors'), '--test', 'examples/iris/iris-test.csv', '--workers', '1']);
    expect(iris.err).toBe('');
    expect(iris.out).toMatch(new RegExp(`accuracy ${printed('iris-momentum-steplr').replace('.', '\\.')}%\\n$`));
    const mnist = await runCommand(evaluateMain, [join(FIXTURES, 'mnist-784-8-10.safetensors'), '--data', 'mnist', '--workers', '1']);
    expect(mnist.err).toBe('');
    expect(mnist.out).toMatch(new RegExp(`accuracy ${printed('mnist-784-8-10').replace('.', '\\.')}%\\n$`));
  });

  for (const run of manifest.runs) {
    it(`resume for one epoch as their build's uninterrupted run (${run.name})`, async () => {
      const out = join(dir, `${run.name}.safetensors`);
      const r = await runCli(['--resume', join(FIXTURES, `${run.name}.safetensors`), '--epochs', '1', '--out', out, '--workers', '1', '--no-progress']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const [got, want] = await Promise.all([loadCheckpoint(out), loadCheckpoint(join(FIXTURES, `${run.name}-next.safetensors`))]);
      const state = (c: typeof got): unknown => {
        const { epoch, step, schedulerSteps, batch } = JSON.parse(c.metadata[STATE_KEY]);
        return { epoch, step, schedulerSteps, batch };
      };
      expect(state(got)).toEqual(state(want));
      // Every option the old build recorded is kept as it was; an option added since is recorded at the
      // value that gives the old behaviour.
      const gotOptions = JSON.parse(got.metadata[OPTIONS_KEY]);
      const wantOptions = JSON.parse(want.metadata[OPTIONS_KEY]);
      expect(gotOptions).toEqual({ ...wantOptions, ...OPTIONS_ADDED_SINCE });
      const params = maxAbsDiff(got.params, want.params);
      const momentum = maxAbsDiff(got.tensors[MOMENTUM_TENSOR], want.tensors[MOMENTUM_TENSOR]);
      expect(params, `parameters: max |diff| ${params}`).toBeLessThan(1e-6);
      expect(momentum, `momentum: max |diff| ${momentum}`).toBeLessThan(1e-6);
    });
  }
});
