// What a user's files may hold (issue 22, item 4): a label beyond the model's outputs, duplicate header
// names, gzip and UTF-16 CSV files, IDX files swapped, devices instead of files, and training data that
// changed under a --resume. Every file is written here by hand, independent of the code that reads it.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { evaluateMain } from '../src/cli/evaluate.js';
import { plotMain } from '../src/cli/plot.js';
import { predictMain } from '../src/cli/predict.js';
import { DataError, loadCheckpoint, loadCsv, loadIdx, saveCheckpoint, Trainer } from '../src/main/index.js';
import { idx } from './files.js';
import { runCli, runCommand, trainers } from './helpers.js';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const dir = mkdtempSync(join(tmpdir(), 'gradpool-user-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A CSV of `rows` rows (two features, a label cycling through `classes`), written here. */
function csvText(rows: number, classes: number, header = 'a,b,label'): string {
  const lines = [header];
  for (let r = 0; r < rows; r++) lines.push(`${(r % 7) / 7},${(r % 5) / 5},${r % classes}`);
  return `${lines.join('\n')}\n`;
}

describe('a label beyond --layers', () => {
  it('names the file, the line and the label as well as the --layers fix', async () => {
    const lines = csvText(30, 10).split('\n');
    lines[17] = '0.5,0.5,11'; // physical line 18
    const path = join(dir, 'eleven.csv');
    writeFileSync(path, lines.join('\n'));
    const r = await runCli(['--data', 'csv', '--train', path, '--label-column', 'label', '--layers', '2,10', '--epochs', '1',
      '--out', join(dir, 'never.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`ends in 10 outputs, but the training labels go up to class 11 (12 classes; label 11 at ${path} line 18)`);
    expect(r.err).toContain('end --layers in 12 (e.g. --layers 2,12), or correct the label there');
  });
});

describe('IDX files mixed up', () => {
  // 3 images of 2 x 3 and their 3 labels, with each other's magic: the header's sizes do not fit the data.
  const pixels = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
  const labelsWithImagesMagic = (): Uint8Array => {
    const bytes = idx(0x08, [3], [1, 2, 0]);
    bytes[3] = 3; // magic 0x00000803: three sizes, the second and third read from the labels
    return bytes;
  };
  const imagesWithLabelsMagic = (): Uint8Array => {
    const bytes = idx(0x08, [3, 2, 3], pixels);
    bytes[3] = 1; // magic 0x00000801: one size, the rest read as data
    return bytes;
  };

  it('names images where labels were expected, not a truncated file', async () => {
    const images = join(dir, 'images-ok');
    const labels = join(dir, 'labels-803');
    writeFileSync(images, idx(0x08, [3, 2, 3], pixels));
    writeFileSync(labels, labelsWithImagesMagic());
    const err = await loadIdx(images, labels).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DataError);
    expect(String((err as Error).message)).toMatch(new RegExp(
      `^${escape(labels)}: images where labels were expected: the IDX header \\(magic 0x00000803\\) declares 3 dimensions, as images files do ` +
        '\\(labels have 1, magic 0x00000801\\), and the data does not fit it\\nhint: check that the images and labels files are not swapped'));
    expect((err as Error).message).not.toMatch(/truncated|fetch it again/);
  });

  it('names labels where images were expected, gzipped too', async () => {
    const images = join(dir, 'images-801.gz');
    const labels = join(dir, 'labels-ok');
    writeFileSync(images, gzipSync(imagesWithLabelsMagic()));
    writeFileSync(labels, idx(0x08, [3], [1, 2, 0]));
    await expect(loadIdx(images, labels)).rejects.toThrow(
      `${images}: labels where images were expected: the IDX header (magic 0x00000801) declares 1 dimension, as labels files do ` +
        '(images have at least 2, magic 0x00000803), and the data does not fit it');
  });

  it('names the mix-up under the CLI, exit 2', async () => {
    const images = join(dir, 'cli-images');
    const labels = join(dir, 'cli-labels');
    writeFileSync(images, idx(0x08, [3, 2, 3], pixels));
    writeFileSync(labels, labelsWithImagesMagic());
    const r = await runCli(['--data', 'idx', '--train-images', images, '--train-labels', labels, '--layers', '6,3', '--epochs', '1',
      '--out', join(dir, 'never.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${labels}: images where labels were expected`);
  });
});

describe('inputs read whole must be regular files', () => {
  // /dev/zero and /dev/urandom never end: read whole, they grow without bound. Each is refused at once.
  it.each([
    ['--train-images', ['--data', 'idx', '--train-images', '/dev/zero', '--train-labels', '/dev/zero', '--layers', '6,3']],
    ['--resume', ['--resume', '/dev/zero']],
    ['--init', ['--init', '/dev/zero', '--layers', '784,10']],
  ])('refuses %s /dev/zero naming the flag, exit 2', async (flag, args) => {
    const r = await runCli([...args, '--epochs', '1', '--out', join(dir, 'never.safetensors')]);
    expect(r.err).toBe(`gradpool: ${flag} /dev/zero: is a character device, not a regular file; expected a file\n`);
    expect(r.code).toBe(2);
  });

  it('refuses /dev/urandom as the model to evaluate or predict with, exit 2', async () => {
    const csv = join(dir, 'eval.csv');
    writeFileSync(csv, csvText(10, 3));
    const e = await runCommand(evaluateMain, ['/dev/urandom', '--test', csv]);
    expect(e.err).toBe('gradpool evaluate: the model /dev/urandom: is a character device, not a regular file; expected a file\n');
    expect(e.code).toBe(2);
    const p = await runCommand(predictMain, ['/dev/urandom', '--input', csv, '--out', join(dir, 'p.csv')]);
    expect(p.err).toBe('gradpool predict: the model /dev/urandom: is a character device, not a regular file; expected a file\n');
    expect(p.code).toBe(2);
  });

  it('refuses a device or a FIFO in the library too, without waiting for a writer', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    for (const path of ['/dev/zero', fifo]) {
      const kind = path === fifo ? 'a FIFO \\(named pipe\\)' : 'a character device';
      await expect(loadCheckpoint(path)).rejects.toThrow(new RegExp(`${escape(path)}: is ${kind}, not a checkpoint file; expected a regular file`));
      await expect(loadIdx(path, path)).rejects.toThrow(new RegExp(`${escape(path)}: is ${kind}, not a regular file; expected an IDX file`));
    }
  });
});

describe('duplicate header names', () => {
  const text = 'a,a,c,label\n' + Array.from({ length: 12 }, (_, r) => `${r},${r % 3},${r % 4},${r % 2}`).join('\n') + '\n';

  it('are refused when training, naming the columns and how to fix them, exit 2', async () => {
    const path = join(dir, 'dup.csv');
    writeFileSync(path, text);
    const out = join(dir, 'dup.safetensors');
    const r = await runCli(['--data', 'csv', '--train', path, '--label-column', 'label', '--layers', '3,2', '--epochs', '1', '--out', out]);
    expect(r.err).toBe(`gradpool: ${path}: the header (line 1) gives the same name to several columns: 'a' at columns 0, 1 (0-based); ` +
      'each column needs its own name, since the model records its feature columns by name\n' +
      "hint: rename the columns in the header line so that each name is unique (e.g. 'a_1', 'a_2')\n");
    expect(r.code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });

  it('are refused even in a column left out; evaluate and predict refuse such a file too, with the same fix', async () => {
    const path = join(dir, 'dup-ignored.csv');
    writeFileSync(path, text.replace('a,a,c,label', 'a,c,c,label'));
    const r = await runCli(['--data', 'csv', '--train', path, '--label-column', 'label', '--ignore-columns', '2', '--layers', '2,2',
      '--epochs', '1', '--out', join(dir, 'never.safetensors')]);
    expect(r.err).toContain("'c' at columns 1, 2 (0-based)");
    expect(r.code).toBe(2);
    // A model trained on the file without its duplicate: evaluate and predict given the file with it.
    const clean = join(dir, 'clean.csv');
    writeFileSync(clean, text.replace('a,a,c,label', 'a,c,d,label'));
    const out = join(dir, 'clean.safetensors');
    const t = await runCli(['--data', 'csv', '--train', clean, '--label-column', 'label', '--ignore-columns', 'd', '--layers', '2,2',
      '--epochs', '1', '--validation-split', '0', '--out', out]);
    expect(t.code).toBe(0);
    for (const [main, args] of [[evaluateMain, [out, '--test', path]], [predictMain, [out, '--input', path, '--out', join(dir, 'p.csv')]]] as const) {
      const e = await runCommand(main, [...args]);
      expect(e.err).toMatch(/'c' is ambiguous; the header \(line 1\) has it at columns 1, 2\nhint: rename the columns in the header line so that each name is unique\n$/);
      expect(e.code).toBe(2);
    }
  });

  it('are refused by loadCsv, every name listed', async () => {
    const path = join(dir, 'dup-lib.csv');
    writeFileSync(path, 'x,y,x,y,label\n1,2,3,4,0\n');
    await expect(loadCsv(path, { labelColumns: ['label'] })).rejects.toThrow(
      `${path}: the header (line 1) gives the same name to several columns: 'x' at columns 0, 2; 'y' at columns 1, 3 (0-based)`);
  });
});

describe('CSV files gzipped or in UTF-16', () => {
  const text = csvText(40, 3);
  const plainPath = join(dir, 'plain.csv');
  writeFileSync(plainPath, text);
  const same = async (path: string): Promise<void> => {
    const [want, got] = await Promise.all([loadCsv(plainPath, { labelColumns: ['label'] }), loadCsv(path, { labelColumns: ['label'] })]);
    expect(Array.from(got.x)).toEqual(Array.from(want.x));
    expect(Array.from(got.y)).toEqual(Array.from(want.y));
    expect(got.featureNames).toEqual(['a', 'b']);
    expect(got.rowName(5)).toBe(`${path} line 7`);
  };
  /** UTF-16 by hand: each UTF-16 code unit as two bytes, the byte-order mark first. */
  const utf16 = (s: string, bigEndian: boolean): Buffer => {
    const out = Buffer.alloc(2 * (s.length + 1));
    const put = (i: number, u: number): void => {
      out[2 * i + (bigEndian ? 0 : 1)] = u >> 8;
      out[2 * i + (bigEndian ? 1 : 0)] = u & 0xff;
    };
    put(0, 0xfeff);
    for (let i = 0; i < s.length; i++) put(i + 1, s.charCodeAt(i));
    return out;
  };

  it('reads a gzip file as the file it holds, found by its magic bytes whatever its name', async () => {
    for (const name of ['train.csv.gz', 'train-gz.csv']) {
      const path = join(dir, name);
      writeFileSync(path, gzipSync(text));
      await same(path);
    }
  });

  it('reads UTF-16 LE and BE by their byte-order mark, and a UTF-8 mark inside a gzip file', async () => {
    for (const [name, bytes] of [['le.csv', utf16(text, false)], ['be.csv', utf16(text, true)], ['bom.csv.gz', gzipSync(`\uFEFF${text}`)],
      ['le.csv.gz', gzipSync(utf16(text, false))]] as const) {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      await same(path);
    }
  });

  it('refuses UTF-16 without a mark and UTF-32, naming the encoding', async () => {
    const noMark = join(dir, 'nomark.csv');
    writeFileSync(noMark, utf16(text, false).subarray(2));
    await expect(loadCsv(noMark, { labelColumns: ['label'] })).rejects.toThrow(
      `${noMark}: the file looks like UTF-16LE text without a byte-order mark (every other byte is 0)`);
    const utf32 = join(dir, 'utf32.csv');
    writeFileSync(utf32, Buffer.from([0xff, 0xfe, 0, 0, 0x61, 0, 0, 0]));
    await expect(loadCsv(utf32, { labelColumns: ['label'] })).rejects.toThrow(`${utf32}: the file is UTF-32 text (its byte-order mark)`);
  });

  it('keeps the line limit on the gunzipped text (a gzip bomb of one endless line) and names a cut gzip file', async () => {
    const bomb = join(dir, 'bomb.csv.gz');
    writeFileSync(bomb, gzipSync(Buffer.alloc(20_000_000, 0x37))); // 20 MB of '7', no line break: 20 kB on disk
    await expect(loadCsv(bomb, { labelColumns: ['label'], maxLineLength: 1000 })).rejects.toThrow(
      `${bomb} line 1: a row longer than 1000 characters (options.maxLineLength)`);
    const cut = join(dir, 'cut.csv.gz');
    const whole = gzipSync(text);
    writeFileSync(cut, whole.subarray(0, whole.length - 12));
    await expect(loadCsv(cut, { labelColumns: ['label'] })).rejects.toThrow(
      new RegExp(`^${escape(cut)}: starts like a gzip file \\(bytes 1f 8b\\) but cannot be gunzipped \\(unexpected end of file\\)`));
  });

  it('trains from a .csv.gz file under the CLI', async () => {
    const path = join(dir, 'cli.csv.gz');
    writeFileSync(path, gzipSync(text));
    const r = await runCli(['--data', 'csv', '--train', path, '--label-column', 'label', '--layers', '2,3', '--epochs', '1',
      '--out', join(dir, 'gz.safetensors')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`CSV ${path}, 40 train`);
  });
});

describe('--resume on training data that changed', () => {
  const { keep } = trainers();
  // 40 rows of 2 features, 3 classes, written out in the test; the fingerprint is checked against a
  // SHA-256 of the same float32 and int32 bytes computed here.
  const x = Float32Array.from({ length: 80 }, (_, i) => ((i * 37) % 11) / 11);
  const y = Int32Array.from({ length: 40 }, (_, r) => r % 3);
  const options = { layers: [2, 4, 3], lr: 0.1, batchSize: 8, workers: 1, seed: 3 };
  const saved = async (name: string): Promise<string> => {
    const t = keep(await Trainer.create(options));
    await t.fit({ x, y }, { epochs: 1 });
    const path = join(dir, name);
    await t.save(path);
    return path;
  };

  it('records the rows and a SHA-256 of the features and targets in the checkpoint', async () => {
    const ckpt = await loadCheckpoint(await saved('print.safetensors'));
    const sha = createHash('sha256').update(new Uint8Array(x.buffer)).update(new Uint8Array(y.buffer)).digest('hex');
    expect(JSON.parse(ckpt.metadata['gradpool.data'])).toEqual({ rows: 40, features: 2, sha256: sha });
  });

  it('refuses other rows or other values, naming what changed; allowDataChange continues knowingly', async () => {
    const path = await saved('resume.safetensors');
    const other = x.slice();
    other[13] += 0.5;
    const fewer = { x: x.subarray(0, 78), y: y.subarray(0, 39) };
    const t = keep(await Trainer.load(path));
    await expect(t.fit({ x: other, y })).rejects.toThrow(
      /^training data: not the data this run was trained on \(as its checkpoint records it\): it had the same 40 rows of 2 features but other values \(SHA-256 of the features and targets [0-9a-f]{12}\.\.\. then, [0-9a-f]{12}\.\.\. now\)\nhint: resume with the same training data, or give fit options\.allowDataChange: true/);
    const u = keep(await Trainer.load(path));
    await expect(u.fit(fewer)).rejects.toThrow('it had 40 rows of 2 features, this data has 39 rows of 2 features');
    expect(u.progress.epoch).toBe(1); // nothing trained
    const v = keep(await Trainer.load(path));
    await v.fit({ x: other, y }, { allowDataChange: true });
    expect(v.progress.epoch).toBe(2);
    // The run now records the new data: a resume from it accepts that data and refuses the old.
    await v.save(path);
    await keep(await Trainer.load(path)).fit({ x: other, y });
    await expect(keep(await Trainer.load(path)).fit({ x, y })).rejects.toThrow('but other values');
    const same = keep(await Trainer.load(await saved('same.safetensors')));
    await same.fit({ x, y });
    expect(same.progress.epoch).toBe(2);
  });

  it('resumes a checkpoint that records no data (written before gradpool did) on any data', async () => {
    const path = await saved('old.safetensors');
    const ckpt = await loadCheckpoint(path);
    const extra = Object.fromEntries(Object.entries(ckpt.metadata).filter(([k]) => !['format', 'gradpool.version', 'config',
      'gradpool.sha256', 'gradpool.header-sha256', 'gradpool.data'].includes(k)));
    await saveCheckpoint(path, ckpt.config, ckpt.params, extra, ckpt.tensors);
    expect((await loadCheckpoint(path)).metadata['gradpool.data']).toBeUndefined();
    const t = keep(await Trainer.load(path));
    await t.fit({ x: x.subarray(0, 78), y: y.subarray(0, 39) });
    expect(t.progress.epoch).toBe(2);
  });

  it('names --allow-data-change under the CLI, and trains with it', async () => {
    const path = join(dir, 'resume.csv');
    writeFileSync(path, csvText(40, 3));
    const out = join(dir, 'resume-cli.safetensors');
    const first = await runCli(['--data', 'csv', '--train', path, '--label-column', 'label', '--layers', '2,3', '--epochs', '1', '--out', out]);
    expect(first.code).toBe(0);
    writeFileSync(path, csvText(40, 3).replace('\n0,0,0\n', '\n0,0.25,0\n')); // one value of the first row
    const r = await runCli(['--resume', out, '--epochs', '1']);
    expect(r.err).toMatch(/^gradpool: training data: not the data this run was trained on \(as its checkpoint records it\): it had the same 36 rows of 2 features but other values .*\nhint: resume with the same training data, or give --allow-data-change to continue on this data knowingly\n$/);
    expect(r.code).toBe(2);
    const ok = await runCli(['--resume', out, '--epochs', '1', '--allow-data-change']);
    expect(ok.err).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^epoch 2\//m);
  });
});

describe('a device given to plot', () => {
  it('is refused naming it, exit 2', async () => {
    const r = await runCommand(plotMain, ['/dev/zero', '--out', join(dir, 'never.svg')]);
    expect(r.err).toBe('gradpool plot: the metrics file /dev/zero: is a character device, not a regular file; expected a file\n');
    expect(r.code).toBe(2);
  });
});
