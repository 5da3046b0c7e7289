// Checks both builds of the WebAssembly SIMD linear-layer kernels (src/shared/wasm.ts, built from
// wasm/kernels.ts: 'wasm' with a multiply and an add, 'wasm-fma' with relaxed SIMD's fused multiply-add)
// against the TS reference kernels of src/shared/kernels.ts on random data, over shapes chosen to cross
// every tile, panel and block boundary of the SIMD code; each build bit for bit against a loop written here
// in the kernels' summation order that rounds as that build should (test/fma.ts); and the loader's
// contract: accumulation, overwriting, allocation, and refusal of arrays that do not live in the module's
// memory.

import { describe, expect, it } from 'vitest';
import { linearBackward, linearForward } from '../src/shared/kernels.js';
import { Rng } from '../src/shared/rng.js';
import { createWasmLinear, wasmKernelsSupported, wasmSimdSupported, type WasmKernels, type WasmLinear } from '../src/shared/wasm.js';
import { kernelArrays } from '../src/shared/model.js';
import { maxAbsDiff, sameBits } from './helpers.js';
import { fma32, fma32Exact, forwardInKernelOrder, mulAdd32, rankUpdateInKernelOrder, relaxedMaddFuses, type MulAdd } from './fma.js';
import { createScratch } from '../src/worker/shard.js';

// Tolerance relative to the magnitude of the terms summed into each element (the same sum over
// absolute values, computed by the reference kernels): the two sides round in float32 in different
// orders, so a sum that cancels to near zero cannot be held to a tolerance relative to its value.
const REL = 1e-5;

/** [B, C, OC, what the shape exercises]; the tile sizes named are wasm/kernels.ts's. */
const SHAPES: [number, number, number, string][] = [
  [1, 1, 1, 'nothing but tails'],
  [7, 13, 5, 'odd sizes'],
  [3, 784, 10, "the MLP's output layer on a shard of 3"],
  [64, 784, 128, "the MLP's hidden layer"],
  [16, 128, 10, "the MLP's output layer"],
  [9, 784, 1, 'logistic regression, OC = 1'],
  [5, 3, 1, 'C below one vector'],
  [2, 2000, 20, 'forward weight rows in chunks of 16'],
  [130, 24, 9, 'B above the 128-step reduction block of the weight gradient, OC % 4 = 1'],
  [5, 520, 131, 'C above the 512-column block, OC above the 128-step reduction block of the input gradient'],
  [67, 17, 66, 'OC above the 64-row block with 2 rows over, C % 8 = 1'],
  [66, 40, 6, 'B above the 64-row block with 2 rows over, an odd number of 8-column panels'],
  [19, 136, 23, 'B % 4 = 3 and OC % 4 = 3: both remainder-row kernels'],
  [3, 12, 7, 'one 4-column vector past the last 8-column panel'],
  [6, 1027, 3, 'C % 4 = 3 on long rows'],
  [4, 1024, 33, 'rows of 4 KiB'],
];

interface Case {
  wasm: WasmLinear;
  inp: Float32Array; // (B, C)
  weight: Float32Array; // (OC, C)
  bias: Float32Array; // (OC)
  dout: Float32Array; // (B, OC)
}

function fillUniform(a: Float32Array, rng: Rng): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = rng.uniform(1);
  return a;
}

/** A WasmLinear with room for `extra` more floats beyond random inp, weight, bias and dout. */
function makeCase(B: number, C: number, OC: number, extra: number, seed = 1, kernels: WasmKernels = 'wasm'): Case {
  const round4 = (n: number): number => Math.ceil(n / 4) * 4;
  const wasm = createWasmLinear(round4(B * C) + round4(OC * C) + round4(OC) + round4(B * OC) + extra, kernels) as WasmLinear;
  const rng = new Rng(seed);
  return {
    wasm,
    inp: fillUniform(wasm.allocate(B * C), rng),
    weight: fillUniform(wasm.allocate(OC * C), rng),
    bias: fillUniform(wasm.allocate(OC), rng),
    dout: fillUniform(wasm.allocate(B * OC), rng),
  };
}

const abs = (a: Float32Array): Float32Array => a.map(Math.abs);


/** Expects |actual - expected| <= REL * scale elementwise, reporting the largest difference. */
function expectClose(actual: Float32Array, expected: Float32Array, scale: Float32Array, what: string): void {
  expect(actual.length).toBe(expected.length);
  let maxDiff = 0;
  let worst = 0; // largest |diff| / scale
  let at = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    const r = d / Math.max(scale[i], Number.MIN_VALUE);
    if (!(d <= maxDiff)) maxDiff = d; // NaN sticks
    if (!(r <= worst)) { worst = r; at = i; }
  }
  expect(worst, `${what}: max |diff| ${maxDiff}; worst relative to the terms' magnitude ${worst} at [${at}]: ${actual[at]} vs ${expected[at]}`)
    .toBeLessThanOrEqual(REL);
}

