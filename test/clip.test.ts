// Checks clipGradNorm against torch.nn.utils.clip_grad_norm_ (total norms and clipped gradients recorded by
// scripts/reference/make_schedule_fixtures.py into test/fixtures/torch-schedules.json), against the norm
// of per-tensor norms computed here in float64, and by hand; validateClip's messages; and fit() on a
// gradient holding NaN under clipping of order 1 and Infinity (a max drops a NaN: only the sum of
// squares carries it).

import { readFileSync } from 'node:fs';
import { describe, it, expect } from 'vitest';
import { clipGradNorm, validateClip } from '../src/shared/clip.js';
import type { EpochRecord, Trainer, TrainerOptions } from '../src/main/index.js';
import { sameBits, trainers } from './helpers.js';
import type { ClipOptions } from '../src/shared/clip.js';

type Num = number | 'NaN' | 'Infinity' | '-Infinity';

interface ClipCase {
  name: string;
  /** the tensors' shapes; grad holds them flattened one after another, as gradpool lays them out */
  shapes: number[][];
  maxNorm: number;
  normType: Num;
  errorIfNonfinite: boolean;
  grad: Num[];
  totalNorm?: Num;
  clipped?: Num[];
  /** torch's RuntimeError message */
  error?: string;
}

const fixture = JSON.parse(
  readFileSync(new URL('./fixtures/torch-schedules.json', import.meta.url), 'utf8'),
) as { torch: string; clip: ClipCase[] };

const num = (v: Num): number => (typeof v === 'number' ? v : Number(v));

// torch sums each tensor's norm in float32 then takes the norm of those; one float64 pass over the flat
// buffer lands within an ulp or two of float32 of it, and the clip coefficient inherits that.
const REL = 1e-6;

/** |got - want| <= REL |want|, with NaN matching NaN and infinities matching exactly. */
function close(got: number, want: number): boolean {
  if (Number.isNaN(want)) return Number.isNaN(got);
  if (!Number.isFinite(want)) return got === want;
  return Math.abs(got - want) <= REL * Math.abs(want);
}

describe(`clipGradNorm against torch ${fixture.torch} clip_grad_norm_`, () => {
  const ok = fixture.clip.filter((c) => c.error === undefined).map((c) => [c.name, c] as const);

  it.each(ok)('%s: total norm and clipped gradients match torch', (_n, c) => {
    const grad = Float32Array.from(c.grad, num);
    const total = clipGradNorm(grad, c.maxNorm, num(c.normType), c.errorIfNonfinite);
    expect(close(total, num(c.totalNorm!)), `total norm ${total} vs torch ${c.totalNorm}`).toBe(true);
    let worst = 0;
    let where = '';
    c.clipped!.forEach((w, i) => {
      const want = num(w);
      if (!close(grad[i], want)) { worst = Infinity; where = `[${i}] ${grad[i]} vs torch ${want}`; return; }
      const rel = want === 0 ? Math.abs(grad[i]) : Math.abs(grad[i] - want) / Math.abs(want);
      if (rel > worst) { worst = rel; where = `[${i}] ${grad[i]} vs torch ${want}`; }
    });
    expect(worst, `largest relative difference ${worst} at ${where}`).toBeLessThanOrEqual(REL);
  });

  const errors = fixture.clip.filter((c) => c.error !== undefined).map((c) => [c.name, c] as const);
  it.each(errors)('%s: throws torch\'s error in gradpool\'s words and leaves the gradient alone', (_n, c) => {
    const grad = Float32Array.from(c.grad, num);
    const before = grad.slice();
    const torchOrder = num(c.normType);
    expect(c.error).toContain('is non-finite, so it cannot be clipped');
    expect(() => clipGradNorm(grad, c.maxNorm, torchOrder, true)).toThrow(RangeError);
    expect(() => clipGradNorm(grad, c.maxNorm, torchOrder, true)).toThrow(
      `The total norm of order ${torchOrder} of the gradients is non-finite`);
    expect(Array.from(grad)).toEqual(Array.from(before));
  });

  const finiteNested = ok.filter(([, c]) => c.shapes.length > 1 && typeof c.normType === 'number' && num(c.totalNorm!) > 0
    && Number.isFinite(num(c.totalNorm!)));
  it.each(finiteNested)(
    '%s: the flat norm equals the norm of per-tensor norms', (_n, c) => {
      const p = num(c.normType);
      const grad = Float64Array.from(c.grad, num);
      let offset = 0;
      const norms = c.shapes.map((shape) => {
        const size = shape.reduce((a, b) => a * b, 1);
        let s = 0;
        for (let i = offset; i < offset + size; i++) s += Math.abs(grad[i]) ** p;
        offset += size;
        return s ** (1 / p);
      });
      const nested = norms.reduce((s, n) => s + n ** p, 0) ** (1 / p);
      const total = clipGradNorm(Float32Array.from(c.grad, num), Infinity, p);
      expect(Math.abs(total - nested) / nested).toBeLessThan(REL);
    });
});

