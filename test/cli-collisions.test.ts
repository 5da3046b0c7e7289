// No file a command writes is a file it reads or another file it writes: the reproductions run
// as a user types them (a child process), then the ways one file goes by two names (a symbolic link, a
// `..`, a hard link, a linked folder for a file not written yet), each refused with exit 2 before any
// work, naming both flags and the path, the input left byte for byte as it was.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, runCommand } from './helpers.js';
import { exportMain } from '../src/cli/export.js';
import { plotMain } from '../src/cli/plot.js';
import { predictMain } from '../src/cli/predict.js';

const dir = mkdtempSync(join(tmpdir(), 'gradpool-collisions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const IRIS = 'examples/iris/iris-train.csv';
const model = join(dir, 'iris.safetensors');
const train = ['--data', 'csv', '--label-column', 'species', '--layers', '4,16,3', '--epochs', '2', '--no-progress'];

/** `gradpool <args>` in a child process, from source, as `npm run` runs it. */
function gradpool(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gradpool.ts', ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** A copy of the iris training file at `name` in the test folder, and its bytes. */
function copyOfIris(name: string): { path: string; bytes: Buffer } {
  const path = join(dir, name);
  copyFileSync(IRIS, path);
  return { path, bytes: readFileSync(path) };
}

beforeAll(async () => {
  const r = await runCli([...train, '--train', IRIS, '--out', model]);
  expect(r.code, r.err).toBe(0);
});

describe("the issue's reproductions, in a child process", () => {
  it('refuses the training CSV as --out, and leaves it as it was', () => {
    const v = copyOfIris('v.csv');
    const r = gradpool([...train, '--train', v.path, '--out', v.path]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`gradpool: --out and --train name the same file (${v.path}): --out would overwrite the input --train reads; give --out another path\n`);
    expect(r.stdout).toBe('');
    expect(readFileSync(v.path).equals(v.bytes)).toBe(true);
  });

  it('refuses --plot naming the --out file, writing neither', () => {
    const m = join(dir, 'm.safetensors');
    const r = gradpool([...train, '--train', IRIS, '--out', m, '--plot', m]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`gradpool: --plot and --out name the same file (${m}): one output would overwrite the other; give --plot another path\n`);
    expect(existsSync(m)).toBe(false);
  });

  it('refuses the training CSV as --metrics, appending nothing to it', () => {
    const v2 = copyOfIris('v2.csv');
    const r = gradpool([...train, '--train', v2.path, '--metrics', v2.path, '--out', join(dir, 'unused.safetensors')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^gradpool: --metrics and --train name the same file \(.*v2\.csv\)/);
    expect(readFileSync(v2.path).equals(v2.bytes)).toBe(true);
    expect(existsSync(join(dir, 'unused.safetensors'))).toBe(false);
  });

  it("refuses predict's --out naming its --input, leaving the input as it was", () => {
    const t = copyOfIris('t.csv');
    const r = gradpool(['predict', model, '--input', t.path, '--out', t.path]);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`gradpool predict: --out and --input name the same file (${t.path}): --out would overwrite the input --input reads; give --out another path\n`);
    expect(readFileSync(t.path).equals(t.bytes)).toBe(true);
  });
});

describe('one file by two names', () => {
  it('refuses --out through a symbolic link to the training file', async () => {
    const v = copyOfIris('linked.csv');
    const link = join(dir, 'link-to-data.csv');
    symlinkSync(v.path, link);
    const r = await runCli([...train, '--train', v.path, '--out', link]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`gradpool: --out and --train name the same file (${link}, and ${v.path}): --out would overwrite the input --train reads; give --out another path\n`);
    expect(readFileSync(v.path).equals(v.bytes)).toBe(true);
  });

  it('refuses --out through a `..` path to the training file', async () => {
    const v = copyOfIris('dotted.csv');
    mkdirSync(join(dir, 'sub'), { recursive: true });
    const dotted = `${dir}/sub/../dotted.csv`;
    const r = await runCli([...train, '--train', v.path, '--out', dotted]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`gradpool: --out and --train name the same file (${dotted}, and ${v.path}): --out would overwrite the input --train reads; give --out another path\n`);
    expect(readFileSync(v.path).equals(v.bytes)).toBe(true);
  });

  it('refuses --out that is a hard link to the --test file', async () => {
    const v = copyOfIris('hard.csv');
    const hard = join(dir, 'hard-link.csv');
    linkSync(v.path, hard);
    const r = await runCli([...train, '--train', IRIS, '--test', v.path, '--out', hard]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool: --out and --test name the same file/);
    expect(readFileSync(v.path).equals(v.bytes)).toBe(true);
  });

  it('refuses two outputs not written yet, one through a linked folder, and writes neither', async () => {
    const real = join(dir, 'real-folder');
    mkdirSync(real);
    const alias = join(dir, 'folder-link');
    symlinkSync(real, alias);
    const r = await runCli([...train, '--train', IRIS, '--out', join(real, 'run.safetensors'), '--save-best', join(alias, 'run.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool: --save-best and --out name the same file .*one output would overwrite the other/);
    expect(existsSync(join(real, 'run.safetensors'))).toBe(false);
  });

  it('refuses --init as --out, but lets --resume go on saving to its own file', async () => {
    const init = join(dir, 'init.safetensors');
    copyFileSync(model, init);
    const bytes = readFileSync(init);
    const r = await runCli([...train, '--train', IRIS, '--init', init, '--out', init]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool: --out and --init name the same file/);
    expect(readFileSync(init).equals(bytes)).toBe(true);
    const again = await runCli(['--resume', init, '--out', init, '--epochs', '1']);
    expect(again.err).toBe('');
    expect(again.code).toBe(0);
    expect(readFileSync(init).equals(bytes)).toBe(false); // it trained one more epoch and saved it there
  });

  it('refuses a resumed run whose --save-best is the file it resumes and saves to', async () => {
    const best = join(dir, 'best.safetensors');
    const first = await runCli([...train, '--train', IRIS, '--out', join(dir, 'last.safetensors'), '--save-best', best]);
    expect(first.code, first.err).toBe(0);
    const bytes = readFileSync(best);
    const r = await runCli(['--resume', best, '--epochs', '1']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool: --save-best and --out name the same file .*best\.safetensors/);
    expect(readFileSync(best).equals(bytes)).toBe(true);
  });
});

describe('the other commands', () => {
  it("refuses predict's --out naming the model", async () => {
    const bytes = readFileSync(model);
    const r = await runCommand(predictMain, [model, '--input', IRIS, '--out', model]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool predict: --out and <model> name the same file/);
    expect(readFileSync(model).equals(bytes)).toBe(true);
  });

  it("refuses plot's --out naming its metrics file", async () => {
    const metrics = join(dir, 'metrics.jsonl');
    writeFileSync(metrics, '{"type":"epoch","epoch":1,"trainLoss":1,"trainAccuracy":0.5,"lr":0.1}\n');
    const bytes = readFileSync(metrics);
    const r = await runCommand(plotMain, [metrics, '--out', metrics]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool plot: --out and <metrics> name the same file/);
    expect(readFileSync(metrics).equals(bytes)).toBe(true);
  });

  it("refuses export's --onnx naming the checkpoint, --pytorch naming --onnx, and either naming the run's data", async () => {
    const bytes = readFileSync(model);
    const onnx = await runCommand(exportMain, [model, '--onnx', model]);
    expect(onnx.code).toBe(2);
    expect(onnx.err).toMatch(/^gradpool export: --onnx and <checkpoint> name the same file/);
    expect(readFileSync(model).equals(bytes)).toBe(true);
    const both = await runCommand(exportMain, [model, '--onnx', join(dir, 'x.out'), '--pytorch', join(dir, '.', 'x.out')]);
    expect(both.code).toBe(2);
    expect(both.err).toMatch(/^gradpool export: --pytorch and --onnx name the same file/);
    const data = copyOfIris('exported-run.csv');
    const run = join(dir, 'exported-run.safetensors');
    expect((await runCli([...train, '--train', data.path, '--out', run])).code).toBe(0);
    const script = await runCommand(exportMain, [run, '--pytorch', data.path]);
    expect(script.code).toBe(2);
    expect(script.err).toMatch(new RegExp(`^gradpool export: --pytorch and --train \\(recorded in ${run.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\) name the same file`));
    expect(readFileSync(data.path).equals(data.bytes)).toBe(true);
  });

  it('refuses export --pytorch whose digits IDX files, written beside the script, would replace the checkpoint', async () => {
    // A run on the bundled digits: the script's data are written as <script>-mnist-train-{images,labels}.idx.
    const run = join(dir, 'digits-mnist-train-images.idx');
    expect((await runCli(['--layers', '784,4,10', '--epochs', '1', '--no-progress', '--out', run])).code).toBe(0);
    const bytes = readFileSync(run);
    const r = await runCommand(exportMain, [run, '--pytorch', join(dir, 'digits.py')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^gradpool export: --pytorch's digits images and <checkpoint> name the same file/);
    expect(readFileSync(run).equals(bytes)).toBe(true);
    expect(existsSync(join(dir, 'digits.py'))).toBe(false);
  });
});