for (const kernels of ['wasm', 'wasm-fma'] as const) {
  describe.skipIf(!wasmKernelsSupported(kernels))(`the ${kernels} kernels against the TS reference kernels`, () => {
    describe.each(SHAPES)('at B=%i, C=%i, OC=%i (%s)', (B, C, OC) => {
      it('forward overwrites out with what linearForward computes', () => {
        const t = makeCase(B, C, OC, B * OC, 1, kernels);
        const out = t.wasm.allocate(B * OC).fill(NaN); // garbage that must not leak into the result
        t.wasm.forward(out, t.inp, t.weight, t.bias, B, C, OC);
        const expected = new Float32Array(B * OC);
        linearForward(expected, t.inp, t.weight, t.bias, B, C, OC);
        const scale = new Float32Array(B * OC);
        linearForward(scale, abs(t.inp), abs(t.weight), abs(t.bias), B, C, OC);
        expectClose(out, expected, scale, 'out');
      });

      it("backwardWeight adds to dweight and dbias what linearBackward adds", () => {
        const t = makeCase(B, C, OC, OC * C + OC + 8, 1, kernels);
        const rng = new Rng(2);
        const dweight = fillUniform(t.wasm.allocate(OC * C), rng);
        const dbias = fillUniform(t.wasm.allocate(OC), rng);
        const expectedW = dweight.slice();
        const expectedB = dbias.slice();
        const scaleW = abs(dweight);
        const scaleB = abs(dbias);
        t.wasm.backwardWeight(dweight, dbias, t.dout, t.inp, B, C, OC);
        linearBackward(null, expectedW, expectedB, t.dout, t.inp, t.weight, B, C, OC);
        linearBackward(null, scaleW, scaleB, abs(t.dout), abs(t.inp), abs(t.weight), B, C, OC);
        expectClose(dweight, expectedW, scaleW, 'dweight');
        expectClose(dbias, expectedB, scaleB, 'dbias');
      });

      it('backwardInput adds to dinp what linearBackward adds', () => {
        const t = makeCase(B, C, OC, B * C, 1, kernels);
        const dinp = fillUniform(t.wasm.allocate(B * C), new Rng(3));
        const expected = dinp.slice();
        const scale = abs(dinp);
        t.wasm.backwardInput(dinp, t.dout, t.weight, B, C, OC);
        // linearBackward always adds the weight gradient too: into throwaway buffers.
        linearBackward(expected, new Float32Array(OC * C), new Float32Array(OC), t.dout, t.inp, t.weight, B, C, OC);
        linearBackward(scale, new Float32Array(OC * C), new Float32Array(OC), abs(t.dout), abs(t.inp), abs(t.weight), B, C, OC);
        expectClose(dinp, expected, scale, 'dinp');
      });
    });
  });
}

describe('the float32 multiply-adds the kernel references use', () => {
  it('fma32 rounds a * b + c once, as exact integer arithmetic does, where rounding in float64 first would not', () => {
    // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24 is exact in float64 and a float32 midpoint; 2^-60 more is lost in
    // float64 (then the tie goes to even, down) but decides the float32 rounding (up).
    const a = 1 + 2 ** -12;
    const c = 2 ** -60;
    expect(fma32Exact(a, a, c)).toBe(1 + 2 ** -11 + 2 ** -23);
    expect(fma32(a, a, c)).toBe(1 + 2 ** -11 + 2 ** -23);
    expect(Math.fround(a * a + c)).toBe(1 + 2 ** -11); // double rounding
    expect(fma32(a, a, -c)).toBe(1 + 2 ** -11);
    expect(fma32(-a, a, c)).toBe(fma32Exact(-a, a, c));
    expect(mulAdd32(a, a, -1)).toBe(2 ** -11); // the product rounded first
    expect(fma32(a, a, -1)).toBe(2 ** -11 + 2 ** -24);
  });

  it('fma32 agrees with exact integer arithmetic on random float32 triples, near-cancelling ones included', () => {
    const rng = new Rng(11);
    let differsFromUnfused = 0;
    for (let i = 0; i < 20000; i++) {
      const a = Math.fround(rng.uniform(1) * 2 ** ((i % 7) - 3));
      const b = Math.fround(rng.uniform(1));
      // Every fourth c nearly cancels a * b, where a fused multiply-add differs most from an unfused one.
      const c = i % 4 === 0 ? Math.fround(-a * b * (1 + rng.uniform(1) * 2 ** -20)) : Math.fround(rng.uniform(1) * 2 ** ((i % 5) - 2));
      expect(fma32(a, b, c), `fma32(${a}, ${b}, ${c})`).toBe(fma32Exact(a, b, c));
      if (fma32(a, b, c) !== mulAdd32(a, b, c)) differsFromUnfused++;
    }
    expect(differsFromUnfused).toBeGreaterThan(1000);
  });
});