describe('clipGradNorm by hand', () => {
  it('scales a 3-4-5 gradient to norm 1, less the 1e-6 in the denominator', () => {
    const g = Float32Array.from([3, 4]);
    expect(clipGradNorm(g, 1)).toBe(5);
    const coef = 1 / (5 + 1e-6);
    expect(Math.abs(g[0] - 3 * coef) / (3 * coef)).toBeLessThan(1e-7);
    expect(Math.abs(g[1] - 4 * coef) / (4 * coef)).toBeLessThan(1e-7);
    expect(Math.abs(g[0] - 0.6)).toBeLessThan(2e-7);
    expect(Math.abs(g[1] - 0.8)).toBeLessThan(2e-7);
  });
  it('still scales a gradient at exactly maxNorm, by maxNorm / (maxNorm + 1e-6)', () => {
    const g = Float32Array.from([3, 4]);
    clipGradNorm(g, 5);
    expect(g[0]).toBeLessThan(3);
    expect(g[1]).toBeLessThan(4);
  });
  it('leaves a gradient under the limit bit-identical, for every norm order', () => {
    const g0 = Float32Array.from([0.1, -0.25, 0.3333, 1e-8, -0.7, 0, -0]);
    for (const p of [1, 2, 3, 7.5, Infinity]) {
      const g = g0.slice();
      clipGradNorm(g, 100, p);
      expect(Array.from(g), `normType ${p}`).toEqual(Array.from(g0));
      expect(Object.is(g[6], -0)).toBe(true);
    }
  });
  it('takes the 1-norm as the sum of |g|, the inf-norm as the largest |g|, the 3-norm as the cube root of the sum of |g|^3', () => {
    const g = [1, -2, 2];
    expect(clipGradNorm(Float32Array.from(g), 100, 1)).toBe(5);
    expect(clipGradNorm(Float32Array.from(g), 100, Infinity)).toBe(2);
    expect(clipGradNorm(Float32Array.from(g), 100, 2)).toBe(3);
    expect(clipGradNorm(Float32Array.from(g), 100, 3)).toBeCloseTo(Math.cbrt(17), 6);
  });
  it('computes a high-order norm of large and of tiny gradients without overflow or underflow', () => {
    expect(clipGradNorm(Float32Array.from([3e38, 3e38]), 1e40, 16) / (3e38 * 2 ** (1 / 16))).toBeCloseTo(1, 6);
    expect(clipGradNorm(Float32Array.from([1e-30, 1e-30]), 1, 40) / (1e-30 * 2 ** (1 / 40))).toBeCloseTo(1, 6);
  });
  it('returns 0 for an empty or all-zero gradient and leaves it alone', () => {
    expect(clipGradNorm(new Float32Array(0), 1)).toBe(0);
    const g = new Float32Array(4);
    expect(clipGradNorm(g, 1)).toBe(0);
    expect(Array.from(g)).toEqual([0, 0, 0, 0]);
  });
  it('scales by 0 for an infinite norm, making the infinite entry NaN, as torch does', () => {
    const g = Float32Array.from([1, -Infinity, 2]);
    expect(clipGradNorm(g, 1)).toBe(Infinity);
    expect(Array.from(g)).toEqual([0, NaN, 0]);
  });
  it('throws for a NaN norm with errorIfNonfinite, naming gradpool\'s option', () => {
    expect(() => clipGradNorm(Float32Array.from([1, NaN]), 1, 2, true)).toThrow(
      'The total norm of order 2 of the gradients is non-finite (NaN), so it cannot be clipped. To disable this error ' +
      'and scale the gradients by the non-finite norm anyway, set options.errorIfNonfinite to false');
  });
});

