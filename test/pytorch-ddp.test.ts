// `gradpool export --pytorch`: the script it writes continues a gradpool run under torchrun with
// DistributedDataParallel (2 processes, gloo) with the same per-step losses and final weights as
// gradpool's own --resume of the same checkpoint (1e-5); its epoch order, validation split and IDX
// reading are gradpool's; exports it cannot write are refused. Needs Debian's python3-torch (.ci/run
// installs it); without it the tests that run Python are skipped, saying so.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { exportMain } from '../src/cli/export.js';
import {
  applyNormalization, fitNormalization, loadCheckpoint, loadIdx, loadMnist, metadataJson, OPTIONS_KEY, RUN_KEY, splitValidation, Trainer,
} from '../src/main/index.js';
import { saveCheckpoint } from '../src/main/checkpoint/file.js';
import { RESERVED_KEYS } from '../src/main/checkpoint/metadata.js';
import { epochOrder } from '../src/main/core/order.js';
import { idx } from './files.js';
import { needsTorch, PYTHON, requireTorch, skipWithoutTorch, torchrunLocal } from './torch.js';
import { maxAbsDiff, runCli, runCommand, sameBits, trainers } from './helpers.js';

const python = PYTHON;
needsTorch('test/pytorch-ddp.test.ts');
/** PyTorch 2.x's Python, when GRADPOOL_TORCH2_PYTHON names one (a venv beside Debian's 1.13): the Adam
 *  continuation then runs with each. Opt-in, for the suite's time; the parity fixtures of both versions
 *  are committed and always tested (test/adam-parity.test.ts). */
