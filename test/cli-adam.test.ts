// The training script with --optimizer adam and adamw, as a new user runs it: the header shows torch's
// defaults (lr 0.001, AdamW's weight decay 0.01), --resume continues an AdamW run bit for bit (moments,
// AMSGrad's maximum and the step count come back from the checkpoint), and SGD's flags are refused with
// Adam (and Adam's with SGD), naming the flag.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';
import { loadCheckpoint } from '../src/main/index.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-cli-adam-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RUN = ['--layers', '784,8,10', '--workers', '2', '--no-progress', '--batch-size', '128'];

describe('gradpool --optimizer adamw', () => {
  it("trains with torch's AdamW defaults and resumes bit for bit", async () => {
    const whole = join(dir, 'whole.safetensors');
    const r = await runCli([...RUN, '--optimizer', 'adamw', '--amsgrad', '--epochs', '2', '--out', whole]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0]).toMatch(/, cross-entropy, AdamW lr 0\.001 betas 0\.9,0\.999 weight decay 0\.01 amsgrad, batch 128,/);
    const a = await loadCheckpoint(whole);
    const options = JSON.parse(a.metadata['gradpool.options']);
    expect(options).toMatchObject({ optimizer: 'adamw', lr: 0.001, weightDecay: 0.01, amsgrad: true, betas: [0.9, 0.999], eps: 1e-8 });
    expect(options).not.toHaveProperty('momentum');

    const half = join(dir, 'half.safetensors');
    expect((await runCli([...RUN, '--optimizer', 'adamw', '--amsgrad', '--epochs', '1', '--out', half])).code).toBe(0);
    const resumed = await runCli(['--resume', half, '--epochs', '1', '--no-progress']);
    expect(resumed.err).toBe('');
    expect(resumed.out).toContain('resuming after epoch 1');
    const b = await loadCheckpoint(half);
    expect(Buffer.from(b.params.buffer).equals(Buffer.from(a.params.buffer))).toBe(true);
    for (const name of ['optimizer.exp_avg', 'optimizer.exp_avg_sq', 'optimizer.max_exp_avg_sq']) {
      expect(Buffer.from(b.tensors[name].buffer).equals(Buffer.from(a.tensors[name].buffer))).toBe(true);
    }
    expect(b.metadata['gradpool.state']).toBe(a.metadata['gradpool.state']);
  });

  it.each([
    [['--optimizer', 'adam', '--momentum', '0.9'], "gradpool: --momentum is an option of SGD, not of --optimizer adam; Adam's counterpart is --betas's first value\n"],
    [['--optimizer', 'adamw', '--nesterov', '--dampening', '0'], 'gradpool: --dampening, --nesterov are options of SGD, not of --optimizer adamw\n'],
    [['--betas', '0.9,0.99'], 'gradpool: --betas is an option of Adam and AdamW; add --optimizer adam or --optimizer adamw\n'],
    [['--optimizer', 'adam', '--betas', '0.9,1'], "gradpool: option '--betas <b1,b2>' argument '0.9,1' is invalid. expected two numbers in [0, 1) separated by a comma (e.g. 0.9,0.999)\n"],
    [['--optimizer', 'adagrad'], "gradpool: option '--optimizer <name>' argument 'adagrad' is invalid. Allowed choices are sgd, adam, adamw.\n"],
  ])('refuses %j', async (args, message) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.err).toBe(message);
  });
});
