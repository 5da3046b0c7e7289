// Checkpoints as safetensors files: an 8-byte little-endian header length, a JSON header naming each
// float32 tensor by its PyTorch state_dict key, then the raw little-endian data. The model config
// travels in the header's string-only __metadata__, so a file alone is enough to rebuild the model.
// Reading treats the file as untrusted data: every length and offset is checked before any allocation.

import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import { ACTIVATIONS, LOSSES, paramLayout, type ModelConfig, type ParamEntry } from '../shared/model.js';

const FORMAT = 'gradpool';
const VERSION = '1';
const RESERVED_KEYS: readonly string[] = ['format', 'gradpool.version', 'config'];
/** A header this large is not a header: refuse it before decoding it. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const LITTLE_ENDIAN = endianness() === 'LE';

export class CheckpointError extends Error {
  readonly path: string;
  readonly hint?: string;

  constructor(path: string, message: string, hint?: string) {
    super(`${path}: ${message}${hint === undefined ? '' : `\nhint: ${hint}`}`);
    this.name = 'CheckpointError';
    this.path = path;
    this.hint = hint;
  }
}

export interface Checkpoint {
  config: ModelConfig;
  /** (P) parameters in paramLayout(config.layers) order. */
  params: Float32Array;
  /** Every __metadata__ entry of the file, the gradpool ones ('format', 'config', ...) included. */
  metadata: Record<string, string>;
  /** Float32 tensors beyond the model's, flattened, by name (e.g. 'optimizer.momentum_buffer'). */
  tensors: Record<string, Float32Array>;
}

interface TensorInfo {
  name: string;
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
  const header: Record<string, unknown> = {
    __metadata__: {
      ...extra,
      format: FORMAT,
      'gradpool.version': VERSION,
      config: JSON.stringify({ layers, activation, loss }),
    },
  };
  for (const e of layout.entries) {
    header[e.name] = { dtype: 'F32', shape: e.shape, data_offsets: [4 * e.offset, 4 * (e.offset + e.size)] };
  }
  // Extra tensors follow the model's, in the order given.
  const blocks: Float32Array[] = [params];
  let floats = layout.total;
  for (const [name, t] of Object.entries(tensors)) {
    if (name.startsWith('layers.') || name === '__metadata__') throw new TypeError(`extra tensor name '${name}' is reserved`);
    header[name] = { dtype: 'F32', shape: [t.length], data_offsets: [4 * floats, 4 * (floats + t.length)] };
    blocks.push(t);
    floats += t.length;
  }
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
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.buffer, t.byteOffset, t.byteLength), at);
    } else {
      for (let i = 0; i < t.length; i++) view.setFloat32(at + 4 * i, t[i], true);
    }
    at += t.byteLength;
  }
  return out;
}

/**
 * Parses safetensors bytes into a Checkpoint, checking every length, offset, dtype and shape against
 * the file and its own config first. `path` only names the file in errors. Every tensor entry must be
 * well-formed float32; tensors the config does not need are then ignored.
 */
