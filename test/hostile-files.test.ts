// Hostile files: every loader (IDX, CSV, checkpoint) against a corpus of damaged files made here from valid
// ones written by hand (truncated at every byte, wrong magic numbers, forged lengths and counts, ...), each
// of which must end in the loader's own error naming the file and what was expected; then bounded, seeded
// fuzzing with random mutations of valid files, where each mutant must either load with exactly what an
// independent reader in this file finds in its bytes or throw the loader's own error; then the up-front
// refusal of data too large for memory or for a typed array. Failures print the seed and iteration.

import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/main/checkpoint/file.js';
import { decodeCheckpoint, encodeCheckpoint } from '../src/main/checkpoint/safetensors.js';
import { shareDataset, shareFeatures } from '../src/main/data/data.js';
import { CheckpointError, DataError } from '../src/main/errors.js';
import { assemble as assembleFile, idx } from './files.js';
import { loadCsv } from '../src/main/loaders/csv.js';
import { loadIdx } from '../src/main/loaders/idx.js';
import type { LoadedData } from '../src/main/loaders/loaded.js';
import { MAX_BUFFER_LENGTH, memoryLimit, setMemoryLimit, typedArrayLimit } from '../src/main/data/memory.js';
import { defaultLossSpec } from '../src/shared/losses.js';
import type { ModelConfig } from '../src/shared/model.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradpool-hostile-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  setMemoryLimit(undefined);
});

let fileCount = 0;
/** Writes `contents` to a fresh file named `name` in its own directory, so names repeat freely. */
function put(name: string, contents: Uint8Array | string): string {
  const sub = join(dir, String(fileCount++));
  mkdirSync(sub);
  const path = join(sub, name);
  writeFileSync(path, contents); // sync: a thousand small files cost a thread-pool round trip each otherwise
  return path;
}

type ErrorClass = typeof DataError | typeof CheckpointError;

