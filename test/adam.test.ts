// Adam's and AdamW's step (src/shared/adam.ts): its first steps worked out by hand from torch's formulas;
// wasm/step.ts's SIMD loop against the TypeScript reference, bit for bit, for every setting, from one
// half of the shared state into the other, over ranges off the vector boundaries; and the options as
// torch.optim.Adam and AdamW validate them, with SGD's options refused by name.

import { describe, expect, it } from 'vitest';
import { adamScalars, adamStep, type AdamBuffers, type AdamOptions } from '../src/shared/adam.js';
import { stateLayout, stateViews } from '../src/shared/contract.js';
import { Rng } from '../src/shared/rng.js';
import { wasmStepKernels } from '../src/shared/step.js';
import { createSharedMemory, instantiateStep } from '../src/shared/wasm.js';
import { resolveOptions, type TrainerOptions } from '../src/main/options/options.js';
import { sameBits } from './helpers.js';

const f32 = Math.fround;
const BASE: AdamOptions = { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, maximize: false, decoupled: false };

function buffers(P: number, amsgrad: boolean): AdamBuffers {
  return { expAvg: new Float32Array(P), expAvgSq: new Float32Array(P), maxExpAvgSq: amsgrad ? new Float32Array(P) : null };
}

describe('adamStep worked out by hand', () => {
  it('moves each parameter by lr * g / (|g| + eps) on the first step (both moments fully bias-corrected)', () => {
    const p = Float32Array.from([1, -2, 0.5]);
    const g = Float32Array.from([0.3, -0.02, 4]);
    adamStep(p, g, buffers(3, false), adamScalars({ ...BASE, lr: 0.1 }, 0.1, 0.9, 1));
    const want = [1, -2, 0.5].map((p0, i) => p0 - (0.1 * g[i]) / (Math.abs(g[i]) + 1e-8));
    for (let i = 0; i < 3; i++) expect(Math.abs(p[i] - want[i])).toBeLessThan(2e-7);
  });

  it('follows m, v and the bias corrections over two steps, AdamW decaying the parameter first', () => {
    const o: AdamOptions = { ...BASE, lr: 0.01, betas: [0.8, 0.9], weightDecay: 0.5, decoupled: true };
    const p = Float32Array.from([2]);
    const s = buffers(1, false);
    const gs = [0.5, -0.25];
    let P = 2, m = 0, v = 0;
    gs.forEach((g, i) => {
      const t = i + 1;
      adamStep(p, Float32Array.from([g]), s, adamScalars(o, o.lr, 0.8, t));
      P *= 1 - 0.01 * 0.5;
      m = 0.8 * m + 0.2 * g;
      v = 0.9 * v + 0.1 * g * g;
      P -= (0.01 / (1 - 0.8 ** t)) * m / (Math.sqrt(v) / Math.sqrt(1 - 0.9 ** t) + 1e-8);
    });
    expect(Math.abs(s.expAvg[0] - m)).toBeLessThan(1e-7);
    expect(Math.abs(s.expAvgSq[0] - v)).toBeLessThan(1e-7);
    expect(Math.abs(p[0] - P)).toBeLessThan(4e-7);
  });

  it("adds Adam's L2 term to the gradient after negating it for maximize", () => {
    // g' = -g + wd * p: with g = 1, p = 2, wd = 0.5 that is 0, so nothing moves; without maximize 2.
    const p = Float32Array.from([2]);
    const s = buffers(1, false);
    adamStep(p, Float32Array.from([1]), s, adamScalars({ ...BASE, weightDecay: 0.5, maximize: true }, 1e-3, 0.9, 1));
    expect(p[0]).toBe(2);
    expect(s.expAvg[0]).toBe(0);
    const q = Float32Array.from([2]);
    adamStep(q, Float32Array.from([1]), buffers(1, false), adamScalars({ ...BASE, weightDecay: 0.5 }, 1e-3, 0.9, 1));
    expect(s.expAvgSq[0]).toBe(0);
    expect(q[0]).toBe(f32(2 - 1e-3 * (2 / (2 + 1e-8))));
  });

  it("normalizes by AMSGrad's running maximum of the raw second moment", () => {
    // A large gradient then a small one: v falls, its maximum stays, and the denominator uses the maximum.
    const o = { ...BASE, lr: 0.1, betas: [0.5, 0.5] as [number, number], amsgrad: true };
    const p = Float32Array.from([0]);
    const s = buffers(1, true);
    adamStep(p, Float32Array.from([2]), s, adamScalars(o, 0.1, 0.5, 1));
    const p1 = p[0];
    adamStep(p, Float32Array.from([0]), s, adamScalars(o, 0.1, 0.5, 2));
    expect(s.expAvgSq[0]).toBe(1); // 0.5 * (0.5 * 4)
    expect(s.maxExpAvgSq?.[0]).toBe(2); // max(0.5 * 4, 1), not bias-corrected
    const m = 0.5; // 0.5 * (0.5 * 2)
    const want = p1 - (0.1 / 0.75) * m / (Math.sqrt(2) / Math.sqrt(0.75) + 1e-8);
    expect(Math.abs(p[0] - want)).toBeLessThan(1e-7);
  });
});

