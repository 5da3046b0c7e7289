// Loader tests: IDX files written here by hand with DataView (and one written by numpy in Python), CSV
// files compared with literal arrays, a generated 20,000-row CSV checked by sums taken while writing,
// normalisation against hand-computed statistics, the validation split, and one test per kind of bad input.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataError } from '../src/main/errors.js';
import { loadCsv } from '../src/main/loaders/csv.js';
import { decodeIdx, loadIdx } from '../src/main/loaders/idx.js';
import type { LoadedData } from '../src/main/loaders/loaded.js';
import { applyNormalization, fitNormalization, splitValidation } from '../src/main/loaders/prepare.js';
import { Rng } from '../src/shared/rng.js';
import { idx } from './files.js';

const FIXTURE_IMAGES = fileURLToPath(new URL('./fixtures/tiny-images-idx3-ubyte.gz', import.meta.url));
const FIXTURE_LABELS = fileURLToPath(new URL('./fixtures/tiny-labels-idx1-ubyte', import.meta.url));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradpool-loaders-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ---- helpers: files written by hand ----


async function file(name: string, contents: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, contents);
  return path;
}

const csv = (text: string, name = 'train.csv'): Promise<string> => file(name, text);

// Three 2 x 3 u8 images and their labels.
const U8_IMAGES = [0, 1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 60, 255, 128, 127, 0, 9, 200];
const U8_LABELS = [7, 0, 2];

// ---- IDX ----

describe('IDX', () => {
  it('decodes hand-written u8 images and labels value for value', async () => {
    const decoded = decodeIdx(idx(0x08, [3, 2, 3], U8_IMAGES), 'images');
    expect(decoded.dims).toEqual([3, 2, 3]);
    expect(decoded.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(decoded.data)).toEqual(U8_IMAGES);

    const data = await loadIdx(
      await file('images-idx3-ubyte', idx(0x08, [3, 2, 3], U8_IMAGES)),
      await file('labels-idx1-ubyte', idx(0x08, [3], U8_LABELS)),
    );
    expect(data.x).toEqual(new Float32Array(U8_IMAGES));
    expect(data.y).toEqual(new Int32Array(U8_LABELS));
    expect([data.rows, data.features, data.targetColumns]).toEqual([3, 6, 1]);
    expect(data.rowName(2)).toMatch(/images-idx3-ubyte image 2$/);
  });

  it('decodes gzipped IDX files exactly as the plain ones', async () => {
    const decoded = decodeIdx(gzipSync(idx(0x08, [3, 2, 3], U8_IMAGES)), 'images.gz');
    expect(decoded.dims).toEqual([3, 2, 3]);
    expect(Array.from(decoded.data)).toEqual(U8_IMAGES);

    const data = await loadIdx(
      await file('images-idx3-ubyte.gz', gzipSync(idx(0x08, [3, 2, 3], U8_IMAGES))),
      await file('labels-idx1-ubyte.gz', gzipSync(idx(0x08, [3], U8_LABELS))),
    );
    expect(data.x).toEqual(new Float32Array(U8_IMAGES));
    expect(data.y).toEqual(new Int32Array(U8_LABELS));
    expect(data.rowName(0)).toMatch(/images-idx3-ubyte\.gz image 0$/);
  });

  it('decodes big-endian f32 values', () => {
    const values = [1.5, -2.25, 0.1, 3.4e38, -0, 1e-40];
    const decoded = decodeIdx(idx(0x0d, [2, 3], values), 'floats');
    expect(decoded.dims).toEqual([2, 3]);
    expect(decoded.data).toBeInstanceOf(Float32Array);
    expect(Array.from(decoded.data)).toEqual(values.map(Math.fround));
  });

  it('decodes big-endian i16 values, negatives included', () => {
    const values = [-32768, -1, 0, 1, 258, 32767];
    const decoded = decodeIdx(idx(0x0b, [6], values), 'shorts');
    expect(decoded.dims).toEqual([6]);
    expect(decoded.data).toBeInstanceOf(Int16Array);
    expect(Array.from(decoded.data)).toEqual(values);
  });

  it('reads the IDX fixture written by numpy, struct and gzip in Python', async () => {
    // The values scripts/reference/make_idx_fixture.py writes.
    const data = await loadIdx(FIXTURE_IMAGES, FIXTURE_LABELS);
    expect([data.rows, data.features]).toEqual([4, 6]);
    expect(Array.from(data.x)).toEqual([
      0, 1, 10, 11, 20, 21,
      100, 101, 110, 111, 120, 121,
      0, 255, 1, 254, 128, 127,
      7, 0, 0, 0, 0, 9,
    ]);
    expect(Array.from(data.y)).toEqual([3, 0, 9, 1]);
  });
});

