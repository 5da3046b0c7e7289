// Timing the linear-layer kernels on their own, one thread, for both benchmarks: bench-kernels.ts prints
// them at the MLPs' shapes, bench.ts beside the same kernels' speed inside training at the shard's shape.
// Each figure is the median over windows, after a warm-up, of enough calls to last a window (100 ms unless
// the caller says); GFLOP/s at 2*B*C*OC flops per product, and the steal of /proc/stat over the timed windows.

import { cpuTicks, stealPercent } from '../src/main/tune/steal.js';
import { createWasmLinear, type WasmKernels } from '../src/shared/wasm.js';

export const PRODUCTS = ['forward', 'backward weight', 'backward input'] as const;
export type Product = (typeof PRODUCTS)[number];

/** Median seconds per call of f over `reps` windows of ~windowMs each, after one warm-up window. */
export function secondsPerCall(f: () => void, reps: number, windowMs = 100): number {
  let calls = 1;
  let t0 = performance.now();
  f();
  let elapsed = performance.now() - t0;
  // Warm-up doubles as calibration: grow the call count until a window lasts windowMs.
  while (elapsed < windowMs) {
    calls = Math.max(calls * 2, Math.ceil((calls * windowMs) / Math.max(elapsed, 1e-3)));
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

/** Values in [-1, 1) with no exact zeros (linearBackward skips zero gradients, which would flatter it). */
export function fill(a: Float32Array, seed: number): Float32Array {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s + 0.5) / 2 ** 31 - 1;
  }
  return a;
}

/** GFLOP/s of each product of one build of the WebAssembly kernels at (B, C, OC), timed over `reps` windows of
 *  ~windowMs, and the steal meanwhile. */
export function wasmProducts(kernels: WasmKernels, B: number, C: number, OC: number, reps: number, windowMs = 100): { gflops: Record<Product, number>; stealPct: number | null } {
  const wasm = createWasmLinear(2 * (B * C + OC * C + B * OC + OC) + 64, kernels);
  if (wasm === null) throw new Error(`the ${kernels} kernels cannot run in Node ${process.version}`);
  const w = {
    inp: fill(wasm.allocate(B * C), 1), weight: fill(wasm.allocate(OC * C), 2), bias: fill(wasm.allocate(OC), 3),
    out: wasm.allocate(B * OC), dout: fill(wasm.allocate(B * OC), 4),
    dinp: wasm.allocate(B * C), dweight: wasm.allocate(OC * C), dbias: wasm.allocate(OC),
  };
  const gflops = (seconds: number): number => (2 * B * C * OC) / seconds / 1e9;
  const from = cpuTicks();
  const result = {
    forward: gflops(secondsPerCall(() => wasm.forward(w.out, w.inp, w.weight, w.bias, B, C, OC), reps, windowMs)),
    'backward weight': gflops(secondsPerCall(() => wasm.backwardWeight(w.dweight, w.dbias, w.dout, w.inp, B, C, OC), reps, windowMs)),
    'backward input': gflops(secondsPerCall(() => wasm.backwardInput(w.dinp, w.dout, w.weight, B, C, OC), reps, windowMs)),
  };
  return { gflops: result, stealPct: stealPercent(from, cpuTicks()) };
}

/** A steal percentage for a table cell: '3.1%', or '-' where /proc/stat has none. */
export function stealText(pct: number | null): string {
  return pct === null ? '-' : `${pct.toFixed(1)}%`;
}