/** The error `run` ends in; a test failure if it returns instead. */
async function caught(run: () => unknown): Promise<unknown> {
  try {
    await run();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, but the file loaded');
}

/** Asserts `err` is the loader's own error (never a TypeError or RangeError from deep inside), naming `file`. */
function expectClear(err: unknown, cls: ErrorClass, file: string, message: RegExp, label = ''): void {
  expect(err, `${label} ${String((err as Error)?.stack)}`).toBeInstanceOf(cls);
  const text = (err as Error).message;
  expect(text.includes(file), `${label} the message names ${file}: ${text}`).toBe(true);
  expect(text, label).toMatch(message);
}

/** Runs `check` on every case: the cases of one sweep (a file cut at every byte) share one test. */
function runCases(cases: Case[], check: (c: Case) => Promise<void>): void {
  const sweeps = new Map<string, Case[]>();
  for (const c of cases) if (c.sweep !== undefined) sweeps.set(c.sweep, [...(sweeps.get(c.sweep) ?? []), c]);
  for (const [sweep, list] of sweeps) {
    it(`${sweep} (${list.length} cases)`, async () => {
      for (const c of list) await check(c);
    });
  }
  const single = cases.filter((c) => c.sweep === undefined);
  it.each(single.map((c) => [c.name, c] as const))('%s', async (_, c) => check(c));
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Decimal bytes as the messages print them, worked out here for the two ranges these tests reach. */
const inUnits = (bytes: number): string => (bytes < 1e12 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e15).toFixed(1)} PB`);

// An IDX file of (HUGE_IMAGES, 10000, 10000) u8 images is one image more than the largest Buffer holds, in
// the running Node (2^32 bytes on Node 20: 43 images; 2^53 - 1 on Node 22+: 90071993), so gunzipping it
// must be refused before it starts. HUGE_TEXT is its gunzipped size with the 16-byte header.
const HUGE_IMAGES = Math.floor(MAX_BUFFER_LENGTH / 1e8) + 1;
const HUGE_BYTES = HUGE_IMAGES * 1e8;
const HUGE_TEXT = escape(inUnits(16 + HUGE_BYTES));

// ---- valid files, written by hand ----


// Three 2 x 3 u8 images and their labels: 16 + 18 and 8 + 3 bytes.
const U8_IMAGES = [0, 1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 60, 255, 128, 127, 0, 9, 200];
const U8_LABELS = [7, 0, 2];
const IMAGES = idx(0x08, [3, 2, 3], U8_IMAGES);
const LABELS = idx(0x08, [3], U8_LABELS);
const IMAGES_GZ = gzipSync(IMAGES);
const LABELS_GZ = gzipSync(LABELS);

const CSV = 'x,y,label\n1,2,0\n3.5,-4,2\n5,6e-1,1\n';
const CSV_OPTIONS = { labelColumns: ['label'], targets: 'index' } as const;

// The [3, 2, 2] model with hand-picked values, its momentum as an extra tensor: the data section is
// layers.0.weight [0, 24), layers.0.bias [24, 32), layers.2.weight [32, 48), layers.2.bias [48, 56),
// optimizer.momentum_buffer [56, 112).
const TINY: ModelConfig = { layers: [3, 2, 2], activation: 'relu', loss: 'cross-entropy' };
const TINY_PARAMS = new Float32Array([0.5, -1.25, 3.0, -0.75, 2.0, 0.125, 0.25, -0.5, 1.5, -2.0, 0.0625, 4.0, -3.5, 1.0]);
const MOMENTUM = new Float32Array(14).map((_, i) => i / 8 - 1);
const TENSORS: [name: string, shape: number[], begin: number, end: number][] = [
  ['layers.0.weight', [2, 3], 0, 24],
  ['layers.0.bias', [2], 24, 32],
  ['layers.2.weight', [2, 2], 32, 48],
  ['layers.2.bias', [2], 48, 56],
  ['optimizer.momentum_buffer', [14], 56, 112],
];
const CKPT = encodeCheckpoint(TINY, TINY_PARAMS, { epoch: '3' }, { 'optimizer.momentum_buffer': MOMENTUM });
const CKPT_HEADER = Number(new DataView(CKPT.buffer, CKPT.byteOffset).getBigUint64(0, true)); // N

/** The data section of the tiny model, little-endian, as the spec lays it out. */
function tinyData(extra = 0): Uint8Array {
  const data = new Uint8Array(112 + extra);
  const view = new DataView(data.buffer);
  TINY_PARAMS.forEach((v, i) => view.setFloat32(4 * i, v, true));
  MOMENTUM.forEach((v, i) => view.setFloat32(56 + 4 * i, v, true));
  return data;
}

/** A valid header for tinyData(), without a checksum, to break one field at a time. */
function tinyHeader(): Record<string, any> {
  const header: Record<string, any> = { __metadata__: { format: 'gradpool', 'gradpool.version': '1', config: JSON.stringify(TINY) } };
  for (const [name, shape, begin, end] of TENSORS) header[name] = { dtype: 'F32', shape, data_offsets: [begin, end] };
  return header;
}

/** A safetensors file from a header and data (the tiny model's by default), assembled by hand. */
function assemble(header: unknown, data: Uint8Array = tinyData()): Uint8Array {
  return assembleFile(header, data);
}

function edited(edit: (h: Record<string, any>) => void, data?: Uint8Array): Uint8Array {
  const header = tinyHeader();
  edit(header);
  return assemble(header, data);
}

/** tinyHeader() as JSON text with `replace` applied to it, for what an object cannot hold (duplicate keys). */
function editedText(replace: (text: string) => string): Uint8Array {
  return assemble(replace(JSON.stringify(tinyHeader())));
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

// ---- the corpus ----

interface Case {
  name: string;
  file: string;
  bytes: Uint8Array | string;
  message: RegExp;
  /** IDX only: the other file of the pair, when not the valid one. */
  partner?: Uint8Array;
  /** The sweep the case belongs to, if any: all its cases run in one test. */
  sweep?: string;
}

// IDX: each damaged file is loaded by loadIdx beside its valid partner.
function idxCases(): { images: Case[]; labels: Case[] } {
  const images: Case[] = [];
  const labels: Case[] = [];
  // Truncated at every byte: the magic and type (0-3), the dimension sizes, the data, one byte short.
  for (let n = 0; n < IMAGES.length; n++) {
    const message = n < 4 ? `: ${n} bytes is shorter than the 4-byte IDX header`
      : n < 16 ? `: truncated header: 3 dimensions need a 16-byte header; the file has ${n} bytes`
      : `: truncated: shape \\(3, 2, 3\\) of u8 needs 18 bytes of data after the 16-byte header; found ${n - 16}`;
    images.push({
      name: `images truncated to ${n} bytes`, file: 'images-idx3-ubyte', bytes: IMAGES.subarray(0, n), message: new RegExp(message),
      sweep: 'images file truncated at every byte: magic, type, dimension sizes, data',
    });
  }
  for (let n = 0; n < LABELS.length; n++) {
    const message = n < 4 ? `: ${n} bytes is shorter than the 4-byte IDX header`
      : n < 8 ? `: truncated header: 1 dimensions need a 8-byte header; the file has ${n} bytes`
      : `: truncated: shape \\(3,\\) of u8 needs 3 bytes of data after the 8-byte header; found ${n - 8}`;
    labels.push({
      name: `labels truncated to ${n} bytes`, file: 'labels-idx1-ubyte', bytes: LABELS.subarray(0, n), message: new RegExp(message),
      sweep: 'labels file truncated at every byte: magic, type, dimension size, data',
    });
  }
  // Gzipped files truncated at every byte: the gzip header, the deflate stream, the CRC and length.
  const cutGzip = /: starts like a gzip file but cannot be gunzipped \(unexpected end of file\)\nhint: the download may be incomplete/;
  for (const [list, gz, file] of [[images, IMAGES_GZ, 'images-idx3-ubyte.gz'], [labels, LABELS_GZ, 'labels-idx1-ubyte.gz']] as const) {
    for (let n = 0; n < gz.length; n++) {
      const message = n < 2 ? new RegExp(`: ${n} bytes is shorter than the 4-byte IDX header`) : cutGzip;
      list.push({
        name: `${file} truncated to ${n} bytes`, file, bytes: gz.subarray(0, n), message,
        sweep: `${file} truncated at every byte: gzip header, deflate stream, CRC and length`,
      });
    }
  }

  const withByte = (bytes: Uint8Array, at: number, value: number): Uint8Array => {
    const out = bytes.slice();
    out[at] = value;
    return out;
  };
  const notIdx = (a: string, b: string): RegExp => new RegExp(`: not an IDX file: the first two bytes are ${a} ${b}; expected 0x00 0x00`);
  images.push(
    { name: 'magic 01 00', file: 'images', bytes: withByte(IMAGES, 0, 1), message: notIdx('0x01', '0x00') },
    { name: 'magic 00 01', file: 'images', bytes: withByte(IMAGES, 1, 1), message: notIdx('0x00', '0x01') },
    { name: 'a zip file', file: 'images.zip', bytes: Uint8Array.from([0x50, 0x4b, 3, 4, 20, 0, 0, 0]), message: notIdx('0x50', '0x4B') },
    { name: 'a CSV file', file: 'images.csv', bytes: CSV, message: notIdx('0x78', '0x2C') },
    {
      name: 'a gzipped CSV file', file: 'images.csv.gz', bytes: gzipSync(CSV),
      message: /: not an IDX file: the first two bytes once gunzipped are 0x78 0x2C; expected 0x00 0x00/,
    },
    {
      name: 'gzip magic then garbage', file: 'images.gz', bytes: Uint8Array.from([0x1f, 0x8b, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]),
      message: /: starts like a gzip file but cannot be gunzipped \(unknown compression method\)/,
    },
  );
  for (const code of [0x00, 0x07, 0x0a, 0x0f, 0xff]) {
    const hex = `0x${code.toString(16).toUpperCase().padStart(2, '0')}`;
    images.push({
      name: `type code ${hex}`, file: 'images', bytes: withByte(IMAGES, 2, code),
      message: new RegExp(`: unknown IDX type code ${hex} \\(byte 2\\); expected 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32 or 0x0E f64`),
    });
  }
  images.push(
    {
      // The fourth dimension is read from the first data bytes: 0x00010203 = 66051.
      name: 'dimension count 4 for 3 sizes', file: 'images', bytes: withByte(IMAGES, 3, 4),
      message: /: truncated: shape \(3, 2, 3, 66051\) of u8 needs 1188918 bytes of data after the 20-byte header; found 14/,
    },
    {
      name: 'dimension count 2 for 3 sizes', file: 'images', bytes: withByte(IMAGES, 3, 2),
      message: /: 16 trailing bytes: shape \(3, 2\) of u8 needs 6 bytes of data after the 12-byte header; found 22/,
    },
    { name: 'dimension count 0', file: 'images', bytes: withByte(IMAGES, 3, 0), message: /: the IDX header declares 0 dimensions \(byte 3\); expected at least 1/ },
    {
      name: '1-D images', file: 'images', bytes: idx(0x08, [3], [1, 2, 3]),
      message: /: images must have shape \(N, d1, \.\.\.\) with at least 2 dimensions; got \(3,\)/,
    },
    {
      name: 'no images', file: 'images', bytes: idx(0x08, [0, 2, 3], []), partner: idx(0x08, [0], []),
      message: /: no images \(shape \(0, 2, 3\)\)/,
    },
    {
      name: 'images with no features', file: 'images', bytes: idx(0x08, [3, 0, 3], []),
      message: /: images of shape \(3, 0, 3\) have no features/,
    },
    {
      name: 'one trailing byte', file: 'images', bytes: idx(0x08, [3, 2, 3], U8_IMAGES, 1),
      message: /: 1 trailing bytes: shape \(3, 2, 3\) of u8 needs 18 bytes of data after the 16-byte header; found 19/,
    },
    {
      name: '10^9 x 100 x 100 images declared, 10 bytes present', file: 'images', bytes: idx(0x08, [1e9, 100, 100], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
      message: /: truncated: shape \(1000000000, 100, 100\) of u8 needs 10000000000000 bytes of data after the 16-byte header; found 10/,
    },
    {
      name: 'three sizes of 2^32 - 1 f64, past 2^53 bytes', file: 'images', bytes: idx(0x0e, [0xffffffff, 0xffffffff, 0xffffffff], [0]),
      message: /: truncated: shape \(4294967295, 4294967295, 4294967295\) of f64 needs 6\.338\d*e\+29 bytes of data after the 16-byte header; found 8/
    },
    {
      name: 'gzipped, one image more declared than one Buffer holds', file: 'images.gz', bytes: gzipSync(idx(0x08, [HUGE_IMAGES, 1e4, 1e4], [1, 2, 3])),
      message: new RegExp(
        `: the IDX header declares shape \\(${HUGE_IMAGES}, 10000, 10000\\) of u8, which gunzipped needs ${HUGE_TEXT}, more than the ` +
          `${escape(inUnits(MAX_BUFFER_LENGTH))} Node ${escape(process.versions.node)} can gunzip into one Buffer`,
      ),
    },
    {
      // A gzip bomb: 3 images declared, 10 MB of zeros behind them (40 kB compressed); stopped after 35 bytes.
      name: 'gzipped, 10 MB more than the header declares', file: 'images.gz',
      bytes: gzipSync(Buffer.concat([IMAGES, Buffer.alloc(10_000_000)])),
      message: /: trailing bytes: gunzipped, the file is longer than the 34 bytes its IDX header declares/,
    },
    {
      name: 'NaN in f32 images', file: 'images-f32', bytes: idx(0x0d, [3, 2], [0, 1, 2, NaN, 4, 5]),
      message: /images-f32 image 1, value 1: NaN is not a finite float32; features must be finite numbers/,
    },
    {
      name: '-Infinity in f32 images', file: 'images-f32', bytes: idx(0x0d, [3, 2], [0, 1, 2, 3, -Infinity, 5]),
      message: /images-f32 image 2, value 0: -Infinity is not a finite float32/,
    },
    {
      name: 'f64 beyond the float32 range', file: 'images-f64', bytes: idx(0x0e, [3, 1], [0, 1e39, 2]),
      message: /images-f64 image 1, value 0: 1e\+39 is not a finite float32/,
    },
    {
      name: 'the labels file as images (swapped)', file: 'labels-as-images', bytes: LABELS,
      message: /labels-as-images: images must have shape \(N, d1, \.\.\.\) with at least 2 dimensions; got \(3,\)/,
    },
  );
  labels.push(
    { name: 'labels magic 08 08', file: 'labels', bytes: withByte(withByte(LABELS, 0, 8), 1, 8), message: notIdx('0x08', '0x08') },
    { name: 'labels type code 0x01', file: 'labels', bytes: withByte(LABELS, 2, 1), message: /: unknown IDX type code 0x01 \(byte 2\)/ },
    {
      name: '2-D labels', file: 'labels', bytes: idx(0x08, [3, 1], U8_LABELS),
      message: /labels: labels must be 1-D, one class index per image \(N,\); got shape \(3, 1\)/,
    },
    {
      name: 'four labels for three images', file: 'labels', bytes: idx(0x08, [4], [1, 2, 3, 4]),
      message: /images-idx3-ubyte has 3 images but .*labels has 4 labels; expected one label per image/,
    },
    { name: 'negative i8 label', file: 'labels', bytes: idx(0x09, [3], [1, -3, 0]), message: /labels label 1: -3 is not a class index; expected an integer >= 0/ },
    { name: 'negative i32 label', file: 'labels', bytes: idx(0x0c, [3], [1, 0, -2147483648]), message: /labels label 2: -2147483648 is not a class index/ },
    { name: 'fractional f32 label', file: 'labels', bytes: idx(0x0d, [3], [1, 2.5, 0]), message: /labels label 1: 2\.5 is not a class index/ },
    { name: 'NaN f32 label', file: 'labels', bytes: idx(0x0d, [3], [NaN, 1, 0]), message: /labels label 0: NaN is not a class index/ },
    { name: 'f64 label of 10^10', file: 'labels', bytes: idx(0x0e, [3], [1, 0, 1e10]), message: /labels label 2: 10000000000 is not a class index/ },
    {
      name: 'labels declaring 2^32 - 1 of them', file: 'labels', bytes: idx(0x08, [0xffffffff], [1, 2, 3]),
      message: /labels: truncated: shape \(4294967295,\) of u8 needs 4294967295 bytes of data after the 8-byte header; found 3/,
    },
  );
  return { images, labels };
}

function csvCases(): Case[] {
  const line3 = (cells: number): RegExp => new RegExp(`train\\.csv line 3: ${cells} cells; expected 3 like the header \\(line 1\\)`);
  const cases: [name: string, text: string, message: RegExp][] = [
    ['truncated after a delimiter', 'x,y,label\n1,2,0\n3.5,', line3(2)],
    ['truncated mid-number', 'x,y,label\n1,2,0\n3.5', line3(1)],
    ['truncated in the header', 'x,y,la', /train\.csv: no column named 'label' in the header \(line 1\); the columns are 'x', 'y', 'la'/],
    ['truncated inside quotes', 'x,y,label\n1,"2', /train\.csv: a quoted field is never closed; the file ends inside quotes/],
    ['a row with a cell too many', 'x,y,label\n1,2,0\n1,2,0,9\n', line3(4)],
    ['a row with a cell too few', 'x,y,label\n1,2,0\n1,2\n', line3(2)],
    ['a non-numeric cell', 'x,y,label\n1,2,0\n1,abc,0\n', /train\.csv line 3, column 'y': 'abc' is not a number/],
    ['an empty cell', 'x,y,label\n1,,0\n', /train\.csv line 2, column 'y': empty cell; expected a number/],
    ['NaN', 'x,y,label\nNaN,2,0\n', /train\.csv line 2, column 'x': 'NaN' is not a finite number; expected a finite number/],
    ['nan', 'x,y,label\n1,nan,0\n', /train\.csv line 2, column 'y': 'nan' is not a finite number/],
    ['Infinity', 'x,y,label\nInfinity,2,0\n', /train\.csv line 2, column 'x': 'Infinity' is not a finite number/],
    ['-inf', 'x,y,label\n1,-inf,0\n', /train\.csv line 2, column 'y': '-inf' is not a finite number/],
    ['NaN as a label', 'x,y,label\n1,2,NaN\n', /train\.csv line 2, column 'label': 'NaN' is not a finite number/],
    ['1e39, beyond float32', 'x,y,label\n1e39,2,0\n', /train\.csv line 2, column 'x': '1e39' is outside the float32 range/],
    ['a 400-digit number', `x,y,label\n${'9'.repeat(400)},2,0\n`, /train\.csv line 2, column 'x': '9{37}\.\.\.' is outside the float32 range/],
    ['a negative label', 'x,y,label\n1,2,-1\n', /train\.csv line 2, column 'label': '-1' is not a class index; expected an integer >= 0/],
    ['a fractional label', 'x,y,label\n1,2,0.5\n', /train\.csv line 2, column 'label': '0\.5' is not a class index/],
    ['a label of 3e9', 'x,y,label\n1,2,3e9\n', /train\.csv line 2, column 'label': 3e9 is too large for a class index; expected an integer below 2\^31/],
    ['a label of 1e400', 'x,y,label\n1,2,1e400\n', /train\.csv line 2, column 'label': '1e400' is outside the float32 range/],
    ['a class name among class indices', 'x,y,label\n1,2,0\n1,2,setosa\n', /train\.csv line 3, column 'label': 'setosa' is a class name, but the column holds class indices \(line 2 has '0'\)/],
    ['a class index among class names', 'x,y,label\n1,2,setosa\n1,2,0\n', /train\.csv line 3, column 'label': '0' looks like a class index, but the column holds class names \(line 2 has 'setosa'\)/],
    ['an empty file', '', /train\.csv: no data rows; the file is empty/],
    ['only blank lines', '\n  \n\n', /train\.csv: no data rows; the file is empty/],
    ['a byte-order mark only', '\uFEFF', /train\.csv: no data rows; the file is empty/],
    ['a header only', 'x,y,label\n', /train\.csv: no data rows; the file has only a header \(line 1\)/],
    ['a byte-order mark and a header only', '\uFEFFx,y,label\n', /train\.csv: no data rows; the file has only a header \(line 1\)/],
    ['a cell of a million digits', `x,y,label\n${'1'.repeat(1_000_000)},2,0\n`, /train\.csv line 2, column 'x': '1{37}\.\.\.' is outside the float32 range/],
    ['a line of 200,000 cells', `x,y,label\n${'1,'.repeat(199_999)}1\n`, /train\.csv line 2: 200000 cells; expected 3 like the header \(line 1\)\nhint: quote fields/],
    ['a quote inside a field', 'x,y,label\n1,2"3,0\n', /train\.csv line 2, column 'y': a quote inside an unquoted field/],
    ['text after a closing quote', 'x,y,label\n1,"2"3,0\n', /train\.csv line 2, column 'y': a closing quote is followed by more of the field; expected the delimiter "," or the end of the line/],
    ['semicolons detected as commas', 'x,1;y,2;label\n1;2;0\n',
      /train\.csv: no column named 'label' in the header \(line 1\); the columns are 'x', '1;y', '2;label'\nthe line was split at ',' \(detected from line 1\), but it contains ';': the file may be separated by ';'\nhint: set options\.delimiter to ';'/],
    ['the label column twice', 'x,label,label\n1,2,0\n', /train\.csv: label column 'label' is ambiguous; the header \(line 1\) has it at columns 1, 2/],
    ['only the label column', 'label\n1\n', /train\.csv: every one of the 1 columns is a label column; at least one feature column is needed/],
    ['an IDX file', Buffer.from(LABELS).toString('latin1'), /train\.csv: no column named 'label' in the header \(line 1\)/],
  ];
  return cases.map(([name, text, message]) => ({ name, file: 'train.csv', bytes: text, message }));
}

function checkpointCases(): Case[] {
  const cases: Case[] = [];
  const file = 'model.safetensors';
  const N = CKPT_HEADER;
  const truncated = '\\nhint: the file is truncated or is not a safetensors checkpoint';
  // Truncated at every byte: the 8-byte length, the header, the data.
  for (let n = 0; n < CKPT.length; n++) {
    let message: string;
    if (n < 8) {
      message = `: file is ${n} bytes; a safetensors file starts with an 8-byte header length${truncated}`;
    } else if (n < 8 + N) {
      message = `: header length is ${N} bytes but only ${n - 8} bytes follow the 8-byte length prefix${truncated}`;
    } else {
      const d = n - 8 - N;
      const [name, , begin, end] = TENSORS.find(([, , , e]) => e > d) as (typeof TENSORS)[number];
      message = `: tensor '${escape(name)}' has data_offsets \\[${begin},${end}\\]; expected \\[begin, end\\] with ` +
        `0 <= begin <= end <= ${d} \\(the data section's length in bytes\\)\\nhint: the file is truncated, or its header was edited`;
    }
    cases.push({
      name: `truncated to ${n} bytes`, file, bytes: CKPT.subarray(0, n), message: new RegExp(message),
      sweep: 'checkpoint truncated at every byte: 8-byte length, header, data',
    });
  }

  const lengthPrefix = (length: bigint): Uint8Array => {
    const out = CKPT.slice();
    new DataView(out.buffer).setBigUint64(0, length, true);
    return out;
  };
  const rest = CKPT.length - 8;
  for (const length of [2n ** 64n - 1n, 2n ** 53n + 1n, BigInt(rest + 1)]) {
    cases.push({
      name: `header length ${length}, past the end`, file, bytes: lengthPrefix(length),
      message: new RegExp(`: header length is ${length} bytes but only ${rest} bytes follow the 8-byte length prefix`),
    });
  }
  cases.push({ name: 'header length 0', file, bytes: lengthPrefix(0n), message: /: header is not valid JSON \(Unexpected end of JSON input\)/ });
  const notUtf8 = assemble('{"a":1}');
  notUtf8[10] = 0xff;
  cases.push({ name: 'a header that is not UTF-8', file, bytes: notUtf8, message: /: header is not valid UTF-8/ });

  const add = (name: string, bytes: Uint8Array, message: RegExp): void => {
    cases.push({ name, file, bytes, message });
  };
  // Not an object.
  for (const [json, found] of [['[]', 'an array'], ['"x"', 'a string \\("x"\\)'], ['1', 'a number \\(1\\)'], ['null', 'null'], ['true', 'a boolean \\(true\\)']]) {
    add(`header ${json}`, assemble(json), new RegExp(`: header is ${found}; expected a JSON object mapping tensor names to \\{dtype, shape, data_offsets\\}`));
  }
  // Deeply nested.
  const deep = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
  const tooDeep = /: header nests JSON more than 64 levels deep; a safetensors header has 3 \(tensors, their entries, their shapes\)/;
  add('a shape nested 100,000 deep', editedText((t) => t.replace('"shape":[2]', `"shape":${deep(100_000)}`)), tooDeep);
  add('metadata nested 65 deep', editedText((t) => t.replace('"__metadata__":{', `"__metadata__":{"x":${'{"a":'.repeat(65)}1${'}'.repeat(65)},`)), tooDeep);
  add('an unknown field nested 70 deep', editedText((t) => t.replace('"dtype":"F32"', `"note":${deep(70)},"dtype":"F32"`)), tooDeep);
  const deepConfig = JSON.stringify({ ...TINY, layers: JSON.parse(deep(100)) });
  add('a config whose layers nest 100 deep', edited((h) => (h.__metadata__.config = deepConfig)),
    /: metadata "config": layers must be an array of at least 2 positive integers, found \[\[\[\[\.\.\.\]\]\]\]/);

  // Shapes: negative, NaN, fractional, not numbers, too large to be exact.
  const badShape = (shape: string): RegExp => new RegExp(`: tensor 'layers\\.0\\.bias' has shape ${escape(shape)}; expected an array of non-negative integers`);
  for (const [text, shown] of [['[-2]', '[-2]'], ['[2.5]', '[2.5]'], ['["2"]', '["2"]'], ['null', 'null'], ['{}', '{}'], ['[1e400]', '[Infinity]'],
    ['[9007199254740993]', '[9007199254740992]'], ['[[2]]', '[[2]]'], ['2', '2']]) {
    add(`shape ${text}`, editedText((t) => t.replace('"shape":[2]', `"shape":${text}`)), badShape(shown));
  }
  add('shape [NaN], not JSON', editedText((t) => t.replace('"shape":[2]', '"shape":[NaN]')), /: header is not valid JSON \(Unexpected token/);
  // Offsets: negative, fractional, not numbers, reversed, wrong arity, past the end.
  const badOffsets = (shown: string): RegExp => new RegExp(
    `: tensor 'layers\\.0\\.bias' has data_offsets ${escape(shown)}; expected \\[begin, end\\] with 0 <= begin <= end <= 112 \\(the data section's length in bytes\\)`,
  );
  for (const [text, shown] of [['[-8,0]', '[-8,0]'], ['[24.5,32]', '[24.5,32]'], ['["24","32"]', '["24","32"]'], ['[32,24]', '[32,24]'],
    ['[24]', '[24]'], ['[24,32,40]', '[24,32,40]'], ['null', 'null'], ['[24,1e400]', '[24,Infinity]'], ['[24,9007199254740993]', '[24,9007199254740992]'],
    ['[104,120]', '[104,120]']]) {
    add(`data_offsets ${text}`, editedText((t) => t.replace('"data_offsets":[24,32]', `"data_offsets":${text}`)), badOffsets(shown));
  }
  add('data_offsets [NaN,32], not JSON', editedText((t) => t.replace('"data_offsets":[24,32]', '"data_offsets":[NaN,32]')), /: header is not valid JSON/);
  add('overlapping tensors', edited((h) => (h['layers.0.bias'].data_offsets = [16, 24])),
    /: tensors 'layers\.0\.weight' and 'layers\.0\.bias' overlap \(data_offsets \[0,24\] and \[16,24\]\)/);
  add('a tensor inside another', edited((h) => (h['layers.0.bias'].data_offsets = [60, 68])),
    /: tensors 'optimizer\.momentum_buffer' and 'layers\.0\.bias' overlap \(data_offsets \[56,112\] and \[60,68\]\)/);
  add('a gap between tensors', edited((h) => {
    h['layers.2.bias'].data_offsets = [52, 60];
    h['optimizer.momentum_buffer'].data_offsets = [60, 116];
  }, tinyData(4)), /: data bytes \[48, 52\) belong to no tensor \(the next is 'layers\.2\.bias' at 52\); expected the tensors to cover the data section without gaps/);
  add('bytes after the last tensor', assemble(tinyHeader(), tinyData(8)),
    /: 8 bytes follow the last tensor's data \(the tensors end at byte 112 of a 120-byte data section\); expected the file to end there/);
  add('a size that does not match the shape', edited((h) => (h['layers.0.bias'].shape = [3])),
    /: tensor 'layers\.0\.bias' has 8 bytes of data but F32 shape \(3\) needs 12/);
  // dtypes.
  const onlyF32 = (found: string): RegExp => new RegExp(`: only float32 \\(F32\\) tensors are supported; tensor 'layers\\.2\\.weight' has dtype ${found}\\nhint: convert`);
  add('dtype F16', edited((h) => (h['layers.2.weight'].dtype = 'F16')), onlyF32('F16'));
  add('dtype f32 (lower case)', edited((h) => (h['layers.2.weight'].dtype = 'f32')), onlyF32('f32'));
  add('dtype 32', edited((h) => (h['layers.2.weight'].dtype = 32)), onlyF32('a number \\(32\\)'));
  add('no dtype', edited((h) => delete h['layers.2.weight'].dtype), onlyF32('missing'));
  add('an unknown dtype on an extra tensor', edited((h) => (h['optimizer.momentum_buffer'].dtype = 'F33')),
    /: tensor 'optimizer\.momentum_buffer' has dtype F33; expected a safetensors dtype \(BOOL, U8, I8, .*F64\)/);
  add('dtype __proto__ on an extra tensor', edited((h) => (h['optimizer.momentum_buffer'].dtype = '__proto__')),
    /: tensor 'optimizer\.momentum_buffer' has dtype __proto__; expected a safetensors dtype/);
  add('an extra I64 tensor whose size does not fit', edited((h) => (h['optimizer.momentum_buffer'].dtype = 'I64')),
    /: tensor 'optimizer\.momentum_buffer' has 56 bytes of data but I64 shape \(14\) needs 112/);
  // Duplicates: JSON.parse would silently keep the last.
  const bias = '"layers.0.bias":{"dtype":"F32","shape":[2],"data_offsets":[24,32]}';
  add('a tensor listed twice, identically', editedText((t) => t.replace(bias, `${bias},${bias}`)), /: header lists tensor 'layers\.0\.bias' twice; expected each tensor once/);
  add('a tensor listed twice, differently', editedText((t) => t.replace(bias, `${bias},"layers.0.bias":{"dtype":"F32","shape":[2],"data_offsets":[48,56]}`)),
    /: header lists tensor 'layers\.0\.bias' twice/);
  add('a tensor listed twice, spelled with an escape', editedText((t) => t.replace(bias, `${bias},${bias.replace('"layers.0.bias"', '"layers.0.bia\\u0073"')}`)),
    /: header lists tensor 'layers\.0\.bias' twice/);
  add('__metadata__ twice', editedText((t) => t.replace('{"__metadata__":', '{"__metadata__":{},"__metadata__":')), /: header has two __metadata__ entries; expected one/);
  add('a metadata key twice', editedText((t) => t.replace('"format":"gradpool"', '"format":"gradpool","format":"other"')),
    /: __metadata__ has the key 'format' twice; expected each key once/);
  add('a field of a tensor entry twice', editedText((t) => t.replace('"shape":[2],', '"shape":[2],"shape":[2],')),
    /: header has the key 'shape' twice in the entry of 'layers\.0\.bias'; expected each key once/);
  // Checksums: a flipped byte in each tensor's data, a forged or malformed checksum.
  for (const [name, , begin, end] of TENSORS) {
    for (const at of [begin, end - 1]) {
      const flipped = CKPT.slice();
      flipped[8 + N + at] ^= 0x40;
      add(`a flipped byte at data byte ${at} (${name})`, flipped, new RegExp(
        `: the tensor data does not match its checksum \\(metadata "gradpool\\.sha256" ${sha256(tinyData())}, but the 112 data bytes hash to ` +
          `${sha256(flipped.subarray(8 + N))}\\): the file is torn or was edited\\nhint: load the previous checkpoint instead`,
      ));
    }
  }
  const withChecksum = (value: string): Uint8Array => edited((h) => (h.__metadata__['gradpool.sha256'] = value));
  add('the checksum of other data', withChecksum(sha256(new Uint8Array(112))), /: the tensor data does not match its checksum/);
  add('a checksum that is not hex', withChecksum('z'.repeat(64)),
    /: metadata "gradpool\.sha256" is 'z{64}'; expected the SHA-256 of the tensor data as 64 lowercase hex digits\nhint: the file was damaged or edited/);
  add('a checksum in upper case', withChecksum(sha256(tinyData()).toUpperCase()), /: metadata "gradpool\.sha256" is '[0-9A-F]{64}'; expected/);
  add('a checksum cut short', withChecksum(sha256(tinyData()).slice(0, 63)), /: metadata "gradpool\.sha256" is '[0-9a-f]{63}'; expected/);
  // Metadata and config.
  add('metadata that is a string', edited((h) => (h.__metadata__ = 'x')), /: __metadata__ is a string \("x"\); expected an object of strings/);
  add('metadata that is an array', edited((h) => (h.__metadata__ = [])), /: __metadata__ is an array; expected an object of strings/);
  add('a metadata number', edited((h) => (h.__metadata__.epoch = 3)), /: __metadata__ entry 'epoch' is a number \(3\); safetensors metadata values must be strings/);
  add('no config', edited((h) => delete h.__metadata__.config), /: metadata has no "config" entry; expected the model config as JSON/);
  add('a config that is not JSON', edited((h) => (h.__metadata__.config = '{"layers":[3,2,')), /: metadata "config" is not valid JSON/);
  add('a config that is null', edited((h) => (h.__metadata__.config = 'null')), /: metadata "config": expected an object \{layers, activation, loss\}, found null/);
  add('a config with a million layers', edited((h) => (h.__metadata__.config = JSON.stringify({ ...TINY, layers: [3, 2, ...new Array(1e6).fill(2)] }))),
    /: has no tensor 'layers\.4\.weight'; the model config in this file \(layers \[3,2,2,2,2,.*\.\.\.\) needs it with shape \(2, 2\)/);
  add('a config with a layer of 10^15', edited((h) => (h.__metadata__.config = JSON.stringify({ ...TINY, layers: [3, 1e15, 2] }))),
    /: tensor 'layers\.0\.weight' has shape \(2, 3\); the model config in this file needs \(1000000000000000, 3\)/);
  add('a config with layer 0', edited((h) => (h.__metadata__.config = JSON.stringify({ ...TINY, layers: [3, 0, 2] }))),
    /: metadata "config": layers must be an array of at least 2 positive integers, found \[3,0,2\]/);
  add('a config with an unknown loss', edited((h) => (h.__metadata__.config = JSON.stringify({ ...TINY, loss: { name: 'x' } }))),
    /: metadata "config": loss must be one of cross-entropy, .*, found \{"name":"x"\}/);
  add('version 2', edited((h) => (h.__metadata__['gradpool.version'] = '2')), /: metadata "gradpool\.version" is "2"; this gradpool reads version 1\nhint: upgrade/);
  // Tensors.
  add('a tensor entry that is a number', edited((h) => (h['layers.0.bias'] = 5)), /: tensor 'layers\.0\.bias' is a number \(5\); expected \{dtype, shape, data_offsets\}/);
  add('a tensor entry that is an array', edited((h) => (h['layers.0.bias'] = [])), /: tensor 'layers\.0\.bias' is an array; expected \{dtype, shape, data_offsets\}/);
  add('a missing tensor', edited((h) => delete h['layers.2.weight']),
    /: has no tensor 'layers\.2\.weight'; the model config in this file \(layers \[3,2,2\]\) needs it with shape \(2, 2\)/);
  add('a weight transposed', edited((h) => (h['layers.0.weight'].shape = [3, 2])),
    /: tensor 'layers\.0\.weight' has shape \(3, 2\); the model config in this file needs \(2, 3\)/);
  add('a tensor with a 10,000-character name', edited((h) => (h[`x${'y'.repeat(10_000)}`] = { dtype: 'F32', shape: [1], data_offsets: [0, 8] })),
    /: tensor 'xy{76}\.\.\.' has 8 bytes of data but F32 shape \(1\) needs 4/);
  return cases;
}

// ---- an independent reader for the fuzz oracle ----

/** What an IDX file holds by the format's definition, or null when it is not a valid one. */
function readIdx(raw: Uint8Array): { dims: number[]; values: number[] } | null {
  let bytes = raw;
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      bytes = gunzipSync(raw);
    } catch {
      return null;
    }
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || bytes[3] === 0) return null;
  const size = ({ 0x08: 1, 0x09: 1, 0x0b: 2, 0x0c: 4, 0x0d: 4, 0x0e: 8 } as Record<number, number>)[bytes[2]];
  if (size === undefined) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = 4 + 4 * bytes[3];
  if (bytes.length < header) return null;
  const dims = Array.from({ length: bytes[3] }, (_, d) => view.getUint32(4 + 4 * d));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== header + count * size) return null;
  const values = Array.from({ length: count }, (_, i) => {
    const at = header + size * i;
    switch (bytes[2]) {
      case 0x08: return view.getUint8(at);
      case 0x09: return view.getInt8(at);
      case 0x0b: return view.getInt16(at);
      case 0x0c: return view.getInt32(at);
      case 0x0d: return view.getFloat32(at);
      default: return view.getFloat64(at);
    }
  });
  return { dims, values };
}