const venvPython = process.env.GRADPOOL_TORCH2_PYTHON ?? '';
const hasVenvTorch = venvPython !== '' && spawnSync(venvPython, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 }).status === 0;
if (venvPython !== '' && !hasVenvTorch) throw new Error(`GRADPOOL_TORCH2_PYTHON=${venvPython} cannot import torch`);
const dir = mkdtempSync(join(tmpdir(), 'gradpool-ddp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const { keep, make } = trainers();

/** 38 rows of 4 features (far from normalised) and a class in 0..2: batches of 8 end in one of 6. */
function csv(): string {
  const lines = ['a,b,c,d,label'];
  for (let i = 0; i < 38; i++) {
    const x = [0, 1, 2, 3].map((j) => (3 * Math.sin(1.3 * i + j) + j).toFixed(4));
    lines.push(`${x.join(',')},${(i * 7) % 3}`);
  }
  const path = join(dir, 'train.csv');
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

/** The JSON step lines of a --metrics file. */
function stepLines(path: string): { step: number; loss: number; lr: number; gradNorm: number }[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.type === 'step');
}

/** Imports the exported script in Python, calls its load_data() into x and y, runs `lines`, and parses
 *  the JSON they print. */
function probe(script: string, lines: string[]): unknown {
  const code = [
    'import importlib.util, json',
    `spec = importlib.util.spec_from_file_location("s", ${JSON.stringify(script)})`,
    'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)',
    'x, y = m.load_data()',
    ...lines,
  ].join('\n');
  const r = spawnSync(python, ['-c', code], { encoding: 'utf8', timeout: 60_000 });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout);
}

/**
 * Trains `first` epochs of a run with `flags` in gradpool, exports it, continues it to `total` epochs under
 * torchrun --nproc_per_node 2 (gloo), and compares every step (loss, lr, gradient norm) and the final
 * weights and momentum with gradpool's own --resume of the same checkpoint.
 */
async function continuesAsResume(name: string, flags: string[], first: number, total: number, steps: number[]): Promise<void> {
  const start = join(dir, `${name}-start.safetensors`);
  expect((await runCli([...flags, '--epochs', String(first), '--out', start])).code).toBe(0);
  const script = join(dir, `${name}_ddp.py`);
  const exported = await runCommand(exportMain, [start, '--pytorch', script]);
  expect(exported.err).toBe('');
  expect(exported.out).toBe(`wrote ${script}: continues ${start} under PyTorch DDP to epoch ${first}; run it with: torchrun --redirects 1 --tee 1 --nproc_per_node N ${script}\n`);

  // torchrun is `python3 -m torch.distributed.run`, on a free port (torchrunLocal). Debian's torch 1.13
  // under Python 3.11 cannot map the default "--redirects 0" (enum.Flag no longer lists a zero member),
  // so stdout is redirected and teed (1) instead, as the export's hint says.
  const torchOut = join(dir, `${name}-ddp.safetensors`);
  const r = spawnSync(python, ['-m', 'torch.distributed.run', ...(await torchrunLocal()), '--nproc_per_node', '2', '--redirects', '1', '--tee', '1',
    '--log_dir', join(dir, `${name}-logs`), script, '--epochs', String(total), '--out', torchOut, '--metrics', join(dir, `${name}-ddp.jsonl`)],
  { encoding: 'utf8', timeout: 120_000, cwd: dir });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toContain('continuing');
  expect(r.stdout).toMatch(new RegExp(`step ${steps.at(-1)}: train loss \\d\\.\\d{4} \\(took [\\d.]+ ms\\)`));

  const ours = join(dir, `${name}-gradpool.safetensors`);
  const resumed = await runCli(['--resume', start, '--epochs', String(total - first), '--out', ours, '--metrics', join(dir, `${name}-gradpool.jsonl`), '--workers', '1', '--no-progress']);
  expect(resumed.code, resumed.err).toBe(0);
  const want = stepLines(join(dir, `${name}-gradpool.jsonl`));
  const got = stepLines(join(dir, `${name}-ddp.jsonl`));
  expect(got.map((s) => [s.step, s.lr])).toEqual(want.map((s) => [s.step, s.lr]));
  expect(got.map((s) => s.step)).toEqual(steps);
  const lossDiff = maxAbsDiff(got.map((s) => s.loss), want.map((s) => s.loss));
  const normDiff = maxAbsDiff(got.map((s) => s.gradNorm), want.map((s) => s.gradNorm));
  expect(lossDiff, `per-step losses: max |diff| ${lossDiff}`).toBeLessThan(1e-5);
  expect(normDiff, `gradient norms: max |diff| ${normDiff}`).toBeLessThan(1e-5);

  const a = await loadCheckpoint(ours);
  const b = await loadCheckpoint(torchOut);
  const weightDiff = maxAbsDiff(b.params, a.params);
  const momentumDiff = maxAbsDiff(b.tensors['optimizer.momentum_buffer'], a.tensors['optimizer.momentum_buffer']);
  expect(weightDiff, `final weights: max |diff| ${weightDiff}`).toBeLessThan(1e-5);
  expect(momentumDiff, `momentum buffers: max |diff| ${momentumDiff}`).toBeLessThan(1e-5);
  // gradpool takes the file back as its own checkpoint, to go on from the last step
  const back = keep(await Trainer.load(torchOut, { workers: 1 }));
  expect(back.progress).toEqual({ epoch: total, step: steps.at(-1), batch: 0 });
}

describe('gradpool export --pytorch', () => {
  const common = ['--data', 'csv', '--label-column', 'label', '--layers', '4,6,3', '--activation', 'tanh',
    '--batch-size', '8', '--no-shuffle', '--lr', '0.1', '--momentum', '0.9', '--nesterov', '--weight-decay', '0.01',
    '--class-weight', '1,2,0.5', '--label-smoothing', '0.1', '--workers', '1', '--no-progress'];

  it.skipIf(skipWithoutTorch)('continues a run under torchrun --nproc_per_node 2 (DDP, gloo) as gradpool --resume does, step for step', async () => {
    requireTorch();
    const flags = [...common, '--train', csv(), '--schedule', 'step', '--step-size', '3', '--gamma', '0.5', '--clip-grad-norm', '1'];
    await continuesAsResume('per-step', flags, 1, 2, [6, 7, 8, 9, 10]);
  }, 180_000);

  it.skipIf(skipWithoutTorch)('continues a run whose schedule steps per epoch, without clipping (the 2-norm every step)', async () => {
    requireTorch();
    // StepLR halving the rate every epoch: epochs 2 and 3 run at 0.05 and 0.025 only if the script
    // resumes the scheduler at its saved epoch count and steps it at each epoch's end.
    const flags = [...common, '--train', csv(), '--schedule', 'step', '--step-size', '1', '--gamma', '0.5', '--schedule-interval', 'epoch'];
    await continuesAsResume('per-epoch', flags, 1, 3, [6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    const lrs = stepLines(join(dir, 'per-epoch-ddp.jsonl')).map((s) => Number(s.lr.toPrecision(6)));
    expect(lrs).toEqual([0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.025]);
  }, 180_000);

  // Adam's state (both moments, AMSGrad's maximum, the step count) goes to torch.optim.AdamW and back; the
  // OneCycle schedule cycles betas[0]. Run with each PyTorch on the machine.
  const pythons = [...(skipWithoutTorch ? [] : [python]), ...(hasVenvTorch ? [venvPython] : [])];
  it.each(pythons)('continues an AdamW (AMSGrad, OneCycle, clipping) run under torchrun with %s', async (py) => {
    if (py === python) requireTorch();
    const train = csv();
    const flags = ['--data', 'csv', '--train', train, '--label-column', 'label', '--layers', '4,6,3', '--activation', 'tanh',
      '--batch-size', '8', '--no-shuffle', '--optimizer', 'adamw', '--amsgrad', '--betas', '0.8,0.99', '--lr', '0.01',
      '--weight-decay', '0.1', '--schedule', 'onecycle', '--max-lr', '0.05', '--clip-grad-norm', '1', '--workers', '1', '--no-progress'];
    const tag = py === python ? 'adam-1' : 'adam-2';
    const first = join(dir, `${tag}-epoch1.safetensors`);
    expect((await runCli([...flags, '--epochs', '1', '--out', first])).code).toBe(0);
    // OneCycle spans the run it was made for (one epoch, 5 steps; torch refuses to step past it): for the
    // continuation to have some of its cycle, the checkpoint is made to say the run has 3 epochs (15
    // steps). Both continuations read the same file.
    const saved = await loadCheckpoint(first);
    const options = JSON.parse(saved.metadata[OPTIONS_KEY]);
    options.schedule.totalSteps = 15;
    const run = { ...JSON.parse(saved.metadata[RUN_KEY]), epochs: 3 };
    const meta = Object.fromEntries(Object.entries(saved.metadata).filter(([k]) => !RESERVED_KEYS.includes(k)));
    await saveCheckpoint(first, saved.config, saved.params, { ...meta, [OPTIONS_KEY]: metadataJson(options), [RUN_KEY]: metadataJson(run) }, saved.tensors);
    const script = join(dir, `${tag}.py`);
    expect((await runCommand(exportMain, [first, '--pytorch', script])).code).toBe(0);
    expect(readFileSync(script, 'utf8')).toContain('torch.optim.AdamW(params, lr=0.01, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.1, amsgrad=True, maximize=False)');
    const torchOut = join(dir, `${tag}-ddp.safetensors`);
    const r = spawnSync(py, ['-m', 'torch.distributed.run', ...(await torchrunLocal()), '--nproc_per_node', '2', '--redirects', '1', '--tee', '1',
      '--log_dir', join(dir, `${tag}-logs`), script, '--epochs', '3', '--out', torchOut, '--metrics', join(dir, `${tag}-ddp.jsonl`)],
    { encoding: 'utf8', timeout: 120_000, cwd: dir });
    expect(r.status, r.stderr).toBe(0);

    const ours = join(dir, `${tag}-gradpool.safetensors`);
    const resumed = await runCli(['--resume', first, '--out', ours, '--metrics', join(dir, `${tag}-gradpool.jsonl`), '--workers', '1', '--no-progress']);
    expect(resumed.err).toBe('');
    const want = stepLines(join(dir, `${tag}-gradpool.jsonl`));
    const got = stepLines(join(dir, `${tag}-ddp.jsonl`));
    expect(got.map((s) => [s.step, s.lr])).toEqual(want.map((s) => [s.step, s.lr]));
    expect(got.map((s) => s.step)).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    const lossDiff = maxAbsDiff(got.map((s) => s.loss), want.map((s) => s.loss));
    expect(lossDiff, `per-step losses: max |diff| ${lossDiff}`).toBeLessThan(1e-5);
    const a = await loadCheckpoint(ours);
    const b = await loadCheckpoint(torchOut);
    expect(maxAbsDiff(b.params, a.params), 'final weights').toBeLessThan(1e-5);
    for (const name of ['optimizer.exp_avg', 'optimizer.exp_avg_sq', 'optimizer.max_exp_avg_sq']) {
      expect(b.tensors[name]?.length, name).toBe(a.params.length);
      expect(maxAbsDiff(b.tensors[name], a.tensors[name]), name).toBeLessThan(1e-5);
    }
    expect(JSON.parse(b.metadata['gradpool.state'])).toMatchObject({ adamStep: 15, step: 15, epoch: 3 });
    const back = keep(await Trainer.load(torchOut, { workers: 1 }));
    expect(back.progress).toEqual({ epoch: 3, step: 15, batch: 0 });
  }, 180_000);

  it.skipIf(skipWithoutTorch)("visits rows in gradpool's shuffled order, holds out its validation rows and reads IDX files as gradpool does", async () => {
    requireTorch();
    // IDX: 30 images of 2x3 float32 values (gzipped) and their labels, standardised by the recorded statistics.
    const images = join(dir, 'images.idx.gz');
    const labels = join(dir, 'labels.idx');
    writeFileSync(images, gzipSync(idx(0x0d, [30, 2, 3], Array.from({ length: 180 }, (_, i) => 100 * Math.sin(i * 0.37) + 7.3))));
    writeFileSync(labels, idx(0x08, [30], Array.from({ length: 30 }, (_, i) => i % 4)));
    const loaded = await loadIdx(images, labels);
    const split = splitValidation(loaded, 0.2, 7);
    const n = fitNormalization(split.train, 'standardize');
    const t = make({ layers: [6, 4], workers: 1, seed: 7, preprocessing: { normalize: n } });
    const ckpt = join(dir, 'idx.safetensors');
    await t.save(ckpt, { [RUN_KEY]: metadataJson({ data: 'idx', trainImages: images, trainLabels: labels, validationSplit: 0.2, seed: 7, epochs: 3 }) });
    const script = join(dir, 'idx_ddp.py');
    expect((await runCommand(exportMain, [ckpt, '--pytorch', script])).code).toBe(0);
    const got = probe(script, ['m.SHUFFLE = True', 'print(json.dumps({"x": x.reshape(-1).tolist(), "y": y.tolist(), "order": m.epoch_order(37, 5).tolist()}))']) as
      { x: number[]; y: number[]; order: number[] };
    applyNormalization(split.train, n);
    expect(got.x).toEqual(Array.from(split.train.x));
    expect(got.y).toEqual(Array.from(split.train.y));
    const order = new Int32Array(37);
    epochOrder(order, 7, 5);
    expect(got.order).toEqual(Array.from(order));
  }, 60_000);

  it.skipIf(skipWithoutTorch)('writes the bundled digits beside the script as IDX files, which the script reads as gradpool splits them', async () => {
    requireTorch();
    const model = join(dir, 'digits.safetensors');
    expect((await runCli(['--layers', '784,4,10', '--epochs', '1', '--workers', '1', '--no-progress', '--out', model])).code).toBe(0);
    const script = join(dir, 'digits_ddp.py');
    const r = await runCommand(exportMain, [model, '--pytorch', script]);
    expect(r.err).toBe('');
    const images = join(dir, 'digits_ddp-mnist-train-images.idx');
    const labels = join(dir, 'digits_ddp-mnist-train-labels.idx');
    expect(r.out).toContain(`wrote ${images} and ${labels}: the bundled MNIST digits' training split, as IDX files the script reads\n`);
    // The files hold the training split, read back by gradpool's own IDX loader.
    const { train } = loadMnist();
    const read = await loadIdx(images, labels);
    expect(read.rows).toBe(8004);
    expect(sameBits(read.x, train.x)).toBe(true);
    expect(Array.from(read.y)).toEqual(Array.from(train.y));
    // The script holds out the run's validation rows (--validation-split 0.1, seed 0) as gradpool does.
    const got = probe(script, ['print(json.dumps({"rows": x.shape[0], "x0": x[0].tolist(), "xs": float(x.double().sum()), "y": y.tolist()}))']) as
      { rows: number; x0: number[]; xs: number; y: number[] };
    const split = splitValidation(train, 0.1, 0).train;
    expect(got.rows).toBe(split.rows);
    expect(got.y).toEqual(Array.from(split.y));
    expect(got.x0).toEqual(Array.from(split.x.subarray(0, 784)));
    let sum = 0;
    for (const v of split.x) sum += v;
    expect(Math.abs(got.xs - sum) / sum).toBeLessThan(1e-9);
  }, 120_000);

  it('refuses a checkpoint without a run, and a run whose data file is gone', async () => {
    const t = make({ layers: [4, 3], workers: 1 });
    const bare = join(dir, 'bare.safetensors');
    await t.save(bare);
    const b = await runCommand(exportMain, [bare, '--pytorch', join(dir, 'x.py')]);
    expect(b.err).toMatch(/^gradpool export: --pytorch: .*bare\.safetensors does not record its training run \(it was not written by the training script\)/);
    const gone = join(dir, 'gone.safetensors');
    await t.save(gone, { [RUN_KEY]: metadataJson({ data: 'csv', train: join(dir, 'nope.csv'), labelColumn: 'y', epochs: 2 }) });
    const c = await runCommand(exportMain, [gone, '--pytorch', join(dir, 'x.py')]);
    expect(c.err).toMatch(/^gradpool export: --pytorch: the run's --train .*nope\.csv is not there/);
    expect([b.code, c.code]).toEqual([2, 2]);
  });
});
