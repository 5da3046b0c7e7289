// The CSV loader's byte-level number reading: random cells written by Python in many formats (exponents,
// signs, spaces, integers, long mantissas, values on float32 rounding boundaries) must load bit for bit
// as Math.fround(Number(cell)) and as Python's own float32 of float(cell); the same file quoted (read by
// csv-parse) must load the same bits; and bad cells on byte-read lines are named by line and column.

import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCsv } from '../src/main/loaders/csv.js';
import { parseDecimal, scanned } from '../src/main/loaders/decimal.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradpool-decimal-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// Writes ROWS x COLS cells, each a random value in a random format, and the float32 bits Python rounds
// each cell to (struct's 'f' is C's (float) cast of float(cell): round to nearest, ties to even).
const PYTHON_CELLS = String.raw`
import random, struct, sys
random.seed(int(sys.argv[1]))
ROWS, COLS = int(sys.argv[2]), int(sys.argv[3])
def value():
    k = random.randrange(6)
    if k == 0: return random.uniform(-1, 1)
    if k == 1: return random.choice([-1, 1]) * 10 ** random.uniform(-44, 38.5)
    if k == 2:  # halfway between two float32s, or a hair off it
        f = struct.unpack('<f', struct.pack('<f', random.uniform(-1e6, 1e6)))[0]
        bits = struct.unpack('<I', struct.pack('<f', f))[0]
        g = struct.unpack('<f', struct.pack('<I', bits + 1))[0]
        return (f + g) / 2 * (1 + random.choice([0, 0, 1e-16, -1e-16, 3e-15]))
    if k == 3: return float(random.randrange(-10**6, 10**6))
    if k == 4: return random.gauss(0, 100)
    return random.choice([0.0, -0.0, 1.0, 0.5, 3.4e38, -3.4e38, 1e-45, 1.17549435e-38])
def text(v):
    k = random.randrange(14)
    if k == 0: s = repr(v)
    elif k == 1: s = '%.3f' % v
    elif k == 2: s = '%.17g' % v
    elif k == 3: s = '%e' % v
    elif k == 4: s = '%.20e' % v
    elif k == 5: s = '%+.5E' % v
    elif k == 6: s = '%d' % v if abs(v) < 1e18 else repr(v)
    elif k == 7: s = '%.30f' % v if abs(v) < 1e20 else repr(v)
    elif k == 8: s = '%.9g' % v
    elif k == 9: s = '%.6f' % v
    elif k == 10: s = ('%.4f' % v).replace('0.', '.', 1) if abs(v) < 1 else repr(v)  # .5, -.25
    elif k == 11: s = '%.0f.' % v if abs(v) < 1e15 else repr(v)  # 5.
    elif k == 12: s = '%.25g' % v
    else: s = '%012.5f' % v if abs(v) < 1e6 else repr(v)  # zero-padded
    if random.random() < 0.1: s = ' ' * random.randrange(1, 3) + s
    if random.random() < 0.1: s = s + ' ' * random.randrange(1, 3)
    return s
out, bits = [], []
out.append(','.join('f%d' % c for c in range(COLS)) + ',label')
while len(out) <= ROWS:
    cells = [text(value()) for _ in range(COLS)]
    try:
        row = [struct.unpack('<I', struct.pack('<f', float(c)))[0] for c in cells]
    except OverflowError:
        continue  # rounds past float32's range: the loader refuses those (tested elsewhere)
    out.append(','.join(cells) + ',0')
    bits.extend(row)
sys.stdout.write('\n'.join(out) + '\n' + '#' + ','.join(map(str, bits)))
`;

function pythonCells(seed: number, rows: number, cols: number): { text: string; bits: Uint32Array; cells: string[] } {
  const r = spawnSync('/usr/bin/python3', ['-c', PYTHON_CELLS, String(seed), String(rows), String(cols)], { encoding: 'utf8', maxBuffer: 1 << 28 });
  expect(r.status, r.stderr).toBe(0);
  const [text, bits] = r.stdout.split('#');
  const cells = text.trim().split('\n').slice(1).flatMap((line) => line.split(',').slice(0, cols));
  return { text, bits: Uint32Array.from(bits.split(','), Number), cells };
}

const bitsOf = (x: Float32Array): Uint32Array => new Uint32Array(x.buffer, x.byteOffset, x.length);

