// The training script against what a hostile probe did to it (issue 14): npm killed under it, output
// paths that cannot be written, a save that fails on an interrupt, temporary files left by a kill.
// Each is checked against what the README promises: exit 2 before any work for a path that cannot be
// written, the interrupt's own exit code, nothing left behind.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/main/index.js';

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

describe('signals', () => {
  it('a SIGTERM to `npm run train` stops the trainer too: saved mid-epoch, not orphaned', async () => {
    const out = join(dir, 'npm.safetensors');
    // npm passes the signal to its shell, which dies without passing it on.
    const npm = spawn('npm', ['run', 'train', '--', '--layers', '784,8,10', '--epochs', '200', '--batch-size', '16', '--no-progress', '--out', out],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    npm.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    // The pipes close once every process holding them has exited: npm and the trainer.
    const closed = new Promise<void>((resolve) => npm.on('close', () => resolve()));
    await new Promise<void>((resolve) => npm.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (/^epoch 1\/200/m.test(stdout)) resolve();
    }));
    npm.kill('SIGTERM');
    const settled = await Promise.race([closed.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 15_000))]);
    expect(settled, 'the trainer exited after npm was sent SIGTERM').toBe(true);
    expect(stderr).toMatch(/gradpool: interrupted by SIGTERM after step \d+ \(epoch \d+, batch \d+\); saved .*npm\.safetensors\n/);
    const state = JSON.parse((await loadCheckpoint(out)).metadata['gradpool.state']);
    expect(state.epoch).toBeGreaterThan(0);
    expect(state.epoch).toBeLessThan(200);
    expect(leftovers()).toEqual([]);
  }, 30_000);
});
