// The ONNX export run in onnxruntime-node: the same probabilities as trainer.predict() on raw features
// (within 1e-5) for each activation, softmax and sigmoid outputs and logistic regression, with the
// recorded normalisation as the graph's first nodes; and `gradpool export --onnx` from a checkpoint.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { exportMain } from '../src/cli/export.js';
import { encodeOnnx, type TrainerOptions } from '../src/main/index.js';
import { maxAbsDiff, runCommand, trainers } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-onnx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { make } = trainers();

const D = 5;
const N = 40;
/** Seeded raw features far from 0 and 1, so a missing normalisation shows. */
const X = Float32Array.from({ length: N * D }, (_, i) => 10 * Math.sin(1.7 * i + 0.3) + 3 * (i % D));
const NORMALIZE = {
  mode: 'standardize' as const,
  offset: Array.from({ length: D }, (_, d) => 3 * d),
  scale: Array.from({ length: D }, (_, d) => 1 / (5 + d)),
};

/** The Trainer trained a little (so the weights are not the initial ones), its predictions, and ORT's. */
async function both(options: TrainerOptions, y: ArrayLike<number> | number[][]): Promise<{ ours: Float32Array; theirs: Float32Array; path: string }> {
  const t = make({ workers: 1, lr: 0.1, momentum: 0.9, batchSize: 8, preprocessing: { normalize: NORMALIZE }, ...options });
  await t.fit({ x: X, y } as never, { epochs: 2 });
  const path = join(dir, `${options.activation ?? 'relu'}-${options.layers.join('-')}-${options.loss ?? 'default'}.onnx`);
  await t.exportOnnx(path);
  const session = await ort.InferenceSession.create(path);
  const r = await session.run({ input: new ort.Tensor('float32', X, [N, D]) });
  return { ours: await t.predict(X), theirs: r.probabilities.data as Float32Array, path };
}

const classes = Int32Array.from({ length: N }, (_, i) => (i * 7) % 3);
const labels = (K: number): number[][] => Array.from({ length: N }, (_, i) => Array.from({ length: K }, (_, k) => ((i >> k) & 1)));

