// Loads the WebAssembly SIMD linear-layer kernels (wasm/kernels.ts, built to kernels.wasm beside this file
// by `npm run build:wasm`, and to kernels-fma.wasm with relaxed SIMD's fused multiply-add) onto a fixed-size shared memory, with a bump allocator for the arrays they work
// on: a memory of their own (createWasmLinear), or a worker's region of the training state's memory
// (createWasmLinearIn), where the kernels read the parameters and write the gradient slots in place.
// Synchronous, so a worker thread can set it up at load time; null where the runtime has no WebAssembly
// SIMD (or, for kernels-fma.wasm, relaxed SIMD), and callers keep the TS kernels of kernels.ts.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { hinted } from './option-errors.js';

// The part of the WebAssembly JS API used here. Node has it all, but the project's lib (ES2023, no DOM)
// and @types/node 20 declare none of it; declared in this module only, so it cannot clash with a lib
// that does.
declare namespace WebAssembly {
  interface Memory {
    readonly buffer: ArrayBuffer;
  }
  /** Opaque, as in lib.dom. */
  interface Module {}
  interface Instance {
    readonly exports: Record<string, unknown>;
  }
  const Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => Memory;
  const Module: new (bytes: Uint8Array) => Module;
  const Instance: new (module: Module, imports: Record<string, Record<string, unknown>>) => Instance;
  function validate(bytes: Uint8Array): boolean;
}

/** Which build of wasm/kernels.ts: multiply and add ('wasm'), or relaxed SIMD's fused multiply-add ('wasm-fma'). */
export type WasmKernels = 'wasm' | 'wasm-fma';

/** A WebAssembly.Memory (opaque outside this module). */
export type WasmMemory = WebAssembly.Memory;

/** The three linear-layer products on WebAssembly SIMD, over arrays that live in the module's memory. */
export interface WasmLinear {
  memory: WebAssembly.Memory;
  /** A zeroed Float32Array view of `floats` floats in the module's memory, 16-byte aligned. All arrays passed to the kernels below must come from here (views of this memory). Allocate everything up front: the memory never grows after creation, so views stay valid. */
  allocate(floats: number): Float32Array;
  forward(out: Float32Array, inp: Float32Array, weight: Float32Array, bias: Float32Array, B: number, C: number, OC: number): void;
  backwardWeight(dweight: Float32Array, dbias: Float32Array, dout: Float32Array, inp: Float32Array, B: number, C: number, OC: number): void;
  backwardInput(dinp: Float32Array, dout: Float32Array, weight: Float32Array, B: number, C: number, OC: number): void;
}

/** The module's exports; pointers are byte offsets into the memory, sizes element counts. */
interface KernelExports {
  heap_base(): number;
  pack_bytes(): number;
  set_pack(pack: number): void;
  linear_forward(out: number, inp: number, weight: number, bias: number, B: number, C: number, OC: number): void;
  linear_backward_weight(dweight: number, dbias: number, dout: number, inp: number, B: number, C: number, OC: number): void;
  linear_backward_input(dinp: number, dout: number, weight: number, B: number, C: number, OC: number): void;
  simd_peak(iters: number, x: number, y: number): number;
}

const KERNELS_URLS: Record<WasmKernels, URL> = {
  wasm: new URL('./kernels.wasm', import.meta.url),
  'wasm-fma': new URL('./kernels-fma.wasm', import.meta.url),
};
const PAGE_BYTES = 65536;
/** Allocations are rounded up to whole f32x4 vectors so every array starts 16-byte aligned. */
const ALIGN_FLOATS = 4;

// The smallest module that uses a SIMD opcode: (func (result v128) (i32x4.splat (i32.const 0))).
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x11, 0x0b, // code: i32.const 0; i32x4.splat; end
]);

