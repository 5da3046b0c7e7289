// The training script as a user runs it: flags in, one line per epoch, a confusion matrix and a
// checkpoint out; bad flags a one-line error and exit code 2. The checkpoint is checked against the
// trainer that reloads it, and the help text against the documented flag list.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expectedAutoKernels } from './fma.js';
import { runCli } from './helpers.js';
import { Trainer, loadMnist } from '../src/main/index.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the real script in a child process, as `npm run train -- <args>` does. */
function spawnScript(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/train.ts', ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('training script', () => {
  it('trains, prints one line per epoch and a confusion matrix, and saves a checkpoint that reloads', async () => {
    const out = join(dir, 'm.safetensors');
    const r = await runCli(['--layers', '784,32,10', '--epochs', '2', '--workers', '2', '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe(`gradpool: MLP 784-32-10 (relu), cross-entropy, SGD lr 0.05 momentum 0.9, batch 64, 2 workers x 2 shards, ${expectedAutoKernels()} kernels, seed 0`);
    expect(lines[1]).toBe('data: MNIST digits (bundled), 8004 train / 1996 test; 800 of the training rows held out for validation ' +
      '(--validation-split 0.1, seed 0); the test data is evaluated at the end only');
    const epochs = lines.filter((l) => l.startsWith('epoch '));
    expect(epochs).toHaveLength(2);
    for (const l of epochs) {
      expect(l).toMatch(/^epoch \d\/2: train loss \d\.\d{4}, train accuracy \d+\.\d\d%, validation loss \d\.\d{4}, validation accuracy \d+\.\d\d%, lr 0\.05, (\d+ samples\/s, )?\d+\.\d\d s; elapsed \d+\.\d s(, ETA \d+\.\d s)?$/);
    }
    const head = lines.indexOf('confusion matrix on the test data (rows: true class, columns: predicted):');
    const matrix = lines.slice(head + 2, lines.indexOf('per-class report on the test data:'));
    expect(matrix).toHaveLength(10);
    const counts = matrix.map((l) => l.trim().split(/\s+/).slice(1).map(Number));
    expect(counts.flat().reduce((a, b) => a + b, 0)).toBe(1996);
    const accuracy = Number(/test accuracy (\d+\.\d\d)%/.exec(lines.at(-2) as string)?.[1]);
    expect(accuracy).toBeCloseTo((100 * counts.reduce((a, row, k) => a + row[k], 0)) / 1996, 2);
    expect(accuracy).toBeGreaterThan(85);
    // the report's recall of each digit is its diagonal over its row of the confusion matrix
    const report = lines.slice(lines.indexOf('per-class report on the test data:') + 2, -4);
    expect(report).toHaveLength(10);
    report.forEach((l, k) => {
      const [, , recall, , support] = l.trim().split(/\s+/).map(Number);
      expect(support).toBe(counts[k].reduce((a, b) => a + b, 0));
      expect(recall).toBeCloseTo(counts[k][k] / support, 4);
    });
    // the saved model gives the printed accuracy again
    const t = await Trainer.load(out, { workers: 1 });
    try {
      expect(t.options.layers).toEqual([784, 32, 10]);
      const ev = await t.evaluate(loadMnist().test);
      expect((100 * ev.accuracy).toFixed(2)).toBe(accuracy.toFixed(2));
    } finally {
      await t.close();
    }
  });

  it('rejects a bad flag value with one line naming the flag, exit code 2', async () => {
    const r = await runCli(['--lr', 'fast']);
    expect(r.code).toBe(2);
    expect(r.err).toBe("gradpool: option '--lr <number>' argument 'fast' is invalid. expected a number >= 0\n");
  });

  it('names flags, not options, in errors from the Trainer', async () => {
    const r = await runCli(['--nesterov', '--dampening', '0.5']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('gradpool: Nesterov momentum requires a momentum and zero dampening; got momentum 0.9, dampening 0.5\n');
    const c = await runCli(['--layers', '784,1', '--loss', 'cross-entropy']);
    expect(c.err).toMatch(/^gradpool: --loss 'cross-entropy' needs at least 2 outputs; layers ends in 1\n/);
    expect(c.code).toBe(2);
  });

  it('refuses layers that do not fit the data before training, exit code 2', async () => {
    const r = await runCli(['--layers', '784,16,5', '--out', join(dir, 'never.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.err).toBe('gradpool: --layers 784,16,5 ends in 5 outputs, but the training labels go up to class 9 (10 classes; ' +
      'label 9 at mnist/src/digits/9.json image 0); end --layers in 10 (e.g. --layers 784,16,10), or correct the label there\n');
    const f = await runCli(['--layers', '392,10', '--out', join(dir, 'never.safetensors')]);
    expect(f.code).toBe(2);
    expect(f.err).toBe('gradpool: --layers 392,10 starts with 392 inputs, but the MNIST digits have 784 features per row; ' +
      'start --layers with 784 (e.g. --layers 784,10)\n');
    expect(r.out).not.toMatch(/^epoch/m);
    expect(existsSync(join(dir, 'never.safetensors'))).toBe(false);
  });

  it('refuses an output folder that does not exist before training', async () => {
    const r = await runCli(['--out', join(dir, 'no', 'such', 'm.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool: --out .*m\.safetensors: the folder .*such does not exist\n$/);
  });

  it('exits 2 on an unknown flag when run as a script', () => {
    const r = spawnScript(['--learning-rate', '0.1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("gradpool: unknown option '--learning-rate'\n(Did you mean --lr?)\n");
  });

  it('lists every flag with its default in --help, as docs/cli.md documents them', () => {
    const r = spawnScript(['--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--layers', '--activation', '--loss', '--lr', '--momentum', '--batch-size', '--epochs', '--workers', '--seed', '--no-shuffle', '--out']) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toMatch(/--lr <number>\s+learning rate \(default: 0\.05\)/);
    expect(r.stdout).toMatch(/--layers <widths>\s+layer widths, input first \(default:\s+784,128,10\)/);
    const reference = readFileSync('docs/cli.md', 'utf8');
    for (const flag of r.stdout.match(/--[a-z-]+/g) ?? []) expect(reference, `docs/cli.md documents ${flag}`).toContain(flag);
    // every other command scripts/gradpool.ts dispatches to, as its table names them
    const table = /const commands[^{]*\{([^}]*)\}/.exec(readFileSync('scripts/gradpool.ts', 'utf8'))?.[1] ?? '';
    const commands = [...table.matchAll(/(\w+):/g)].map((m) => m[1]);
    expect(commands).toEqual(['tune', 'plot', 'evaluate', 'predict', 'export']);
    for (const c of commands) expect(r.stdout, `--help names gradpool ${c}`).toContain(`gradpool ${c}`);
  });
});