// ---- CSV ----

describe('CSV', () => {
  it('loads a CSV with a header, the label column given by name', async () => {
    const path = await csv('sepal,species,petal\n5.1,0,1.4\n7,2,4.7\n6.3,1,6\n');
    const data = await loadCsv(path, { labelColumns: ['species'], targets: 'index' });
    expect(data.x).toEqual(new Float32Array([5.1, 1.4, 7, 4.7, 6.3, 6]));
    expect(data.y).toEqual(new Int32Array([0, 2, 1]));
    expect([data.rows, data.features, data.targetColumns]).toEqual([3, 2, 1]);
    expect(data.featureNames).toEqual(['sepal', 'petal']);
    expect(data.rowName(0)).toMatch(/train\.csv line 2$/);
  });

  it('loads a headerless CSV, the label column given by index', async () => {
    const path = await csv('1,2,3\n4,5,0\n');
    const data = await loadCsv(path, { labelColumns: [2], targets: 'index' });
    expect(data.x).toEqual(new Float32Array([1, 2, 4, 5]));
    expect(data.y).toEqual(new Int32Array([3, 0]));
    expect(data.featureNames).toBeUndefined();
    expect(data.rowName(0)).toMatch(/train\.csv line 1$/);
  });

  it('loads several value columns as (N, K) float targets in the order given', async () => {
    const path = await csv('a,cat,b,dog\n1,0,2,1\n3,0.25,4,0\n5,1,6,0.5\n');
    const data = await loadCsv(path, { labelColumns: ['dog', 'cat'], targets: 'values' });
    expect(data.x).toEqual(new Float32Array([1, 2, 3, 4, 5, 6]));
    expect(data.y).toEqual(new Float32Array([1, 0, 0, 0.25, 0.5, 1]));
    expect([data.rows, data.features, data.targetColumns]).toEqual([3, 2, 2]);
  });

  it('reads quoted fields, header names included', async () => {
    const path = await csv('"x, first","y"\n"1.5","1"\n"-2",0\n');
    const data = await loadCsv(path, { labelColumns: ['y'], targets: 'index' });
    expect(data.x).toEqual(new Float32Array([1.5, -2]));
    expect(data.y).toEqual(new Int32Array([1, 0]));
    expect(data.featureNames).toEqual(['x, first']);
  });

  it('reads CRLF line endings', async () => {
    const path = await csv('x1,x2,y\r\n1,2,0\r\n3,4,1\r\n');
    const data = await loadCsv(path, { labelColumns: ['y'], targets: 'index' });
    expect(data.x).toEqual(new Float32Array([1, 2, 3, 4]));
    expect(data.y).toEqual(new Int32Array([0, 1]));
    expect(data.rowName(1)).toMatch(/train\.csv line 3$/);
  });

  it('skips empty lines, trailing ones included, and keeps physical line numbers', async () => {
    const path = await csv('x,y\n1,0\n\n   \n2,1\n\n');
    const data = await loadCsv(path, { labelColumns: ['y'], targets: 'index' });
    expect(data.x).toEqual(new Float32Array([1, 2]));
    expect(data.y).toEqual(new Int32Array([0, 1]));
    expect([data.rowName(0), data.rowName(1)].map((n) => n.replace(/.*train\.csv /, ''))).toEqual(['line 2', 'line 5']);
  });

  it('trims whitespace around numbers and names', async () => {
    const path = await csv(' x , y \n  1.25 ,\t2 \n-3 ,  0\n');
    const data = await loadCsv(path, { labelColumns: ['y'], targets: 'index' });
    expect(data.x).toEqual(new Float32Array([1.25, -3]));
    expect(data.y).toEqual(new Int32Array([2, 0]));
    expect(data.featureNames).toEqual(['x']);
  });

  it('splits fields on the delimiter option', async () => {
    const path = await csv('x;y;label\n1.5;2;1\n"-4";0;0\n');
    const data = await loadCsv(path, { labelColumns: ['label'], targets: 'index', delimiter: ';' });
    expect(data.x).toEqual(new Float32Array([1.5, 2, -4, 0]));
    expect(data.y).toEqual(new Int32Array([1, 0]));
  });

  it('streams a 20,000-row CSV into arrays whose sums match the ones taken while writing it', async () => {
    const N = 20_000;
    const D = 10;
    const rng = new Rng(7);
    const sums = new Float64Array(D); // every value is a multiple of 1/4 below 500, so all sums are exact
    let labelSum = 0;
    const lines = [Array.from({ length: D }, (_, d) => `f${d}`).join(',') + ',label'];
    for (let r = 0; r < N; r++) {
      const cells: number[] = [];
      for (let d = 0; d < D; d++) {
        const v = (rng.nextInt(4000) - 2000) / 4;
        sums[d] += v;
        cells.push(v);
      }
      const label = rng.nextInt(10);
      labelSum += label;
      lines.push(`${cells.join(',')},${label}`);
    }
    const path = await csv(lines.join('\n') + '\n', 'big.csv');
    const data = await loadCsv(path, { labelColumns: ['label'], targets: 'index' });
    expect([data.rows, data.features, data.x.length, data.y.length]).toEqual([N, D, N * D, N]);
    const got = new Float64Array(D);
    for (let r = 0; r < N; r++) for (let d = 0; d < D; d++) got[d] += data.x[r * D + d];
    expect(Array.from(got)).toEqual(Array.from(sums));
    expect(Array.from(data.y).reduce((a, b) => a + b, 0)).toBe(labelSum);
    expect(data.rowName(N - 1)).toMatch(/big\.csv line 20001$/);
  });
});