// The smallest module that uses a relaxed SIMD opcode: (func (result v128) (f32x4.relaxed_madd (i32x4.splat
// (i32.const 0)) x 3)). Node 22+ validates it; Node 20 only with --experimental-wasm-relaxed-simd.
const RELAXED_SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type section: () -> v128
  0x03, 0x02, 0x01, 0x00, // function section: one function of type 0
  0x0a, 0x13, 0x01, 0x11, 0x00, // code: one body of 17 bytes, no locals
  0x41, 0x00, 0xfd, 0x11, 0x41, 0x00, 0xfd, 0x11, 0x41, 0x00, 0xfd, 0x11, // 3 x (i32.const 0; i32x4.splat)
  0xfd, 0x85, 0x02, 0x0b, // f32x4.relaxed_madd (0xfd 0x105); end
]);

let simd: boolean | undefined;
let relaxedSimd: boolean | undefined;
/** Each module, compiled once per thread on first use, and where its static data and scratch end. */
const compiled = new Map<WasmKernels, { module: WebAssembly.Module; heapBase: number; packBytes: number }>();

/** True when this runtime validates a SIMD module. */
export function wasmSimdSupported(): boolean {
  if (simd === undefined) {
    simd = typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  }
  return simd;
}

/** True when this runtime validates a relaxed SIMD module (kernels-fma.wasm's f32x4.relaxed_madd). */
export function wasmRelaxedSimdSupported(): boolean {
  if (relaxedSimd === undefined) {
    relaxedSimd = wasmSimdSupported() && WebAssembly.validate(RELAXED_SIMD_PROBE);
  }
  return relaxedSimd;
}

/** True when the runtime can run this build of the kernels. */
export function wasmKernelsSupported(kernels: WasmKernels): boolean {
  return kernels === 'wasm' ? wasmSimdSupported() : wasmRelaxedSimdSupported();
}

/** Compiles a module built by `npm run build:wasm`, saying so when it has not been built. */
function compileBuilt(url: URL, what: string): WebAssembly.Module {
  let bytes: Buffer;
  try {
    bytes = readFileSync(url);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    throw hinted((m) => new Error(m), `${what} not found at ${fileURLToPath(url)}`, 'run `npm run build:wasm`');
  }
  return new WebAssembly.Module(bytes);
}

function kernelsModule(kernels: WasmKernels = 'wasm'): { module: WebAssembly.Module; heapBase: number; packBytes: number } {
  let c = compiled.get(kernels);
  if (c === undefined) {
    const module = compileBuilt(KERNELS_URLS[kernels], kernels === 'wasm' ? 'WebAssembly kernels' : 'WebAssembly FMA kernels');
    // heap_base() and pack_bytes() read no memory, so an instance over an empty one can answer them.
    const probe = new WebAssembly.Instance(module, { env: { memory: sharedMemory(0) } }).exports as unknown as KernelExports;
    c = { module, heapBase: probe.heap_base(), packBytes: probe.pack_bytes() };
    compiled.set(kernels, c);
  }
  return c;
}

/** A shared memory of `pages` that can never grow (so no view handed out is ever detached). */
function sharedMemory(pages: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
}

/** Bytes of `floats` floats, rounded up to whole f32x4 vectors. */
function alignedBytes(floats: number): number {
  return 4 * Math.ceil(floats / ALIGN_FLOATS) * ALIGN_FLOATS;
}

/** Bytes a region for createWasmLinearIn needs to allocate arrays of these float counts: the module's
 *  packing scratch (wasm/kernels.ts pack_bytes, the same in both builds) and the arrays. */
export function wasmRegionBytes(arrays: readonly number[]): number {
  return arrays.reduce((sum, n) => sum + alignedBytes(n), kernelsModule().packBytes);
}

/** Throws unless B, C and OC are sizes the kernels can take (they are passed to wasm as i32). */
function checkSizes(B: number, C: number, OC: number): void {
  if (!(B === (B | 0) && C === (C | 0) && OC === (OC | 0) && B >= 0 && C >= 0 && OC >= 0)) {
    throw new TypeError(`B, C and OC must be non-negative integers below 2^31, got B=${B}, C=${C}, OC=${OC}`);
  }
}

/**
 * The kernels on a memory of their own with room for `floats` floats (each allocation rounded up to a
 * multiple of 4 floats); compiled and instantiated synchronously (fine in Node, also in worker threads).
 * Null where the runtime cannot run that build.
 */
