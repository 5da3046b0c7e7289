// The optimizer step's SIMD loops (wasm/step.ts) against their TypeScript references (step.ts sumSlots,
// clip.ts normPartials and scaleRange, sgd.ts sgdStep): the same bits on every element, for every SGD
// setting, in ranges that start and end off the vector boundaries, with NaN and infinities in the data.

import { describe, expect, it } from 'vitest';
import { NORM_FIELDS, normPartials, scaleRange } from '../src/shared/clip.js';
import { stateLayout, stateViews } from '../src/shared/contract.js';
import { Rng } from '../src/shared/rng.js';
import { SGD_DEFAULTS, sgdStep, type SGDOptions } from '../src/shared/sgd.js';
import { sumSlots, wasmStepKernels } from '../src/shared/step.js';
import { createSharedMemory, instantiateStep } from '../src/shared/wasm.js';
import { sameBits } from './helpers.js';

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
