// IDX files, the format MNIST ships in: magic 0x00 0x00 <type> <ndims>, ndims big-endian uint32 sizes,
// then the values big-endian. A gzip file (magic 1f 8b) is gunzipped first. decodeIdx checks the
// header against the byte count, and the sizes it declares against memory, before allocating anything
// (for a gzip file, before gunzipping more than its header); loadIdx pairs an images and a labels file.
// encodeIdx writes one (the bundled digits, for a PyTorch script that cannot read the npm package).

import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import { DataError, shapeText } from '../errors.js';
import { checkArray, checkMemory, formatBytes, MAX_BUFFER_LENGTH } from '../data/memory.js';
import { NotRegularFileError, readRegularFile } from '../system/regular-file.js';
import type { LoadedData } from './loaded.js';

export type IdxArray = Float64Array | Float32Array | Uint8Array | Int8Array | Int16Array | Int32Array;

interface IdxType {
  name: string;
  size: 1 | 2 | 4 | 8;
  /** Reads n big-endian values starting at byte `at` of `view`. */
  read: (view: DataView, at: number, n: number) => IdxArray;
}

const IDX_TYPES: Record<number, IdxType> = {
  0x08: { name: 'u8', size: 1, read: (v, at, n) => new Uint8Array(v.buffer.slice(v.byteOffset + at, v.byteOffset + at + n)) },
  0x09: { name: 'i8', size: 1, read: (v, at, n) => new Int8Array(v.buffer.slice(v.byteOffset + at, v.byteOffset + at + n)) },
  0x0b: { name: 'i16', size: 2, read: (v, at, n) => fill(new Int16Array(n), (i) => v.getInt16(at + 2 * i, false)) },
  0x0c: { name: 'i32', size: 4, read: (v, at, n) => fill(new Int32Array(n), (i) => v.getInt32(at + 4 * i, false)) },
  0x0d: { name: 'f32', size: 4, read: (v, at, n) => fill(new Float32Array(n), (i) => v.getFloat32(at + 4 * i, false)) },
  0x0e: { name: 'f64', size: 8, read: (v, at, n) => fill(new Float64Array(n), (i) => v.getFloat64(at + 8 * i, false)) },
};

function fill<T extends IdxArray>(out: T, value: (i: number) => number): T {
  for (let i = 0; i < out.length; i++) out[i] = value(i);
  return out;
}

/** An IDX file of `dims` (its first dimension the rows): float32 values as type 0x0D, bytes as 0x08. */
export function encodeIdx(values: Float32Array | Uint8Array, dims: number[]): Uint8Array {
  const size = values instanceof Float32Array ? 4 : 1;
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + size * values.length);
  const view = new DataView(out.buffer);
  view.setUint8(2, size === 4 ? 0x0d : 0x08);
  view.setUint8(3, dims.length);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  if (values instanceof Float32Array) values.forEach((v, i) => view.setFloat32(header + 4 * i, v, false));
  else out.set(values, header);
  return out;
}

/** Decodes an IDX file (gzipped or not); `path` names it in errors. `expected`: what the file should
 *  hold, so that a header of the other kind (images where labels were expected) is named as such when
 *  the data does not fit it, instead of as a truncated file. */
export function decodeIdx(bytes: Uint8Array, path: string, expected?: 'images' | 'labels'): { dims: number[]; data: IdxArray } {
  const gzipped = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  // Of a gzip file, only enough is gunzipped at first to read the header; the rest once its size is known.
  const head = gzipped ? gunzipHead(bytes, path) : bytes;
  if (head.length < 4) {
    throw new DataError(`${path}: ${head.length} bytes${gzipped ? ' once gunzipped' : ''} is shorter than the 4-byte IDX header`,
      'expected an IDX file such as train-images-idx3-ubyte(.gz)');
  }
  if (head[0] !== 0 || head[1] !== 0) {
    throw new DataError(
      `${path}: not an IDX file: the first two bytes${gzipped ? ' once gunzipped' : ''} are ${hex(head[0])} ${hex(head[1])}; expected 0x00 0x00`,
      'expected an IDX file such as train-images-idx3-ubyte(.gz); for CSV files use loadCsv',
    );
  }
  const type = IDX_TYPES[head[2]];
  if (type === undefined) {
    throw new DataError(
      `${path}: unknown IDX type code ${hex(head[2])} (byte 2); expected 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32 or 0x0E f64`,
    );
  }
  const ndims = head[3];
  if (ndims === 0) throw new DataError(`${path}: the IDX header declares 0 dimensions (byte 3); expected at least 1`);
  try {
    return decodeSized(bytes, head, path, gzipped, type);
  } catch (err) {
    // A header that does not fit the data and is of the other kind: the files are mixed up, not cut short.
    const found = ndims === 1 ? 'labels' : 'images';
    if (!(err instanceof DataError) || expected === undefined || found === expected) throw err;
    const magic = `0x0000${hex(head[2]).slice(2)}${hex(ndims).slice(2)}`;
    throw new DataError(
      `${path}: ${found} where ${expected} were expected: the IDX header (magic ${magic}) declares ${ndims} dimension${ndims === 1 ? '' : 's'}, ` +
        `as ${found} files do (${expected} have ${expected === 'labels' ? '1, magic 0x00000801' : 'at least 2, magic 0x00000803'}), ` +
        'and the data does not fit it',
      'check that the images and labels files are not swapped, and that this file was written with the right header',
    );
  }
}

