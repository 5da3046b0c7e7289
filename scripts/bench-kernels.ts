#!/usr/bin/env node
// The kernel micro-benchmark (`npm run bench:kernels`): the three products of a linear layer, TS kernels
// (src/shared/kernels.ts) against WebAssembly SIMD (src/shared/wasm.ts), on the MLPs' layer shapes, one
// thread. Each figure is the median over repetitions, after a warm-up, of enough calls to last ~100 ms,
// as GFLOP/s at 2*B*C*OC flops per product.

import { Command } from 'commander';
import { linearBackward, linearForward } from '../src/shared/kernels.js';
import { createWasmLinear } from '../src/shared/wasm.js';

const BATCHES = [16, 64, 256];
/** (C, OC) of the layers of 784-128-10 and 784-1024-1024-10. */
const LAYERS: [number, number][] = [[784, 128], [128, 10], [784, 1024], [1024, 1024]];
const PRODUCTS = ['forward', 'backward weight', 'backward input'] as const;
type Product = (typeof PRODUCTS)[number];

const WINDOW_MS = 100;

/** Median seconds per call of f over `reps` windows of ~WINDOW_MS each, after one warm-up window. */
function secondsPerCall(f: () => void, reps: number): number {
  let calls = 1;
  let t0 = performance.now();
  f();
  let elapsed = performance.now() - t0;
  // Warm-up doubles as calibration: grow the call count until a window lasts WINDOW_MS.
  while (elapsed < WINDOW_MS) {
    calls = Math.max(calls * 2, Math.ceil((calls * WINDOW_MS) / Math.max(elapsed, 1e-3)));
    t0 = performance.now();
    for (let i = 0; i < calls; i++) f();
    elapsed = performance.now() - t0;
  }
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    t0 = performance.now();
    for (let i = 0; i < calls; i++) f();
    times.push((performance.now() - t0) / 1000 / calls);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function fill(a: Float32Array, seed: number): Float32Array {
  // Values in [-1, 1) with no exact zeros: linearBackward skips zero gradients, which would flatter it.
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s + 0.5) / 2 ** 31 - 1;
  }
  return a;
}

interface Row { B: number; C: number; OC: number; product: Product; ts: number; wasm: number }

function benchShape(B: number, C: number, OC: number, reps: number, skipTs: boolean): Row[] {
  const flops = 2 * B * C * OC;
  const gflops = (seconds: number): number => flops / seconds / 1e9;

  const wasm = createWasmLinear(2 * (B * C + OC * C + B * OC + OC) + 64);
  if (wasm === null) throw new Error('WebAssembly SIMD is not available in this runtime');
  const w = {
    inp: fill(wasm.allocate(B * C), 1), weight: fill(wasm.allocate(OC * C), 2), bias: fill(wasm.allocate(OC), 3),
    out: wasm.allocate(B * OC), dout: fill(wasm.allocate(B * OC), 4),
    dinp: wasm.allocate(B * C), dweight: wasm.allocate(OC * C), dbias: wasm.allocate(OC),
  };
  const wasmTimes: Record<Product, number> = {
    forward: secondsPerCall(() => wasm.forward(w.out, w.inp, w.weight, w.bias, B, C, OC), reps),
    'backward weight': secondsPerCall(() => wasm.backwardWeight(w.dweight, w.dbias, w.dout, w.inp, B, C, OC), reps),
    'backward input': secondsPerCall(() => wasm.backwardInput(w.dinp, w.dout, w.weight, B, C, OC), reps),
  };

  const tsTimes: Record<Product, number> = { forward: NaN, 'backward weight': NaN, 'backward input': NaN };
  if (!skipTs) {
    const t = {
      inp: fill(new Float32Array(B * C), 1), weight: fill(new Float32Array(OC * C), 2), bias: fill(new Float32Array(OC), 3),
      out: new Float32Array(B * OC), dout: fill(new Float32Array(B * OC), 4),
      dinp: new Float32Array(B * C), dweight: new Float32Array(OC * C), dbias: new Float32Array(OC),
    };
    tsTimes.forward = secondsPerCall(() => linearForward(t.out, t.inp, t.weight, t.bias, B, C, OC), reps);
    tsTimes['backward weight'] = secondsPerCall(() => linearBackward(null, t.dweight, t.dbias, t.dout, t.inp, t.weight, B, C, OC), reps);
    // linearBackward computes the input gradient only fused with the weight gradient: its cost is the
    // difference, which flatters TS a little (the fused loop shares the outer loop and gradient loads).
    const both = secondsPerCall(() => linearBackward(t.dinp, t.dweight, t.dbias, t.dout, t.inp, t.weight, B, C, OC), reps);
    tsTimes['backward input'] = both - tsTimes['backward weight'];
  }
  return PRODUCTS.map((product) => ({ B, C, OC, product, ts: gflops(tsTimes[product]), wasm: gflops(wasmTimes[product]) }));
}

function main(): void {
  const opts = new Command('bench-kernels')
    .description('GFLOP/s of the linear-layer kernels, TS against WebAssembly SIMD, on one thread')
    .option('--reps <n>', 'timed windows per figure (the median is reported)', (v) => Number.parseInt(v, 10), 5)
    .option('--batches <list>', 'comma-separated batch sizes B', (v) => v.split(',').map(Number), BATCHES)
    .option('--skip-ts', 'time only the WebAssembly kernels')
    .parse()
    .opts<{ reps: number; batches: number[]; skipTs?: boolean }>();
  if (!Number.isInteger(opts.reps) || opts.reps < 1) throw new TypeError(`--reps must be a positive integer, got ${opts.reps}`);
  if (!opts.batches.every((b) => Number.isInteger(b) && b > 0)) {
    throw new TypeError(`--batches must list positive integers, got ${opts.batches.join(',')}`);
  }

  const f = (x: number): string => (Number.isNaN(x) ? '-' : x.toFixed(2));
  console.log(`node ${process.version}, ${opts.reps} windows of ~${WINDOW_MS} ms per figure, GFLOP/s on one thread\n`);
  console.log('|   B |    C |   OC | product         |    TS |  WASM | WASM/TS |');
  console.log('|----:|-----:|-----:|:----------------|------:|------:|--------:|');
  for (const B of opts.batches) {
    for (const [C, OC] of LAYERS) {
      for (const r of benchShape(B, C, OC, opts.reps, opts.skipTs === true)) {
        console.log(
          `| ${String(r.B).padStart(3)} | ${String(r.C).padStart(4)} | ${String(r.OC).padStart(4)} | ${r.product.padEnd(15)} ` +
          `| ${f(r.ts).padStart(5)} | ${f(r.wasm).padStart(5)} | ${f(r.wasm / r.ts).padStart(7)} |`,
        );
      }
    }
  }
}

main();
