// What a user's files may hold (issue 22, item 4): a label beyond the model's outputs, duplicate header
// names, gzip and UTF-16 CSV files, IDX files swapped, devices instead of files, and training data that
// changed under a --resume. Every file is written here by hand, independent of the code that reads it.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';

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