describe('ONNX export, run in onnxruntime-node', () => {
  for (const activation of ['relu', 'tanh', 'sigmoid'] as const) {
    it(`gives trainer.predict's softmax probabilities for a ${activation} MLP`, async () => {
      const { ours, theirs } = await both({ layers: [D, 6, 4, 3], activation }, classes);
      expect(theirs).toHaveLength(N * 3);
      const diff = maxAbsDiff(ours, theirs);
      expect(diff, `max |diff| ${diff}`).toBeLessThan(1e-5);
    });
  }

  it("gives trainer.predict's sigmoid probabilities for multi-label outputs (bce-with-logits)", async () => {
    const { ours, theirs } = await both({ layers: [D, 6, 3], loss: 'bce-with-logits' }, labels(3));
    const diff = maxAbsDiff(ours, theirs);
    expect(diff, `max |diff| ${diff}`).toBeLessThan(1e-5);
  });

  it("gives trainer.predict's probability for logistic regression (layers [D, 1])", async () => {
    const { ours, theirs, path } = await both({ layers: [D, 1] }, labels(1).map((r) => r[0]));
    expect(theirs).toHaveLength(N);
    const diff = maxAbsDiff(ours, theirs);
    expect(diff, `max |diff| ${diff}`).toBeLessThan(1e-5);
    const model = onnxProto.onnx.ModelProto.decode(readFileSync(path));
    expect(model.graph?.node?.map((n) => n.opType)).toEqual(['Sub', 'Mul', 'Gemm', 'Sigmoid']);
  });

  it('starts the graph with the recorded normalisation (Sub offset, Mul scale), with a named input and outputs', async () => {
    const { path } = await both({ layers: [D, 4, 3] }, classes);
    const model = onnxProto.onnx.ModelProto.decode(readFileSync(path));
    const g = model.graph as onnxProto.onnx.GraphProto;
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    expect(g.node.map((n) => n.opType)).toEqual(['Sub', 'Mul', 'Gemm', 'Relu', 'Gemm', 'Softmax']);
    expect(g.node[0].input).toEqual(['input', 'normalize.offset']);
    expect(g.node[1].input).toEqual([(g.node[0].output as string[])[0], 'normalize.scale']);
    const init = (name: string): number[] => {
      const t = g.initializer.find((i) => i.name === name) as onnxProto.onnx.TensorProto;
      return Array.from(new Float32Array(Uint8Array.from(t.rawData).buffer));
    };
    expect(init('normalize.offset')).toEqual(NORMALIZE.offset.map(Math.fround));
    expect(init('normalize.scale')).toEqual(NORMALIZE.scale.map(Math.fround));
    expect(g.input.map((i) => i.name)).toEqual(['input']);
    expect(g.output.map((o) => o.name)).toEqual(['probabilities', 'logits']);
  });

  it('has no normalisation nodes for a model without one', async () => {
    const t = make({ layers: [D, 3], workers: 1 });
    await t.exportOnnx(join(dir, 'plain.onnx'));
    const model = onnxProto.onnx.ModelProto.decode(readFileSync(join(dir, 'plain.onnx')));
    expect(model.graph?.node?.map((n) => n.opType)).toEqual(['Gemm', 'Softmax']);
    const session = await ort.InferenceSession.create(join(dir, 'plain.onnx'));
    const r = await session.run({ input: new ort.Tensor('float32', X, [N, D]) });
    expect(maxAbsDiff(await t.predict(X), r.probabilities.data as Float32Array)).toBeLessThan(1e-5);
  });

  it('refuses a model too large for one ONNX file (2 GiB), naming its size', () => {
    const config = { layers: [100_000, 6_000, 10], activation: 'relu' as const, loss: 'cross-entropy' as const };
    expect(() => encodeOnnx({ config, params: new Float32Array(1), preprocessing: null })).toThrow(
      "the model's 600066010 parameters need 2400264040 bytes; one ONNX file holds at most 2 GiB (a protobuf message's limit)",
    );
  });

  it('`gradpool export ckpt --onnx` writes the checkpoint\'s model, predicting as the Trainer did', async () => {
    const t = make({ layers: [D, 4, 3], workers: 1, preprocessing: { normalize: NORMALIZE, classNames: ['a', 'b', 'c'] } });
    const ckpt = join(dir, 'model.safetensors');
    await t.save(ckpt);
    const onnx = join(dir, 'cli.onnx');
    const r = await runCommand(exportMain, [ckpt, '--onnx', onnx]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe(`wrote ${onnx}: ONNX opset 17 (IR version 8), input 'input' (N, ${D}) raw features (normalised in the graph: standardize, ` +
      `statistics recorded in ${ckpt}), outputs 'probabilities' (N, 3, softmax) and 'logits'\n`);
    const session = await ort.InferenceSession.create(onnx);
    const out = await session.run({ input: new ort.Tensor('float32', X, [N, D]) });
    expect(maxAbsDiff(await t.predict(X), out.probabilities.data as Float32Array)).toBeLessThan(1e-5);
    const model = onnxProto.onnx.ModelProto.decode(readFileSync(onnx));
    expect(model.metadataProps.find((p) => p.key === 'classNames')?.value).toBe('["a","b","c"]');
  });

  it('`gradpool export` refuses a file that is not a gradpool checkpoint, and an export of nothing', async () => {
    const junk = join(dir, 'junk.safetensors');
    writeFileSync(junk, 'not a checkpoint');
    const r = await runCommand(exportMain, [junk, '--onnx', join(dir, 'junk.onnx')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool export: .*junk\.safetensors: header length is/);
    const none = await runCommand(exportMain, [junk]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/^gradpool export: nothing to export: give --onnx/);
  });
});

describe("the README's ONNX serving example", () => {
  it('is examples/serve-onnx.mjs, which runs in plain Node on an exported 784-input model', async () => {
    const readme = readFileSync('README.md', 'utf8');
    const example = readFileSync('examples/serve-onnx.mjs', 'utf8');
    expect(readme).toContain('```js\n' + example + '```');
    const t = make({ layers: [784, 4, 10], workers: 1 });
    const work = mkdtempSync(join(dir, 'serve-'));
    await t.exportOnnx(join(work, 'model.onnx'));
    const r = spawnSync(process.execPath, [resolve('examples/serve-onnx.mjs')], { cwd: work, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const [dims, values] = JSON.parse(`[${r.stdout.trim().replace(/\] \[/, '],[')}]`.replace(/ /g, '')) as [number[], number[]];
    expect(dims).toEqual([2, 10]);
    expect(maxAbsDiff(values, await t.predict(new Float32Array(2 * 784).fill(0.5)))).toBeLessThan(1e-5);
  });
});
