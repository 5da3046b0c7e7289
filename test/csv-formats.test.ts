// CSV as users have it: class-name labels against a mapping built by hand and one sorted by Python,
// training and test files listing classes in different orders, delimiters (detected, given, .tsv, a
// wrong guess), feature and ignored columns, a byte-order mark, quoted headers and lines, empty cells,
// and the default targets. Every file is written here.

import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadCsv } from '../src/main/loaders/csv.js';
import { setMemoryLimit } from '../src/main/data/memory.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradpool-csv-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function csv(text: string, name = 'train.csv'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe('class names', () => {
  // Code points: 'I' 73 < 'S' 83 < 'a' 97 < 'b' 98 < 's' 115; U+FF01 before U+1F600 (JavaScript's default
  // sort, by UTF-16 unit, would put U+1F600's 0xD83D first).
  const NAMES = ['setosa', 'Setosa', 'b', 'a\uFF01', 'a\u{1F600}', 'Iris-virginica'];
  const BY_HAND = ['Iris-virginica', 'Setosa', 'a\uFF01', 'a\u{1F600}', 'b', 'setosa'];

  it('maps class names to indices in code point order, as a mapping built by hand', async () => {
    const labels = ['b', 'setosa', 'a\u{1F600}', 'Setosa', 'Iris-virginica', 'a\uFF01', 'setosa', 'b'];
    const path = await csv('x,species\n' + labels.map((n, i) => `${i},${n}`).join('\n') + '\n');
    const data = await loadCsv(path, { labelColumns: ['species'] });
    expect(data.classNames).toEqual(BY_HAND);
    expect(Array.from(data.y)).toEqual(labels.map((n) => BY_HAND.indexOf(n)));
    expect(data.y).toBeInstanceOf(Int32Array);
    expect(data.labelNames).toEqual(['species']);
    expect(data.featureNames).toEqual(['x']);
  });

  it("sorts class names as Python's sorted() does (sklearn's LabelEncoder order)", async () => {
    const py = spawnSync('/usr/bin/python3', ['-c', 'import json,sys; print(json.dumps(sorted(set(json.load(sys.stdin)))))'], {
      input: JSON.stringify(NAMES), encoding: 'utf8',
    });
    expect(py.status, py.stderr).toBe(0);
    const path = await csv('x,species\n' + NAMES.map((n, i) => `${i},${n}`).join('\n') + '\n');
    expect((await loadCsv(path, { labelColumns: ['species'] })).classNames).toEqual(JSON.parse(py.stdout));
  });

  it("maps a test file's names to the training file's indices, whatever order it lists them in", async () => {
    const train = await loadCsv(await csv('x,y\n1,cat\n2,dog\n3,emu\n'), { labelColumns: ['y'] });
    const testText = 'x,y\n4,emu\n5,dog\n6,emu\n';
    const own = await loadCsv(await csv(testText, 'test.csv'), { labelColumns: ['y'] });
    expect(own.classNames).toEqual(['dog', 'emu']); // alone, the test file would number its classes 0, 1
    const test = await loadCsv(join(dir, 'test.csv'), { labelColumns: ['y'], classNames: train.classNames });
    expect(test.classNames).toEqual(['cat', 'dog', 'emu']);
    expect(Array.from(test.y)).toEqual([2, 1, 2]);
  });

  it('refuses a name that is not among classNames, naming the file, line, column, name and known names', async () => {
    const path = await csv('x,y\n4,dog\n\n5,fox\n', 'test.csv');
    await expect(loadCsv(path, { labelColumns: ['y'], classNames: ['cat', 'dog', 'emu'] })).rejects.toThrow(
      /test\.csv line 4, column 'y': 'fox' is not one of the 3 known class names \('cat', 'dog', 'emu'\)/,
    );
  });

  it('reads every cell as a name with classNames, numbers included', async () => {
    const path = await csv('x,y\n1,10\n2,2\n');
    const data = await loadCsv(path, { labelColumns: ['y'], classNames: ['2', '10'] });
    expect(Array.from(data.y)).toEqual([1, 0]);
  });

  it('reads a headerless file of class names, the label given by index', async () => {
    const path = await csv('5.1,3.5,Iris-setosa\n4.9,3.0,Iris-versicolor\n4.7,3.2,Iris-setosa\n', 'iris.data');
    const data = await loadCsv(path, { labelColumns: [2] });
    expect(data.rows).toBe(3);
    expect(Array.from(data.x)).toEqual([5.1, 3.5, 4.9, 3.0, 4.7, 3.2].map(Math.fround));
    expect(Array.from(data.y)).toEqual([0, 1, 0]);
    expect(data.classNames).toEqual(['Iris-setosa', 'Iris-versicolor']);
    expect(data.featureNames).toBeUndefined();
  });

  it('refuses an empty class name, naming the line and column', async () => {
    const path = await csv('x,y\n1,cat\n2,\n');
    await expect(loadCsv(path, { labelColumns: ['y'] })).rejects.toThrow(/train\.csv line 3, column 'y': empty cell; expected a class name/);
  });

  it('keeps integer labels as class indices, without class names', async () => {
    const data = await loadCsv(await csv('x,y\n1,2\n2,0\n'), { labelColumns: ['y'] });
    expect(Array.from(data.y)).toEqual([2, 0]);
    expect(data.classNames).toBeUndefined();
  });

  it('validates classNames as an option', async () => {
    const path = await csv('x,y\n1,cat\n');
    await expect(loadCsv(path, { labelColumns: ['y'], classNames: ['cat', 'cat'] })).rejects.toThrow(/options\.classNames lists 'cat' twice/);
    await expect(loadCsv(path, { labelColumns: ['y'], classNames: [] })).rejects.toThrow(TypeError);
    await expect(loadCsv(path, { labelColumns: ['y'], targets: 'values', classNames: ['cat'] })).rejects.toThrow(/requires targets 'index'/);
  });
});

