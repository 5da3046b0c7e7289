// A reader that closes the pipe early (`gradpool ... | head -1`): the commands run in child processes
// whose stdout (or stderr) the test closes, at once or after the first bytes. Training goes on to its end
// and saves the same model as a run whose output is read; predict and evaluate stop with exit 0; none
// prints a stack trace.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, sameBits } from './helpers.js';
import { loadCheckpoint } from '../src/main/index.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-closed-output-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const IRIS = 'examples/iris/iris-train.csv';
const TEST = 'examples/iris/iris-test.csv';
const flags = ['--data', 'csv', '--train', IRIS, '--test', TEST, '--label-column', 'species', '--layers', '4,16,3', '--epochs', '3',
  '--workers', '1', '--no-progress'];
const model = join(dir, 'read.safetensors');

interface Closing {
  /** Close stdout after this many bytes (0: at once). */
  stdoutAfter?: number;
  closeStderr?: boolean;
}

/** Runs `script args` with stdout (and stderr) pipes the test closes; the exit code, stderr, bytes read. */
function run(script: string, args: string[], closing: Closing): Promise<{ code: number | null; err: string; read: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let read = 0;
    if (closing.stdoutAfter === undefined || closing.stdoutAfter === 0) child.stdout.destroy();
    else {
      child.stdout.on('data', (b: Buffer) => {
        read += b.length;
        if (read >= (closing.stdoutAfter as number)) child.stdout.destroy();
      });
    }
    if (closing.closeStderr === true) child.stderr.destroy();
    else child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, err, read });
    });
  });
}

const STACK = /Error|\n\s+at /;

beforeAll(async () => {
  const r = await runCli([...flags, '--out', model]);
  expect(r.code, r.err).toBe(0);
});

describe('a closed standard output', () => {
  it('lets training go on to its end and save the model a run with its output read saves', async () => {
    const out = join(dir, 'closed.safetensors');
    const r = await run('scripts/train.ts', [...flags, '--out', out], {});
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const [closed, read] = await Promise.all([loadCheckpoint(out), loadCheckpoint(model)]);
    expect(sameBits(closed.params, read.params)).toBe(true);
  });

  it('ends a usage error with its exit code even when stdout and stderr are both closed', async () => {
    const r = await run('scripts/gradpool.ts', [...flags, '--out', join(dir, 'nowhere.safetensors'), '--layers', '5,16,3'], { closeStderr: true });
    expect(r.code).toBe(2);
  });

  it('stops predict --out - quietly after the first 100 bytes (| head -c 100)', async () => {
    const [head, ...rows] = readFileSync(TEST, 'utf8').trim().split('\n');
    const big = join(dir, 'big.csv');
    writeFileSync(big, [head, ...Array.from({ length: 400 }, () => rows).flat()].join('\n') + '\n'); // 12,000 rows, ~0.5 MB out
    const r = await run('scripts/gradpool.ts', ['predict', model, '--input', big, '--out', '-'], { stdoutAfter: 100 });
    expect(r.read).toBeGreaterThanOrEqual(100);
    expect(r.read).toBeLessThan(400_000); // it stopped: the whole output is ~500 kB
    expect(r.err).toMatch(/^model .*read\.safetensors: MLP 4-16-3[^\n]*\n$/);
    expect(r.err).not.toMatch(STACK);
    expect(r.code).toBe(0);
  });

  it('stops evaluate quietly', async () => {
    const r = await run('scripts/gradpool.ts', ['evaluate', model, '--test', TEST], {});
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });
});
