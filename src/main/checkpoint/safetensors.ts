// Checkpoints as safetensors bytes: an 8-byte little-endian header length, a JSON header naming each
// float32 tensor by its PyTorch state_dict key, then the raw little-endian data. The model config
// travels in the header's string-only __metadata__, so the bytes alone are enough to rebuild the model,
// and so does a SHA-256 of the whole data section, so that a torn or edited file is refused rather than
// half-loaded. Decoding treats the bytes as untrusted: it only parses JSON and bytes, checks every length
// and offset against the file before any allocation, and ignores what it does not know (metadata keys,
// fields of a tensor entry, tensors the model does not use).

import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { CheckpointError } from '../errors.js';
import { jsonStructureProblem } from './json-structure.js';
import { CHECKSUM_KEY, CONFIG_KEY, FORMAT, FORMAT_KEY, HEADER_CHECKSUM_KEY, RESERVED_KEYS, VERSION, VERSION_KEY } from './metadata.js';
import { clip, describe, fmtShape, isObject, preview, quote, sameShape } from './text.js';
import { ACTIVATIONS, LOSSES, paramLayout, sequentialIndex, type ModelConfig } from '../../shared/model.js';

/** A header this large is not a header: refuse it before decoding it (the safetensors reference's limit). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const LITTLE_ENDIAN = endianness() === 'LE';
/** Bytes per element of the safetensors dtypes. The model's tensors must be F32; others may be any. */
const DTYPE_BYTES = new Map<string, number>([
  ['BOOL', 1], ['U8', 1], ['I8', 1], ['F8_E5M2', 1], ['F8_E4M3', 1], ['I16', 2], ['U16', 2], ['F16', 2], ['BF16', 2],
  ['I32', 4], ['U32', 4], ['F32', 4], ['I64', 8], ['U64', 8], ['F64', 8],
]);

export interface Checkpoint {
  config: ModelConfig;
  /** (P) parameters in paramLayout(config.layers) order. */
  params: Float32Array;
  /** Every __metadata__ entry of the file, the gradpool ones ('format', 'config', ...) included. */
  metadata: Record<string, string>;
  /** Float32 tensors beyond the model's, flattened, by name (e.g. 'optimizer.momentum_buffer'). */
  tensors: Record<string, Float32Array>;
}

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Serialises `params` (laid out for config.layers) and the config into safetensors bytes; `tensors` are
 * written after the model's as 1-D float32 tensors under their names (none may start with 'layers.').
 */
export function encodeCheckpoint(
  config: ModelConfig,
  params: Float32Array,
  extra: Record<string, string> = {},
  tensors: Record<string, Float32Array> = {},
): Uint8Array {
  const problem = configProblem(config);
  if (problem !== undefined) throw new TypeError(`config: ${problem}`);
  const layout = paramLayout(config.layers);
  if (params.length !== layout.total) {
    throw new RangeError(
      `params has ${params.length} floats; layers ${JSON.stringify(config.layers)} need ${layout.total}`,
    );
  }
  for (const [key, value] of Object.entries(extra)) {
    if (RESERVED_KEYS.includes(key)) throw new TypeError(`extra metadata may not set the reserved key '${key}'`);
    if (typeof value !== 'string') {
      throw new TypeError(`extra metadata '${key}' must be a string (safetensors metadata is string to string)`);
    }
  }

  const { layers, activation, loss } = config;
  const tensorHeader: Record<string, unknown> = Object.create(null); // a tensor named '__proto__' stays a key
  for (const e of layout.entries) {
    tensorHeader[e.name] = { dtype: 'F32', shape: e.shape, data_offsets: [4 * e.offset, 4 * (e.offset + e.size)] };
  }
  // Extra tensors follow the model's, in the order given.
  const blocks: Float32Array[] = [params];
  let floats = layout.total;
  for (const [name, t] of Object.entries(tensors)) {
    if (name.startsWith('layers.') || name === '__metadata__') throw new TypeError(`extra tensor name '${name}' is reserved`);
    tensorHeader[name] = { dtype: 'F32', shape: [t.length], data_offsets: [4 * floats, 4 * (floats + t.length)] };
    blocks.push(t);
    floats += t.length;
  }
  // The checksum covers the data section exactly as written: the blocks' little-endian bytes in order.
  const hash = createHash('sha256');
  for (const t of blocks) hash.update(littleEndianBytes(t));
  const metadata: Record<string, string> = {
    ...extra,
    [FORMAT_KEY]: FORMAT,
    [VERSION_KEY]: VERSION,
    [CONFIG_KEY]: JSON.stringify({ layers, activation, loss }),
    [CHECKSUM_KEY]: hash.digest('hex'),
  };
  // The header's own checksum, over everything above: an edited option or state is refused like a torn file.
  metadata[HEADER_CHECKSUM_KEY] = headerDigest(metadata, tensorHeader);
  const header: Record<string, unknown> = { __metadata__: metadata, ...tensorHeader };
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces so the data section starts 8-byte aligned, as the safetensors reference writer does.
  const N = json.length + ((8 - ((8 + json.length) % 8)) % 8);
  const out = new Uint8Array(8 + N + 4 * floats);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(N), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + N);
  let at = 8 + N;
  for (const t of blocks) {
    out.set(littleEndianBytes(t), at);
    at += t.byteLength;
  }
  return out;
}