/** The multiply-add each build's steps round as on this machine. */
const roundingOf = (kernels: WasmKernels): MulAdd => (kernels === 'wasm-fma' && relaxedMaddFuses() ? fma32 : mulAdd32);

/** Shapes with C a multiple of 4 (no scalar tail, whose order differs): each build bit for bit. */
const WHOLE_VECTOR_SHAPES = SHAPES.filter(([, C]) => C % 4 === 0);

for (const kernels of ['wasm', 'wasm-fma'] as const) {
  describe.skipIf(!wasmKernelsSupported(kernels))(`the ${kernels} kernels against their summation order, bit for bit`, () => {
    const madd = roundingOf(kernels);
    describe.each(WHOLE_VECTOR_SHAPES)('at B=%i, C=%i, OC=%i (%s)', (B, C, OC) => {
      it('forward', () => {
        const t = makeCase(B, C, OC, B * OC, 5, kernels);
        const out = t.wasm.allocate(B * OC);
        t.wasm.forward(out, t.inp, t.weight, t.bias, B, C, OC);
        const expected = new Float32Array(B * OC);
        forwardInKernelOrder(madd, expected, t.inp, t.weight, t.bias, B, C, OC);
        expect(sameBits(out, expected), `max |diff| ${maxAbsDiff(out, expected)}`).toBe(true);
      });

      it('backwardWeight and backwardInput', () => {
        const t = makeCase(B, C, OC, OC * C + OC + B * C + 12, 6, kernels);
        const rng = new Rng(7);
        const dweight = fillUniform(t.wasm.allocate(OC * C), rng);
        const dbias = fillUniform(t.wasm.allocate(OC), rng);
        const dinp = fillUniform(t.wasm.allocate(B * C), rng);
        const [expectedW, expectedB, expectedI] = [dweight.slice(), dbias.slice(), dinp.slice()];
        t.wasm.backwardWeight(dweight, dbias, t.dout, t.inp, B, C, OC);
        t.wasm.backwardInput(dinp, t.dout, t.weight, B, C, OC);
        // dweight (OC, C) += dout^T @ inp, one b at a time; dbias += dout's rows, one b at a time.
        rankUpdateInKernelOrder(madd, expectedW, (o, b) => t.dout[b * OC + o], t.inp, OC, B, C);
        for (let b = 0; b < B; b++) for (let o = 0; o < OC; o++) expectedB[o] = Math.fround(expectedB[o] + t.dout[b * OC + o]);
        // dinp (B, C) += dout @ weight, one o at a time.
        rankUpdateInKernelOrder(madd, expectedI, (b, o) => t.dout[b * OC + o], t.weight, B, OC, C);
        expect(sameBits(dweight, expectedW), `dweight: max |diff| ${maxAbsDiff(dweight, expectedW)}`).toBe(true);
        expect(sameBits(dbias, expectedB), `dbias: max |diff| ${maxAbsDiff(dbias, expectedB)}`).toBe(true);
        expect(sameBits(dinp, expectedI), `dinp: max |diff| ${maxAbsDiff(dinp, expectedI)}`).toBe(true);
      });
    });
  });
}

describe.skipIf(!wasmKernelsSupported('wasm-fma') || !relaxedMaddFuses())('the wasm-fma kernels on a CPU with FMA', () => {
  it("round differently from the 'wasm' kernels: the same products, other bits", () => {
    const [B, C, OC] = [16, 128, 12];
    const outs = (['wasm', 'wasm-fma'] as const).map((kernels) => {
      const t = makeCase(B, C, OC, B * OC, 9, kernels);
      const out = t.wasm.allocate(B * OC);
      t.wasm.forward(out, t.inp, t.weight, t.bias, B, C, OC);
      return out;
    });
    let differ = 0;
    for (let i = 0; i < B * OC; i++) if (outs[0][i] !== outs[1][i]) differ++;
    expect(differ).toBeGreaterThan(B * OC / 4);
  });
});