export function createWasmLinear(floats: number, kernels: WasmKernels = 'wasm'): WasmLinear | null {
  if (!Number.isSafeInteger(floats) || floats < 0) {
    throw new TypeError(`floats must be a non-negative integer, got ${floats}`);
  }
  if (!wasmKernelsSupported(kernels)) return null;
  const base = kernelsModule(kernels).heapBase;
  // Allocations end at `end`, not at the pages' slack, so that a sizing mistake shows at once rather
  // than when a layer is widened.
  const end = base + alignedBytes(floats);
  return linearOn(kernels, sharedMemory(Math.max(1, Math.ceil(end / PAGE_BYTES))), null, base, end, `the ${floats} this WasmLinear was created with`,
    'createWasmLinear(floats) must cover all allocations');
}

/**
 * The kernels on the region [base, base + bytes) of `memory` (from createSharedMemory), which no other
 * instance uses: their packing scratch first, then allocate() hands out the rest (wasmRegionBytes sizes
 * it). Views of the rest of the memory, such as the training state's, can be passed to the kernels too.
 */
export function createWasmLinearIn(memory: WasmMemory, base: number, bytes: number, kernels: WasmKernels = 'wasm'): WasmLinear {
  const PACK_BYTES = kernelsModule(kernels).packBytes;
  if (!Number.isSafeInteger(base) || base % 16 !== 0 || !Number.isSafeInteger(bytes) || bytes < PACK_BYTES ||
    base + bytes > memory.buffer.byteLength) {
    throw new RangeError(`the kernels' region [${base}, ${base + bytes}) must be 16-byte aligned, hold at least ${PACK_BYTES} bytes and lie in the memory's ${memory.buffer.byteLength}`);
  }
  return linearOn(kernels, memory, base, base + PACK_BYTES, base + bytes, `the ${(bytes - PACK_BYTES) / 4} past the region's packing scratch`,
    'the region must hold wasmRegionBytes(arrays) for all allocations');
}

/** An instance on `memory` packing at `pack` (null: its default, below `start`), allocating [start, end). */
function linearOn(
  kernels: WasmKernels, memory: WebAssembly.Memory, pack: number | null, start: number, end: number, room: string, hint: string,
): WasmLinear {
  const k = new WebAssembly.Instance(kernelsModule(kernels).module, { env: { memory } }).exports as unknown as KernelExports;
  if (pack !== null) k.set_pack(pack);
  const buffer = memory.buffer;
  let next = start; // byte offset of the next allocation

  function check(name: string, a: Float32Array, floatsNeeded: number): number {
    if (a.buffer !== buffer) {
      throw hinted((m) => new TypeError(m), `${name} is not a view of this WasmLinear's memory`, 'allocate it with allocate(n) of the same WasmLinear');
    }
    if (a.length < floatsNeeded) {
      throw new RangeError(`${name} holds ${a.length} floats but the sizes need ${floatsNeeded}`);
    }
    return a.byteOffset;
  }

  return {
    memory,
    allocate(n: number): Float32Array {
      if (!Number.isSafeInteger(n) || n < 0) throw new TypeError(`allocate(n): n must be a non-negative integer, got ${n}`);
      const bytes = alignedBytes(n);
      if (next + bytes > end) {
        throw hinted(
          (m) => new RangeError(m),
          `allocate(${n}) needs ${bytes / 4} floats but only ${(end - next) / 4} of ${room} are left`,
          `${hint}, each rounded up to a multiple of ${ALIGN_FLOATS} floats`,
        );
      }
      const view = new Float32Array(buffer, next, n);
      next += bytes;
      view.fill(0);
      return view;
    },
    forward(out, inp, weight, bias, B, C, OC) {
      checkSizes(B, C, OC);
      k.linear_forward(
        check('out', out, B * OC), check('inp', inp, B * C), check('weight', weight, OC * C), check('bias', bias, OC),
        B, C, OC,
      );
    },
    backwardWeight(dweight, dbias, dout, inp, B, C, OC) {
      checkSizes(B, C, OC);
      k.linear_backward_weight(
        check('dweight', dweight, OC * C), check('dbias', dbias, OC), check('dout', dout, B * OC), check('inp', inp, B * C),
        B, C, OC,
      );
    },
    backwardInput(dinp, dout, weight, B, C, OC) {
      checkSizes(B, C, OC);
      k.linear_backward_input(
        check('dinp', dinp, B * C), check('dout', dout, B * OC), check('weight', weight, OC * C),
        B, C, OC,
      );
    },
  };
}