/**
 * The hex SHA-256 of a header as parsed (so independent of its JSON's spacing and key order): every
 * metadata entry but HEADER_CHECKSUM_KEY, and every tensor's name, dtype, shape and data_offsets, each in
 * key order. Every metadata entry is covered, those a later version adds included.
 */
function headerDigest(metadata: Record<string, unknown>, tensors: Record<string, unknown>): string {
  const entries = (o: Record<string, unknown>, skip?: string): [string, unknown][] =>
    Object.keys(o).filter((k) => k !== skip).sort().map((k) => [k, o[k]]);
  const index = entries(tensors).map(([name, e]) => {
    const { dtype, shape, data_offsets: offsets } = e as Record<string, unknown>;
    return [name, dtype, shape, offsets];
  });
  return createHash('sha256').update(JSON.stringify([entries(metadata, HEADER_CHECKSUM_KEY), index])).digest('hex');
}

/** The bytes of `t` as little-endian float32: a view of it on little-endian machines, else a copy. */
function littleEndianBytes(t: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(t.buffer, t.byteOffset, t.byteLength);
  const out = new Uint8Array(t.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < t.length; i++) view.setFloat32(4 * i, t[i], true);
  return out;
}

/**
 * Parses safetensors bytes into a Checkpoint, checking every length, offset, dtype and shape against
 * the file, the checksum against the data, and the tensors against the file's own config, before
 * allocating anything. `path` only names the file in errors, which are all CheckpointErrors. Every
 * tensor entry must be well-formed; tensors the config does not need are ignored (and returned in
 * `tensors` when they are float32), as are metadata keys and tensor-entry fields gradpool does not know.
 */
export function decodeCheckpoint(bytes: Uint8Array, path: string): Checkpoint {
  return checkpointOf(readSafetensors(bytes, path), path);
}

/** A safetensors file whose header has been checked against its bytes (readSafetensors). */
export interface SafetensorsFile {
  bytes: Uint8Array;
  /** Where the data section starts in `bytes`. */
  dataStart: number;
  metadata: Record<string, string>;
  /** Every tensor entry, in the order of their data in the file. */
  tensors: TensorInfo[];
}

/** Throws a CheckpointError naming the file. */
type Fail = (message: string, hint?: string) => never;

function failIn(path: string): Fail {
  return (message, hint) => {
    throw new CheckpointError(path, message, hint);
  };
}

/**
 * The header of safetensors bytes, checked against the file: every length, offset, dtype and shape, no
 * overlapping tensors, the checksum (when the file has one) against the data, the gradpool version. Reads
 * no tensor data; any gradpool metadata may be missing (a file written by PyTorch's tools).
 */
export function readSafetensors(bytes: Uint8Array, path: string): SafetensorsFile {
  const fail = failIn(path);
  const { header, dataStart } = readHeader(bytes, fail);
  const metadata = readMetadata(header.__metadata__, fail);
  const tensors = readTensorIndex(header, metadata, bytes.length - dataStart, fail);
  checkHeaderChecksum(header, metadata, fail);
  checkDataChecksum(bytes.subarray(dataStart), metadata, fail);
  const version = metadata[VERSION_KEY];
  if (version !== undefined && version !== VERSION) {
    fail(
      `metadata "gradpool.version" is ${quote(version, '"')}; this gradpool reads version ${VERSION}`,
      'upgrade gradpool to read it',
    );
  }
  return { bytes, dataStart, metadata, tensors };
}