// ---- normalisation ----

/** A LoadedData from literal rows, for the preparation tests. */
function rowsOf(x: number[][], y: number[]): LoadedData {
  return {
    x: new Float32Array(x.flat()),
    y: new Int32Array(y),
    rows: x.length,
    features: x[0].length,
    targetColumns: 1,
    rowName: (r) => `data.csv line ${r + 2}`,
  };
}

function expectClose(got: Float32Array, want: number[], tolerance: number): void {
  expect(got.length).toBe(want.length);
  const worst = Math.max(...want.map((w, i) => Math.abs(got[i] - w)));
  expect(worst).toBeLessThanOrEqual(tolerance);
}

describe('normalisation', () => {
  // Feature 0: 2, 4, 10. Feature 1: constant 5. Feature 2: -1, 1, 0.
  const TRAIN = [[2, 5, -1], [4, 5, 1], [10, 5, 0]];

  it("'scale' maps each feature's training min and max to 0 and 1, and a constant feature to 0", () => {
    const data = rowsOf(TRAIN, [0, 1, 0]);
    const n = fitNormalization(data, 'scale');
    expect(Array.from(n.offset)).toEqual([2, 5, -1]);
    expectClose(n.scale, [1 / 8, 1, 1 / 2], 1e-7);
    applyNormalization(data, n);
    expectClose(data.x, [0, 0, 0, 0.25, 0, 1, 1, 0, 0.5], 1e-7);
  });

  it("'standardize' uses the mean and the population std, and maps a constant feature to 0", () => {
    // Feature 0: mean 16/3, deviations -10/3, -4/3, 14/3, population variance (100+16+196)/27 = 312/27.
    // Feature 2: mean 0, population variance 2/3.
    const data = rowsOf(TRAIN, [0, 1, 0]);
    const n = fitNormalization(data, 'standardize');
    const std0 = Math.sqrt(312 / 27);
    const std2 = Math.sqrt(2 / 3);
    expectClose(n.offset, [16 / 3, 5, 0], 1e-6);
    expectClose(n.scale, [1 / std0, 1, 1 / std2], 1e-6);
    applyNormalization(data, n);
    expectClose(data.x, [
      -10 / 3 / std0, 0, -1 / std2,
      -4 / 3 / std0, 0, 1 / std2,
      14 / 3 / std0, 0, 0,
    ], 1e-6);
  });

  it('takes statistics from the training split only and applies them unchanged to another split', () => {
    const train = rowsOf(TRAIN, [0, 1, 0]);
    const other = rowsOf([[6, 7, 3], [0, 5, -3]], [1, 0]);
    const n = fitNormalization(train, 'scale');
    applyNormalization(other, n);
    // (x - 2) / 8, x - 5, (x + 1) / 2 with the training min and range, so values leave [0, 1].
    expectClose(other.x, [0.5, 2, 2, -0.25, 0, -1], 1e-7);
  });

  it("'none' leaves the features unchanged", () => {
    const data = rowsOf(TRAIN, [0, 1, 0]);
    applyNormalization(data, fitNormalization(data, 'none'));
    expect(Array.from(data.x)).toEqual(TRAIN.flat());
  });

  it('refuses to apply a normalization fitted on another number of features', () => {
    const n = fitNormalization(rowsOf(TRAIN, [0, 1, 0]), 'scale');
    expect(() => applyNormalization(rowsOf([[1, 2]], [0]), n)).toThrow(
      /the normalization was fitted on 3 features but this data has 2/,
    );
  });
});