/**
 * The WebAssembly SIMD ceiling of this thread in GFLOP/s for one build of the kernels: 12 independent f32x4
 * multiply-add chains (wasm/kernels.ts simd_peak; a mul and an add each in 'wasm', one relaxed_madd in
 * 'wasm-fma'), the best of short calls over ~`ms` milliseconds after a warm-up long enough for V8 to have
 * optimised the function (a call that started in the baseline compiler stays there). Null where the
 * runtime cannot run that build.
 */
export function simdCeiling(ms = 200, kernels: WasmKernels = 'wasm'): number | null {
  if (!wasmKernelsSupported(kernels)) return null;
  const { module } = kernelsModule(kernels);
  const k = new WebAssembly.Instance(module, { env: { memory: sharedMemory(1) } }).exports as unknown as KernelExports;
  const FLOPS_PER_ITER = 12 * 4 * 2;
  let iters = 1 << 12;
  const peak = (): number => {
    const t0 = performance.now();
    k.simd_peak(iters, 0.999, 0.5);
    return (performance.now() - t0) / 1000;
  };
  for (const warmUntil = performance.now() + Math.min(50, ms / 4); performance.now() < warmUntil;) peak();
  let best = 0;
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const s = peak();
    if (s < 0.002) iters *= 2;
    else best = Math.max(best, (iters * FLOPS_PER_ITER) / s / 1e9);
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------
// The optimizer step's loops (wasm/step.ts, built to step.wasm), over one *shared* memory that the
// coordinator creates and every worker instantiates the module on: see contract.ts stateLayout.

const STEP_URL = new URL('./step.wasm', import.meta.url);
/** The largest memory step.wasm's import accepts, in pages (4 GiB). */
const STEP_MAX_PAGES = 65536;

/** step.wasm's exports; pointers are byte offsets into the shared memory. */
export interface WasmStepExports {
  sum_slots(out: number, slots: number, stride: number, n: number, divisor: number, from: number, to: number): void;
  norm_partials(grad: number, from: number, to: number, partials: number): void;
  scale(grad: number, coef: number, from: number, to: number): void;
  sgd(
    params: number, grads: number, buf: number, src: number, srcBuf: number, n: number,
    wd: number, mom: number, damp: number, step: number, first: number, nesterov: number, maximize: number,
  ): void;
  adam(
    params: number, grads: number, m: number, v: number, vmax: number, src: number, srcM: number, srcV: number, srcMax: number,
    n: number, wd: number, decay: number, weight: number, weightM1: number, beta2: number, oneMinusBeta2: number,
    bc2Sqrt: number, eps: number, negStepSize: number, maximize: number,
  ): void;
}

let stepModule: WebAssembly.Module | undefined;

/** A shared memory of at least `bytes` bytes that step.wasm can run on, or null without WebAssembly SIMD. */
export function createSharedMemory(bytes: number): { memory: WasmMemory; buffer: SharedArrayBuffer } | null {
  if (!wasmSimdSupported()) return null;
  const pages = Math.max(1, Math.ceil(bytes / PAGE_BYTES));
  if (pages > STEP_MAX_PAGES) return null;
  const memory = sharedMemory(pages);
  return { memory, buffer: memory.buffer as unknown as SharedArrayBuffer };
}

/** step.wasm instantiated on `memory` (from createSharedMemory, possibly in another thread). */
export function instantiateStep(memory: WasmMemory): WasmStepExports {
  stepModule ??= compileBuilt(STEP_URL, 'WebAssembly step kernels');
  return new WebAssembly.Instance(stepModule, { env: { memory } }).exports as unknown as WasmStepExports;
}
