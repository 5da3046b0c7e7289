// IDX files, the format MNIST ships in: magic 0x00 0x00 <type> <ndims>, ndims big-endian uint32 sizes,
// then the values big-endian. A gzip file (magic 1f 8b) is gunzipped first. decodeIdx checks the
// header against the byte count before allocating anything; loadIdx pairs an images and a labels file.

import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { DataError, shapeText } from '../errors.js';
import type { LoadedData } from './index.js';

export type IdxArray = Float64Array | Float32Array | Uint8Array | Int8Array | Int16Array | Int32Array;

interface IdxType {
  name: string;
  size: number;
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

/** Decodes an IDX file (gzipped or not); `path` names it in errors. */
export function decodeIdx(bytes: Uint8Array, path: string): { dims: number[]; data: IdxArray } {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new DataError(`${path}: starts like a gzip file but cannot be gunzipped (${(err as Error).message})`,
        'the download may be incomplete; fetch the file again');
    }
  }
  if (bytes.length < 4) {
    throw new DataError(`${path}: ${bytes.length} bytes is shorter than the 4-byte IDX header`,
      'expected an IDX file such as train-images-idx3-ubyte(.gz)');
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DataError(
      `${path}: not an IDX file: the first two bytes are ${hex(bytes[0])} ${hex(bytes[1])}; expected 0x00 0x00`,
      'expected an IDX file such as train-images-idx3-ubyte(.gz); for CSV files use loadCsv',
    );
  }
  const type = IDX_TYPES[bytes[2]];
  if (type === undefined) {
    throw new DataError(
      `${path}: unknown IDX type code ${hex(bytes[2])} (byte 2); expected 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32 or 0x0E f64`,
    );
  }
  const ndims = bytes[3];
  if (ndims === 0) throw new DataError(`${path}: the IDX header declares 0 dimensions (byte 3); expected at least 1`);
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) {
    throw new DataError(
      `${path}: truncated header: ${ndims} dimensions need a ${headerBytes}-byte header; the file has ${bytes.length} bytes`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let d = 0; d < ndims; d++) dims.push(view.getUint32(4 + 4 * d, false));
  // Sizes are checked against the bytes actually present before anything is allocated, so a corrupt
  // header declaring billions of values fails here instead of in the allocator. The product is a double:
  // past 2^53 it is inexact, but then it is far beyond any real file length and cannot match.
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = count * type.size;
  const found = bytes.length - headerBytes;
  if (found !== expected) {
    const what = `shape ${shapeText(dims)} of ${type.name} needs ${expected} bytes of data after the ${headerBytes}-byte header; found ${found}`;
    throw found < expected
      ? new DataError(`${path}: truncated: ${what}`, 'the file may be cut short; fetch it again')
      : new DataError(`${path}: ${found - expected} trailing bytes: ${what}`);
  }
  return { dims, data: type.read(view, headerBytes, count) };
}

/** Loads an images file (N, d1, d2, ...) and a labels file (N,) of class indices. Values stay raw
 *  (0..255 for MNIST); normalisation is a separate step (fitNormalization). */
export async function loadIdx(imagesPath: string, labelsPath: string): Promise<LoadedData> {
  const [imageBytes, labelBytes] = await Promise.all([readBytes(imagesPath), readBytes(labelsPath)]);
  const images = decodeIdx(imageBytes, imagesPath);
  const labels = decodeIdx(labelBytes, labelsPath);
  if (images.dims.length < 2) {
    throw new DataError(
      `${imagesPath}: images must have shape (N, d1, ...) with at least 2 dimensions; got ${shapeText(images.dims)}`,
      labels.dims.length >= 2 ? 'the images and labels files look swapped' : undefined,
    );
  }
  if (labels.dims.length !== 1) {
    throw new DataError(
      `${labelsPath}: labels must be 1-D, one class index per image (N,); got shape ${shapeText(labels.dims)}`,
      labels.dims.length >= 2 && images.dims.length === 2 ? 'the images and labels files look swapped' : undefined,
    );
  }
  const rows = images.dims[0];
  const features = images.dims.slice(1).reduce((a, b) => a * b, 1);
  if (labels.dims[0] !== rows) {
    throw new DataError(
      `${imagesPath} has ${rows} images but ${labelsPath} has ${labels.dims[0]} labels; expected one label per image`,
      'check that both files belong to the same split (train or t10k)',
    );
  }
  if (rows === 0) throw new DataError(`${imagesPath}: no images (shape ${shapeText(images.dims)})`);
  if (features === 0) throw new DataError(`${imagesPath}: images of shape ${shapeText(images.dims)} have no features`);

  const x = new Float32Array(rows * features);
  const src = images.data;
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
  const y = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const v = labels.data[r];
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw new DataError(`${labelsPath} label ${r}: ${v} is not a class index; expected an integer >= 0`);
    }
    y[r] = v;
  }
  return { x, y, rows, features, targetColumns: 1, rowName: (r) => `${imagesPath} image ${r}` };
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new DataError(`${path}: cannot read the file (${(err as Error).message})`);
  }
}

function hex(byte: number): string {
  return `0x${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}
