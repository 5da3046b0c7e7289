// The optimizer step's SIMD loops (wasm/step.ts) against their TypeScript references (step.ts sumSlots,
// clip.ts normPartials and scaleRange, sgd.ts sgdStep): the same bits on every element, for every SGD
// setting, in ranges that start and end off the vector boundaries, with NaN and infinities in the data.

import { describe, expect, it } from 'vitest';
import { NORM_FIELDS, normPartials, scaleRange } from '../src/shared/clip.js';
import { stateLayout, stateViews } from '../src/shared/contract.js';
import { Rng } from '../src/shared/rng.js';
import { SGD_DEFAULTS, sgdStep, type SGDOptions } from '../src/shared/sgd.js';
import { nonfiniteEnds, nonfiniteRule, sumSlots, wasmStepKernels } from '../src/shared/step.js';
import { createSharedMemory, instantiateStep } from '../src/shared/wasm.js';
import { SGD_SETTINGS, sameBits } from './helpers.js';

const P = 9001; // three norm chunks, the last one short and not a multiple of four
const SLOTS = 7;
const layout = stateLayout(P, SLOTS, 3 * NORM_FIELDS);
const shared = createSharedMemory(layout.bytes);
if (shared === null) throw new Error('this Node has no WebAssembly SIMD; the suite expects it');
const k = wasmStepKernels(instantiateStep(shared.memory));
const v = stateViews(shared.buffer, layout, SLOTS);

/** Values over many magnitudes, so a different order or rounding would show. */
function fill(a: Float32Array, rng: Rng): void {
  for (let i = 0; i < a.length; i++) a[i] = rng.uniform(1) * 10 ** (rng.nextInt(9) - 4);
}

describe('step.wasm against the TypeScript step loops', () => {
  const rng = new Rng(7);
  for (const s of v.slots) fill(s, rng);

  for (let n = 1; n <= SLOTS; n++) {
    it(`sums ${n} slot${n > 1 ? 's' : ''} in slot order, divided, over a range off the vector boundaries`, () => {
      const want = new Float32Array(P);
      sumSlots(want, v.slots, n, 37.5, new Float64Array(P), 3, P - 2);
      v.grad.fill(-1);
      want.fill(-1, 0, 3);
      want.fill(-1, P - 2);
      k.sumSlots(v.grad, v.slots, n, 37.5, new Float64Array(0), 3, P - 2);
      expect(sameBits(v.grad, want)).toBe(true);
    });
  }

  for (const special of ['finite', 'NaN', 'Infinity'] as const) {
    for (const p of [1, 2, Infinity, 3]) {
      it(`gives the norm partials of order ${p} of a gradient (${special} entries)`, () => {
        fill(v.grad, rng);
        if (special === 'NaN') v.grad[4100] = NaN;
        if (special === 'Infinity') v.grad[P - 1] = -Infinity;
        const want = new Float64Array(3 * NORM_FIELDS);
        normPartials(v.grad, p, 0, 3, want);
        const got = v.partials.subarray(0, 3 * NORM_FIELDS);
        got.fill(-1);
        k.normPartials(v.grad, p, 0, 3, got);
        expect(Array.from(got)).toEqual(Array.from(want));
      });
    }
  }

  it('scales a range by a float32 coefficient', () => {
    fill(v.grad, rng);
    const want = v.grad.slice();
    const coef = Math.fround(0.3);
    scaleRange(want, coef, 5, P - 1);
    k.scale(v.grad, coef, 5, P - 1);
    expect(sameBits(v.grad, want)).toBe(true);
  });

  const settings: Partial<SGDOptions>[] = [
    {}, { momentum: 0.9 }, { momentum: 0.9, nesterov: true }, { momentum: 0.5, dampening: 0.25 },
    { weightDecay: 0.01 }, { momentum: 0.9, weightDecay: 1e-3, maximize: true }, { maximize: true },
  ];
  for (const o of settings) {
    for (const first of [true, false]) {
      it(`applies SGD ${JSON.stringify(o)}${first ? ' (first step)' : ''} from one half into the other`, () => {
        const opts: SGDOptions = { ...SGD_DEFAULTS, lr: 0.05, ...o };
        fill(v.params[0], rng);
        fill(v.momentum[0], rng);
        fill(v.grad, rng);
        const n = P - 7;
        const sub = (a: Float32Array): Float32Array => a.subarray(3, 3 + n);
        const want = { params: v.params[0].slice(3, 3 + n), buf: v.momentum[0].slice(3, 3 + n) };
        const wantState = { momentumBuffer: want.buf, hasMomentumBuffer: !first };
        sgdStep(want.params, sub(v.grad), wantState, opts, opts.lr, opts.momentum);
        const state = { momentumBuffer: sub(v.momentum[1]), hasMomentumBuffer: !first };
        k.sgd(sub(v.params[1]), sub(v.grad), state, opts, opts.lr, opts.momentum, { params: sub(v.params[0]), momentumBuffer: sub(v.momentum[0]) });
        expect(sameBits(sub(v.params[1]), want.params)).toBe(true);
        if (opts.momentum !== 0) expect(sameBits(sub(v.momentum[1]), want.buf)).toBe(true);
        expect(state.hasMomentumBuffer).toBe(wantState.hasMomentumBuffer);
      });
    }
  }
});