/** What an IDX pair holds as (x, y), or null when loadIdx must refuse it. */
function readIdxPair(imageBytes: Uint8Array, labelBytes: Uint8Array): { x: number[]; y: number[]; rows: number; features: number } | null {
  const images = readIdx(imageBytes);
  const labels = readIdx(labelBytes);
  if (images === null || labels === null || images.dims.length < 2 || labels.dims.length !== 1) return null;
  const rows = images.dims[0];
  const features = images.values.length / Math.max(rows, 1);
  if (labels.dims[0] !== rows || rows === 0 || features === 0) return null;
  if (!images.values.every((v) => Number.isFinite(Math.fround(v)))) return null;
  if (!labels.values.every((v) => Number.isInteger(v) && v >= 0 && v <= 0x7fffffff)) return null;
  return { x: images.values.map(Math.fround), y: labels.values, rows, features };
}

/**
 * What a CSV text of plain characters (no quotes, tabs, carriage returns or non-ASCII) holds under
 * loadCsv's rules, read with split(): a header when any first-row cell is not a number, one 'label'
 * column of class indices, or of class names when its first cell is not a number (indices in sorted
 * order), every other column a finite float32 feature. null when it must be refused.
 */
function readPlainCsv(text: string): { x: number[]; y: number[]; lines: number[]; features: number } | null {
  const nonFinite = /^[+-]?(nan|inf|infinity)$/i;
  const looksNumeric = (c: string): boolean => c === '' || !Number.isNaN(Number(c)) || nonFinite.test(c);
  const isNumber = (cell: string): boolean => cell !== '' && !Number.isNaN(Number(cell)) && Number.isFinite(Math.fround(Number(cell)));
  const records: { cells: string[]; line: number }[] = [];
  text.split('\n').forEach((line, i) => {
    const cells = line.split(',').map((c) => c.trim());
    if (!(cells.length === 1 && cells[0] === '')) records.push({ cells, line: i + 1 });
  });
  if (records.length === 0) return null;
  const header = records[0].cells;
  if (!header.some((c) => !looksNumeric(c))) return null; // no header: 'label' unknown
  const labelAt = header.flatMap((c, i) => (c === 'label' ? [i] : []));
  if (labelAt.length !== 1 || header.length < 2) return null;
  const rows = records.slice(1);
  if (rows.some((r) => r.cells.length !== header.length)) return null;
  const labels = rows.map((r) => r.cells[labelAt[0]]);
  const named = labels.length > 0 && !looksNumeric(labels[0]);
  const classes = [...new Set(labels)].sort();
  const out = { x: [] as number[], y: [] as number[], lines: [] as number[], features: header.length - 1 };
  for (const { cells, line } of rows) {
    if (!cells.every((c, i) => i === labelAt[0] || isNumber(c))) return null;
    const cell = cells[labelAt[0]];
    if (named) {
      if (looksNumeric(cell)) return null;
      out.y.push(classes.indexOf(cell));
    } else {
      const label = Number(cell);
      if (!isNumber(cell) || !Number.isInteger(label) || label < 0 || label > 0x7fffffff) return null;
      out.y.push(label);
    }
    cells.forEach((c, i) => {
      if (i !== labelAt[0]) out.x.push(Math.fround(Number(c)));
    });
    out.lines.push(line);
  }
  return out.y.length === 0 ? null : out;
}