describe('delimiters', () => {
  it.each([
    ['semicolons', 'a;b;label\n1.5;2;0\n3;-4;1\n'],
    ['tabs', 'a\tb\tlabel\n1.5\t2\t0\n3\t-4\t1\n'],
    ['commas', 'a,b,label\n1.5,2,0\n3,-4,1\n'],
  ])('detects %s from the header line', async (_, text) => {
    const data = await loadCsv(await csv(text), { labelColumns: ['label'] });
    expect(Array.from(data.x)).toEqual([1.5, 2, 3, -4]);
    expect(Array.from(data.y)).toEqual([0, 1]);
    expect(data.featureNames).toEqual(['a', 'b']);
  });

  it('counts separators outside quotes only', async () => {
    // Inside the quotes, as many commas as there are semicolons outside.
    const data = await loadCsv(await csv('"x,1";"y,2";"label"\n1;2;0\n'), { labelColumns: ['label'] });
    expect(data.featureNames).toEqual(['x,1', 'y,2']);
  });

  it('splits at a given delimiter, | included', async () => {
    const data = await loadCsv(await csv('a|b|label\n1|2,5|0\n'.replace('2,5', '2.5')), { labelColumns: ['label'], delimiter: '|' });
    expect(Array.from(data.x)).toEqual([1, 2.5]);
  });

  it('reads a .tsv file with tabs, where the header would suggest commas', async () => {
    const text = 'h,cm\tw,kg\tlabel\n1\t2\t0\n'; // as many commas as tabs: detection would pick the comma
    const data = await loadCsv(await csv(text, 'data.tsv'), { labelColumns: ['label'] });
    expect(data.featureNames).toEqual(['h,cm', 'w,kg']);
    expect(Array.from(data.x)).toEqual([1, 2]);
  });

  it('names the delimiter it used and the one it saw when a named column is missing', async () => {
    await expect(loadCsv(await csv('h,cm\tw,kg\tlabel\n1\t2\t0\n'), { labelColumns: ['label'] })).rejects.toThrow(
      /train\.csv: no column named 'label' in the header \(line 1\); the columns are 'h', 'cm\tw', 'kg\tlabel'\nthe line was split at ',' \(detected from line 1\), but it contains '\\t' \(tab\): the file may be separated by '\\t' \(tab\)\nhint: set options\.delimiter to '\\t' \(tab\)/,
    );
  });

  it('names options.delimiter when the given delimiter looks wrong', async () => {
    await expect(loadCsv(await csv('a;b;label\n1;2;0\n'), { labelColumns: ['label'], delimiter: ',' })).rejects.toThrow(
      /no column named 'label' in the header \(line 1\); the columns are 'a;b;label'\nthe line was split at ',' \(options\.delimiter\), but it contains ';'/,
    );
    await expect(loadCsv(await csv('1;2;0\n'), { labelColumns: [2], delimiter: ',' })).rejects.toThrow(
      /label column 2 is out of range; line 1 has 1 column \(indices 0 to 0\)\nthe line was split at ',' \(options\.delimiter\), but it contains ';'/,
    );
  });

  it('says a decimal comma is one, in a semicolon file', async () => {
    await expect(loadCsv(await csv('a;b;label\r\n1,5;2;0\r\n'), { labelColumns: ['label'] })).rejects.toThrow(
      /train\.csv line 2, column 'a': '1,5' is not a number\nhint: '1,5' looks like a decimal comma; numbers are read with a decimal point \(1\.5\)/,
    );
  });

  it('hints at the delimiter when a cell holds another separator', async () => {
    await expect(loadCsv(await csv('a,b,label\n1,2,0\n1;5,2,0\n'), { labelColumns: ['label'] })).rejects.toThrow(
      /train\.csv line 3, column 'a': '1;5' is not a number\nhint: the cell contains ';' but the file is read with the delimiter ',' \(detected from line 1\): set options\.delimiter to ';'/,
    );
  });
});