// ---- validation split ----

describe('splitValidation', () => {
  const N = 50;
  const data = (): LoadedData => rowsOf(Array.from({ length: N }, (_, r) => [r, -r]), Array.from({ length: N }, (_, r) => r % 3));
  const firstColumn = (d: LoadedData): number[] => Array.from({ length: d.rows }, (_, r) => d.x[r * 2]);

  it('gives the same split for the same seed and a different one for another seed', () => {
    const a = splitValidation(data(), 0.2, 1);
    const b = splitValidation(data(), 0.2, 1);
    const c = splitValidation(data(), 0.2, 2);
    expect(firstColumn(a.validation)).toEqual(firstColumn(b.validation));
    expect(firstColumn(a.validation)).not.toEqual(firstColumn(c.validation));
  });

  it('makes disjoint parts that cover every row once, in original order, with round(fraction * N) held out', () => {
    const { train, validation } = splitValidation(data(), 0.23, 5); // round(11.5) = 12
    expect(validation.rows).toBe(12);
    expect(train.rows).toBe(N - 12);
    const t = firstColumn(train);
    const v = firstColumn(validation);
    expect([...t, ...v].sort((p, q) => p - q)).toEqual(Array.from({ length: N }, (_, r) => r));
    expect(t).toEqual([...t].sort((p, q) => p - q));
    expect(v).toEqual([...v].sort((p, q) => p - q));
    // Targets and the second feature travel with their row.
    for (const part of [train, validation]) {
      for (let r = 0; r < part.rows; r++) {
        expect(part.x[r * 2 + 1]).toBe(-part.x[r * 2]);
        expect(part.y[r]).toBe(part.x[r * 2] % 3);
      }
    }
  });

  it('keeps each row named after its line in the original file', () => {
    const { train, validation } = splitValidation(data(), 0.3, 9);
    for (const part of [train, validation]) {
      for (let r = 0; r < part.rows; r++) expect(part.rowName(r)).toBe(`data.csv line ${part.x[r * 2] + 2}`);
    }
  });

  it('rejects a validationSplit outside (0, 1) with a RangeError naming the option', () => {
    expect(() => splitValidation(data(), 1, 0)).toThrow(RangeError);
    expect(() => splitValidation(data(), 0, 0)).toThrow(/validationSplit must be a number in \(0, 1\); got 0/);
    expect(() => splitValidation(data(), Number.NaN, 0)).toThrow(/validationSplit/);
  });

  it('rejects a validationSplit that leaves one part empty with a DataError naming the option', () => {
    expect(() => splitValidation(data(), 0.005, 0)).toThrow(
      /validationSplit 0\.005 of 50 rows leaves the validation part empty \(round\(0\.005 \* 50\) = 0\)/,
    );
    expect(() => splitValidation(data(), 0.995, 0)).toThrow(/leaves the training part empty/);
  });
});