// The workers' double-buffered step through step.wasm: reading the parameters and momentum from one half
// of the shared state and writing the other must give the bits of the same step in place (step.wasm's own
// and sgdStep's), over several steps, every setting; the written-to half holds unrelated values before
// each step, so reading it, or the source where the new value is meant, shows.
describe('step.wasm SGD from one half into the other equals SGD in place', () => {
  const n = P - 7; // off the vector boundaries at both ends
  const sub = (a: Float32Array): Float32Array => a.subarray(3, 3 + n);
  const settings = SGD_SETTINGS;

  /** Per step: whether the double-buffered step.wasm SGD matched sgdStep in place and step.wasm in place
   *  (slots 0 and 1 hold its parameters and momentum), and left its source alone. */
  function runFromSource(o: Partial<SGDOptions>, steps = 4) {
    const opts: SGDOptions = { ...SGD_DEFAULTS, lr: 0.1, ...o };
    const rng = new Rng(13);
    const mom = opts.momentum;
    fill(sub(v.params[0]), rng);
    fill(sub(v.momentum[0]), rng); // not a buffer yet on the first step: must not be read
    const ts = { params: sub(v.params[0]).slice(), state: { momentumBuffer: new Float32Array(n), hasMomentumBuffer: false } };
    const wasmParams = sub(v.slots[0]);
    wasmParams.set(ts.params);
    const wasmState = { momentumBuffer: sub(v.slots[1]).fill(0), hasMomentumBuffer: false };
    const r = { params: [] as boolean[], wasmParams: [] as boolean[], momentum: [] as boolean[], wasmMomentum: [] as boolean[],
      sourceParams: [] as boolean[], sourceMomentum: [] as boolean[] };
    let started = false;
    let cur = 0;
    for (let t = 0; t < steps; t++) {
      const next = 1 - cur;
      fill(sub(v.grad), rng);
      fill(sub(v.params[next]), rng);
      fill(sub(v.momentum[next]), rng);
      const src = { params: sub(v.params[cur]), momentumBuffer: sub(v.momentum[cur]) };
      const before = { params: src.params.slice(), momentum: src.momentumBuffer.slice() };
      const state: { momentumBuffer: Float32Array; hasMomentumBuffer: boolean } = { momentumBuffer: sub(v.momentum[next]), hasMomentumBuffer: started };
      k.sgd(sub(v.params[next]), sub(v.grad), state, opts, opts.lr, mom, src);
      sgdStep(ts.params, sub(v.grad).slice(), ts.state, opts, opts.lr, mom);
      k.sgd(wasmParams, sub(v.grad), wasmState, opts, opts.lr, mom, { params: wasmParams, momentumBuffer: wasmState.momentumBuffer });
      r.params.push(sameBits(sub(v.params[next]), ts.params));
      r.wasmParams.push(sameBits(sub(v.params[next]), wasmParams));
      // Without momentum there is no buffer to compare.
      r.momentum.push(mom === 0 || sameBits(sub(v.momentum[next]), ts.state.momentumBuffer));
      r.wasmMomentum.push(mom === 0 || sameBits(sub(v.momentum[next]), wasmState.momentumBuffer));
      r.sourceParams.push(sameBits(src.params, before.params));
      r.sourceMomentum.push(sameBits(src.momentumBuffer, before.momentum));
      started = state.hasMomentumBuffer;
      cur = next;
    }
    return r;
  }
  const all = (k: number): boolean[] => new Array<boolean>(k).fill(true);

  for (const [name, o] of settings) {
    if ((o.momentum ?? 0) !== 0) {
      it(`SGD ${name} gives the in-place parameters and momentum bit for bit on the first step`, () => {
        const r = runFromSource(o, 1);
        expect({ params: r.params, wasmParams: r.wasmParams, momentum: r.momentum, wasmMomentum: r.wasmMomentum })
          .toEqual({ params: all(1), wasmParams: all(1), momentum: all(1), wasmMomentum: all(1) });
      });
      it(`SGD ${name} gives the in-place parameters and momentum bit for bit on each later step`, () => {
        const r = runFromSource(o);
        expect({ params: r.params.slice(1), wasmParams: r.wasmParams.slice(1), momentum: r.momentum.slice(1), wasmMomentum: r.wasmMomentum.slice(1) })
          .toEqual({ params: all(3), wasmParams: all(3), momentum: all(3), wasmMomentum: all(3) });
      });
    } else {
      it(`SGD ${name} gives the in-place parameters bit for bit on each of four steps`, () => {
        const r = runFromSource(o);
        expect({ params: r.params, wasmParams: r.wasmParams }).toEqual({ params: all(4), wasmParams: all(4) });
      });
    }
    it(`SGD ${name} leaves the source half's parameters and momentum untouched`, () => {
      const r = runFromSource(o);
      expect({ params: r.sourceParams, momentum: r.sourceMomentum }).toEqual({ params: all(4), momentum: all(4) });
    });
  }
});