describe('feature and ignored columns', () => {
  const TEXT = 'id,height,date,weight,label\nA7,1.5,2024-01-02,70,1\nB8,1.8,2024-02-03,80,0\n';

  it('takes the feature columns given, by name and index, in the order given', async () => {
    const data = await loadCsv(await csv(TEXT), { labelColumns: ['label'], featureColumns: ['weight', 1] });
    expect(data.featureNames).toEqual(['weight', 'height']);
    expect(Array.from(data.x)).toEqual([70, 1.5, 80, 1.8].map(Math.fround));
    expect(Array.from(data.y)).toEqual([1, 0]);
  });

  it('leaves out the ignored columns, by name and index', async () => {
    const data = await loadCsv(await csv(TEXT), { labelColumns: ['label'], ignoreColumns: ['id', 2] });
    expect(data.featureNames).toEqual(['height', 'weight']);
    expect(Array.from(data.x)).toEqual([1.5, 70, 1.8, 80].map(Math.fround));
  });

  it('reads a headerless file whose ignored text column would look like a header', async () => {
    const data = await loadCsv(await csv('A7,1.5,1\nB8,1.8,0\n'), { labelColumns: [2], ignoreColumns: [0] });
    expect(data.rows).toBe(2);
    expect(Array.from(data.x)).toEqual([1.5, 1.8].map(Math.fround));
  });

  it('refuses a column that is both a label and ignored, naming both options', async () => {
    await expect(loadCsv(await csv(TEXT), { labelColumns: ['label'], ignoreColumns: ['id', 'label'] })).rejects.toThrow(
      /train\.csv: column 'label' is in both options\.labelColumns\[0\] and options\.ignoreColumns\[1\]/,
    );
  });

  it('refuses an unknown feature column, listing the header', async () => {
    await expect(loadCsv(await csv(TEXT), { labelColumns: ['label'], featureColumns: ['Height'] })).rejects.toThrow(
      /no column named 'Height' in the header \(line 1\); the columns are 'id', 'height', .*\nhint: did you mean 'height'\?/,
    );
  });

  it('refuses featureColumns and ignoreColumns together, and an empty featureColumns', async () => {
    const path = await csv(TEXT);
    await expect(loadCsv(path, { labelColumns: ['label'], featureColumns: ['height'], ignoreColumns: ['id'] })).rejects.toThrow(
      /options\.featureColumns and options\.ignoreColumns cannot be given together/,
    );
    await expect(loadCsv(path, { labelColumns: ['label'], featureColumns: [] })).rejects.toThrow(/options\.featureColumns must be a non-empty array/);
  });

  it('refuses a text column that is neither ignored nor a label, naming its line and column', async () => {
    await expect(loadCsv(await csv(TEXT), { labelColumns: ['label'], ignoreColumns: ['id'] })).rejects.toThrow(
      /train\.csv line 2, column 'date': '2024-01-02' is not a number/,
    );
  });
});