export function decodeCheckpoint(bytes: Uint8Array, path: string): Checkpoint {
  const fail = (message: string, hint?: string): never => {
    throw new CheckpointError(path, message, hint);
  };
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
    return fail(`header is not valid JSON (${(err as Error).message})`, truncated);
  }
  if (!isObject(header)) {
    return fail(
      `header is ${describe(header)}; expected a JSON object mapping tensor names to {dtype, shape, data_offsets}`,
    );
  }

  const dataLength = bytes.length - 8 - N;
  const metadata = readMetadata(header.__metadata__, fail);
  const tensors = new Map<string, TensorInfo>();
  for (const [name, entry] of Object.entries(header)) {
    if (name !== '__metadata__') tensors.set(name, readTensor(name, entry, dataLength, fail));
  }
  // The spec forbids overlapping tensors; refusing them also bounds the total size by the file's.
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    const [a, b] = [sorted[i - 1], sorted[i]];
    if (b.begin < a.end) {
      fail(
        `tensors '${a.name}' and '${b.name}' overlap ` +
          `(data_offsets [${a.begin},${a.end}] and [${b.begin},${b.end}])`,
      );
    }
  }

  const version = metadata['gradpool.version'];
  if (version !== undefined && version !== VERSION) {
    fail(
      `metadata "gradpool.version" is "${version}"; this gradpool reads version ${VERSION}`,
      'upgrade gradpool to read it',
    );
  }
  if (!Object.hasOwn(metadata, 'config')) {
    fail(
      'metadata has no "config" entry; expected the model config as JSON, e.g. ' +
        '{"layers":[784,128,10],"activation":"relu","loss":"cross-entropy"}',
      'gradpool records the model in __metadata__.config; a file written by another tool needs it added',
    );
  }
  let config: unknown;
  try {
    config = JSON.parse(metadata.config);
  } catch (err) {
    return fail(`metadata "config" is not valid JSON (${(err as Error).message})`);
  }
  const problem = configProblem(config);
  if (problem !== undefined) fail(`metadata "config": ${problem}`);
  const { layers, activation, loss } = config as ModelConfig;

  const layout = paramLayout(layers);
  for (const e of layout.entries) {
    const t = tensors.get(e.name);
    if (t === undefined) {
      fail(
        `has no tensor '${e.name}'; the model config in this file ` +
          `(layers ${JSON.stringify(layers)}) needs it with shape ${fmtShape(e.shape)}`,
      );
    } else if (!sameShape(t.shape, e.shape)) {
      const needs = fmtShape(e.shape);
      fail(`tensor '${e.name}' has shape ${fmtShape(t.shape)}; the model config in this file needs ${needs}`);
    }
  }

  const params = new Float32Array(layout.total); // (P)
  const dataStart = 8 + N;
  const read = (t: TensorInfo, target: Float32Array, offset: number): void => {
    if (LITTLE_ENDIAN) {
      new Uint8Array(target.buffer, 4 * offset, t.end - t.begin).set(bytes.subarray(dataStart + t.begin, dataStart + t.end));
    } else {
      for (let i = 0; i < (t.end - t.begin) / 4; i++) target[offset + i] = view.getFloat32(dataStart + t.begin + 4 * i, true);
    }
  };
  const inLayout = new Set(layout.entries.map((e) => e.name));
  for (const e of layout.entries) read(tensors.get(e.name) as TensorInfo, params, e.offset);
  const extra: Record<string, Float32Array> = {};
  for (const t of tensors.values()) {
    if (inLayout.has(t.name)) continue;
    extra[t.name] = new Float32Array((t.end - t.begin) / 4);
    read(t, extra[t.name], 0);
  }
  return { config: { layers, activation, loss }, params, metadata, tensors: extra };
}

/**
 * Writes a checkpoint atomically: a temp file in the same directory is written and fsynced, then
 * renamed over `path`. On failure the temp file is removed and whatever was at `path` is untouched.
 */
export async function saveCheckpoint(
  path: string,
  config: ModelConfig,
  params: Float32Array,
  extra?: Record<string, string>,
  tensors?: Record<string, Float32Array>,
): Promise<void> {
  const bytes = encodeCheckpoint(config, params, extra, tensors);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let file: FileHandle | undefined;
  try {
    file = await open(tmp, 'wx');
    await file.writeFile(bytes);
    await file.sync();
    await file.close();
    file = undefined;
    await rename(tmp, path);
  } catch (err) {
    await file?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  // Makes the rename itself durable. Best effort: some platforms (Windows) cannot open a directory.
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // the data is already safe in the renamed file; only the directory entry may lag
  }
}

/**
 * A value as a metadata string (safetensors metadata is string to string): JSON, with Infinity (a norm
 * type, say) written as the string "Infinity", which JSON has no number for. parseMetadataJson undoes it.
 */
export function metadataJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => (v === Infinity ? 'Infinity' : v));
}

export function parseMetadataJson(text: string): unknown {
  return JSON.parse(text, (_, v: unknown) => (v === 'Infinity' ? Infinity : v));
}

/** Reads and decodes the checkpoint at `path`; a missing file is a CheckpointError saying so. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new CheckpointError(path, 'no such file', 'check the path, or train without loading a checkpoint');
    }
    if (code === 'EISDIR') throw new CheckpointError(path, 'is a directory, not a checkpoint file');
    throw err;
  }
  return decodeCheckpoint(bytes, path);
}

/**
 * Copies the tensors of `ckpt` into `params` laid out for `layers`, refusing any tensor whose name is
 * missing or whose shape differs, naming the tensor and both shapes. Checks everything before copying,
 * so a refused checkpoint leaves `params` as it was.
 */
