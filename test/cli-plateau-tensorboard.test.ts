// The training script with --schedule plateau and --tensorboard, as the done-criterion runs it
// (with SGD): the epochs' learning rates follow torch's ReduceLROnPlateau rule over the printed validation
// losses (a loop here), the TensorBoard directory holds event files TFRecord-framed (checked here by a
// CRC-free length walk; tensorboard.test.ts checks the CRCs and protos), a --resume goes on in the same
// directory at the next step, and the combinations PyTorch cannot run are refused naming the flags.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';
import { loadCheckpoint } from '../src/main/index.js';
import { STATE_KEY } from '../src/main/checkpoint/metadata.js';
import { Rng } from '../src/shared/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-cli-plateau-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const train = join(dir, 'noisy.csv');
{
  const rng = new Rng(4);
  const lines = ['a,b,c,d,e,f,label'];
  for (let i = 0; i < 160; i++) {
    const v = Array.from({ length: 6 }, () => rng.uniform(2) - 1);
    const y = (v.reduce((s, x) => s + x, 0) > 0) !== (rng.uniform(1) < 0.3) ? 1 : 0;
    lines.push(`${v.map((x) => x.toFixed(4)).join(',')},${y}`);
  }
  writeFileSync(train, lines.join('\n') + '\n');
}
const base = ['--data', 'csv', '--train', train, '--label-column', 'label', '--layers', '6,32,2', '--lr', '0.3', '--momentum', '0.9',
  '--batch-size', '8', '--validation-split', '0.3', '--no-progress'];

/** The records of a TFRecord file, counted by walking their length fields; they must
 *  fit the file exactly. (Proto decoding and CRCs: tensorboard.test.ts.) */
function recordCount(path: string): number {
  const b = readFileSync(path);
  let at = 0;
  let n = 0;
  while (at < b.length) {
    const len = Number(b.readBigUInt64LE(at));
    at += 16 + len;
    n++;
  }
  expect(at).toBe(b.length);
  return n;
}

/** torch's ReduceLROnPlateau (min, rel) written out: the lr after each metric. */
function plateauRule(values: number[], lr: number, patience: number, factor: number, threshold: number): number[] {
  let best = Infinity;
  let bad = 0;
  return values.map((v) => {
    if (v < best * (1 - threshold)) {
      best = v;
      bad = 0;
    } else if (++bad > patience) {
      if (lr - lr * factor > 1e-8) lr *= factor;
      bad = 0;
    }
    return lr;
  });
}

describe('--schedule plateau --tensorboard', () => {
  const runs = join(dir, 'runs');
  const out = join(dir, 'm.safetensors');
  const metrics = join(dir, 'm.jsonl');

  it('reduces the lr when the validation loss stops improving, and writes event files; --resume goes on there', async () => {
    const r = await runCli([...base, '--schedule', 'plateau', '--plateau-patience', '1', '--plateau-factor', '0.5', '--plateau-threshold', '0.02',
      '--epochs', '8', '--tensorboard', runs, '--metrics', metrics, '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`TensorBoard scalars: ${runs}`);
    // The epochs as --metrics records them, at full precision: epoch e + 1 runs at the rate after epoch e.
    const epochs = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; lr: number; valLoss: number })
      .filter((e) => e.type === 'epoch');
    expect(epochs).toHaveLength(8);
    const lrs = epochs.map((e) => e.lr);
    expect(lrs).toEqual([0.3, ...plateauRule(epochs.map((e) => e.valLoss), 0.3, 1, 0.5, 0.02).slice(0, -1)]);
    expect(new Set(lrs).size, `lrs ${lrs.join(', ')}`).toBeGreaterThanOrEqual(2);
    const state = JSON.parse((await loadCheckpoint(out)).metadata[STATE_KEY]) as { plateau: { lastEpoch: number; lr: number } };
    expect(state.plateau.lastEpoch).toBe(8);
    const files = readdirSync(runs);
    expect(files).toHaveLength(1);
    // 1 file_version, one event per step (112 training rows, 14 batches of 8 per epoch) and one per epoch.
    const steps = Math.ceil(112 / 8) * 8;
    expect(recordCount(join(runs, files[0]))).toBe(1 + steps + 8);

    const again = await runCli(['--resume', out, '--epochs', '2']);
    expect(again.err).toBe('');
    expect(again.code).toBe(0);
    const after = readdirSync(runs).sort();
    expect(after).toHaveLength(2);
    const second = after.find((f) => f !== files[0]) as string;
    // file_version, SessionLog START, then 2 epochs of steps and epoch scalars.
    expect(recordCount(join(runs, second))).toBe(2 + Math.ceil(112 / 8) * 2 + 2);
  });

  it.each([
    [['--warmup', '2'], /--schedule plateau cannot follow --warmup: PyTorch's SequentialLR does not support ReduceLROnPlateau/],
    [['--schedule-interval', 'step'], /--schedule plateau steps once per epoch on --monitor; drop --schedule-interval step/],
    [['--validation-split', '0'], /--monitor valLoss needs validation data, and --validation-split is 0/],
    [['--plateau-factor', '1'], /--plateau-factor.*expected a number in \[0, 1\)/],
    [['--plateau-threshold-mode', 'relative'], /--plateau-threshold-mode.*Allowed choices are rel, abs/],
  ])('refuses %j with plateau, naming the flag', async (extra, message) => {
    const r = await runCli([...base, '--schedule', 'plateau', '--epochs', '1', '--out', join(dir, 'x.safetensors'), ...extra]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });

  it('monitors the training loss without validation data when asked to', async () => {
    const r = await runCli([...base, '--validation-split', '0', '--schedule', 'plateau', '--monitor', 'trainLoss', '--epochs', '2',
      '--out', join(dir, 't.safetensors')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });
});