// The sums above are of values a double adds exactly in any order; these have big values cancelling among
// small ones (see test/reduce.test.ts), so a sum_slots adding the slots in another order would differ.
describe('step.wasm slot sums where the order of addition shows', () => {
  const rng = new Rng(17);
  const bigs = Float32Array.from({ length: P }, () => (1 + rng.nextFloat()) * 10 ** (4 + rng.nextInt(5)));
  for (let n = 3; n <= SLOTS; n++) {
    it(`sums ${n} slots of cancelling values in slot order, as sumSlots does`, () => {
      for (const s of v.slots) {
        for (let i = 0; i < P; i++) {
          const role = rng.nextInt(3);
          s[i] = role === 2 ? rng.uniform(1) * 10 ** -rng.nextInt(9) : role === 0 ? bigs[i] : -bigs[i];
        }
      }
      const want = new Float32Array(P);
      sumSlots(want, v.slots, n, 3, new Float64Array(P), 1, P - 1);
      // the data tells orders apart: reversed, the same slots give other bits somewhere
      let reversedDiffers = 0;
      for (let i = 1; i < P - 1; i++) {
        let r = 0;
        for (let j = n - 1; j >= 0; j--) r += v.slots[j][i];
        if (!Object.is(Math.fround(r / 3), want[i])) reversedDiffers++;
      }
      expect(reversedDiffers).toBeGreaterThan(0);
      v.grad.fill(-1);
      want.fill(-1, 0, 1);
      want.fill(-1, P - 1);
      k.sumSlots(v.grad, v.slots, n, 3, new Float64Array(0), 1, P - 1);
      expect(sameBits(v.grad, want)).toBe(true);
    });
  }
});

describe('which non-finite steps end fit(), the rule the workers and the coordinator both follow', () => {
  // By the options' documentation: onNonfinite 'stop' ends it at any non-finite step; errorIfNonfinite
  // raises as torch's clip_grad_norm_ does, only under clipping and only for a non-finite norm; else skip.
  const cases: [string, { onNonfinite: 'stop' | 'skip'; clipGradNorm: number | null; errorIfNonfinite: boolean }, [boolean, boolean]][] = [
    ["onNonfinite 'stop'", { onNonfinite: 'stop', clipGradNorm: null, errorIfNonfinite: false }, [true, true]],
    ["onNonfinite 'stop' with errorIfNonfinite under clipping", { onNonfinite: 'stop', clipGradNorm: 1, errorIfNonfinite: true }, [true, true]],
    ["onNonfinite 'skip'", { onNonfinite: 'skip', clipGradNorm: null, errorIfNonfinite: false }, [false, false]],
    ["'skip' with errorIfNonfinite but no clipping", { onNonfinite: 'skip', clipGradNorm: null, errorIfNonfinite: true }, [false, false]],
    ["'skip' under clipping without errorIfNonfinite", { onNonfinite: 'skip', clipGradNorm: 1, errorIfNonfinite: false }, [false, false]],
    ["'skip' with errorIfNonfinite under clipping", { onNonfinite: 'skip', clipGradNorm: 1, errorIfNonfinite: true }, [false, true]],
  ];
  for (const [name, o, [finiteNorm, nonfiniteNorm]] of cases) {
    it(`${name}: a finite norm ${finiteNorm ? 'ends' : 'skips'}, NaN and Infinity ${nonfiniteNorm ? 'end' : 'skip'}`, () => {
      const rule = nonfiniteRule(o);
      expect(nonfiniteEnds(rule, 1.5e38)).toBe(finiteNorm);
      expect(nonfiniteEnds(rule, NaN)).toBe(nonfiniteNorm);
      expect(nonfiniteEnds(rule, Infinity)).toBe(nonfiniteNorm);
    });
  }
});
