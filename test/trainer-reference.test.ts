// Trainer.fit() over several steps (shuffle off, 4 shards) against a loop written here that does what fit()
// should: the whole batch as one shard, the batch mean, clipGradNorm, sgdStep in place on one buffer and
// scheduleAt for each step's lr and momentum. Each SGD option, clipping order, OneCycle's momentum 0, a short
// last batch and class weights, with the 'js', 'wasm' and (where relaxed SIMD validates) 'wasm-fma' kernels,
// on 1 and 2 workers.

import { describe, expect, it } from 'vitest';
import { type StepInfo, type TrainerOptions } from '../src/main/index.js';
import { maxAbsDiff, mnistSubset, sameBits, trainers } from './helpers.js';
import { clipGradNorm } from '../src/shared/clip.js';
import { defaultLossSpec, type LossSpec } from '../src/shared/losses.js';
import { linearViews, paramLayout, type ModelConfig } from '../src/shared/model.js';
import { scheduleAt } from '../src/shared/schedule.js';
import { SGD_DEFAULTS, sgdStep, type SGDOptions, type SGDState } from '../src/shared/sgd.js';
import { createWasmLinear, wasmKernelsSupported, type WasmKernels } from '../src/shared/wasm.js';
import { createScratch, forward, jsKernels, lossAndBackward, type LinearKernels, type Scratch } from '../src/worker/shard.js';

const { make } = trainers();
type Kernels = 'js' | WasmKernels;

/** A scenario: Trainer options (shuffle, shards, workers and kernels are set per run), data and epochs. */
interface Case {
  options: TrainerOptions;
  rows: number;
  epochs: number;
}

/** What the reference loop computed: the final parameters and, per step, what onStep should report. */
interface Reference {
  params: Float32Array;
  losses: number[];
  lrs: number[];
  momenta: number[];
  /** The gradient's norm before clipping (clipping on only), and whether the step was clipped. */
  norms: number[];
  clipped: boolean[];
}

/** The one-shard forward and backward with the given linear kernels, over arrays they can work on. */
interface OneShard {
  kernels: LinearKernels;
  scratch: Scratch;
  /** The parameters the kernels read (a copy of the loop's, refreshed each step) and the gradient sum. */
  params: Float32Array;
  grad: Float32Array;
}

function oneShard(kind: Kernels, config: ModelConfig, maxRows: number): OneShard {
  const P = paramLayout(config.layers).total;
  if (kind === 'js') {
    return { kernels: jsKernels, scratch: createScratch(config, maxRows), params: new Float32Array(P), grad: new Float32Array(P) };
  }
  // As the worker does: everything the WebAssembly kernels touch lives in their memory.
  let floats = 2 * (P + 4);
  createScratch(config, maxRows, (n) => {
    floats += n + 4;
    return new Float32Array(n);
  });
  const wasm = createWasmLinear(floats, kind);
  if (wasm === null) throw new Error(`this runtime cannot run the ${kind} kernels`);
  const params = wasm.allocate(P);
  const grad = wasm.allocate(P);
  const kernels: LinearKernels = {
    forward: (out, inp, weight, bias, B, C, OC) => wasm.forward(out, inp, weight, bias, B, C, OC),
    backward: (dinp, dweight, dbias, dout, inp, weight, B, C, OC) => {
      wasm.backwardWeight(dweight, dbias, dout, inp, B, C, OC);
      if (dinp !== null) wasm.backwardInput(dinp, dout, weight, B, C, OC);
    },
  };
  return { kernels, scratch: createScratch(config, maxRows, (n) => wasm.allocate(n)), params, grad };
}