/** The JSON header after the 8-byte length prefix, checked to be an object, and where the data starts. */
function readHeader(bytes: Uint8Array, fail: Fail): { header: Record<string, unknown>; dataStart: number } {
  const truncated = 'the file is truncated or is not a safetensors checkpoint';
  if (bytes.length < 8) {
    fail(`file is ${bytes.length} bytes; a safetensors file starts with an 8-byte header length`, truncated);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(
      `header length is ${headerLength} bytes but only ${bytes.length - 8} bytes follow the 8-byte length prefix`,
      truncated,
    );
  }
  const N = Number(headerLength);
  if (N > MAX_HEADER_BYTES) fail(`header length is ${N} bytes; expected at most ${MAX_HEADER_BYTES}`, truncated);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + N));
  } catch {
    return fail('header is not valid UTF-8', truncated);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${clip((err as Error).message, 200)})`, truncated);
  }
  const structure = jsonStructureProblem(text);
  if (structure !== undefined) fail(structure, 'the file is damaged or was not written by a safetensors writer');
  if (!isObject(header)) {
    return fail(
      `header is ${describe(header)}; expected a JSON object mapping tensor names to {dtype, shape, data_offsets}`,
    );
  }
  return { header, dataStart: 8 + N };
}

/** Every tensor entry of the header, checked against the data section, in the order of their data. */
function readTensorIndex(header: Record<string, unknown>, metadata: Record<string, string>, dataLength: number, fail: Fail): TensorInfo[] {
  // A gradpool checkpoint (one with a config) holds its model's tensors as float32; other files are
  // converted when read (tensorFloats).
  const checkpoint = Object.hasOwn(metadata, CONFIG_KEY);
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name !== '__metadata__') tensors.set(name, readTensor(name, entry, dataLength, checkpoint && name.startsWith('layers.'), fail));
  }
  // The spec forbids overlapping tensors; refusing them also bounds the total size by the file's.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    if (b.begin < a.end) {
      fail(
        `tensors ${quote(a.name)} and ${quote(b.name)} overlap ` +
          `(data_offsets [${a.begin},${a.end}] and [${b.begin},${b.end}])`,
      );
    }
  }
  return sorted;
}

/** Refuses a header whose metadata and tensor entries do not hash to its HEADER_CHECKSUM_KEY, if it has one. */
function checkHeaderChecksum(header: Record<string, unknown>, metadata: Record<string, string>, fail: Fail): void {
  const headerChecksum = metadata[HEADER_CHECKSUM_KEY];
  if (headerChecksum === undefined) return;
  const tensorEntries = Object.fromEntries(Object.entries(header).filter(([name]) => name !== '__metadata__'));
  const actual = headerDigest(metadata, tensorEntries);
  if (actual !== headerChecksum) {
    fail(
      `the header does not match its checksum (metadata "${HEADER_CHECKSUM_KEY}" ${clip(headerChecksum, 64)}, but the ` +
        `metadata and tensor entries hash to ${actual}): its options, state or tensor index were edited or damaged`,
      'load the previous checkpoint instead; this one cannot be trusted',
    );
  }
}

/** Refuses a data section that does not hash to the metadata's CHECKSUM_KEY, if it has one. */
function checkDataChecksum(data: Uint8Array, metadata: Record<string, string>, fail: Fail): void {
  const checksum = metadata[CHECKSUM_KEY];
  if (checksum === undefined) return;
  const edited = 'the file was damaged or edited after it was written; load the previous checkpoint instead';
  if (!/^[0-9a-f]{64}$/.test(checksum)) {
    fail(`metadata "${CHECKSUM_KEY}" is ${quote(checksum)}; expected the SHA-256 of the tensor data as 64 lowercase hex digits`, edited);
  }
  const actual = createHash('sha256').update(data).digest('hex');
  if (actual !== checksum) {
    fail(
      `the tensor data does not match its checksum (metadata "${CHECKSUM_KEY}" ${checksum}, ` +
        `but the ${data.length} data bytes hash to ${actual}): the file is torn or was edited`,
      'load the previous checkpoint instead; this one cannot be trusted',
    );
  }
}

/** The gradpool checkpoint a checked file holds: its config, its model's float32 tensors, the rest. */
export function checkpointOf(file: SafetensorsFile, path: string): Checkpoint {
  const fail = failIn(path);
  const { metadata, tensors: sorted } = file;
  const tensors = new Map<string, TensorInfo>(sorted.map((t) => [t.name, t]));
  if (!Object.hasOwn(metadata, CONFIG_KEY)) {
    fail(
      'metadata has no "config" entry; expected the model config as JSON, e.g. ' +
        '{"layers":[784,128,10],"activation":"relu","loss":"cross-entropy"}',
      'gradpool records the model in __metadata__.config; a file written by another tool needs it added',
    );
  }
  let config: unknown;
  try {
    config = JSON.parse(metadata[CONFIG_KEY]);
  } catch (err) {
    return fail(`metadata "config" is not valid JSON (${clip((err as Error).message, 200)})`);
  }
  const problem = configProblem(config);
  if (problem !== undefined) fail(`metadata "config": ${problem}`);
  const { layers, activation, loss } = config as ModelConfig;

  // Each layer's tensors are looked up before the layout is built, so a config naming a million layers
  // fails at the first missing tensor instead of first building a million entries.
  for (let l = 0; l + 1 < layers.length; l++) {
    const i = sequentialIndex(l);
    for (const [name, shape] of [[`layers.${i}.weight`, [layers[l + 1], layers[l]]], [`layers.${i}.bias`, [layers[l + 1]]]] as const) {
      const t = tensors.get(name);
      if (t === undefined) {
        fail(
          `has no tensor '${name}'; the model config in this file ` +
            `(layers ${preview(layers)}) needs it with shape ${fmtShape(shape)}`,
        );
      } else if (!sameShape(t.shape, shape)) {
        fail(`tensor '${name}' has shape ${fmtShape(t.shape)}; the model config in this file needs ${fmtShape(shape)}`);
      }
    }
  }
  const layout = paramLayout(layers);
  // (Checked after the model's tensors, which name a missing one better.)
  checkTiling(file, path);
  const params = new Float32Array(layout.total); // (P), at most the data section's size
  const inLayout = new Set(layout.entries.map((e) => e.name));
  for (const e of layout.entries) params.set(tensorFloats(file, tensors.get(e.name) as TensorInfo, path), e.offset);
  const extra: Record<string, Float32Array> = {};
  for (const t of sorted) {
    if (inLayout.has(t.name) || t.dtype !== 'F32') continue;
    // defineProperty, not assignment: a tensor named '__proto__' must stay a tensor.
    Object.defineProperty(extra, t.name, { value: tensorFloats(file, t, path), enumerable: true, writable: true, configurable: true });
  }
  return { config: { layers, activation, loss }, params, metadata, tensors: extra };
}

/** Like the spec's reference reader, refuses gaps between tensors and bytes after the last: the tensors
 *  tile the data section exactly. */
export function checkTiling(file: SafetensorsFile, path: string): void {
  const dataLength = file.bytes.length - file.dataStart;
  let covered = 0;
  for (const t of file.tensors) {
    if (t.begin > covered) {
      throw new CheckpointError(
        path,
        `data bytes [${covered}, ${t.begin}) belong to no tensor (the next is ${quote(t.name)} at ${t.begin}); ` +
          'expected the tensors to cover the data section without gaps',
      );
    }
    covered = t.end;
  }
  if (covered < dataLength) {
    throw new CheckpointError(
      path,
      `${dataLength - covered} bytes follow the last tensor's data (the tensors end at byte ${covered} ` +
        `of a ${dataLength}-byte data section); expected the file to end there`,
      'the file was appended to, or its header was edited',
    );
  }
}