/** The first index where two bit patterns differ, or -1. */
function firstDifference(a: Uint32Array, b: Uint32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe('numbers read from the bytes', () => {
  it('loads random cells written by Python bit for bit as Math.fround(Number(cell)) and as Python rounds them', async () => {
    const { text, bits, cells } = pythonCells(12, 3000, 10);
    const path = join(dir, 'cells.csv');
    await writeFile(path, text);
    const data = await loadCsv(path, { labelColumns: ['label'] });
    expect(data.rows).toBe(3000);
    const fromNumber = bitsOf(Float32Array.from(cells, (c) => Math.fround(Number(c))));
    const got = bitsOf(data.x);
    const i = firstDifference(got, fromNumber);
    expect(i, `cell ${i} '${cells[i]}': loaded ${got[i]?.toString(16)}, Math.fround(Number()) ${fromNumber[i]?.toString(16)}`).toBe(-1);
    const j = firstDifference(got, bits);
    expect(j, `cell ${j} '${cells[j]}': loaded ${got[j]?.toString(16)}, Python ${bits[j]?.toString(16)}`).toBe(-1);
    expect(cells.filter((c) => c.replace(/[^0-9]/g, '').length > 15).length).toBeGreaterThan(5000); // long mantissas were there
  });

  it('loads the same bits from the same cells quoted, read by csv-parse', async () => {
    const { text } = pythonCells(13, 1000, 10);
    const plain = join(dir, 'plain.csv');
    const quoted = join(dir, 'quoted.csv');
    await writeFile(plain, text);
    await writeFile(quoted, text.trim().split('\n').map((line) => line.split(',').map((c) => `"${c}"`).join(',')).join('\n') + '\n');
    const a = await loadCsv(plain, { labelColumns: ['label'] });
    const b = await loadCsv(quoted, { labelColumns: ['label'] });
    expect(firstDifference(bitsOf(a.x), bitsOf(b.x))).toBe(-1);
  });

  it.each([
    ['abc', "'abc' is not a number"],
    ['1.2.3', "'1.2.3' is not a number"],
    ['1e', "'1e' is not a number"],
    ['--1', "'--1' is not a number"],
    ['1 2', "'1 2' is not a number"],
    ['NaN', "'NaN' is not a finite number"],
    ['-Infinity', "'-Infinity' is not a finite number"],
    ['3.5e38', "'3.5e38' is outside the float32 range"],
    ['340282356779733661637539395458142568448', "'340282356779733661637539395458142568448' is outside the float32 range"],
  ])("names the line and column of the bad cell '%s' on a line read from bytes", async (cell, message) => {
    const path = join(dir, 'bad.csv');
    await writeFile(path, `a,b,label\n1,2,0\n\n3,4,1\n5,${cell},0\n`);
    await expect(loadCsv(path, { labelColumns: ['label'] })).rejects.toThrow(`${path} line 5, column 'b': ${message}`);
  });

  it('takes what Number takes beyond the common forms (hex, a leading +, 1e-30)', async () => {
    const path = join(dir, 'forms.csv');
    await writeFile(path, 'a,b,c,label\n1,2,3,0\n0x1F,+.5,1e-30,1\n');
    const data = await loadCsv(path, { labelColumns: ['label'] });
    expect(Array.from(data.x.subarray(3))).toEqual([31, 0.5, Math.fround(1e-30)]);
  });
});

describe('parseDecimal', () => {
  const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
  const parse = (s: string): number => parseDecimal(bytes(s), 0, s.length, 44, false);

  it.each(['0', '-0', '12', '-3.25', '.5', '5.', '+7', '  1.5 ', '\t2\t', '1e3', '-2.5E-3', '0.000001', '123456789012345'])(
    "reads '%s' as Number reads it, exactly", (s) => {
      expect(Object.is(parse(s), Number(s))).toBe(true);
      expect(scanned.exact).toBe(true);
      expect(scanned.end).toBe(s.length);
    },
  );

  it('stops at the delimiter', () => {
    expect(parseDecimal(bytes('1.5 ,2'), 0, 6, 44, false)).toBe(1.5);
    expect(scanned.end).toBe(4);
  });

  it('answers NaN, for the string path, to what it does not read', () => {
    for (const s of ['', ' ', '.', '-', 'e5', '1e', '0x10', '1_0', 'NaN', 'inf', '1.2.3', '1 2', '1e400', '1e-400', '١']) {
      expect(parse(s), s).toBeNaN();
    }
  });

  it('reads more than 15 digits as their float32 rounding, not exactly', () => {
    const s = '0.12345678901234567890123';
    expect(Math.fround(parse(s))).toBe(Math.fround(Number(s)));
    expect(scanned.exact).toBe(false);
  });

  it('treats a tab as the delimiter, not a space, in a tab-separated line', () => {
    expect(parseDecimal(bytes('1\t2'), 0, 3, 9, true)).toBe(1);
    expect(scanned.end).toBe(1);
    expect(parseDecimal(bytes('\t2'), 0, 2, 9, true)).toBeNaN();
  });
});
