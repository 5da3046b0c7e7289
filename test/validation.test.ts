// Every bad option and every bad shape or value in the data gets its own message, naming the option or
// the row and what was expected, before any training work is done. Includes the seed tutorial's bug:
// binary cross-entropy on a 10-output network with labels of shape (64, 1).

import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, DataError, type TrainerOptions } from '../src/main/index.js';
import { setMemoryLimit, typedArrayLimit } from '../src/main/data/memory.js';
import { expectedAutoKernels } from './fma.js';

// One row more per shard than the running V8's longest Float32Array holds at 784 inputs (2^32 elements on
// Node 20, 2^51 - 1 on Node 22+), in 4 shards: the sizes worked out from the limit, not from one Node's.
const F32_LIMIT = typedArrayLimit(4);
const HUGE_ROWS = Math.floor(F32_LIMIT / 784) + 1;
const HUGE_BYTES = HUGE_ROWS * 784 * 4; // 17.2 GB on Node 20, 9.0 PB on Node 22+
const HUGE_TEXT = HUGE_BYTES < 1e12 ? `${(HUGE_BYTES / 1e9).toFixed(1)} GB` : `${(HUGE_BYTES / 1e15).toFixed(1)} PB`;

const open: Trainer[] = [];
afterAll(async () => {
  await Promise.all(open.map((t) => t.close()));
});

function make(o: TrainerOptions): Trainer {
  const t = new Trainer(o);
  open.push(t);
  return t;
}