/** The floating-point dtypes a model's weights may have in a file; all but F32 are converted. */
export const FLOAT_DTYPES: readonly string[] = ['F32', 'F64', 'F16', 'BF16'];

/**
 * A tensor's values as float32 (a new array): F32 as stored; F16 and BF16 exactly (every value of theirs
 * is a float32); F64 rounded to nearest, as torch's .float() does, refusing a finite value beyond the
 * float32 range (it would become infinite). Other dtypes are refused.
 */
export function tensorFloats(file: SafetensorsFile, t: TensorInfo, path: string): Float32Array {
  const { bytes } = file;
  const at = file.dataStart + t.begin;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, t.end - t.begin);
  const width = DTYPE_BYTES.get(t.dtype) as number;
  const out = new Float32Array((t.end - t.begin) / width);
  if (t.dtype === 'F32') {
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes.subarray(at, at + out.byteLength));
    else for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(4 * i, true);
  } else if (t.dtype === 'F64') {
    for (let i = 0; i < out.length; i++) {
      const v = view.getFloat64(8 * i, true);
      out[i] = v;
      if (Number.isFinite(v) && !Number.isFinite(out[i])) {
        throw new CheckpointError(path, `tensor ${quote(t.name)} (F64) holds ${v} at index ${i}, beyond the float32 range (about 3.4e38)`);
      }
    }
  } else if (t.dtype === 'F16') {
    for (let i = 0; i < out.length; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
  } else if (t.dtype === 'BF16') {
    // bfloat16 is the top half of a float32's bits.
    const word = new DataView(new ArrayBuffer(4));
    for (let i = 0; i < out.length; i++) {
      word.setUint32(0, view.getUint16(2 * i, true) << 16);
      out[i] = word.getFloat32(0);
    }
  } else {
    throw new CheckpointError(
      path,
      `tensor ${quote(t.name)} has dtype ${clip(t.dtype, 40)}; a model's weights are floating point (${FLOAT_DTYPES.join(', ')})`,
    );
  }
  return out;
}