/** The sizes the header `head` declares, and the values after it checked against them. */
function decodeSized(bytes: Uint8Array, head: Uint8Array, path: string, gzipped: boolean, type: IdxType): { dims: number[]; data: IdxArray } {
  const ndims = head[3];
  const headerBytes = 4 + 4 * ndims;
  if (head.length < headerBytes) {
    throw new DataError(
      `${path}: truncated header: ${ndims} dimensions need a ${headerBytes}-byte header; the file has ${head.length} bytes` +
        (gzipped ? ' once gunzipped' : ''),
    );
  }
  const headView = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(headView.getUint32(4 + 4 * d, false));
  // Sizes are checked before anything is allocated, so a corrupt header declaring billions of values fails
  // here instead of in the allocator. The product is a double: past 2^53 it is inexact, but then it is
  // far beyond any real file length or memory limit, which is all it is compared with.
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = count * type.size;
  const what = `shape ${shapeText(dims)} of ${type.name} needs ${expected} bytes of data after the ${headerBytes}-byte header`;
  if (gzipped) {
    // The whole file, once gunzipped, is one Buffer; then the values are copied out of it.
    const declared = `${path}: the IDX header declares shape ${shapeText(dims)} of ${type.name}, which`;
    const total = headerBytes + expected;
    if (total > MAX_BUFFER_LENGTH) {
      throw new DataError(
        `${declared} gunzipped needs ${formatBytes(total)}, more than the ${formatBytes(MAX_BUFFER_LENGTH)} ` +
          `Node ${process.versions.node} can gunzip into one Buffer`,
        'the header may be damaged; otherwise split the data into several files',
      );
    }
    checkMemory(`${declared} gunzipped and decoded would`, total + expected, 'the header may be damaged; otherwise the data needs a machine with more memory');
    bytes = gunzipAll(bytes, path, total);
  } else if (bytes.length - headerBytes >= expected) {
    checkArray(`${path}: shape ${shapeText(dims)} of ${type.name} values`, count, type.size, type.name);
  }
  const found = bytes.length - headerBytes;
  if (found !== expected) {
    const message = `${what}; found ${found}${gzipped ? ' once gunzipped' : ''}`;
    throw found < expected
      ? new DataError(`${path}: truncated: ${message}`, 'the file may be cut short; fetch it again')
      : new DataError(`${path}: ${found - expected} trailing bytes: ${message}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { dims, data: type.read(view, headerBytes, count) };
}

/** The IDX header's bytes at most: 4 + 4 * 255. */
const MAX_IDX_HEADER = 4 + 4 * 255;
/** How much gunzipping a prefix may produce while looking for the header. */
const HEAD_OUTPUT_LIMIT = 1 << 20;

/**
 * The start of a gzip file's contents, at least the IDX header when the file has one: prefixes of growing
 * length are gunzipped with Z_SYNC_FLUSH (which returns what a cut stream holds instead of failing), each
 * allowed at most HEAD_OUTPUT_LIMIT bytes of output, so a file that gunzips to terabytes costs nothing here.
 */
function gunzipHead(bytes: Uint8Array, path: string): Uint8Array {
  let tooSmall = 0; // a prefix length known to give less than the header
  let tooLarge = bytes.length + 1; // a prefix length known to give more than HEAD_OUTPUT_LIMIT
  let n = Math.min(64, bytes.length);
  for (let attempt = 0; attempt < 64; attempt++) {
    let out: Uint8Array | null;
    try {
      out = gunzipSync(bytes.subarray(0, n), { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: HEAD_OUTPUT_LIMIT });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') throw gunzipError(path, err);
      out = null;
    }
    if (out !== null && (out.length >= MAX_IDX_HEADER || (out.length >= 4 && out.length >= 4 + 4 * out[3]))) return out;
    if (out !== null && n === bytes.length) {
      // All of it gives less than a header: gunzip it strictly, so that a cut or corrupt stream says so.
      try {
        return gunzipSync(bytes, { maxOutputLength: HEAD_OUTPUT_LIMIT });
      } catch (err) {
        throw gunzipError(path, err);
      }
    }
    if (out === null) tooLarge = n;
    else tooSmall = n;
    const next = out === null ? Math.floor((tooSmall + tooLarge) / 2) : Math.min(4 * n, tooLarge - 1, bytes.length);
    if (next <= tooSmall || next >= tooLarge) break;
    n = next;
  }
  // Only a stream built to defeat the search gets here (a byte that gunzips to over a megabyte).
  throw new DataError(`${path}: the IDX header cannot be read from this gzip stream`, 'fetch the file again');
}

/** Gunzips a whole file whose header declares `size` bytes, allowing one byte more to detect extra data. */
function gunzipAll(bytes: Uint8Array, path: string, size: number): Uint8Array {
  try {
    return gunzipSync(bytes, { maxOutputLength: Math.min(size + 1, MAX_BUFFER_LENGTH) });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new DataError(`${path}: trailing bytes: gunzipped, the file is longer than the ${size} bytes its IDX header declares`);
    }
    throw gunzipError(path, err);
  }
}

function gunzipError(path: string, err: unknown): DataError {
  return new DataError(`${path}: starts like a gzip file but cannot be gunzipped (${(err as Error).message})`,
    'the download may be incomplete; fetch the file again');
}

/** Loads an images file (N, d1, d2, ...) and a labels file (N,) of class indices. Values stay raw
 *  (0..255 for MNIST); normalisation is a separate step (fitNormalization). Without a labels file (to
 *  predict), y is empty and targetColumns 0. */
export async function loadIdx(imagesPath: string, labelsPath?: string): Promise<LoadedData> {
  const [imageBytes, labelBytes] = await Promise.all([readBytes(imagesPath), labelsPath === undefined ? null : readBytes(labelsPath)]);
  const images = decodeIdx(imageBytes, imagesPath, 'images');
  const labels = labelBytes === null ? null : decodeIdx(labelBytes, labelsPath as string, 'labels');
  if (images.dims.length < 2) {
    throw new DataError(
      `${imagesPath}: images must have shape (N, d1, ...) with at least 2 dimensions; got ${shapeText(images.dims)}`,
      labels !== null && labels.dims.length >= 2 ? 'the images and labels files look swapped' : undefined,
    );
  }
  if (labels !== null && labels.dims.length !== 1) {
    throw new DataError(
      `${labelsPath}: labels must be 1-D, one class index per image (N,); got shape ${shapeText(labels.dims)}`,
      labels.dims.length >= 2 && images.dims.length === 2 ? 'the images and labels files look swapped' : undefined,
    );
  }
  const rows = images.dims[0];
  const features = images.dims.slice(1).reduce((a, b) => a * b, 1);
  if (labels !== null && labels.dims[0] !== rows) {
    throw new DataError(
      `${imagesPath} has ${rows} images but ${labelsPath} has ${labels.dims[0]} labels; expected one label per image`,
      'check that both files belong to the same split (train or t10k)',
    );
  }
  if (rows === 0) throw new DataError(`${imagesPath}: no images (shape ${shapeText(images.dims)})`);
  if (features === 0) throw new DataError(`${imagesPath}: images of shape ${shapeText(images.dims)} have no features`);

  checkArray(`${imagesPath}: ${rows} x ${features} float32 features`, rows * features, 4, 'float32');
  checkMemory(`${imagesPath}: ${rows} x ${features} float32 features beside the decoded file`,
    4 * rows * features + images.data.byteLength + (labels?.data.byteLength ?? 0));
  const x = new Float32Array(rows * features);
  const src = images.data;
  // Integers of at most 32 bits are finite float32s: one native conversion. Floats are checked one by one.
  if (src instanceof Float32Array || src instanceof Float64Array) {
    for (let i = 0; i < src.length; i++) {
      const v = Math.fround(src[i]);
      if (!Number.isFinite(v)) {
        const r = Math.floor(i / features);
        throw new DataError(
          `${imagesPath} image ${r}, value ${i - r * features}: ${src[i]} is not a finite float32; features must be finite numbers`,
        );
      }
      x[i] = v;
    }
  } else {
    x.set(src);
  }
  const rowName = (r: number): string => `${imagesPath} image ${r}`;
  if (labels === null) return { x, y: new Int32Array(0), rows, features, targetColumns: 0, rowName };
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const v = labels.data[r];
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw new DataError(`${labelsPath} label ${r}: ${v} is not a class index; expected an integer >= 0`);
    }
    y[r] = v;
  }
  return { x, y, rows, features, targetColumns: 1, rowName };
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readRegularFile(path);
  } catch (err) {
    if (err instanceof NotRegularFileError) throw new DataError(`${path}: ${err.message}; expected an IDX file such as train-images-idx3-ubyte(.gz)`);
    throw new DataError(`${path}: cannot read the file (${(err as Error).message})`);
  }
}

function hex(byte: number): string {
  return `0x${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}
