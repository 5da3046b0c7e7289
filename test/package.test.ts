// gradpool as another program uses it: built to dist/, imported by its package name from plain
// JavaScript (the README's example, run as a file), and run through its `gradpool` bin.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = resolve('.');
const dir = mkdtempSync(join(tmpdir(), 'gradpool-pkg-'));

beforeAll(() => {
  // The package's own build: TypeScript to dist/ and the WebAssembly kernels beside it.
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('package', () => {
  it("shows in the README exactly the example that runs here", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const example = readFileSync(join(root, 'examples/quickstart.mjs'), 'utf8');
    expect(readme).toContain('```js\n' + example + '```');
  });

  it("runs the README's example with `import { Trainer } from 'gradpool'` in plain Node, no loader", () => {
    // The example sits inside the package, so 'gradpool' resolves by name (package self-reference) as
    // it does from a user's node_modules; cwd is a scratch folder for the checkpoint it saves.
    const r = spawnSync(process.execPath, [join(root, 'examples/quickstart.mjs')], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^epoch 1\/5: train loss \d\.\d{4}, train accuracy \d+\.\d\d%, validation loss .*\nepoch 2\/5: /);
    expect(r.stdout).toMatch(/\ntest accuracy \d+\.\d\d%\nthe first test digit is a 0 ; predicted \d\n/);
    const last = JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
    expect(last.epoch).toBeLessThanOrEqual(5);
    expect(last.valAccuracy).toBeGreaterThan(0.9);
  });

  it("type-checks the README's example as strict TypeScript against the shipped declarations", () => {
    // Beside the example, so that 'gradpool' resolves to this package by name, as in a user's project.
    // TypeScript's own lib files are not checked again (--skipDefaultLibCheck); the shipped declarations and
    // @types/node are.
    const file = join(root, 'examples', `.quickstart-check-${process.pid}.mts`);
    writeFileSync(file, readFileSync(join(root, 'examples/quickstart.mjs'), 'utf8'));
    try {
      const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext',
        '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--skipDefaultLibCheck', file], { cwd: root, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('installs a gradpool bin that trains, or tunes with `gradpool tune`, from dist', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const r = spawnSync(process.execPath, [join(root, pkg.bin.gradpool), '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: gradpool \[options\]/);
    const t = spawnSync(process.execPath, [join(root, pkg.bin.gradpool), 'tune', '--help'], { encoding: 'utf8' });
    expect(t.status).toBe(0);
    expect(t.stdout).toMatch(/^Usage: gradpool tune \[options\]/);
  });

  it('compiles a kernel file again only when it is older than its sources, as make does', () => {
    const wasm = join(root, 'src/shared/step.wasm');
    const build = (): void => void execFileSync(process.execPath, [join(root, 'scripts/build-wasm.mjs')], { cwd: root, stdio: 'ignore' });
    const bytes = readFileSync(wasm);
    const built = statSync(wasm).mtimeMs;
    build();
    expect(statSync(wasm).mtimeMs, 'an up-to-date step.wasm is left alone').toBe(built);
    utimesSync(wasm, 0, 0); // older than every source in wasm/: as after a checkout that changed them
    build();
    expect(statSync(wasm).mtimeMs, 'a stale step.wasm is compiled again').toBeGreaterThan(built - 1);
    expect(readFileSync(wasm).equals(bytes)).toBe(true);
  });

  it('ships type declarations for the Trainer', () => {
    const dts = readFileSync(join(root, 'dist/src/main/index.d.ts'), 'utf8');
    expect(dts).toMatch(/export \{ Trainer, type FitOptions/);
    expect(readFileSync(join(root, 'dist/src/main/options/options.d.ts'), 'utf8')).toMatch(/layers: number\[\];/);
  });
});