/** IEEE 754 binary16 bits to their value: sign, 5 exponent bits (bias 15), 10 fraction bits. */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return sign * f * 2 ** -24; // zero and subnormals
  if (e === 0x1f) return f === 0 ? sign * Infinity : NaN;
  return sign * (1 + f / 1024) * 2 ** (e - 15);
}

/** Why `value` is not a valid ModelConfig, or undefined if it is. */
function configProblem(value: unknown): string | undefined {
  if (!isObject(value)) return `expected an object {layers, activation, loss}, found ${describe(value)}`;
  const { layers, activation, loss } = value;
  if (!Array.isArray(layers) || layers.length < 2 || !layers.every((n) => Number.isSafeInteger(n) && n > 0)) {
    return `layers must be an array of at least 2 positive integers, found ${preview(layers)}`;
  }
  if (!ACTIVATIONS.includes(activation as never)) {
    return `activation must be one of ${ACTIVATIONS.join(', ')}, found ${preview(activation)}`;
  }
  if (!LOSSES.includes(loss as never)) {
    return `loss must be one of ${LOSSES.join(', ')}, found ${preview(loss)}`;
  }
  return undefined;
}

function readMetadata(value: unknown, fail: (message: string) => never): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) return fail(`__metadata__ is ${describe(value)}; expected an object of strings`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      fail(`__metadata__ entry ${quote(key)} is ${describe(v)}; safetensors metadata values must be strings`);
    }
  }
  return value as Record<string, string>;
}

function readTensor(
  name: string,
  entry: unknown,
  dataLength: number,
  float32Only: boolean,
  fail: Fail,
): TensorInfo {
  const q = quote(name);
  if (!isObject(entry)) {
    return fail(`tensor ${q} is ${describe(entry)}; expected {dtype, shape, data_offsets}`);
  }
  // Other fields of the entry are ignored, as the spec's reference reader does.
  const { dtype, shape, data_offsets: offsets } = entry;
  const found = typeof dtype === 'string' ? clip(dtype, 40) : describe(dtype);
  if (float32Only && dtype !== 'F32') {
    fail(
      `only float32 (F32) tensors are supported; tensor ${q} has dtype ${found}`,
      'convert the weights to float32 before saving',
    );
  }
  const width = typeof dtype === 'string' ? DTYPE_BYTES.get(dtype) : undefined;
  if (width === undefined) {
    fail(`tensor ${q} has dtype ${found}; expected a safetensors dtype (${[...DTYPE_BYTES.keys()].join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    fail(`tensor ${q} has shape ${preview(shape)}; expected an array of non-negative integers`);
  }
  const wellFormed =
    Array.isArray(offsets) && offsets.length === 2 && offsets.every((n) => Number.isSafeInteger(n)) &&
    0 <= offsets[0] && offsets[0] <= offsets[1];
  if (!wellFormed || (offsets as number[])[1] > dataLength) {
    fail(
      `tensor ${q} has data_offsets ${preview(offsets)}; expected [begin, end] with ` +
        `0 <= begin <= end <= ${dataLength} (the data section's length in bytes)`,
      wellFormed ? 'the file is truncated, or its header was edited' : undefined,
    );
  }
  const [begin, end] = offsets as number[];
  const dims = shape as number[];
  // A product past 2^53 is inexact, but then far beyond any data section, so it cannot match.
  const need = (width as number) * dims.reduce((p, n) => p * n, 1);
  if (end - begin !== need) {
    fail(`tensor ${q} has ${end - begin} bytes of data but ${dtype as string} shape ${fmtShape(dims)} needs ${need}`);
  }
  return { name, dtype: dtype as string, shape: dims, begin, end };
}