// ---- the fuzzer ----

/** mulberry32: a small seeded generator, so that every failure reproduces from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One to three mutations of `bytes`: byte flips, truncations, insertions, deletions, duplicated ranges. */
function mutate(bytes: Uint8Array, rand: () => number, alphabet?: Uint8Array): { bytes: Uint8Array; ops: string[] } {
  let b = Uint8Array.from(bytes);
  const ops: string[] = [];
  const int = (n: number): number => Math.floor(rand() * n);
  const byte = (): number => (alphabet !== undefined && rand() < 0.7 ? alphabet[int(alphabet.length)] : int(256));
  for (let m = 1 + int(3); m > 0; m--) {
    const kind = int(5);
    const at = int(b.length + 1);
    if (kind === 0 && b.length > 0) {
      const i = Math.min(at, b.length - 1);
      const v = rand() < 0.5 ? b[i] ^ (1 << int(8)) : byte();
      ops.push(`set ${i} to ${v}`);
      b[i] = v;
    } else if (kind === 1) {
      ops.push(`truncate to ${at}`);
      b = b.slice(0, at);
    } else if (kind === 2) {
      const insert = Uint8Array.from({ length: 1 + int(8) }, byte);
      ops.push(`insert [${insert.join(',')}] at ${at}`);
      b = Uint8Array.from([...b.subarray(0, at), ...insert, ...b.subarray(at)]);
    } else if (kind === 3) {
      const end = Math.min(b.length, at + 1 + int(16));
      ops.push(`delete ${at}..${end}`);
      b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(end)]);
    } else {
      const from = int(b.length + 1);
      const range = b.subarray(from, Math.min(b.length, from + 1 + int(32)));
      ops.push(`duplicate ${from}..${from + range.length} at ${at}`);
      b = Uint8Array.from([...b.subarray(0, at), ...range, ...b.subarray(at)]);
    }
  }
  return { bytes: b, ops };
}