describe('validateClip', () => {
  const bad = (o: Record<string, unknown>): (() => void) => () => validateClip(o as ClipOptions);

  it('accepts no clipping, the defaults filled in, and valid settings', () => {
    expect(bad({})).not.toThrow();
    expect(bad({ clipGradNorm: null, clipNormType: 2, errorIfNonfinite: false })).not.toThrow();
    expect(bad({ clipGradNorm: 1, clipNormType: Infinity, errorIfNonfinite: true })).not.toThrow();
    expect(bad({ clipGradNorm: 0.5, clipNormType: 1 })).not.toThrow();
  });
  it('rejects a clipGradNorm that is not a finite number', () => {
    expect(bad({ clipGradNorm: NaN })).toThrow(TypeError);
    expect(bad({ clipGradNorm: NaN })).toThrow('options.clipGradNorm must be a finite number; got NaN');
    expect(bad({ clipGradNorm: '1' })).toThrow('options.clipGradNorm must be a finite number; got "1" (a string)');
  });
  it('rejects a clipGradNorm <= 0, which torch would apply by zeroing or flipping the gradient', () => {
    expect(bad({ clipGradNorm: 0 })).toThrow(RangeError);
    expect(bad({ clipGradNorm: -1 })).toThrow(expect.objectContaining({
      message: 'options.clipGradNorm must be > 0; got -1\nhint: leave it unset to disable clipping', hint: 'leave it unset to disable clipping',
    }));
  });
  it('rejects a clipNormType below 1 or not a number', () => {
    expect(bad({ clipNormType: 0.5 })).toThrow(RangeError);
    expect(bad({ clipNormType: 0.5 })).toThrow('options.clipNormType must be >= 1 or Infinity; got 0.5');
    expect(bad({ clipNormType: -Infinity })).toThrow('options.clipNormType must be >= 1 or Infinity; got -Infinity');
    expect(bad({ clipNormType: NaN })).toThrow('options.clipNormType must be a number; got NaN');
    expect(bad({ clipNormType: 'inf' })).toThrow(TypeError);
  });
  it('rejects a non-boolean errorIfNonfinite', () => {
    expect(bad({ errorIfNonfinite: 1 })).toThrow(TypeError);
    expect(bad({ errorIfNonfinite: 1 })).toThrow('options.errorIfNonfinite must be a boolean; got 1');
  });
});