/** What fit() should do, step by step, from the Trainer's initial parameters. */
function reference(c: Case, kind: Kernels, initial: Float32Array, data: { x: Float32Array; y: Int32Array }): Reference {
  const o = c.options;
  const config: ModelConfig = { layers: o.layers, activation: o.activation ?? 'relu', loss: 'cross-entropy' };
  const loss: LossSpec = { ...defaultLossSpec('cross-entropy'), weight: o.weight === undefined ? null : Float32Array.from(o.weight) };
  const sgd: SGDOptions = {
    lr: o.lr ?? SGD_DEFAULTS.lr, momentum: o.momentum ?? SGD_DEFAULTS.momentum, dampening: o.dampening ?? SGD_DEFAULTS.dampening,
    weightDecay: o.weightDecay ?? SGD_DEFAULTS.weightDecay, nesterov: o.nesterov ?? false, maximize: o.maximize ?? false,
  };
  const batchSize = o.batchSize ?? 64;
  const D = config.layers[0];
  const params = new Float32Array(initial);
  const state: SGDState = { momentumBuffer: new Float32Array(params.length), hasMomentumBuffer: false };
  const shard = oneShard(kind, config, batchSize);
  const s = shard.scratch;
  const grad = new Float32Array(params.length);
  const ref: Reference = { params, losses: [], lrs: [], momenta: [], norms: [], clipped: [] };
  let t = 0; // scheduler steps taken
  for (let e = 0; e < c.epochs; e++) {
    for (let r0 = 0; r0 < c.rows; r0 += batchSize) {
      const r1 = Math.min(r0 + batchSize, c.rows);
      const B = r1 - r0;
      const at = o.schedule == null ? { lr: sgd.lr, momentum: sgd.momentum } : scheduleAt(o.schedule, sgd.lr, t);
      const lr = at.lr;
      const momentum = at.momentum ?? sgd.momentum;
      // The whole batch as one shard: its loss sum, weight sum and gradient sum.
      shard.params.set(params);
      shard.grad.fill(0);
      s.x.set(data.x.subarray(r0 * D, r1 * D));
      s.yIndex.set(data.y.subarray(r0, r1));
      const views = linearViews(shard.params, config.layers);
      forward(s, config, views, B, shard.kernels);
      const sums = lossAndBackward(s, config, views, linearViews(shard.grad, config.layers), B, loss, true, shard.kernels);
      // The batch mean, then clip_grad_norm_, then torch.optim.SGD's step in place.
      for (let i = 0; i < grad.length; i++) grad[i] = shard.grad[i] / sums.weightSum;
      if (o.clipGradNorm != null) {
        const norm = clipGradNorm(grad, o.clipGradNorm, o.clipNormType ?? 2);
        ref.norms.push(norm);
        ref.clipped.push(norm > o.clipGradNorm);
      } else {
        // Without clipping, onStep's gradNorm is the 2-norm: a plain loop in double.
        let squares = 0;
        for (let i = 0; i < grad.length; i++) squares += grad[i] * grad[i];
        ref.norms.push(Math.sqrt(squares));
      }
      sgdStep(params, grad, state, sgd, lr, momentum);
      ref.losses.push(sums.lossSum / sums.weightSum);
      ref.lrs.push(lr);
      ref.momenta.push(momentum);
      if (o.scheduleInterval === 'step') t++;
    }
    if (o.scheduleInterval !== 'step') t++;
  }
  return ref;
}

/**
 * The reference computes each batch in one shard, the Trainer in 4 whose float32 gradient sums it adds in
 * double: the gradients differ by an ulp or so, which over these few steps leaves the parameters (up to
 * about 0.5) an ulp or two apart (largest seen: 6e-8), the losses 3e-8 apart relatively and the norms one
 * float32 ulp (1.2e-7 relatively), with either kernels (the reference uses the Trainer's kernels).
 */
const TOL = { params: 1.5e-7, loss: 1e-7, norm: 3e-7 };

/**
 * Trains with fit() on 1 and 2 workers and compares each run with the reference loop: the final
 * parameters to within TOL.params, each step's loss to within TOL.loss (relative), its lr exactly, and
 * its gradNorm (of clipNormType with clipping, else the 2-norm) to within TOL.norm (relative). 1 and 2 workers must agree bit for bit.
 */
async function check(c: Case, kind: Kernels): Promise<Reference> {
  const data = mnistSubset(c.rows);
  // Both pools start at once (the threads of one load while the other trains), then train in turn.
  const pools = [1, 2].map((workers) => make({ ...c.options, shards: 4, workers, kernels: kind, shuffle: false }));
  const initial = pools[0].parameters.slice();
  const ref = reference(c, kind, initial, data);
  const finals: Float32Array[] = [];
  const worst = { params: 0, loss: 0, norm: 0 };
  for (const t of pools) {
    const where = `${kind} kernels, ${t.options.workers} worker${t.options.workers > 1 ? 's' : ''}`;
    expect(sameBits(t.parameters, initial), `${where}: the same initial parameters`).toBe(true);
    const steps: StepInfo[] = [];
    await t.fit(data, { epochs: c.epochs, onStep: (s) => steps.push(s) });
    const params = t.parameters.slice();
    await t.close();
    expect(steps.map((s) => s.skipped === true), `${where}: skipped steps`).toEqual(ref.losses.map(() => false));
    expect(steps.map((s) => s.rows), `${where}: rows per step`).toEqual(batchRows(c));
    expect(steps.map((s) => s.lr), `${where}: lr per step`).toEqual(ref.lrs);
    steps.forEach((s, i) => {
      const dl = Math.abs(s.loss - ref.losses[i]) / Math.abs(ref.losses[i]);
      worst.loss = Math.max(worst.loss, dl);
      expect(dl, `${where}: step ${i + 1} loss ${s.loss} vs ${ref.losses[i]}`).toBeLessThanOrEqual(TOL.loss);
      const dn = Math.abs(s.gradNorm - ref.norms[i]) / ref.norms[i];
      worst.norm = Math.max(worst.norm, dn);
      expect(dn, `${where}: step ${i + 1} gradNorm ${s.gradNorm} vs ${ref.norms[i]}`).toBeLessThanOrEqual(TOL.norm);
    });
    const d = maxAbsDiff(params, ref.params);
    worst.params = Math.max(worst.params, d);
    expect(d, `${where}: max |parameter diff| ${d}`).toBeLessThanOrEqual(TOL.params);
    // Training moved the parameters far beyond the tolerance, so the comparison means something.
    expect(maxAbsDiff(params, initial), `${where}: parameters moved`).toBeGreaterThan(1000 * TOL.params);
    finals.push(params);
  }
  expect(sameBits(finals[0], finals[1]), `${kind} kernels: 1 and 2 workers give the same bits`).toBe(true);
  // GRADPOOL_REF_DIFFS=1 prints the largest differences, to re-measure the tolerances.
  if (process.env.GRADPOOL_REF_DIFFS !== undefined) console.log(`${kind}: ${JSON.stringify(c.options)}: ${JSON.stringify(worst)}`);
  return ref;
}