export function assignParameters(params: Float32Array, layers: number[], ckpt: Checkpoint, path: string): void {
  const layout = paramLayout(layers);
  if (params.length !== layout.total) {
    throw new RangeError(`params has ${params.length} floats; layers ${JSON.stringify(layers)} need ${layout.total}`);
  }
  const source = paramLayout(ckpt.config.layers);
  if (ckpt.params.length !== source.total) {
    throw new CheckpointError(
      path,
      `checkpoint holds ${ckpt.params.length} floats ` +
        `but its layers ${JSON.stringify(ckpt.config.layers)} need ${source.total}`,
    );
  }
  const byName = new Map<string, ParamEntry>(source.entries.map((e) => [e.name, e]));
  const hint =
    `build the Trainer with layers ${JSON.stringify(ckpt.config.layers)} (the checkpoint's), ` +
    'or start from fresh weights';
  for (const e of layout.entries) {
    const s = byName.get(e.name);
    if (s === undefined) {
      const message = `has no tensor '${e.name}'; this model needs it with shape ${fmtShape(e.shape)}`;
      throw new CheckpointError(path, message, hint);
    }
    if (!sameShape(s.shape, e.shape)) {
      throw new CheckpointError(
        path,
        `tensor '${e.name}' has shape ${fmtShape(s.shape)} but this model needs ${fmtShape(e.shape)}`,
        hint,
      );
    }
  }
  for (const e of layout.entries) {
    const s = byName.get(e.name) as ParamEntry;
    params.set(ckpt.params.subarray(s.offset, s.offset + s.size), e.offset);
  }
}

/** Why `value` is not a valid ModelConfig, or undefined if it is. */
function configProblem(value: unknown): string | undefined {
  if (!isObject(value)) return `expected an object {layers, activation, loss}, found ${describe(value)}`;
  const { layers, activation, loss } = value;
  if (!Array.isArray(layers) || layers.length < 2 || !layers.every((n) => Number.isSafeInteger(n) && n > 0)) {
    return `layers must be an array of at least 2 positive integers, found ${JSON.stringify(layers)}`;
  }
  if (!ACTIVATIONS.includes(activation as never)) {
    return `activation must be one of ${ACTIVATIONS.join(', ')}, found ${JSON.stringify(activation)}`;
  }
  if (!LOSSES.includes(loss as never)) {
    return `loss must be one of ${LOSSES.join(', ')}, found ${JSON.stringify(loss)}`;
  }
  return undefined;
}

function readMetadata(value: unknown, fail: (message: string) => never): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) return fail(`__metadata__ is ${describe(value)}; expected an object of strings`);
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      fail(`__metadata__ entry '${key}' is ${describe(v)}; safetensors metadata values must be strings`);
    }
  }
  return value as Record<string, string>;
}

function readTensor(
  name: string,
  entry: unknown,
  dataLength: number,
  fail: (message: string, hint?: string) => never,
): TensorInfo {
  if (!isObject(entry)) {
    return fail(`tensor '${name}' is ${describe(entry)}; expected {dtype, shape, data_offsets}`);
  }
  const { dtype, shape, data_offsets: offsets } = entry;
  if (dtype !== 'F32') {
    const found = typeof dtype === 'string' ? dtype : describe(dtype);
    fail(
      `only float32 (F32) tensors are supported; tensor '${name}' has dtype ${found}`,
      'convert the weights to float32 before saving',
    );
  }
  if (!Array.isArray(shape) || !shape.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    fail(`tensor '${name}' has shape ${JSON.stringify(shape)}; expected an array of non-negative integers`);
  }
  const inBounds =
    Array.isArray(offsets) && offsets.length === 2 && offsets.every((n) => Number.isSafeInteger(n)) &&
    0 <= offsets[0] && offsets[0] <= offsets[1] && offsets[1] <= dataLength;
  if (!inBounds) {
    fail(
      `tensor '${name}' has data_offsets ${JSON.stringify(offsets)}; expected [begin, end] with ` +
        `0 <= begin <= end <= ${dataLength} (the data section's length in bytes)`,
    );
  }
  const [begin, end] = offsets as number[];
  const dims = shape as number[];
  const need = 4 * dims.reduce((p, n) => p * n, 1);
  if (end - begin !== need) {
    fail(`tensor '${name}' has ${end - begin} bytes of data but F32 shape ${fmtShape(dims)} needs ${need}`);
  }
  return { name, shape: dims, begin, end };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value} (${JSON.stringify(value)})`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

function fmtShape(shape: readonly number[]): string {
  return `(${shape.join(', ')})`;
}