describe('step.wasm adam against adamStep', () => {
  const P = 4099; // not a multiple of four: the scalar tail runs too
  const layout = stateLayout(P, 1, 4, null, 2);
  const shared = createSharedMemory(layout.bytes);
  if (shared === null) throw new Error('this Node has no WebAssembly SIMD; the suite expects it');
  const k = wasmStepKernels(instantiateStep(shared.memory));
  const v = stateViews(shared.buffer, layout, 1);
  const rng = new Rng(3);
  const fill = (a: Float32Array, scale = 1, positive = false): void => {
    for (let i = 0; i < a.length; i++) {
      const x = rng.uniform(1) * 10 ** (rng.nextInt(9) - 4) * scale;
      a[i] = positive ? Math.abs(x) : x;
    }
  };
  const settings: [string, Partial<AdamOptions>, number][] = [
    ['defaults', {}, 0.9],
    ['AdamW', { decoupled: true, weightDecay: 0.01 }, 0.9],
    ["Adam's L2 term", { weightDecay: 0.1 }, 0.9],
    ['AMSGrad', { amsgrad: true }, 0.9],
    ['maximize, AMSGrad and AdamW', { maximize: true, amsgrad: true, decoupled: true, weightDecay: 0.3 }, 0.9],
    ['beta1 below 0.5 (lerp by its other formula)', { betas: [0.3, 0.99] }, 0.3],
  ];
  it.each(settings)('gives the same bits with %s, half 0 into half 1, leaving the source alone', (_, opts, beta1) => {
    const o: AdamOptions = { ...BASE, ...opts };
    fill(v.params[0]);
    fill(v.momentum[0], 0.1);
    fill(v.moments[0][0], 0.01, true);
    fill(v.moments[1][0], 0.01, true);
    fill(v.grad);
    const from = 3, to = P - 2; // off the vector boundaries at both ends
    const sub = (a: Float32Array): Float32Array => a.subarray(from, to);
    const half = (h: 0 | 1) => ({
      params: sub(v.params[h]), expAvg: sub(v.momentum[h]), expAvgSq: sub(v.moments[0][h]),
      maxExpAvgSq: o.amsgrad ? sub(v.moments[1][h]) : null,
    });
    const source = half(0);
    const before = [source.params, source.expAvg, source.expAvgSq, sub(v.moments[1][0])].map((a) => a.slice());
    const s = adamScalars(o, 3e-3, beta1, 7);
    // The reference on copies of the source.
    const ref = { params: source.params.slice(), expAvg: source.expAvg.slice(), expAvgSq: source.expAvgSq.slice(), maxExpAvgSq: source.maxExpAvgSq?.slice() ?? null };
    adamStep(ref.params, sub(v.grad), ref, s);
    const { params, ...state } = half(1);
    k.adam(params, sub(v.grad), state, s, source);
    expect(sameBits(params, ref.params)).toBe(true);
    expect(sameBits(state.expAvg, ref.expAvg)).toBe(true);
    expect(sameBits(state.expAvgSq, ref.expAvgSq)).toBe(true);
    if (o.amsgrad) expect(sameBits(state.maxExpAvgSq as Float32Array, ref.maxExpAvgSq as Float32Array)).toBe(true);
    [source.params, source.expAvg, source.expAvgSq, sub(v.moments[1][0])].forEach((a, i) => expect(sameBits(a, before[i])).toBe(true));
    // And the step moved most parameters (not the largest ones, by less than their ulp), so the
    // comparison was of something.
    expect(params.filter((x, i) => x !== source.params[i]).length).toBeGreaterThan(params.length / 2);
  });
});

