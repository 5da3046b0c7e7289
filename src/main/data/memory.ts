// How large an array gradpool may build, checked before it builds it, so that data too large for memory
// or for a typed array is refused up front with the size needed and the limit, never with an allocation
// failure half-way through loading or copying. Two limits:
//
// - The longest typed array V8 builds, which changed with V8 11.4 (Node 22). Measured on Node 20.20 (V8
//   11.3), 64-bit: `new Float32Array(2 ** 32)` works (16 GiB), while `new Float32Array(2 ** 32 + 1)`,
//   `new Uint8Array(2 ** 32 + 1)` and `new Float64Array(2 ** 32 + 1)` throw "Invalid typed array length"
//   at once, before allocating: 2^32 elements of any type. On Node 26.12 (V8 14) the limit is in bytes,
//   2^53 - 1, so 2^51 - 1 float32 and 2^50 - 1 float64 elements (2^51 float32 are refused at once).
//   buffer.constants.MAX_LENGTH is V8's Uint8Array limit on both (2^32, then 2^53 - 1), and also the
//   largest Buffer, so the largest file readFile or gunzipSync can return. Which of the two rules the
//   running V8 follows is probed once (typedArrayLimit): a length the byte rule refuses and the element
//   rule accepts, tried only where MAX_LENGTH is so large that accepting it could not allocate either.
//   `new SharedArrayBuffer(n)` accepts up to 2^53 - 1 bytes and is otherwise bounded only by memory, but a
//   shared (N, D) float32 buffer is only usable through a Float32Array over it, so the element limit binds.
// - The memory this process can have at all: os.totalmem(), lowered to the cgroup's memory limit when
//   there is one (cgroup v2 memory.max, or v1 memory.limit_in_bytes), which Node does not account for.

import { constants as bufferConstants } from 'node:buffer';
import { totalmem } from 'node:os';
import { readText, type ReadText } from '../system/cpus.js';
import { DataError } from '../errors.js';

/** The most bytes of a Buffer (and elements of a Uint8Array): 2^32 on Node 20, 2^53 - 1 on Node 22+. */
export const MAX_BUFFER_LENGTH: number = bufferConstants.MAX_LENGTH;

/** Bytes at which no allocation can succeed on any 64-bit machine (x64 and arm64 address 2^48 bytes at most
 *  per process, 2^57 with 5-level paging, far beyond its memory), so that a probe of a length at least this
 *  large is answered at once, by a refusal or by an allocation failure. */
const UNALLOCATABLE_BYTES = 2 ** 50;

const limits = new Map<number, number>();

/**
 * The most elements of a typed array of `bytesPerElement`-byte elements in the running V8: MAX_BUFFER_LENGTH
 * elements of any type (V8 before 11.4), or MAX_BUFFER_LENGTH bytes (V8 11.4 and later). Probed once per
 * element size, without allocating; see the comment at the top of this file.
 */
export function typedArrayLimit(bytesPerElement: 1 | 2 | 4 | 8): number {
  let limit = limits.get(bytesPerElement);
  if (limit === undefined) {
    const byBytes = Math.floor(MAX_BUFFER_LENGTH / bytesPerElement);
    limit = MAX_BUFFER_LENGTH;
    if (byBytes < MAX_BUFFER_LENGTH && (byBytes + 1) * bytesPerElement >= UNALLOCATABLE_BYTES) {
      try {
        new ELEMENT_TYPES[bytesPerElement](byBytes + 1);
      } catch (e) {
        if (e instanceof RangeError && /Invalid typed array length/.test(e.message)) limit = byBytes;
      }
    }
    limits.set(bytesPerElement, limit);
  }
  return limit;
}

const ELEMENT_TYPES = { 1: Uint8Array, 2: Uint16Array, 4: Float32Array, 8: Float64Array } as const;

export interface MemoryLimit {
  bytes: number;
  /** Where the number came from, for messages: 'os.totalmem()', 'cgroup v2 memory.max'. */
  source: string;
}

