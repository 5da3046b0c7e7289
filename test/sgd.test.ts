// Checks sgdStep over several steps against the update of torch.optim.SGD's documented algorithm
// (https://pytorch.org/docs/stable/generated/torch.optim.SGD.html) computed here in float64, and that
// validateSGD rejects bad options with torch's wording.

import { describe, it, expect } from 'vitest';
import { SGD_DEFAULTS, sgdStep, validateSGD } from '../src/shared/sgd.js';
import type { SGDOptions, SGDState } from '../src/shared/sgd.js';
import { Rng } from '../src/shared/rng.js';
import { SGD_SETTINGS, sameBits } from './helpers.js';

/**
 * torch.optim.SGD's algorithm, in float64, one line per line of the documentation:
 *   g ← -g if maximize;  g ← g + λθ;  b ← g on step 1, else μb + (1-τ)g;  g ← g + μb if nesterov else b;
 *   θ ← θ - γg
 */
function referenceTrajectory(p0: ArrayLike<number>, gradSeq: ArrayLike<number>[], o: SGDOptions, lrs: number[]): number[][] {
  const p = Array.from(p0);
  let buf: number[] | null = null;
  const out: number[][] = [];
  gradSeq.forEach((gs, t) => {
    let g = Array.from(gs, (gi) => (o.maximize ? -gi : gi));
    if (o.weightDecay !== 0) g = g.map((gi, i) => gi + o.weightDecay * p[i]);
    if (o.momentum !== 0) {
      const prev: number[] | null = buf;
      const b: number[] = prev === null ? g.slice() : prev.map((bi, i) => o.momentum * bi + (1 - o.dampening) * g[i]);
      buf = b;
      g = o.nesterov ? g.map((gi, i) => gi + o.momentum * b[i]) : b;
    }
    for (let i = 0; i < p.length; i++) p[i] -= lrs[t] * g[i];
    out.push(p.slice());
  });
  return out;
}

function runSgd(p0: Float32Array, gradSeq: Float32Array[], o: SGDOptions, lrs: number[]): Float32Array[] {
  const params = p0.slice();
  const state: SGDState = { momentumBuffer: new Float32Array(p0.length), hasMomentumBuffer: false };
  return gradSeq.map((g, t) => {
    sgdStep(params, g, state, o, lrs[t]);
    return params.slice();
  });
}

// Float32 values, so that both sides start from the very same numbers.
const P0 = Float32Array.from([1.5, -2.25, 0.75, 3, -1.125]);
const GRADS = [
  [0.5, -1, 2, 0.25, -0.75],
  [-0.25, -0.5, 1.5, 0, 1],
  [1, 0.125, -2, -0.5, 0.5],
  [0.75, 0.5, 0.25, -1.5, -0.25],
].map((g) => Float32Array.from(g));

// Each float32 op rounds at 6e-8 relative; four steps of a handful of ops stay well inside 1e-6.
const REL = 1e-6;
const ABS = 1e-7;

function expectTrajectory(o: Partial<SGDOptions>, lrs?: number[]): void {
  const opts: SGDOptions = { ...SGD_DEFAULTS, lr: 0.1, ...o };
  validateSGD(opts);
  const rates = lrs ?? GRADS.map(() => opts.lr);
  const got = runSgd(P0, GRADS, opts, rates);
  const want = referenceTrajectory(P0, GRADS, opts, rates);
  let maxDiff = 0;
  let excess = -Infinity;
  let where = '';
  want.forEach((row, t) => row.forEach((w, i) => {
    const d = Math.abs(got[t][i] - w);
    maxDiff = Math.max(maxDiff, d);
    const e = d - (ABS + REL * Math.abs(w));
    if (!(e <= excess)) { excess = e; where = `step ${t + 1} [${i}]: ${got[t][i]} vs ${w}`; }
  }));
  expect(excess, `max |diff| ${maxDiff}; worst at ${where}`).toBeLessThanOrEqual(0);
}

