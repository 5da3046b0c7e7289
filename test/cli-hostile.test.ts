// The training script against what a hostile probe did to it (issue 14): npm killed under it, output
// paths that cannot be written, a save that fails on an interrupt, temporary files left by a kill.
// Each is checked against what the README promises: exit 2 before any work for a path that cannot be
// written, the interrupt's own exit code, nothing left behind.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { tuneMain } from '../src/cli/tune.js';
import { loadCheckpoint } from '../src/main/index.js';
import { runCli, signalAfterSteps } from './helpers.js';

// Tests run as root, for whom permissions do not stop a write: a folder named 'read-only' here stands
// for one on a read-only file system, its file creations failing as the kernel fails them (EROFS).
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const openSync = (path: import('node:fs').PathLike, ...rest: unknown[]): number => {
    if (String(path).includes(`read-only${'/'}`)) {
      throw Object.assign(new Error(`EROFS: read-only file system, open '${String(path)}'`), { code: 'EROFS' });
    }
    return (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
  };
  return { ...fs, openSync, default: { ...fs, openSync } };
});

const dir = mkdtempSync(join(tmpdir(), 'gradpool-cli-hostile-'));
/** Processes whose command line names this test's folder: none should outlive it. */
function leftovers(): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false;
    }
  }).map(Number);
}
afterAll(() => {
  for (const pid of leftovers()) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('output paths checked before any work', () => {
  const readOnly = join(dir, 'read-only');
  mkdirSync(readOnly);
  writeFileSync(join(dir, 'a-file'), 'x');

  it.each([
    ['a folder', join(dir), /^gradpool: --out .*: is a folder; expected a file path \(e\.g\. .*model\.safetensors\)\n$/],
    ['a path under a file', join(dir, 'a-file', 'm.safetensors'), /^gradpool: --out .*m\.safetensors: .*a-file is a file, not a folder\n$/],
    ['a read-only folder', join(readOnly, 'm.safetensors'), /^gradpool: --out .*m\.safetensors: cannot create files in .*read-only \(EROFS: read-only file system, open .*\)\n$/],
  ])('refuses --out naming %s with exit 2 before training', async (_, out, message) => {
    const r = await runCli(['--layers', '784,8,10', '--epochs', '1', '--out', out]);
    expect(r.err).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.out).toBe(''); // not even the header: no data loaded, no Trainer made
  });

  it('refuses --metrics naming a folder or a read-only place with exit 2 before training', async () => {
    const r = await runCli(['--layers', '784,8,10', '--out', join(dir, 'm.safetensors'), '--metrics', dir]);
    expect(r.err).toMatch(/^gradpool: --metrics .*: is a folder; expected a file path/);
    expect(r.code).toBe(2);
    const s = await runCli(['--layers', '784,8,10', '--out', join(dir, 'm.safetensors'), '--metrics', join(readOnly, 'm.jsonl')]);
    expect(s.err).toMatch(/^gradpool: --metrics .*m\.jsonl: cannot create files in .*read-only \(EROFS/);
    expect(s.code).toBe(2);
    expect(r.out + s.out).toBe('');
    expect(existsSync(join(dir, 'm.safetensors'))).toBe(false);
  });

  it('refuses a tune --out-dir that is missing or read-only with exit 2 before measuring', async () => {
    const stream = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
    for (const [outDir, message] of [[join(dir, 'missing'), /the folder .*missing does not exist/], [readOnly, /cannot create files in .*read-only \(EROFS/]] as const) {
      let err = '';
      const write = process.stderr.write;
      process.stderr.write = ((t: string) => ((err += t), true)) as typeof process.stderr.write;
      const t0 = performance.now();
      try {
        expect(await tuneMain(['--max-workers', '1', '--out-dir', outDir], stream)).toBe(2);
      } finally {
        process.stderr.write = write;
      }
      expect(err).toMatch(new RegExp(`^gradpool tune: --out-dir .*${message.source}`));
      expect(performance.now() - t0).toBeLessThan(1000); // a measurement takes seconds
    }
  });
});

describe('--worker-timeout', () => {
  it('reaches the Trainer, may be changed on --resume, and must be a positive number', async () => {
    const out = join(dir, 'timeout.safetensors');
    const r = await runCli(['--layers', '784,8,10', '--epochs', '1', '--worker-timeout', '1234', '--out', out]);
    expect(r.code).toBe(0);
    expect(JSON.parse((await loadCheckpoint(out)).metadata['gradpool.options']).workerTimeout).toBe(1234);
    const resumed = await runCli(['--resume', out, '--epochs', '2', '--worker-timeout', '4321']);
    expect(resumed.err).toBe('');
    expect(resumed.code).toBe(0);
    expect(JSON.parse((await loadCheckpoint(out)).metadata['gradpool.options']).workerTimeout).toBe(4321);
    const bad = await runCli(['--worker-timeout', '0']);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe("gradpool: option '--worker-timeout <ms>' argument '0' is invalid. expected a positive number of milliseconds\n");
  });
});

describe('signals', () => {
  it('says so and exits with the interrupt\'s code when the save on Ctrl-C fails', async () => {
    const folder = join(dir, 'vanishing');
    mkdirSync(folder);
    const out = join(folder, 'model.safetensors');
    const metrics = join(dir, 'vanishing.jsonl');
    // Batches of 1: an epoch is thousands of steps, so no epoch's save comes between the steps seen
    // below and the interrupt.
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/train.ts', '--layers', '784,8,10', '--batch-size', '1',
      '--no-progress', '--out', out, '--metrics', metrics], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    // the save will find no folder (ENOENT), as a full disk fails it
    const code = await signalAfterSteps(child, metrics, 'SIGINT', () => rmSync(folder, { recursive: true }));
    expect(err).toMatch(/^gradpool: interrupted by SIGINT after step \d+ \(epoch 1, batch \d+\); the save failed: .*vanishing\/model\.safetensors: cannot write the file \(ENOENT: no such file or directory, open .*\)\nhint: the folder does not exist.*\nwhatever was at .*model\.safetensors is as the last save left it\n$/);
    expect(code).toBe(130);
  }, 30_000);

  it('a SIGTERM to `npm run train` stops the trainer too: saved mid-epoch, not orphaned', async () => {
    const out = join(dir, 'npm.safetensors');
    const metrics = join(dir, 'npm.jsonl');
    // npm passes the signal to its shell, which dies without passing it on. Batches of 1: an epoch is
    // 8,004 steps, so the stop, sent once 20 steps are recorded, lands mid-epoch.
    const npm = spawn('npm', ['run', 'train', '--', '--layers', '784,64,10', '--epochs', '2', '--batch-size', '1', '--validation-split', '0', '--no-progress',
      '--out', out, '--metrics', metrics], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    npm.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    // The pipes close once every process holding them has exited: npm and the trainer.
    const closed = new Promise<void>((resolve) => npm.on('close', () => resolve()));
    await signalAfterSteps(npm, metrics, 'SIGTERM');
    const settled = await Promise.race([closed.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 15_000))]);
    expect(settled, 'the trainer exited after npm was sent SIGTERM').toBe(true);
    expect(stderr).toMatch(/gradpool: interrupted by SIGTERM after step (\d+) \(epoch 1, batch \1\); saved .*npm\.safetensors\n/);
    const state = JSON.parse((await loadCheckpoint(out)).metadata['gradpool.state']);
    expect(state.epoch).toBe(0);
    expect(state.batch).toBeGreaterThanOrEqual(20);
    expect(state.batch).toBeLessThan(8004);
    expect(leftovers()).toEqual([]);
  }, 30_000);
});