/** The memory limit of this process; `read` and `total` are replaceable for tests. */
export function memoryLimit(read: ReadText = readText, total: number = totalmem()): MemoryLimit {
  const cgroup = cgroupMemoryLimit(read);
  if (cgroup !== null && cgroup.bytes < total) return cgroup;
  return { bytes: total, source: 'os.totalmem()' };
}

/** The memory limit of the cgroup this process is in, or null when unlimited or unknown. */
function cgroupMemoryLimit(read: ReadText): MemoryLimit | null {
  const membership = read('/proc/self/cgroup');
  if (membership === null) return null;
  const bytes = (text: string | null): number | null => {
    const n = Number(text?.trim());
    return text !== null && /^\d+$/.test(text.trim()) && n > 0 ? n : null; // 'max' (v2) is no limit
  };
  for (const line of membership.trim().split('\n')) {
    const [, controllers, path] = line.split(':');
    if (path === undefined) continue;
    const sub = path === '/' ? '' : path;
    if (controllers === '') {
      const n = bytes(read(`/sys/fs/cgroup${sub}/memory.max`));
      if (n !== null) return { bytes: n, source: 'cgroup v2 memory.max' };
    } else if (controllers?.split(',').includes('memory')) {
      // v1 writes "no limit" as a huge number (9223372036854771712), which the caller's min() drops.
      const n = bytes(read(`/sys/fs/cgroup/memory${sub}/memory.limit_in_bytes`));
      if (n !== null) return { bytes: n, source: 'cgroup v1 memory.limit_in_bytes' };
    }
  }
  return null;
}

let override: MemoryLimit | undefined;
let detected: MemoryLimit | undefined;

/** The limit the checks below use: the detected one, or the one set by setMemoryLimit. */
export function currentMemoryLimit(): MemoryLimit {
  return override ?? (detected ??= memoryLimit());
}

/**
 * Replaces the detected memory limit (undefined restores it): for a program that wants gradpool to stay
 * within a smaller budget, and for tests.
 */
export function setMemoryLimit(limit: MemoryLimit | undefined): void {
  if (limit !== undefined && !(Number.isFinite(limit.bytes) && limit.bytes > 0)) {
    throw new RangeError(`memory limit must be a positive number of bytes; got ${String(limit.bytes)}`);
  }
  override = limit;
}

/**
 * Refuses, before allocating, an array of `count` elements of `bytesPerElement` bytes that no typed array
 * can hold or that alone exceeds the memory limit. `what` names it and leads the message, e.g.
 * 'training data: 70000 x 784 float32 features'. `typeName` names the element type in the message.
 */
export function checkArray(what: string, count: number, bytesPerElement: 1 | 2 | 4 | 8, typeName: string, hint?: string): void {
  checkLength(what, count, bytesPerElement, typeName, hint);
  checkMemory(what, count * bytesPerElement, hint);
}

/** Refuses, before allocating, an array of `count` elements that no typed array can hold; see checkArray. */
export function checkLength(what: string, count: number, bytesPerElement: 1 | 2 | 4 | 8, typeName: string, hint?: string): void {
  const bytes = count * bytesPerElement;
  const limit = typedArrayLimit(bytesPerElement);
  if (count > limit) {
    throw new DataError(
      `${what} need ${formatBytes(bytes)} as ${count} values, more than the ${limit} values ` +
        `(${formatBytes(limit * bytesPerElement)} of ${typeName}) that one typed array, shared or not, ` +
        `can hold in Node ${process.versions.node}`,
      hint,
    );
  }
}

/** Refuses, before allocating, `bytes` of arrays that exceed the memory limit; `what` leads the message. */
export function checkMemory(what: string, bytes: number, hint?: string): void {
  const limit = currentMemoryLimit();
  if (bytes > limit.bytes) {
    throw new DataError(
      `${what} need ${formatBytes(bytes)}, more than the ${formatBytes(limit.bytes)} memory limit (${limit.source})`,
      hint,
    );
  }
}

/** Bytes in decimal units, as disks and `free -h --si` count them: '219.5 MB', '10.0 TB'. */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} bytes`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  let v = bytes / 1000;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}