describe('sgdStep follows torch.optim.SGD over four steps', () => {
  it('plain SGD moves by -lr * grad', () => expectTrajectory({}));
  it('momentum starts its buffer as a copy of the first gradient', () => expectTrajectory({ momentum: 0.9 }));
  it('dampening scales the gradient added to the buffer after the first step', () => expectTrajectory({ momentum: 0.9, dampening: 0.5 }));
  it('nesterov steps along grad + momentum * buffer', () => expectTrajectory({ momentum: 0.9, nesterov: true }));
  it('weightDecay adds weightDecay * param to the gradient', () => expectTrajectory({ weightDecay: 0.05 }));
  it('maximize ascends the gradient', () => expectTrajectory({ maximize: true }));
  it('weightDecay with momentum decays inside the buffer', () => expectTrajectory({ momentum: 0.9, weightDecay: 0.05 }));
  it('maximize applies before weightDecay and momentum', () => expectTrajectory({ momentum: 0.8, weightDecay: 0.05, maximize: true }));
  it('nesterov with weightDecay and maximize combine as torch orders them', () =>
    expectTrajectory({ lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.1, maximize: true }));
  it('dampening with weightDecay and maximize combine as torch orders them', () =>
    expectTrajectory({ momentum: 0.7, dampening: 0.3, weightDecay: 0.02, maximize: true }));
  it('a learning rate changed between steps scales only that step, the buffer untouched', () =>
    expectTrajectory({ momentum: 0.9 }, [0.1, 0.05, 0.2, 0.01]));

  it('the first momentum step stores the gradient itself, undampened', () => {
    const opts: SGDOptions = { ...SGD_DEFAULTS, lr: 0.1, momentum: 0.9, dampening: 0.5 };
    const state: SGDState = { momentumBuffer: new Float32Array(P0.length), hasMomentumBuffer: false };
    sgdStep(P0.slice(), GRADS[0], state, opts, opts.lr);
    expect(state.hasMomentumBuffer).toBe(true);
    expect(Array.from(state.momentumBuffer)).toEqual(Array.from(GRADS[0]));
  });
});

// The workers' double-buffered step: sgdStep's `source` reads the parameters and momentum from one pair of
// buffers and writes them to another, which must give the very bits of the in-place step (itself checked
// against torch above). The written-to buffers hold unrelated values before every step, so reading them, or
// reading the source where the new value is meant, changes the result.

/** Per step, whether the double-buffered step matched the in-place one and left its source alone. */
interface SourceRun {
  params: boolean[];
  momentum: boolean[];
  flag: boolean[];
  sourceParams: boolean[];
  sourceMomentum: boolean[];
}

/** Values over many magnitudes, so that a wrong operand shows in the bits. */
function spread(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => rng.uniform(1) * 10 ** (rng.nextInt(7) - 3));
}

/** Four steps of sgdStep in place and, from the same start, alternating between two pairs of buffers. */
function runFromSource(o: Partial<SGDOptions>, P = 103, steps = 4): SourceRun {
  const opts: SGDOptions = { ...SGD_DEFAULTS, lr: 0.1, ...o };
  validateSGD(opts);
  const rng = new Rng(11);
  const p0 = spread(P, rng);
  const inPlace = p0.slice();
  const inPlaceState: SGDState = { momentumBuffer: new Float32Array(P), hasMomentumBuffer: false };
  // The first step's source momentum is not a buffer torch has: its values must not be read.
  const params = [p0.slice(), spread(P, rng)];
  const momentum = [spread(P, rng), spread(P, rng)];
  let started = false;
  let cur = 0;
  const run: SourceRun = { params: [], momentum: [], flag: [], sourceParams: [], sourceMomentum: [] };
  for (let t = 0; t < steps; t++) {
    const grads = spread(P, rng);
    const next = 1 - cur;
    params[next].set(spread(P, rng));
    momentum[next].set(spread(P, rng));
    const srcParams = params[cur].slice();
    const srcMomentum = momentum[cur].slice();
    const state: SGDState = { momentumBuffer: momentum[next], hasMomentumBuffer: started };
    sgdStep(params[next], grads, state, opts, opts.lr, opts.momentum, { params: params[cur], momentumBuffer: momentum[cur] });
    sgdStep(inPlace, grads, inPlaceState, opts, opts.lr);
    run.params.push(sameBits(params[next], inPlace));
    // Without momentum torch keeps no buffer: there is nothing to compare.
    run.momentum.push(opts.momentum === 0 || sameBits(momentum[next], inPlaceState.momentumBuffer));
    run.flag.push(state.hasMomentumBuffer === inPlaceState.hasMomentumBuffer);
    run.sourceParams.push(sameBits(params[cur], srcParams));
    run.sourceMomentum.push(sameBits(momentum[cur], srcMomentum));
    started = state.hasMomentumBuffer;
    cur = next;
  }
  return run;
}

