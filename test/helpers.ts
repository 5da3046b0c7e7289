// Helpers the test files share: a slice of the bundled digits, Trainers closed after a file's tests,
// the training script run in-process with its output captured, array comparisons, and two noisy classes.

import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll } from 'vitest';
import { main } from '../src/cli/train.js';
import { Trainer, loadMnist, type TrainerOptions } from '../src/main/index.js';
import { Rng } from '../src/shared/rng.js';
import type { SGDOptions } from '../src/shared/sgd.js';
import type { LossSpec } from '../src/shared/losses.js';
import { linearViews, type ModelConfig } from '../src/shared/model.js';
import { createScratch, forward, lossAndBackward, type ShardSums } from '../src/worker/shard.js';

const mnist = loadMnist();

/** n training digits taken evenly across the digit-grouped split, so every digit appears. */
export function mnistSubset(n: number): { x: Float32Array; y: Int32Array } {
  const stride = Math.floor(mnist.train.y.length / n);
  const x = new Float32Array(n * 784);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    x.set(mnist.train.x.subarray(i * stride * 784, (i * stride + 1) * 784), i * 784);
    y[i] = mnist.train.y[i * stride];
  }
  return { x, y };
}

/** A Trainer factory whose Trainers are all closed after the calling file's tests. */
export function trainers(): { make: (o: TrainerOptions) => Trainer; keep: (t: Trainer) => Trainer } {
  const open: Trainer[] = [];
  afterAll(async () => {
    await Promise.all(open.map((t) => t.close()));
  });
  const keep = (t: Trainer): Trainer => (open.push(t), t);
  return { make: (o) => keep(new Trainer(o)), keep };
}

/** Runs the training script's main() in this process with stdout and stderr captured (not a terminal). */
export async function runCli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCommand(main, args);
}

/** Runs a command's main (train, evaluate, predict, tune) in this process, stdout and stderr captured. */
export async function runCommand(
  command: (argv: string[], out: NodeJS.WriteStream) => Promise<number>, args: string[],
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const stream = { write: (s: string) => ((out += s), true), isTTY: false } as unknown as NodeJS.WriteStream;
  const write = process.stderr.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await command(args, stream), out, err };
  } finally {
    process.stderr.write = write;
  }
}

/**
 * Sends `signal` to a training process once its --metrics file holds more than `steps` lines (steps of its
 * first epoch, where the runs that use this have thousands), calling `before` first; resolves with the
 * process's exit code (also when it exits before that).
 */
export function signalAfterSteps(child: ChildProcess, metrics: string, signal: NodeJS.Signals, before = (): void => {}, steps = 20): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(metrics) && readFileSync(metrics, 'utf8').split('\n').length > steps) {
        clearInterval(poll);
        before();
        child.kill(signal);
      }
    }, 5);
    child.on('exit', (code) => {
      clearInterval(poll);
      resolve(code);
    });
    child.on('error', reject);
  });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** True when the two arrays hold the same bytes (so -0 differs from 0, and NaN payloads count). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** SGD settings the double-buffered step is tested in (TS and WebAssembly): each option alone, and combined. */
export const SGD_SETTINGS: [string, Partial<SGDOptions>][] = [
  ['with no option set', {}],
  ['with momentum', { momentum: 0.9 }],
  ['with momentum and dampening', { momentum: 0.9, dampening: 0.5 }],
  ['with weightDecay', { weightDecay: 0.05 }],
  ['with nesterov momentum', { momentum: 0.9, nesterov: true }],
  ['maximizing', { maximize: true }],
  ['with momentum and weightDecay', { momentum: 0.9, weightDecay: 0.01 }],
  ['maximizing with weightDecay', { weightDecay: 0.05, maximize: true }],
  ['maximizing with momentum', { momentum: 0.9, maximize: true }],
  ['with nesterov, weightDecay and maximize', { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.1, maximize: true }],
  ['with dampening, weightDecay and maximize', { momentum: 0.7, dampening: 0.3, weightDecay: 0.02, maximize: true }],
];

/** One shard computed here, without the pool (the TS kernels): the loss sum, the 'mean' divisor and the
 *  gradient *sum* of rows [r0, r1) of x (N, D) with class-index targets y, and their per-row losses. */
export function oneShard(
  model: ModelConfig, loss: LossSpec, params: Float32Array, x: Float32Array, y: Int32Array, r0: number, r1: number,
): ShardSums & { grad: Float32Array; losses: Float32Array } {
  const D = model.layers[0];
  const B = r1 - r0;
  const s = createScratch(model, B);
  s.x.set(x.subarray(r0 * D, r1 * D));
  s.yIndex.set(y.subarray(r0, r1));
  const grad = new Float32Array(params.length);
  forward(s, model, linearViews(params, model.layers), B);
  const sums = lossAndBackward(s, model, linearViews(params, model.layers), linearViews(grad, model.layers), B, loss, true);
  return { ...sums, grad, losses: s.losses.slice(0, B) };
}

/** Two noisy classes over 6 features: small enough to overfit, so the validation loss turns upwards. */
export function noisy(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  const x = new Float32Array(n * 6);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0; d < 6; d++) {
      x[i * 6 + d] = rng.uniform(2) - 1;
      s += x[i * 6 + d];
    }
    y[i] = (s > 0) !== (rng.uniform(1) < 0.3) ? 1 : 0;
  }
  return { x, y };
}