// ---- bad CSV input ----

describe('bad CSV input', () => {
  const byName = { labelColumns: ['species'], targets: 'index' } as const;

  it('names a ragged row, its cell count and the header it should match', async () => {
    const path = await csv('a,b,c,d,species\n1,2,3,4,0\n1,2,3,0\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv line 3: 4 cells; expected 5 like the header \(line 1\)/);
  });

  it('names a ragged row against the first row when there is no header', async () => {
    const path = await csv('1,2,0\n1,2,3,0\n');
    await expect(loadCsv(path, { labelColumns: [2], targets: 'index' })).rejects.toThrow(
      /train\.csv line 2: 4 cells; expected 3 like the first row \(line 1\)\nhint: quote fields that contain the delimiter ","/,
    );
  });

  it('names a non-numeric cell by file, line and header column', async () => {
    const path = await csv('petal_length,petal_width,species\n1,2,0\n\n1,abc,1\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv line 4, column 'petal_width': 'abc' is not a number$/);
  });

  it('names a non-numeric cell by 0-based column index when there is no header', async () => {
    const path = await csv('sepal,1,0\n', 'nohead.csv');
    await expect(loadCsv(path, { labelColumns: [2], targets: 'index', header: false })).rejects.toThrow(
      /nohead\.csv line 1, column 0: 'sepal' is not a number\nhint: line 1 looks like a header/,
    );
  });

  it('rejects an empty cell', async () => {
    const path = await csv('x,y,species\n1,,0\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv line 2, column 'y': empty cell; expected a number/);
  });

  it.each(['NaN', 'Infinity', '-inf'])('rejects the non-finite value %s', async (cell) => {
    const path = await csv(`x,y,species\n1,2,0\n1,${cell},0\n`);
    await expect(loadCsv(path, byName)).rejects.toThrow(
      new RegExp(`train\\.csv line 3, column 'y': '${cell}' is not a finite number`),
    );
  });

  it('rejects a number beyond the float32 range', async () => {
    const path = await csv('x,species\n1e39,0\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv line 2, column 'x': '1e39' is outside the float32 range/);
  });

  it('rejects a class index that is not an integer', async () => {
    const path = await csv('x,species\n1,0\n2,1.5\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(
      /train\.csv line 3, column 'species': '1\.5' is not a class index; expected an integer >= 0/,
    );
  });

  it('rejects a negative class index', async () => {
    const path = await csv('x,species\n1,-1\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv line 2, column 'species': '-1' is not a class index/);
  });

  it('rejects a class name in a column of class indices', async () => {
    const path = await csv('x,species\n1,0\n2,setosa\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(
      /train\.csv line 3, column 'species': 'setosa' is a class name, but the column holds class indices \(line 2 has '0'\)/,
    );
  });

  it("rejects a 'values' target outside [0, 1]", async () => {
    const path = await csv('x,cat,dog\n1,0,1\n2,1.5,0\n');
    await expect(loadCsv(path, { labelColumns: ['cat', 'dog'], targets: 'values' })).rejects.toThrow(
      /train\.csv line 3, column 'cat': 1\.5 is outside \[0, 1\]/,
    );
  });

  it("lists the header's names for an unknown label column name", async () => {
    const path = await csv('sepal,Species\n1,0\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(
      /train\.csv: no column named 'species' in the header \(line 1\); the columns are 'sepal', 'Species'\nhint: did you mean 'Species'\?/,
    );
  });

  it('rejects a label column index out of range', async () => {
    const path = await csv('1,2,0\n');
    await expect(loadCsv(path, { labelColumns: [3], targets: 'index' })).rejects.toThrow(
      /train\.csv: label column 3 is out of range; line 1 has 3 columns \(indices 0 to 2\)/,
    );
  });

  it('rejects a label column given by name when the first row is all numbers', async () => {
    const path = await csv('1,2,0\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(
      /train\.csv: label column 'species' is given by name, but the file has no header: every cell of line 1 is a number/,
    );
  });

  it('rejects a label column given by name when header is false', async () => {
    const path = await csv('x,species\n1,0\n');
    await expect(loadCsv(path, { ...byName, header: false })).rejects.toThrow(/given by name, but options\.header is false/);
  });

  it('rejects a file with a header and no data rows', async () => {
    const path = await csv('x,species\n\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv: no data rows; the file has only a header \(line 1\)/);
  });

  it('rejects an empty file', async () => {
    const path = await csv('');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv: no data rows; the file is empty/);
  });

  it('rejects a file whose every column is a label column', async () => {
    const path = await csv('cat,dog\n1,0\n');
    await expect(loadCsv(path, { labelColumns: ['cat', 'dog'], targets: 'values' })).rejects.toThrow(
      /train\.csv: every one of the 2 columns is a label column; at least one feature column is needed/,
    );
  });

  it('rejects the same label column listed twice, once by name and once by index', async () => {
    const path = await csv('x,cat,dog\n1,0,1\n');
    await expect(loadCsv(path, { labelColumns: ['cat', 'dog', 1], targets: 'values' })).rejects.toThrow(
      /train\.csv: options\.labelColumns lists column 'cat' twice \(labelColumns\[0\] and labelColumns\[2\]\)/,
    );
  });

  it('rejects a quoted field that is never closed', async () => {
    const path = await csv('x,species\n1,0\n"2,1\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv: a quoted field is never closed/);
  });

  it('names the line and column of a quote inside an unquoted field', async () => {
    const path = await csv('x,y,species\n1,2,0\n3,x"4",1\n');
    await expect(loadCsv(path, byName)).rejects.toThrow(/train\.csv line 3, column 'y': a quote inside an unquoted field/);
  });

  it('names a file that cannot be read', async () => {
    await expect(loadCsv(join(dir, 'missing.csv'), byName)).rejects.toThrow(/missing\.csv: cannot read the file \(ENOENT/);
  });

  it("rejects several label columns for targets 'index' as an option error", async () => {
    const path = await csv('x,a,b\n1,0,1\n');
    await expect(loadCsv(path, { labelColumns: ['a', 'b'], targets: 'index' })).rejects.toThrow(RangeError);
  });

  it('reports bad data as a DataError', async () => {
    const path = await csv('x,species\nabc,1\n');
    await expect(loadCsv(path, byName)).rejects.toBeInstanceOf(DataError);
  });
});

// ---- bad IDX input ----

describe('bad IDX input', () => {
  const images = (): Uint8Array => idx(0x08, [3, 2, 3], U8_IMAGES);
  const labels = (): Uint8Array => idx(0x08, [3], U8_LABELS);

  it('rejects a file shorter than the IDX header', () => {
    expect(() => decodeIdx(new Uint8Array([0, 0, 8]), 'short.idx')).toThrow(
      /short\.idx: 3 bytes is shorter than the 4-byte IDX header/,
    );
  });

  it('rejects a file whose first two bytes are not zero', () => {
    expect(() => decodeIdx(new TextEncoder().encode('x,y\n1,2\n'), 'data.idx')).toThrow(
      /data\.idx: not an IDX file: the first two bytes are 0x78 0x2C; expected 0x00 0x00/,
    );
  });

  it('rejects an unknown type code', () => {
    const bytes = images();
    bytes[2] = 0x0a;
    expect(() => decodeIdx(bytes, 'images')).toThrow(/images: unknown IDX type code 0x0A \(byte 2\)/);
  });

  it('rejects zero dimensions', () => {
    expect(() => decodeIdx(new Uint8Array([0, 0, 8, 0, 1, 2]), 'images')).toThrow(
      /images: the IDX header declares 0 dimensions \(byte 3\); expected at least 1/,
    );
  });

  it('rejects a header cut short before its dimension sizes', () => {
    expect(() => decodeIdx(images().subarray(0, 10), 'images')).toThrow(
      /images: truncated header: 3 dimensions need a 16-byte header; the file has 10 bytes/,
    );
  });

  it('says truncated, with expected and found bytes, when data is missing', () => {
    expect(() => decodeIdx(images().subarray(0, 30), 'images')).toThrow(
      /images: truncated: shape \(3, 2, 3\) of u8 needs 18 bytes of data after the 16-byte header; found 14/,
    );
  });

  it('rejects trailing bytes after the data', () => {
    expect(() => decodeIdx(idx(0x0b, [2], [1, 2], 3), 'shorts')).toThrow(
      /shorts: 3 trailing bytes: shape \(2,\) of i16 needs 4 bytes of data after the 8-byte header; found 7/,
    );
  });

  it('refuses a huge declared size before allocating it', () => {
    const bytes = idx(0x0e, [0xffffffff, 0xffffffff, 0xffffffff], [0]);
    expect(() => decodeIdx(bytes, 'huge')).toThrow(/huge: truncated: shape \(4294967295, 4294967295, 4294967295\) of f64/);
  });

  it('rejects a gzip file that cannot be gunzipped', () => {
    const gz = gzipSync(images()).subarray(0, 20);
    expect(() => decodeIdx(gz, 'images.gz')).toThrow(/images\.gz: starts like a gzip file but cannot be gunzipped/);
  });

  it('rejects a labels file that is not 1-D', async () => {
    const promise = loadIdx(await file('images', images()), await file('labels', idx(0x08, [3, 1], U8_LABELS)));
    await expect(promise).rejects.toThrow(/labels: labels must be 1-D, one class index per image \(N,\); got shape \(3, 1\)/);
  });

  it('names both files and both counts when image and label counts differ', async () => {
    const promise = loadIdx(await file('imgs', images()), await file('labs', idx(0x08, [4], [1, 2, 3, 4])));
    await expect(promise).rejects.toThrow(/imgs has 3 images but .*labs has 4 labels; expected one label per image/);
  });

  it('rejects a label that is not an integer', async () => {
    const promise = loadIdx(await file('images', images()), await file('labels', idx(0x0d, [3], [1, 2.5, 0])));
    await expect(promise).rejects.toThrow(/labels label 1: 2\.5 is not a class index; expected an integer >= 0/);
  });

  it('rejects a negative label', async () => {
    const promise = loadIdx(await file('images', images()), await file('labels', idx(0x09, [3], [1, 0, -3])));
    await expect(promise).rejects.toThrow(/labels label 2: -3 is not a class index/);
  });

  it('rejects NaN in a float images file, naming the image and value', async () => {
    const values = Array.from({ length: 12 }, (_, i) => (i === 7 ? Number.NaN : i));
    const promise = loadIdx(await file('images-f32', idx(0x0d, [3, 4], values)), await file('labels', labels()));
    await expect(promise).rejects.toThrow(/images-f32 image 1, value 3: NaN is not a finite float32/);
  });

  it('names a file that cannot be read', async () => {
    await expect(loadIdx(join(dir, 'nope'), await file('labels', labels()))).rejects.toThrow(/nope: cannot read the file/);
  });
});
