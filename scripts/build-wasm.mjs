#!/usr/bin/env node
// Builds the WebAssembly kernels (`npm run build:wasm`): each AssemblyScript config in wasm/ compiles to
// a .wasm file in src/shared/, where the TypeScript sources load it; when dist/ exists (after `npm run
// build`), the files are copied beside the compiled JavaScript too, which loads them from there.

import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const CONFIGS = [
  ['wasm/asconfig.json', 'kernels.wasm'],
  ['wasm/asconfig.fma.json', 'kernels-fma.wasm'], // the same kernels with relaxed SIMD's fused multiply-add
  ['wasm/asconfig.step.json', 'step.wasm'],
];

const asc = join(dirname(createRequire(import.meta.url).resolve('assemblyscript/package.json')), 'bin', 'asc.js');
// As make does: a kernel file newer than every source in wasm/, this script and the compiler is not
// compiled again (the test suite builds the package a second time; a fresh clone has no .wasm yet).
const newest = Math.max(
  ...readdirSync(join(root, 'wasm')).map((f) => statSync(join(root, 'wasm', f)).mtimeMs),
  statSync(fileURLToPath(import.meta.url)).mtimeMs,
  statSync(asc).mtimeMs,
);
const upToDate = (file) => existsSync(file) && statSync(file).mtimeMs > newest;
for (const [config, file] of CONFIGS) {
  if (!upToDate(join(root, 'src/shared', file))) execFileSync(process.execPath, [asc, '--config', config], { cwd: root, stdio: 'inherit' });
}
if (existsSync(join(root, 'dist'))) {
  mkdirSync(join(root, 'dist/src/shared'), { recursive: true });
  for (const [, file] of CONFIGS) copyFileSync(join(root, 'src/shared', file), join(root, 'dist/src/shared', file));
}