describe('a gradient holding NaN in fit(), under clipping of order 1 and Infinity', () => {
  const { make } = trainers();
  // Weights set by hand: W = [1e-38, 0], b = [10, 0]. Rows 0-1 (shard 0) have x = +3e38, rows 2-3
  // (shard 1) x = -3e38, all of class 1: each row's logits are modest (13 or 7 against 0) and its loss
  // finite, but its weight gradient is about +-3e38, so shard 0's float32 sum overflows to +Infinity,
  // shard 1's to -Infinity, and their sum is NaN: the largest |g| alone (order Infinity) would not see it.
  const data = { x: Float32Array.from([3e38, 3e38, -3e38, -3e38]), y: Int32Array.from([1, 1, 1, 1]) };
  const base: TrainerOptions = { layers: [1, 2], batchSize: 4, shards: 2, workers: 1, shuffle: false, lr: 0.1, clipGradNorm: 1 };
  const start = (o: Partial<TrainerOptions>): { t: Trainer; before: Float32Array } => {
    const t = make({ ...base, ...o });
    t.parameters.set([1e-38, 0, 10, 0]);
    return { t, before: t.parameters.slice() };
  };
  // Reference: the per-row gradient of W written out, and the float32 sums of the two shards.
  it('is NaN by the arithmetic of the test (so a finite norm would be a missed check)', () => {
    const p = (z0: number) => Math.exp(z0) / (Math.exp(z0) + 1); // softmax over (z0, 0), class 0
    const shard0 = Math.fround(Math.fround(p(13) * 3e38) + Math.fround(p(13) * 3e38));
    const shard1 = Math.fround(Math.fround(p(7) * -3e38) + Math.fround(p(7) * -3e38));
    expect([shard0, shard1, shard0 + shard1]).toEqual([Infinity, -Infinity, NaN]);
  });

  for (const normType of [1, Infinity]) {
    it(`throws with errorIfNonfinite (order ${normType}), even with onNonfinite 'skip', nothing applied`, async () => {
      const { t, before } = start({ clipNormType: normType, errorIfNonfinite: true, onNonfinite: 'skip' });
      const err = await t.fit(data, { epochs: 1 }).then(() => null, (e: unknown) => e as Error);
      expect(err?.message).toMatch(new RegExp(`^The total norm of order ${normType} of the gradients is non-finite \\(NaN\\), so it cannot be clipped`));
      expect(sameBits(t.parameters, before)).toBe(true);
    });

    it(`stops with onNonfinite 'stop' and skips with 'skip' (order ${normType}), nothing applied`, async () => {
      const stopped = start({ clipNormType: normType });
      const err = await stopped.t.fit(data, { epochs: 1 }).then(() => null, (e: unknown) => e as Error);
      expect(err?.name).toBe('NonfiniteError');
      expect(err?.message).toMatch(/^step 1 \(epoch 1, batch 1 of 1\) gave a non-finite gradient .*\(gradient norm NaN\)/);
      expect(sameBits(stopped.t.parameters, stopped.before)).toBe(true);
      const skipped = start({ clipNormType: normType, onNonfinite: 'skip' });
      const norms: number[] = [];
      const [record] = await skipped.t.fit(data, { epochs: 1, onStep: (s) => norms.push(s.gradNorm) });
      expect([record.nonfiniteSteps, record.skippedSteps]).toEqual([1, 1]);
      expect(norms).toEqual([NaN]);
      expect(sameBits(skipped.t.parameters, skipped.before)).toBe(true);
    });
  }
});

describe('an infinite loss with a finite gradient norm in fit(), errorIfNonfinite under clipping', () => {
  const { make } = trainers();
  // W = [[0, 0], [-1, -1]], b = 0. Row 5 (x = (3e38, 3e38), class 1) has logits (0, -Infinity): its loss
  // log(1 + e^0) - (-Infinity) is Infinity, while its logit gradient softmax - onehot = (1, -1) is finite,
  // so the weight gradient (about +-3e38 / 4) and its norm are finite. torch's clip_grad_norm_ raises only
  // for a non-finite norm: the step is non-finite by its loss, and onNonfinite 'skip' skips it.
  const x = new Float32Array(16 * 2);
  const y = new Int32Array(16);
  for (let i = 0; i < 16; i++) [x[2 * i], x[2 * i + 1], y[i]] = [(i % 5) / 5, (i % 3) / 3, i % 2];
  [x[10], x[11], y[5]] = [3e38, 3e38, 1];
  const base: TrainerOptions = { layers: [2, 2], batchSize: 4, workers: 2, shuffle: false, lr: 0.1, clipGradNorm: 1, onNonfinite: 'skip' };

  async function run(o: Partial<TrainerOptions>, stepsPerExecution?: number): Promise<{ params: Float32Array; losses: number[]; records: EpochRecord[] }> {
    const t = make({ ...base, ...o });
    t.parameters.set([0, 0, -1, -1, 0, 0]);
    const losses: number[] = [];
    const records = await t.fit({ x, y }, { epochs: 2, stepsPerExecution, onStep: (s) => losses.push(s.loss) });
    return { params: t.parameters.slice(), losses, records };
  }

  it('skips that step and trains on, as without errorIfNonfinite, in runs of many steps or of one', async () => {
    const without = await run({ errorIfNonfinite: false });
    // the second step of each epoch (rows 4-7) is the infinite one, and the only one skipped
    expect(without.losses.map(Number.isFinite)).toEqual([true, false, true, true, true, false, true, true]);
    for (const stepsPerExecution of [undefined, 1]) {
      const got = await run({ errorIfNonfinite: true }, stepsPerExecution);
      expect(got.records.map((r) => [r.steps, r.nonfiniteSteps])).toEqual([[4, 1], [4, 1]]);
      expect(sameBits(got.params, without.params)).toBe(true);
    }
  });
});