describe('sgdStep from a source into other buffers equals sgdStep in place', () => {
  for (const [name, o] of SGD_SETTINGS) {
    const momentum = (o.momentum ?? 0) !== 0;
    if (momentum) {
      it(`SGD ${name} gives the in-place parameters and momentum bit for bit on the first step`, () => {
        const r = runFromSource(o, 103, 1);
        expect({ params: r.params, momentum: r.momentum, flag: r.flag }).toEqual({ params: [true], momentum: [true], flag: [true] });
      });
      it(`SGD ${name} gives the in-place parameters and momentum bit for bit on each later step`, () => {
        const r = runFromSource(o);
        expect({ params: r.params.slice(1), momentum: r.momentum.slice(1) }).toEqual({ params: [true, true, true], momentum: [true, true, true] });
      });
    } else {
      it(`SGD ${name} gives the in-place parameters bit for bit on each of four steps`, () => {
        expect(runFromSource(o).params).toEqual([true, true, true, true]);
      });
    }
    it(`SGD ${name} from a source leaves the source parameters and momentum untouched`, () => {
      const r = runFromSource(o);
      expect({ params: r.sourceParams, momentum: r.sourceMomentum }).toEqual({ params: [true, true, true, true], momentum: [true, true, true, true] });
    });
  }
});

describe('validateSGD', () => {
  const bad = (o: Partial<Record<keyof SGDOptions, unknown>>): (() => void) =>
    () => validateSGD({ ...SGD_DEFAULTS, ...o } as SGDOptions);

  it('accepts the defaults and a valid nesterov set', () => {
    expect(bad({})).not.toThrow();
    expect(bad({ momentum: 0.9, nesterov: true })).not.toThrow();
  });
  it('rejects a negative lr', () => {
    expect(bad({ lr: -0.1 })).toThrow(RangeError);
    expect(bad({ lr: -0.1 })).toThrow('Invalid learning rate: options.lr must be >= 0; got -0.1');
  });
  it('rejects a negative momentum', () => {
    expect(bad({ momentum: -0.5 })).toThrow(RangeError);
    expect(bad({ momentum: -0.5 })).toThrow('Invalid momentum value: options.momentum must be >= 0; got -0.5');
  });
  it('rejects a negative weightDecay', () => {
    expect(bad({ weightDecay: -1e-4 })).toThrow(RangeError);
    expect(bad({ weightDecay: -1e-4 })).toThrow('Invalid weight_decay value: options.weightDecay must be >= 0; got -0.0001');
  });
  it('rejects nesterov with momentum 0', () => {
    expect(bad({ nesterov: true })).toThrow(RangeError);
    expect(bad({ nesterov: true })).toThrow('Nesterov momentum requires a momentum and zero dampening');
  });
  it('rejects nesterov with non-zero dampening', () => {
    expect(bad({ nesterov: true, momentum: 0.9, dampening: 0.1 })).toThrow(RangeError);
    expect(bad({ nesterov: true, momentum: 0.9, dampening: 0.1 })).toThrow('Nesterov momentum requires a momentum and zero dampening');
  });
  it('rejects a non-finite lr', () => {
    expect(bad({ lr: NaN })).toThrow(TypeError);
    expect(bad({ lr: NaN })).toThrow('options.lr must be a finite number; got NaN');
    expect(bad({ lr: Infinity })).toThrow('options.lr must be a finite number; got Infinity');
  });
  it('rejects a non-boolean nesterov', () => {
    expect(bad({ momentum: 0.9, nesterov: 'yes' })).toThrow(TypeError);
    expect(bad({ momentum: 0.9, nesterov: 'yes' })).toThrow('options.nesterov must be a boolean; got "yes"');
  });
});