describe('Adam options as torch.optim.Adam validates them', () => {
  const base: TrainerOptions = { layers: [4, 3], workers: 1 };
  it.each([
    [{ optimizer: 'adam', betas: [1, 0.999] }, /^Invalid beta parameter at index 0: options\.betas\[0\] must be in \[0, 1\); got 1$/m],
    [{ optimizer: 'adamw', betas: [0.9, -0.1] }, /^Invalid beta parameter at index 1: options\.betas\[1\] must be in \[0, 1\); got -0\.1$/m],
    [{ optimizer: 'adam', eps: -1e-8 }, /^Invalid epsilon value: options\.eps must be >= 0; got -1e-8$/m],
    [{ optimizer: 'adam', lr: -1 }, /^Invalid learning rate: options\.lr must be >= 0; got -1$/m],
    [{ optimizer: 'adamw', weightDecay: -0.1 }, /^Invalid weight_decay value: options\.weightDecay must be >= 0; got -0\.1$/m],
    [{ optimizer: 'adam', betas: [0.9] }, /^options\.betas must be an array of two numbers \[beta1, beta2\]; got \[0\.9\]$/m],
    [{ optimizer: 'adam', amsgrad: 'yes' }, /^options\.amsgrad must be a boolean; got "yes"$/m],
    [{ optimizer: 'adam', eps: '1e-8' }, /^options\.eps must be a finite number; got "1e-8" \(a string\)$/m],
    [{ optimizer: 'adamw', maximize: 'true' }, /^options\.maximize must be a boolean; got "true" \(a string\)$/m],
    [{ optimizer: 'rmsprop' }, /^options\.optimizer must be one of 'sgd', 'adam', 'adamw'; got "rmsprop"$/m],
  ])('refuses %j', (o, message) => {
    expect(() => resolveOptions({ ...base, ...(o as Partial<TrainerOptions>) })).toThrow(message);
  });

  it.each(['momentum', 'dampening', 'nesterov'] as const)("refuses SGD's %s with Adam, naming it", (name) => {
    const value = name === 'nesterov' ? false : 0;
    expect(() => resolveOptions({ ...base, optimizer: 'adamw', [name]: value })).toThrow(
      new RegExp(`^options\\.${name} is an option of SGD; torch\\.optim\\.AdamW has no ${name}$`, 'm'));
  });

  it.each([['betas', [0.9, 0.99]], ['eps', 1e-8], ['amsgrad', false]] as const)("refuses Adam's %s with SGD, naming it", (name, value) => {
    expect(() => resolveOptions({ ...base, [name]: value })).toThrow(
      new RegExp(`^options\\.${name} is an option of Adam and AdamW; torch\\.optim\\.SGD has no ${name}$`, 'm'));
  });

  it("takes torch's defaults: weightDecay 0 for Adam and 0.01 for AdamW, unless given", () => {
    const pick = (o: Partial<TrainerOptions>) => {
      const r = resolveOptions({ ...base, ...o });
      return { lr: r.lr, betas: r.betas, eps: r.eps, weightDecay: r.weightDecay, amsgrad: r.amsgrad };
    };
    expect(pick({ optimizer: 'adam' })).toEqual({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false });
    expect(pick({ optimizer: 'adamw' })).toEqual({ lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01, amsgrad: false });
    expect(pick({ optimizer: 'adamw', weightDecay: 0 }).weightDecay).toBe(0);
  });
});