/** The rows of each step: full batches, then the short last one, every epoch. */
function batchRows(c: Case): number[] {
  const bs = c.options.batchSize ?? 64;
  const rows: number[] = [];
  for (let e = 0; e < c.epochs; e++) for (let r0 = 0; r0 < c.rows; r0 += bs) rows.push(Math.min(bs, c.rows - r0));
  return rows;
}

const MLP: Pick<TrainerOptions, 'layers' | 'activation'> = { layers: [784, 16, 10], activation: 'tanh' };

for (const kind of ['js', 'wasm', 'wasm-fma'] as const) {
  const suffix = `(${kind} kernels, 1 and 2 workers)`;
  describe.skipIf(kind !== 'js' && !wasmKernelsSupported(kind))(`fit() against the reference loop with the ${kind} kernels`, () => {
    it(`applies dampening from the second momentum step on, the first step's buffer being the gradient itself ${suffix}`, async () => {
      await check({ options: { ...MLP, lr: 0.1, momentum: 0.9, dampening: 0.5, batchSize: 8 }, rows: 40, epochs: 1 }, kind);
    });

    it(`applies Nesterov momentum with the buffer of the step being taken ${suffix}`, async () => {
      await check({ options: { ...MLP, lr: 0.1, momentum: 0.9, nesterov: true, batchSize: 8 }, rows: 40, epochs: 1 }, kind);
    });

    it(`adds the weight decay to the gradient before the momentum ${suffix}`, async () => {
      await check({ options: { ...MLP, lr: 0.1, momentum: 0.9, weightDecay: 0.1, batchSize: 8 }, rows: 40, epochs: 1 }, kind);
    });

    it(`steps up the gradient when maximizing ${suffix}`, async () => {
      await check({ options: { ...MLP, lr: 0.05, momentum: 0.9, maximize: true, batchSize: 8 }, rows: 40, epochs: 1 }, kind);
    });

    for (const [normType, maxNorm] of [[1, 2], [2, 0.2], [Infinity, 0.02]] as const) {
      it(`clips the mean gradient to a total norm of order ${normType} at every step, reporting the norm before clipping ${suffix}`, async () => {
        const ref = await check({
          options: { ...MLP, lr: 0.1, momentum: 0.9, clipGradNorm: maxNorm, clipNormType: normType, batchSize: 8 }, rows: 40, epochs: 1,
        }, kind);
        expect(ref.clipped, 'every step is clipped').toEqual(ref.losses.map(() => true));
      });
    }

    it(`keeps the momentum buffer through the OneCycle steps whose momentum is 0 and uses it again after ${suffix}`, async () => {
      const schedule = { name: 'onecycle', maxLr: 0.2, totalSteps: 6, pctStart: 0.5, baseMomentum: 0, maxMomentum: 0.95 } as const;
      const ref = await check({ options: { ...MLP, lr: 0.1, schedule, scheduleInterval: 'step', batchSize: 8 }, rows: 48, epochs: 1 }, kind);
      // The scenario: momentum starts the buffer, is exactly 0 at the peak (step 3), then comes back.
      expect(ref.momenta[0]).toBeGreaterThan(0);
      expect(ref.momenta[2]).toBe(0);
      expect(ref.momenta[3]).toBeGreaterThan(0);
    });

    it(`averages a short last batch over its own rows, every epoch ${suffix}`, async () => {
      // 21 rows in batches of 8: 8, 8, 5, cut into shards of 2, 2, 2, 2 and 2, 2, 1.
      await check({ options: { ...MLP, lr: 0.1, momentum: 0.9, batchSize: 8 }, rows: 21, epochs: 2 }, kind);
    });

    it(`divides a class-weighted cross-entropy by the batch's sum of target weights ${suffix}`, async () => {
      const weight = [1, 2, 0.5, 3, 1, 0.25, 1.5, 1, 2, 0.75];
      await check({ options: { layers: [784, 16, 10], activation: 'relu', lr: 0.1, momentum: 0.9, weight, batchSize: 10 }, rows: 40, epochs: 1 }, kind);
    });
  });
}