describe('options', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['missing layers', {}, /options\.layers must be an array of at least two positive integers.*got undefined/],
    ['one layer', { layers: [784] }, /options\.layers must be an array of at least two positive integers.*got \[784\]/],
    ['a fractional width', { layers: [784, 12.5, 10] }, /options\.layers .*got \[784,12\.5,10\]/],
    ['an unknown activation', { layers: [4, 2], activation: 'gelu' }, /options\.activation must be one of 'relu', 'tanh', 'sigmoid'; got "gelu"/],
    ['an unknown loss', { layers: [4, 2], loss: 'mse' }, /options\.loss must be one of 'cross-entropy', 'bce-with-logits', 'bce', 'sigmoid-focal', 'softmax-focal'; got "mse"/],
    ['an unknown reduction', { layers: [4, 2], reduction: 'none' }, /options\.reduction must be one of 'mean', 'sum'; got "none"/],
    ['a zero batch size', { layers: [4, 2], batchSize: 0 }, /options\.batchSize must be a positive integer; got 0/],
    ['fractional workers', { layers: [4, 2], workers: 1.5 }, /options\.workers must be a positive integer; got 1\.5/],
    ['zero shards', { layers: [4, 2], shards: 0 }, /options\.shards must be a positive integer; got 0/],
    ['a negative seed', { layers: [4, 2], seed: -1 }, /options\.seed must be an integer from 0 to 4294967295; got -1/],
    ['a string shuffle', { layers: [4, 2], shuffle: 'yes' }, /options\.shuffle must be a boolean; got "yes"/],
    ['a negative lr', { layers: [4, 2], lr: -0.1 }, /Invalid learning rate: options\.lr must be >= 0; got -0\.1/],
    ['a NaN lr', { layers: [4, 2], lr: NaN }, /options\.lr must be a finite number; got NaN/],
    ['negative momentum', { layers: [4, 2], momentum: -0.5 }, /Invalid momentum value: options\.momentum must be >= 0; got -0\.5/],
    ['nesterov without momentum', { layers: [4, 2], nesterov: true }, /Nesterov momentum requires a momentum and zero dampening; got momentum 0, dampening 0/],
    ['a misspelt option', { layers: [4, 2], learningRate: 0.1 }, /options\.learningRate is not a Trainer option; the options are: layers, .*lr/],
    ['cross-entropy on one output', { layers: [4, 1], loss: 'cross-entropy' }, /options\.loss 'cross-entropy' needs at least 2 outputs; layers ends in 1\nhint: .*bce-with-logits/],
    ['class weights of the wrong length', { layers: [4, 3], weight: [1, 2] }, /options\.weight must be 3 finite numbers >= 0, one per class \(layers ends in 3\); got \[1,2\]/],
    ['a negative class weight', { layers: [4, 2], weight: [1, -1] }, /options\.weight must be 2 finite numbers >= 0/],
    ['posWeight with cross-entropy', { layers: [4, 2], posWeight: [1, 2] }, /options\.posWeight applies to loss 'bce-with-logits'; loss is 'cross-entropy'/],
    ['posWeight of the wrong length', { layers: [4, 2], loss: 'bce-with-logits', posWeight: [1] }, /options\.posWeight must be 2 finite numbers >= 0, one per output/],
    ['label smoothing above 1', { layers: [4, 2], labelSmoothing: 1.5 }, /options\.labelSmoothing must be between 0\.0 and 1\.0; got 1\.5/],
    ['label smoothing with BCE', { layers: [4, 2], loss: 'bce-with-logits', labelSmoothing: 0.1 }, /options\.labelSmoothing applies to loss 'cross-entropy'; loss is 'bce-with-logits'/],
    ['a fractional ignoreIndex', { layers: [4, 2], ignoreIndex: 0.5 }, /options\.ignoreIndex must be an integer; got 0\.5/],
    ['ignoreIndex with BCE', { layers: [4, 1], ignoreIndex: 0 }, /options\.ignoreIndex applies to loss 'cross-entropy' or 'softmax-focal'; loss is 'bce-with-logits'/],
    ['a negative focal gamma', { layers: [4, 2], loss: 'softmax-focal', focalGamma: -1 }, /options\.focalGamma must be a finite number >= 0; got -1/],
    ['focal options without a focal loss', { layers: [4, 2], focalGamma: 2 }, /options\.focalGamma applies to loss 'sigmoid-focal' or 'softmax-focal'; loss is 'cross-entropy'/],
    ['a list alpha for sigmoid-focal', { layers: [4, 2], loss: 'sigmoid-focal', focalAlpha: [0.2, 0.3] }, /options\.focalAlpha for 'sigmoid-focal' must be a number in \[0, 1\], or negative for none; got \[0\.2,0\.3\]/],
    ['softmax-focal alpha of the wrong length', { layers: [4, 3], loss: 'softmax-focal', focalAlpha: [1, 2] }, /options\.focalAlpha for 'softmax-focal' must be a number >= 0 or 3 of them, one per class; got \[1,2\]/],
    ['softmax-focal on one output', { layers: [4, 1], loss: 'softmax-focal' }, /options\.loss 'softmax-focal' needs at least 2 outputs/],
    ['an unknown schedule', { layers: [4, 2], schedule: { name: 'warm' } }, /options\.schedule/],
    ['a schedule interval typo', { layers: [4, 2], scheduleInterval: 'batch' }, /options\.scheduleInterval must be one of 'epoch', 'step'; got "batch"/],
    ['a zero clipping norm', { layers: [4, 2], clipGradNorm: 0 }, /options\.clipGradNorm/],
    // Sizes that pass the type checks but with which no worker could start or run (issue 14, row 1).
    ['a workerHeapMb no worker starts in', { layers: [4, 2], workerHeapMb: 5 }, /options\.workerHeapMb must be at least 6 \(MB\), the heap a worker thread needs to start; got 5/],
    ['more shards than a pool makes slots for', { layers: [4, 2], shards: 1e7, batchSize: 2e7 }, /options\.shards must be at most 65536, the most shard slots a pool makes; got 10000000/],
    ['a batch whose shard activations no typed array holds', { layers: [784, 128, 10], batchSize: 4 * HUGE_ROWS, shards: 4, kernels: 'js' },
      new RegExp(`a worker's activations: ${HUGE_ROWS} rows per shard \\(options\\.batchSize ${4 * HUGE_ROWS} in options\\.shards 4\\) x 784 floats ` +
        `need ${HUGE_TEXT.replace('.', '\\.')} as ${HUGE_ROWS * 784} values, more than the ${F32_LIMIT} values`)],
  ];
  for (const [what, options, message] of cases) {
    it(`refuses ${what}`, () => {
      expect(() => new Trainer(options as unknown as TrainerOptions)).toThrow(message);
    });
  }

  it("refuses a batch whose workers' activations do not fit in memory, naming batchSize and shards", () => {
    setMemoryLimit({ bytes: 1e9, source: 'a test limit' });
    try {
      // 2 workers x 250,000 rows per shard x (784 inputs, 10 logits and their gradient, a class index, and
      // 3 x 10 targets, probabilities and losses = 835 floats) x 4 bytes = 1.67 GB of activations
      expect(() => new Trainer({ layers: [784, 10], batchSize: 1e6, workers: 2, kernels: 'js' })).toThrow(
        /^model: 7850 parameters in 9 float32 buffers \(parameters, momentum, gradient, 4 shard slots: [\d.]+ kB\) and 2 workers' activations \(835\.0 MB each\) for 250000 rows per shard \(options\.batchSize 1000000 in options\.shards 4\) need 1\.7 GB, more than the 1\.0 GB memory limit \(a test limit\)\nhint: .*a smaller options\.batchSize or more options\.shards need less per worker/,
      );
    } finally {
      setMemoryLimit(undefined);
    }
  });

  it("picks the kernels: 'wasm-fma' where relaxed SIMD validates, else 'wasm'; an explicit choice is kept or refused", () => {
    expect(make({ layers: [4, 3], workers: 1 }).options.kernels).toBe(expectedAutoKernels());
    expect(make({ layers: [4, 3], workers: 1, kernels: 'wasm' }).options.kernels).toBe('wasm');
    expect(make({ layers: [4, 3], workers: 1, kernels: 'js' }).options.kernels).toBe('js');
    if (expectedAutoKernels() === 'wasm-fma') {
      expect(make({ layers: [4, 3], workers: 1, kernels: 'wasm-fma' }).options.kernels).toBe('wasm-fma');
    } else {
      expect(() => new Trainer({ layers: [4, 3], workers: 1, kernels: 'wasm-fma' })).toThrow(
        `options.kernels 'wasm-fma' needs WebAssembly relaxed SIMD, which Node ${process.versions.node} does not validate`);
    }
    expect(() => new Trainer({ layers: [4, 3], kernels: 'fma' as 'wasm' })).toThrow(/options\.kernels must be one of 'auto', 'wasm', 'wasm-fma', 'js'; got "fma"/);
  });

  it.skipIf(expectedAutoKernels() !== 'wasm')("picks 'wasm-fma' on Node 20 under node --experimental-wasm-relaxed-simd, and its workers train with it", () => {
    const script = "import { Trainer } from './src/main/index.ts';" +
      "const t = new Trainer({ layers: [8, 4, 2], workers: 2, batchSize: 8, lr: 0.1, seed: 1 });" +
      'const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)); const y = Int32Array.from({ length: 8 }, (_, i) => i % 2);' +
      'const before = t.parameters.slice(); await t.fit({ x, y }, { epochs: 2 });' +
      'console.log(t.options.kernels, t.parameters.every(Number.isFinite), t.parameters.some((p, i) => p !== before[i])); await t.close();';
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('wasm-fma true true');
  });

  it('fills the defaults PyTorch users expect', () => {
    const t = make({ layers: [4, 3], workers: 1 });
    expect(t.options).toMatchObject({
      lr: 0.001, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false,
      activation: 'relu', loss: 'cross-entropy', reduction: 'mean', batchSize: 64, shuffle: true, seed: 0, shards: 2,
    });
    expect(make({ layers: [4, 1], workers: 1 }).options.loss).toBe('bce-with-logits');
  });

  it.each([
    // workers, batchSize, shards: 4 of at least 32 rows (as many as the batch allows, at least 1),
    // never fewer than the workers; worked out by hand from that rule.
    [1, 64, 2], [2, 64, 2], [3, 64, 3], [1, 128, 4], [2, 256, 4], [8, 256, 8], [1, 127, 3], [1, 32, 1],
    [1, 31, 1], [2, 16, 2], [1, 1, 1], [5, 4096, 5],
  ])('cuts batches into %i workers\' default shards: batch %i in %i', (workers, batchSize, shards) => {
    expect(make({ layers: [4, 3], workers, batchSize }).options.shards).toBe(shards);
  });
});