describe('headers, quotes and cells', () => {
  it('strips a UTF-8 byte-order mark, so the first column is found by its name', async () => {
    const data = await loadCsv(await csv('\uFEFFspecies,x\nsetosa,1\nvirginica,2\n'), { labelColumns: ['species'] });
    expect(data.labelNames).toEqual(['species']);
    expect(Array.from(data.y)).toEqual([0, 1]);
  });

  it('reads a quoted header, with a delimiter and doubled quotes in its names', async () => {
    const data = await loadCsv(await csv('"a, b","c ""d""","label"\n1,2,0\n3,4,1\n'), { labelColumns: ['label'] });
    expect(data.featureNames).toEqual(['a, b', 'c "d"']);
    expect(Array.from(data.x)).toEqual([1, 2, 3, 4]);
  });

  it('reads quoted lines between plain ones, a field spanning two lines included, with physical line numbers', async () => {
    const text = 'name,x,label\nplain,1,0\n"quoted",2,1\n"two\nlines",3,0\nplain,4,1\n\n"q",5,"1"\nplain,6,0\n';
    const data = await loadCsv(await csv(text), { labelColumns: ['label'], ignoreColumns: ['name'] });
    expect(Array.from(data.x)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(data.y)).toEqual([0, 1, 0, 1, 1, 0]);
    expect(Array.from({ length: 6 }, (_, r) => data.rowName(r).replace(/.* line /, ''))).toEqual(['2', '3', '4', '6', '8', '9']);
  });

  it('reads a file whose lines end in a lone carriage return (classic Mac OS), with its line numbers', async () => {
    // maxLineLength 20: the file must be read as lines, not as one 26-character line.
    const data = await loadCsv(await csv('x,y,label\r1,2,0\r\r3,4,1\r'), { labelColumns: ['label'], maxLineLength: 20 });
    expect(Array.from(data.x)).toEqual([1, 2, 3, 4]);
    expect([data.rowName(0), data.rowName(1)].map((n) => n.replace(/.* line /, ''))).toEqual(['2', '4']);
  });

  it('refuses a quoted field left open, at its line, without reading the rest of the file into it', async () => {
    const path = await csv(`x,y,label\n1,2,0\n1,"2,0\n${'3,4,1\n'.repeat(100)}`);
    await expect(loadCsv(path, { labelColumns: ['label'], maxLineLength: 50 })).rejects.toThrow(
      /train\.csv line 3: a quoted field opens here and is still open 50 characters later \(options\.maxLineLength\)\nhint: close the quote/,
    );
  });

  it.each([
    ['between two cells', 'x,y,label\n1,2,0\n1,,0\n', /line 3, column 'y': empty cell; expected a number/],
    ['of spaces', 'x,y,label\n1,2,0\n1,  ,0\n', /line 3, column 'y': empty cell; expected a number/],
    ['at the end of a line', 'x,y,label\n1,2,0\n1,2,\n', /line 3, column 'label': empty cell; expected a number/],
    ['at the start of a line', 'x,y,label\n1,2,0\n,2,0\n', /line 3, column 'x': empty cell; expected a number/],
    ['in a tab-separated file', 'x\ty\tlabel\n1\t2\t0\n1\t\t0\n', /line 3, column 'y': empty cell; expected a number/],
  ])('names an empty cell %s by line and column', async (_, text, message) => {
    await expect(loadCsv(await csv(text), { labelColumns: ['label'] })).rejects.toThrow(message);
  });

  it("defaults targets to 'index' for one label column and 'values' for several", async () => {
    const one = await loadCsv(await csv('x,a,b\n1,1,0\n2,0,1\n'), { labelColumns: ['a'] });
    expect(one.y).toBeInstanceOf(Int32Array);
    expect(one.targetColumns).toBe(1);
    const two = await loadCsv(join(dir, 'train.csv'), { labelColumns: ['a', 'b'] });
    expect(two.y).toBeInstanceOf(Float32Array);
    expect(Array.from(two.y)).toEqual([1, 0, 0, 1]);
  });

  it('reads every row when the first chunk of the file under-estimates the number of rows', async () => {
    const pad = ' '.repeat(200);
    const long = Array.from({ length: 6000 }, (_, r) => `${pad}${r}${pad},2,0`); // about 1.2 MB: all of the first chunk
    const short = Array.from({ length: 200_000 }, (_, r) => `${r % 1000},3,1`);
    const data = await loadCsv(await csv(`a,b,label\n${long.join('\n')}\n${short.join('\n')}\n`), { labelColumns: ['label'] });
    expect(data.rows).toBe(206_000);
    expect([data.x[2 * 5999], data.x[2 * 6000], data.x[2 * 205_999], data.x[2 * 205_999 + 1]]).toEqual([5999, 0, 999, 3]);
    expect(data.rowName(205_999)).toMatch(/line 206001$/);
  });

  it('loads a file that fits the memory limit when its first chunk over-estimates the rows past the limit', async () => {
    // One feature and a label, 12 bytes a row while reading. The first chunk's 262,000 rows of 4 bytes
    // grow the arrays to 262,144 rows within 6 MB; then three 500 kB lines make the 2.5 MB file look like
    // 669,000 rows, for which there is no room; the 262,003 rows fit in the arrays as they are.
    const path = await csv(`a,label\n${'1,0\n'.repeat(262_000)}${`${' '.repeat(500_000)}2,1\n`.repeat(3)}`);
    setMemoryLimit({ bytes: 6e6, source: 'test budget' });
    try {
      const data = await loadCsv(path, { labelColumns: ['label'] });
      expect(data.rows).toBe(262_003);
      expect([data.x[0], data.x[262_002], data.y[262_002]]).toEqual([1, 2, 1]);
    } finally {
      setMemoryLimit(undefined);
    }
  });

  it('reads a line longer than the read chunk', async () => {
    const D = 600_000; // about 1.2 MB a line, past the 1 MiB chunk
    const row = (r: number): string => Array.from({ length: D }, (_, d) => (d + r) % 7).join(',');
    const data = await loadCsv(await csv(`${row(0)},1\n${row(1)},0\n`), { labelColumns: [D] });
    expect([data.rows, data.features]).toEqual([2, D]);
    expect(data.x[D - 1]).toBe((D - 1) % 7);
    expect(data.x[2 * D - 1]).toBe(D % 7);
  });
});