const bitsEqual = (a: Float32Array, b: ArrayLike<number>): boolean =>
  a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(Float32Array.from(b).buffer)) === 0;

const FUZZ_SEED = 20240611;
const FUZZ_ITERATIONS = { idx: 1000, csv: 400, checkpoint: 3000 };
/** Longest any single mutant may take to load or be refused before it counts as a hang. */
const MUTANT_MS = 2000;

// ---- the tests ----

describe('IDX corpus', () => {
  const { images, labels } = idxCases();
  describe('images file', () => {
    runCases(images, async (c) => {
      const imagesPath = put(c.file, c.bytes);
      const labelsPath = put('labels-idx1-ubyte', c.partner ?? LABELS);
      expectClear(await caught(() => loadIdx(imagesPath, labelsPath)), DataError, imagesPath, c.message, c.name);
    });
  });
  describe('labels file', () => {
    runCases(labels, async (c) => {
      const imagesPath = put('images-idx3-ubyte', IMAGES);
      const labelsPath = put(c.file, c.bytes);
      expectClear(await caught(() => loadIdx(imagesPath, labelsPath)), DataError, labelsPath, c.message, c.name);
    });
  });
  it('names a file that does not exist, and one that is a directory', async () => {
    const labelsPath = put('labels', LABELS);
    expectClear(await caught(() => loadIdx(join(dir, 'nope'), labelsPath)), DataError, join(dir, 'nope'), /: cannot read the file \(ENOENT/);
    expectClear(await caught(() => loadIdx(dir, labelsPath)), DataError, dir, /: cannot read the file \(EISDIR/);
  });
  it('still loads the valid files the corpus is made from, raw and gzipped', async () => {
    for (const [i, l] of [[IMAGES, LABELS], [IMAGES_GZ, LABELS_GZ]]) {
      const data = await loadIdx(put('images', i), put('labels', l));
      expect(Array.from(data.x)).toEqual(U8_IMAGES);
      expect(Array.from(data.y)).toEqual(U8_LABELS);
      expect([data.rows, data.features]).toEqual([3, 6]);
    }
  });
});

describe('CSV corpus', () => {
  runCases(csvCases(), async (c) => {
    const path = put(c.file, c.bytes);
    expectClear(await caught(() => loadCsv(path, CSV_OPTIONS)), DataError, path, c.message, c.name);
  });

  it('refuses a line longer than maxLineLength as it reaches it', async () => {
    const path = put('train.csv', `x,y,label\n1,2,0\n${'7'.repeat(5000)},2,0\n`);
    expectClear(await caught(() => loadCsv(path, { ...CSV_OPTIONS, maxLineLength: 1000 })), DataError, path,
      /train\.csv line 3: a row longer than 1000 characters \(options\.maxLineLength\); expected lines of numbers separated by ","\nhint: is this a CSV file\?/);
  });

  it('refuses, through the Trainer\'s data check, a label out of range for the model, naming its line', async () => {
    const path = put('train.csv', 'x,y,label\n1,2,0\n3,4,7\n');
    const data = await loadCsv(path, CSV_OPTIONS);
    const model: ModelConfig = { layers: [2, 4, 3], activation: 'relu', loss: 'cross-entropy' };
    const err = await caught(() => shareDataset(data, model, defaultLossSpec('cross-entropy'), 'training data'));
    expectClear(err, DataError, path, /^training data: y\[1\] \(.*train\.csv line 3\) = 7 is not a class index in \[0, 3\) \(the model has 3 outputs\)\nhint: end layers in the number of classes \(at least 8\)/);
  });

  it('names a file that does not exist, and one that is a directory', async () => {
    expectClear(await caught(() => loadCsv(join(dir, 'nope.csv'), CSV_OPTIONS)), DataError, 'nope.csv', /nope\.csv: cannot read the file \(ENOENT/);
    expectClear(await caught(() => loadCsv(dir, CSV_OPTIONS)), DataError, dir, /: cannot read the file \(EISDIR/);
  });

  it('still loads the valid file, with a byte-order mark and CRLF line ends too', async () => {
    for (const text of [CSV, `\uFEFF${CSV.replaceAll('\n', '\r\n')}`]) {
      const data = await loadCsv(put('train.csv', text), CSV_OPTIONS);
      expect(Array.from(data.x)).toEqual([1, 2, 3.5, -4, 5, Math.fround(0.6)]);
      expect(Array.from(data.y)).toEqual([0, 2, 1]);
      expect(data.featureNames).toEqual(['x', 'y']);
    }
  });
});

describe('checkpoint corpus', () => {
  runCases(checkpointCases(), async (c) => {
    const path = put(c.file, c.bytes);
    expectClear(await caught(() => loadCheckpoint(path)), CheckpointError, path, c.message, c.name);
  });

  it('names a file that does not exist, and one that is a directory', async () => {
    expectClear(await caught(() => loadCheckpoint(join(dir, 'nope.safetensors'))), CheckpointError, 'nope.safetensors', /: no such file/);
    expectClear(await caught(() => loadCheckpoint(dir)), CheckpointError, dir, /: is a directory, not a checkpoint file/);
  });

  it('loads the valid file the corpus is made from, and ignores what it does not know', async () => {
    const ckpt = await loadCheckpoint(put('model.safetensors', CKPT));
    expect(bitsEqual(ckpt.params, TINY_PARAMS)).toBe(true);
    expect(bitsEqual(ckpt.tensors['optimizer.momentum_buffer'], MOMENTUM)).toBe(true);
    expect(ckpt.metadata.epoch).toBe('3');

    // Unknown metadata keys, unknown fields of a tensor entry, an I64 tensor the model does not use, a
    // float32 tensor named __proto__, no checksum: all loaded or passed over, none refused.
    const header = tinyHeader();
    header.__metadata__.written_by = 'someone else';
    header['layers.0.bias'].note = { nested: [1, 2, { deeper: true }] };
    header.step = { dtype: 'I64', shape: [1], data_offsets: [112, 120] };
    const text = JSON.stringify(header).replace('{"__metadata__"', '{"__proto__":{"dtype":"F32","shape":[2],"data_offsets":[120,128]},"__metadata__"');
    const data = tinyData(16);
    new DataView(data.buffer).setFloat32(120, 1.5, true);
    new DataView(data.buffer).setFloat32(124, -2, true);
    const other = decodeCheckpoint(assemble(text, data), 'other.safetensors');
    expect(bitsEqual(other.params, TINY_PARAMS)).toBe(true);
    expect(Object.keys(other.tensors).sort()).toEqual(['__proto__', 'optimizer.momentum_buffer']);
    expect(Array.from(Object.getOwnPropertyDescriptor(other.tensors, '__proto__')?.value as Float32Array)).toEqual([1.5, -2]);
    expect(Object.getPrototypeOf(other.tensors)).toBe(Object.prototype);
    expect(other.metadata.written_by).toBe('someone else');
  });
});

describe('fuzzing', () => {
  it(`IDX: ${FUZZ_ITERATIONS.idx} mutants of valid files (seed ${FUZZ_SEED}) load as their bytes say or throw DataError`, async () => {
    const rand = random(FUZZ_SEED);
    const sources: [string, Uint8Array, boolean][] = [
      ['images', IMAGES, true], ['labels', LABELS, false], ['images.gz', IMAGES_GZ, true], ['labels.gz', LABELS_GZ, false],
      ['images-f32', idx(0x0d, [3, 2], [0.5, -1, 2, 3e38, -0, 7]), true], ['labels-i16', idx(0x0b, [3], [1, 0, 300]), false],
    ];
    const imagesPath = join(dir, 'fuzz-images');
    const labelsPath = join(dir, 'fuzz-labels');
    const outcome = { loaded: 0, refused: 0 };
    for (let i = 0; i < FUZZ_ITERATIONS.idx; i++) {
      const [name, source, isImages] = sources[Math.floor(rand() * sources.length)];
      const { bytes, ops } = mutate(source, rand);
      const where = `seed ${FUZZ_SEED} iteration ${i}: ${name} mutated by ${ops.join('; ')}`;
      const pair: [Uint8Array, Uint8Array] = isImages ? [bytes, LABELS] : [IMAGES, bytes];
      writeFileSync(imagesPath, pair[0]);
      writeFileSync(labelsPath, pair[1]);
      const start = performance.now();
      let data: LoadedData | undefined;
      try {
        data = await loadIdx(imagesPath, labelsPath);
      } catch (err) {
        expect(err, `${where}: ${(err as Error).stack}`).toBeInstanceOf(DataError);
      }
      expect(performance.now() - start, `${where}: took too long`).toBeLessThan(MUTANT_MS);
      const expected = readIdxPair(...pair);
      if (data === undefined) {
        outcome.refused++;
        expect(expected, `${where}: refused, but the files are a valid pair`).toBeNull();
      } else {
        outcome.loaded++;
        expect(expected, `${where}: loaded, but the files are not a valid pair`).not.toBeNull();
        expect([data.rows, data.features], where).toEqual([expected!.rows, expected!.features]);
        expect(bitsEqual(data.x, expected!.x), `${where}: x differs from the file's values`).toBe(true);
        expect(Array.from(data.y), where).toEqual(expected!.y);
      }
    }
    expect(outcome.loaded + outcome.refused).toBe(FUZZ_ITERATIONS.idx);
    console.log(`IDX fuzz: ${outcome.loaded} mutants loaded as their bytes say, ${outcome.refused} refused with DataError`);
  });

  /** `FUZZ_ITERATIONS.csv` mutants of `baseText` with bytes from `alphabetText`, checked as described. */
  async function fuzzCsv(seed: number, baseText: string, alphabetText: string): Promise<void> {
    const rand = random(seed);
    const alphabet = new TextEncoder().encode(alphabetText);
    const base = new TextEncoder().encode(baseText);
    const path = join(dir, 'fuzz.csv');
    const outcome = { loaded: 0, refused: 0, plain: 0 };
    const plain = /^[0-9A-Za-z.,+\- \n]*$/;
    for (let i = 0; i < FUZZ_ITERATIONS.csv; i++) {
      const { bytes, ops } = mutate(base, rand, alphabet);
      const text = Buffer.from(bytes).toString('latin1');
      const where = `seed ${seed} iteration ${i}: mutated by ${ops.join('; ')} to ${JSON.stringify(text)}`;
      writeFileSync(path, bytes);
      const start = performance.now();
      let data: LoadedData | undefined;
      try {
        data = await loadCsv(path, CSV_OPTIONS);
      } catch (err) {
        expect(err, `${where}: ${(err as Error).stack}`).toBeInstanceOf(DataError);
        expect((err as Error).message.startsWith(path), where).toBe(true);
      }
      expect(performance.now() - start, `${where}: took too long`).toBeLessThan(MUTANT_MS);
      if (data === undefined) outcome.refused++;
      else outcome.loaded++;
      if (plain.test(text)) {
        // Plain text: the result must be exactly what split() reads, refusals included.
        outcome.plain++;
        const expected = readPlainCsv(text);
        if (expected === null) {
          expect(data, `${where}: loaded, but the text breaks a rule`).toBeUndefined();
        } else {
          expect(data, `${where}: refused, but the text is valid`).toBeDefined();
          expect(data!.features, where).toBe(expected.features);
          expect(bitsEqual(data!.x, expected.x), `${where}: x differs from the text's numbers`).toBe(true);
          expect(Array.from(data!.y), where).toEqual(expected.y);
          expect(expected.lines.map((_, r) => data!.rowName(r)), where).toEqual(expected.lines.map((l) => `${path} line ${l}`));
        }
      } else if (data !== undefined) {
        // Quotes, tabs, carriage returns: the loaded data must still obey every rule.
        expect(data.x.length, where).toBe(data.rows * data.features);
        expect(data.y.length, where).toBe(data.rows);
        expect(data.x.every(Number.isFinite), `${where}: a non-finite feature loaded`).toBe(true);
        expect(Array.from(data.y).every((v) => Number.isInteger(v) && v >= 0), `${where}: a label that is not a class index loaded`).toBe(true);
      }
    }
    console.log(`CSV fuzz: ${outcome.loaded} mutants loaded, ${outcome.refused} refused with DataError; ${outcome.plain} checked against split()`);
  }

  it(`CSV: ${FUZZ_ITERATIONS.csv} mutants of a valid file (seed ${FUZZ_SEED}) load as their text says or throw DataError`, async () => {
    await fuzzCsv(FUZZ_SEED + 1, 'x,y,label\n1,2,0\n3.5,-4,2\n\n5,6e-1,1\n-0,0x1f,3\n', '0123456789,,,\n\n.-+eE xlabNnI"\r\t');
  });

  it(`CSV: ${FUZZ_ITERATIONS.csv} mutants of a file of class names (seed ${FUZZ_SEED}) load as their text says or throw DataError`, async () => {
    await fuzzCsv(FUZZ_SEED + 3, 'x,y,label\n1,2,cat\n3.5,-4,dog\n\n5,6e-1,cat\n-0,0x1f,emu\n', '0123456789,,,\n\n.-+eE catdogmu;"\r\t');
  });

  it('CSV: every prefix of a valid file loads as the prefix says or throws DataError', async () => {
    const path = join(dir, 'prefix.csv');
    for (let n = 0; n <= CSV.length; n++) {
      const text = CSV.slice(0, n);
      writeFileSync(path, text);
      const expected = readPlainCsv(text);
      const result = await loadCsv(path, CSV_OPTIONS).catch((err: unknown) => err);
      if (expected === null) {
        expect(result, `prefix ${JSON.stringify(text)}`).toBeInstanceOf(DataError);
      } else {
        expect(result, `prefix ${JSON.stringify(text)}`).not.toBeInstanceOf(Error);
        expect(bitsEqual((result as LoadedData).x, expected.x), `prefix ${JSON.stringify(text)}`).toBe(true);
        expect(Array.from((result as LoadedData).y)).toEqual(expected.y);
      }
    }
  });

  it(`checkpoint: ${FUZZ_ITERATIONS.checkpoint} mutants of a valid file (seed ${FUZZ_SEED}) load what was saved or throw CheckpointError`, () => {
    const rand = random(FUZZ_SEED + 2);
    const saved = sha256(tinyData());
    const outcome = { loaded: 0, refused: 0, unchecked: 0 };
    for (let i = 0; i < FUZZ_ITERATIONS.checkpoint; i++) {
      const { bytes, ops } = mutate(CKPT, rand);
      const where = `seed ${FUZZ_SEED + 2} iteration ${i}: mutated by ${ops.join('; ')}`;
      const start = performance.now();
      let ckpt: ReturnType<typeof decodeCheckpoint> | undefined;
      try {
        ckpt = decodeCheckpoint(bytes, 'fuzz.safetensors');
      } catch (err) {
        expect(err, `${where}: ${(err as Error).stack}`).toBeInstanceOf(CheckpointError);
        expect((err as Error).message.startsWith('fuzz.safetensors: '), where).toBe(true);
      }
      expect(performance.now() - start, `${where}: took too long`).toBeLessThan(MUTANT_MS);
      if (ckpt === undefined) {
        outcome.refused++;
        continue;
      }
      outcome.loaded++;
      // Read the mutant as the spec says, by hand: every model tensor from its data_offsets.
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8'));
      const data = bytes.subarray(8 + n);
      const config = JSON.parse(header.__metadata__.config);
      expect(ckpt.config, where).toEqual({ layers: config.layers, activation: config.activation, loss: config.loss });
      const fromFile: number[] = [];
      for (let l = 0; l + 1 < config.layers.length; l++) {
        for (const name of [`layers.${2 * l}.weight`, `layers.${2 * l}.bias`]) {
          const [begin, end] = header[name].data_offsets;
          const view = new DataView(data.buffer, data.byteOffset + begin, end - begin);
          for (let at = 0; at < end - begin; at += 4) fromFile.push(view.getFloat32(at, true));
        }
      }
      expect(bitsEqual(ckpt.params, fromFile), `${where}: params differ from the file's bytes`).toBe(true);
      if (header.__metadata__['gradpool.sha256'] !== undefined) {
        // The checksum held, so the data is what was saved: so are the parameters.
        expect(sha256(data), where).toBe(saved);
        expect(bitsEqual(ckpt.params, TINY_PARAMS), `${where}: the checksum held but the parameters are not the saved ones`).toBe(true);
      } else {
        outcome.unchecked++;
      }
    }
    console.log(`checkpoint fuzz: ${outcome.loaded} mutants loaded (${outcome.unchecked} without a checksum left to check), ${outcome.refused} refused with CheckpointError`);
  });

  it(`checkpoint: ${FUZZ_ITERATIONS.checkpoint / 10} rewrites of the valid file that the format allows (key order, whitespace, padding) all load what was saved`, () => {
    // The mutants above are nearly all refused, which a decoder refusing every file would pass too. These
    // are valid by construction: the same header object with its keys (and each tensor's) in a random
    // order, JSON whitespace and trailing padding spaces, the data untouched. The checksums cover the
    // header's content sorted by key, not its text, so every one must load.
    const rand = random(FUZZ_SEED + 4);
    const n = CKPT_HEADER;
    const header = JSON.parse(Buffer.from(CKPT.subarray(8, 8 + n)).toString('utf8')) as Record<string, Record<string, unknown>>;
    const data = CKPT.subarray(8 + n);
    const shuffled = (o: Record<string, unknown>): Record<string, unknown> => {
      const keys = Object.keys(o);
      for (let i = keys.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [keys[i], keys[j]] = [keys[j], keys[i]];
      }
      return Object.fromEntries(keys.map((k) => [k, o[k]]));
    };
    for (let i = 0; i < FUZZ_ITERATIONS.checkpoint / 10; i++) {
      const rewritten = shuffled(Object.fromEntries(Object.entries(header).map(([k, v]) => [k, shuffled(v)])));
      const text = JSON.stringify(rewritten, null, ' '.repeat(Math.floor(rand() * 4))) + ' '.repeat(8 * Math.floor(rand() * 3));
      const where = `seed ${FUZZ_SEED + 4} rewrite ${i}: ${JSON.stringify(text.slice(0, 80))}...`;
      const ckpt = decodeCheckpoint(assembleFile(text, data), 'rewritten.safetensors');
      expect(ckpt.config, where).toEqual(TINY);
      expect(bitsEqual(ckpt.params, TINY_PARAMS), where).toBe(true);
      expect(bitsEqual(ckpt.tensors['optimizer.momentum_buffer'], MOMENTUM), where).toBe(true);
      expect(ckpt.metadata.epoch, where).toBe('3');
    }
  });
});

describe('up-front size refusal', () => {
  const D = 784;
  const mlp: ModelConfig = { layers: [D, 16, 10], activation: 'relu', loss: 'cross-entropy' };
  const ce = defaultLossSpec('cross-entropy');

  /** Runs `run`, which must fail within 100 ms without growing the process's array buffers by 10 MB. */
  async function refusedAtOnce(run: () => unknown): Promise<unknown> {
    const before = process.memoryUsage().arrayBuffers;
    const start = performance.now();
    const err = await caught(run);
    expect(performance.now() - start).toBeLessThan(100);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(10e6);
    return err;
  }

  it('uses the limits V8 has: one element past each is refused by V8 itself, the limit itself is not', () => {
    // Node 20 (V8 11.3): 2^32 elements of any type; Node 22+ (V8 11.4+): 2^53 - 1 bytes. See src/main/data/memory.ts.
    const types = [[1, Uint8Array], [2, Uint16Array], [4, Float32Array], [8, Float64Array]] as const;
    for (const [size, T] of types) {
      const limit = typedArrayLimit(size);
      expect([MAX_BUFFER_LENGTH, Math.floor(MAX_BUFFER_LENGTH / size)]).toContain(limit);
      expect(() => new T(limit + 1)).toThrow(/Invalid typed array length/);
      // Where the limit is too large to allocate, V8 accepts the length and fails to allocate instead
      // (Node 22+); on Node 20 trying that would allocate up to 32 GiB, so only the refusal is checked.
      if (limit * size >= 2 ** 50) expect(() => new T(limit)).toThrow(/Array buffer allocation failed/);
    }
    expect(typedArrayLimit(1)).toBe(MAX_BUFFER_LENGTH);
  });

  it('refuses an IDX file declaring more images than one Buffer holds at once, gzipped or not', async () => {
    const labelsPath = put('labels', LABELS);
    const forged = idx(0x08, [HUGE_IMAGES, 1e4, 1e4], [1, 2, 3]);
    const raw = put('forged-images', forged);
    expectClear(await refusedAtOnce(() => loadIdx(raw, labelsPath)), DataError, raw,
      new RegExp(`: truncated: shape \\(${HUGE_IMAGES}, 10000, 10000\\) of u8 needs ${HUGE_BYTES} bytes of data after the 16-byte header; found 3`));
    const gz = put('forged-images.gz', gzipSync(forged));
    expectClear(await refusedAtOnce(() => loadIdx(gz, labelsPath)), DataError, gz,
      new RegExp(`: the IDX header declares shape \\(${HUGE_IMAGES}, 10000, 10000\\) of u8, which gunzipped needs ${HUGE_TEXT}, ` +
        `more than the ${escape(inUnits(MAX_BUFFER_LENGTH))} Node .* can gunzip into one Buffer`));
  });

  it('refuses a gzipped IDX file whose contents do not fit the memory limit before gunzipping them', async () => {
    setMemoryLimit({ bytes: 1e6, source: 'test budget' });
    // 1000 x 28 x 28 u8: 784,016 bytes gunzipped and 784,000 decoded, 1.57 MB together. The stream holds
    // only the header, so gunzipping it whole would find it truncated instead.
    const gz = put('images.gz', gzipSync(idx(0x08, [1000, 28, 28], [])));
    expectClear(await refusedAtOnce(() => loadIdx(gz, gz)), DataError, gz,
      /: the IDX header declares shape \(1000, 28, 28\) of u8, which gunzipped and decoded would need 1\.6 MB, more than the 1\.0 MB memory limit \(test budget\)\nhint: the header may be damaged/);
  });

  it('refuses IDX images whose float32 features do not fit the memory limit, before converting them', async () => {
    setMemoryLimit({ bytes: 1e6, source: 'test budget' });
    const images = put('images', idx(0x08, [1000, 28, 28], new Array(784_000).fill(7)));
    const labels = put('labels', idx(0x08, [1000], new Array(1000).fill(1)));
    expectClear(await caught(() => loadIdx(images, labels)), DataError, images,
      /images: 1000 x 784 float32 features need 3\.1 MB, more than the 1\.0 MB memory limit \(test budget\)/);
  });

  it('refuses a CSV file at the line where its rows stop fitting the memory limit', async () => {
    // 100 features and a label: 408 bytes a row while reading (x, y, line). Within 1 MB, the arrays
    // grow to 1024 rows, then to the 1426 that fit beside those 1024 (2450 in all); row 1427 does not fit
    // beside 1426: (1427 + 1426) x 408 = 1,164,024 bytes.
    setMemoryLimit({ bytes: 1e6, source: 'test budget' });
    const row = `${Array.from({ length: 100 }, (_, f) => f % 10).join(',')},1\n`;
    const header = `${Array.from({ length: 100 }, (_, f) => `f${f}`).join(',')},label\n`;
    const path = put('train.csv', header + row.repeat(2000));
    expectClear(await caught(() => loadCsv(path, CSV_OPTIONS)), DataError, path,
      /train\.csv line 1428: 1427 rows of 100 float32 features and 1 target need 1\.2 MB while they are read, more than the 1\.0 MB memory limit \(test budget\)\nhint: train on a part of the file/);
    setMemoryLimit(undefined);
    expect((await loadCsv(path, CSV_OPTIONS)).rows).toBe(2000);
  });

  it('refuses training data beyond the memory limit before copying it into shared memory, naming its size', async () => {
    setMemoryLimit({ bytes: 10e6, source: 'test budget' });
    const x = new Float32Array(5000 * D); // 15.7 MB of features alone
    const y = new Int32Array(5000);
    // 5000 rows x (784 features + 1 target + 1 row order) x 4 bytes = 15,720,000 bytes.
    expectClear(await caught(() => shareDataset({ x, y }, mlp, ce, 'training data')), DataError, 'training data',
      /^training data: 5000 rows in shared memory \(784 float32 features, 1 target, the row order per row\) need 15\.7 MB, more than the 10\.0 MB memory limit \(test budget\)\nhint: /);
    // With outputs: 5000 x (784 + 1 + 10) x 4 = 15,900,000.
    expectClear(await caught(() => shareFeatures(x, mlp, 'predict input')), DataError, 'predict input',
      /^predict input: 5000 rows in shared memory \(784 float32 features, the row order, 10 outputs per row\) need 15\.9 MB/);
  });

  it('refuses, at once, features that no typed array can hold, with the size needed and the limit', async () => {
    // One row of 784 more than the longest Float32Array holds: an array-like that only claims its length,
    // as a forged loader result could.
    const limit = typedArrayLimit(4);
    const rows = Math.floor(limit / D) + 1;
    const x = { length: rows * D } as ArrayLike<number>;
    const err = await refusedAtOnce(() => shareDataset({ x, y: { length: rows } as ArrayLike<number> }, mlp, ce, 'training data'));
    expectClear(err, DataError, 'training data', new RegExp(
      `^training data: ${rows} x 784 float32 features need ${escape(inUnits(rows * D * 4))} as ${rows * D} values, more than the ${limit} values ` +
        `\\(${escape(inUnits(limit * 4))} of float32\\) that one typed array, shared or not, can hold in Node ${escape(process.versions.node)}`,
    ));
  });

  it('reads the memory limit from the cgroup, as cpus.ts reads the CPU quota', () => {
    const files = (map: Record<string, string>) => (path: string): string | null => map[path] ?? null;
    const total = 32e9;
    expect(memoryLimit(files({}), total)).toEqual({ bytes: total, source: 'os.totalmem()' });
    expect(memoryLimit(files({ '/proc/self/cgroup': '0::/app\n', '/sys/fs/cgroup/app/memory.max': '2147483648\n' }), total))
      .toEqual({ bytes: 2147483648, source: 'cgroup v2 memory.max' });
    expect(memoryLimit(files({ '/proc/self/cgroup': '0::/\n', '/sys/fs/cgroup/memory.max': 'max\n' }), total))
      .toEqual({ bytes: total, source: 'os.totalmem()' });
    expect(memoryLimit(files({ '/proc/self/cgroup': '4:memory:/job\n1:cpu:/\n', '/sys/fs/cgroup/memory/job/memory.limit_in_bytes': '1073741824\n' }), total))
      .toEqual({ bytes: 1073741824, source: 'cgroup v1 memory.limit_in_bytes' });
    // v1 says "no limit" with a number larger than the machine.
    expect(memoryLimit(files({ '/proc/self/cgroup': '4:memory:/job\n', '/sys/fs/cgroup/memory/job/memory.limit_in_bytes': '9223372036854771712\n' }), total))
      .toEqual({ bytes: total, source: 'os.totalmem()' });
  });
});