describe.skipIf(!wasmSimdSupported())('WebAssembly SIMD linear kernels', () => {
  it('backward kernels add to what their outputs hold instead of overwriting it', () => {
    const [B, C, OC] = [19, 136, 23];
    const t = makeCase(B, C, OC, 2 * (OC * C + OC + B * C) + 16);
    const fromZero = [t.wasm.allocate(OC * C), t.wasm.allocate(OC), t.wasm.allocate(B * C)];
    const rng = new Rng(4);
    const prefilled = [t.wasm.allocate(OC * C), t.wasm.allocate(OC), t.wasm.allocate(B * C)].map((a) => fillUniform(a, rng));
    const before = prefilled.map((a) => a.slice());
    for (const [dw, db, di] of [fromZero, prefilled]) {
      t.wasm.backwardWeight(dw, db, t.dout, t.inp, B, C, OC);
      t.wasm.backwardInput(di, t.dout, t.weight, B, C, OC);
    }
    // prefilled - before == fromZero, up to the rounding of the sums (scaled by the terms' magnitude).
    const scale = [new Float32Array(OC * C), new Float32Array(OC), new Float32Array(B * C)];
    linearBackward(scale[2], scale[0], scale[1], abs(t.dout), abs(t.inp), abs(t.weight), B, C, OC);
    ['dweight', 'dbias', 'dinp'].forEach((name, i) => {
      const added = prefilled[i].map((x, j) => x - before[i][j]);
      expectClose(added, fromZero[i], scale[i].map((s, j) => s + Math.abs(before[i][j])), name);
    });
  });

  it('allocate hands out zeroed, 16-byte aligned, disjoint views of the memory, which never grows', () => {
    const wasm = createWasmLinear(4 + 8 + 4) as WasmLinear;
    const a = wasm.allocate(3);
    const b = wasm.allocate(5);
    for (const v of [a, b]) {
      expect(v.buffer).toBe(wasm.memory.buffer);
      expect(v.byteOffset % 16).toBe(0);
      expect(Array.from(v)).toEqual(new Array(v.length).fill(0));
    }
    expect(b.byteOffset).toBeGreaterThanOrEqual(a.byteOffset + 16);
    const before = wasm.memory.buffer;
    const out = wasm.allocate(1);
    wasm.forward(out, a.subarray(0, 1), b.subarray(0, 1), b.subarray(1, 2), 1, 1, 1);
    expect(wasm.memory.buffer).toBe(before);
  });

  it('allocate refuses more than the memory was created for, with a hint', () => {
    const wasm = createWasmLinear(64) as WasmLinear;
    wasm.allocate(60);
    expect(() => wasm.allocate(5)).toThrow(expect.objectContaining({
      name: 'RangeError',
      message: 'allocate(5) needs 8 floats but only 4 of the 64 this WasmLinear was created with are left\n' +
        'hint: createWasmLinear(floats) must cover all allocations, each rounded up to a multiple of 4 floats',
      hint: 'createWasmLinear(floats) must cover all allocations, each rounded up to a multiple of 4 floats',
    }));
  });

  it('refuses an array that is not a view of the module memory', () => {
    const t = makeCase(2, 3, 4, 12);
    const foreign = new Float32Array(8);
    expect(() => t.wasm.forward(foreign, t.inp, t.weight, t.bias, 2, 3, 4))
      .toThrow(expect.objectContaining({
        name: 'TypeError',
        message: "out is not a view of this WasmLinear's memory\nhint: allocate it with allocate(n) of the same WasmLinear",
        hint: 'allocate it with allocate(n) of the same WasmLinear',
      }));
    const other = makeCase(2, 3, 4, 0);
    expect(() => t.wasm.backwardWeight(t.wasm.allocate(12), t.bias, t.dout, other.inp, 2, 3, 4))
      .toThrow(/^inp is not a view of this WasmLinear's memory/);
    expect(() => t.wasm.backwardInput(t.inp, t.dout, new Float32Array(12), 2, 3, 4))
      .toThrow(/^weight is not a view of this WasmLinear's memory/);
  });

  it('refuses an array too short for the sizes', () => {
    const t = makeCase(2, 3, 4, 8);
    expect(() => t.wasm.forward(t.wasm.allocate(7), t.inp, t.weight, t.bias, 2, 3, 4))
      .toThrow(new RangeError('out holds 7 floats but the sizes need 8'));
  });
});

describe("the workers' kernel regions", () => {
  // The coordinator sizes each worker's region from kernelArrays; createScratch must allocate exactly
  // those arrays there, or a worker runs out of room (or the sizes hide a wasted region).
  for (const layers of [[784, 128, 10], [5, 1], [3, 7, 9, 4]]) {
    it(`are sized for what createScratch allocates, for layers ${layers.join('-')}`, () => {
      const allocated: number[] = [];
      createScratch({ layers, activation: 'relu', loss: 'cross-entropy' }, 13, (n) => {
        allocated.push(n);
        return new Float32Array(n);
      });
      expect(allocated.sort((a, b) => a - b)).toEqual(kernelArrays(layers, 13).sort((a, b) => a - b));
    });
  }
});