describe('data', () => {
  const t = make({ layers: [3, 4], workers: 1 });
  const bce = make({ layers: [3, 2], loss: 'bce-with-logits', workers: 1 });

  it("refuses BCE on a 10-output network with labels of shape (64, 1), the seed tutorial's bug", async () => {
    const net = make({ layers: [784, 128, 10], loss: 'bce-with-logits', workers: 1 });
    const x = new Float32Array(64 * 784);
    const labels = Array.from({ length: 64 }, (_, i) => [i % 2]);
    const before = new Float32Array(net.parameters);
    await expect(net.fit({ x, y: labels })).rejects.toThrow(
      /training data: loss 'bce-with-logits' needs targets of the model's output shape \(64, 10\); got targets of shape \(64, 1\)\nhint: for one class per row among 10, use loss 'cross-entropy' with class indices of shape \(64,\)/,
    );
    await expect(net.fit({ x, y: labels.map((l) => l[0]) })).rejects.toThrow(/needs targets of the model's output shape \(64, 10\); got targets of shape \(64,\)/);
    expect(net.parameters).toEqual(before); // nothing was trained on garbage
  });

  it('refuses features that are not whole rows', async () => {
    await expect(t.fit({ x: new Float32Array(10), y: [0, 1, 2] })).rejects.toThrow(
      /training data: x has 10 values, which is not a whole number of rows of 3 features \(layers\[0\] = 3\)/,
    );
  });

  it('refuses a ragged row, naming it', async () => {
    await expect(t.fit({ x: [[1, 2, 3], [4, 5]], y: [0, 1] })).rejects.toThrow(/training data: x row 1 has 2 values; expected 3 \(layers\[0\]\)/);
  });

  it('refuses NaN and Infinity in the features, naming row and column', async () => {
    await expect(t.fit({ x: [[1, 2, 3], [4, NaN, 6]], y: [0, 1] })).rejects.toThrow(/training data: x row 1, column 1 is NaN; every feature must be a finite number/);
    await expect(t.evaluate({ x: [1, 2, Infinity], y: [0] })).rejects.toThrow(/evaluation data: x row 0, column 2 is Infinity/);
  });

  it('refuses features beyond the float32 range, naming row and column, as the CSV loader does', async () => {
    // 1e39 and -3.5e38 are finite doubles but Infinity as float32 (the largest float32 is about 3.4028e38).
    await expect(t.fit({ x: new Float64Array([1, 2, 3, 4, 1e39, 6]), y: [0, 1] })).rejects.toThrow(
      /^training data: x row 1, column 1 is 1e\+39, outside the float32 range \(about ±3\.4e38\); every feature must fit in a float32/,
    );
    await expect(t.predict([[1, 2, 3], [-3.5e38, 5, 6]])).rejects.toThrow(/^predict input: x row 1, column 0 is -3\.5e\+38, outside the float32 range/);
    await expect(t.evaluate({ x: [[1, 2, 3e38 * 2]], y: [0] })).rejects.toThrow(/^evaluation data: x row 0, column 2 is 6e\+38, outside the float32 range/);
    // the largest float32 itself is a value like any other
    await expect(t.predict([[3.4028234663852886e38, 0, -3.4028234663852886e38]])).resolves.toHaveLength(4);
  });

  it('refuses a class index out of range, naming the sample', async () => {
    await expect(t.fit({ x: [[1, 2, 3], [4, 5, 6]], y: [0, 4] })).rejects.toThrow(
      /training data: y\[1\] = 4 is not a class index in \[0, 4\) \(the model has 4 outputs\)\nhint: end layers in the number of classes \(at least 5\)/,
    );
    await expect(t.fit({ x: [[1, 2, 3]], y: [-1] })).rejects.toThrow(/y\[0\] = -1 is not a class index in \[0, 4\)/);
    await expect(t.fit({ x: [[1, 2, 3]], y: [1.5] })).rejects.toThrow(/y\[0\] = 1\.5 is not a class index/);
  });

  it('refuses a different number of targets than rows', async () => {
    await expect(t.fit({ x: [[1, 2, 3], [4, 5, 6]], y: [0] })).rejects.toThrow(
      'training data: x has 2 rows but y has 1 targets; expected one class index per row',
    );
    await expect(bce.fit({ x: [[1, 2, 3], [4, 5, 6]], y: [[0, 1]] })).rejects.toThrow(
      'training data: x has 2 rows but y has 1 rows; expected 2 targets per row',
    );
  });

  it('refuses cross-entropy targets that are neither class indices nor class probabilities', async () => {
    await expect(t.fit({ x: [[1, 2, 3]], y: [[0, 1, 0]] })).rejects.toThrow(
      /loss 'cross-entropy' takes class indices of shape \(1,\) or class probabilities of shape \(1, 4\); got targets of shape \(1, 3\)/,
    );
    await expect(t.fit({ x: [[1, 2, 3]], y: [[0.5, 0.5, 0, 1.5]] })).rejects.toThrow(
      'training data: y row 0, output 3 is 1.5; class probabilities must be numbers in [0, 1]',
    );
  });

  it('refuses probability targets for softmax-focal, which takes class indices', async () => {
    const f = make({ layers: [3, 4], loss: 'softmax-focal', workers: 1 });
    await expect(f.fit({ x: [[1, 2, 3]], y: [[0, 1, 0, 0]] })).rejects.toThrow(
      /loss 'softmax-focal' takes class indices of shape \(1,\); got targets of shape \(1, 4\)/,
    );
  });

  it('refuses BCE targets outside [0, 1]', async () => {
    await expect(bce.fit({ x: [[1, 2, 3]], y: [[0, 2]] })).rejects.toThrow(/training data: y row 0, output 1 is 2; BCE targets must be numbers in \[0, 1\]/);
  });

  it('refuses empty data and a non-array', async () => {
    await expect(t.fit({ x: [], y: [] })).rejects.toThrow(/training data: x has no rows/);
    await expect(t.fit({ x: 'abc' as unknown as number[], y: [] })).rejects.toThrow(DataError);
    await expect(t.fit(null as unknown as { x: number[]; y: number[] })).rejects.toThrow(/training data must be an object \{ x, y \}; got null/);
  });

  it('refuses bad validation data before the first training step', async () => {
    let steps = 0;
    await expect(
      t.fit({ x: [[1, 2, 3]], y: [0] }, { validation: { x: [[1, 2, 3]], y: [9] }, onStep: () => steps++ }),
    ).rejects.toThrow(/validation data: y\[0\] = 9/);
    expect(steps).toBe(0);
  });

  it('refuses a bad epoch count', async () => {
    await expect(t.fit({ x: [[1, 2, 3]], y: [0] }, { epochs: 0 })).rejects.toThrow(/fit options\.epochs must be a positive integer; got 0/);
  });
});
