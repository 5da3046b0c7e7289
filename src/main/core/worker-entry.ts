// The file each worker thread runs. From dist/ it is the compiled worker. From source (tests, `npm run
// train`) it is the TypeScript worker bundled once per process into one JavaScript file with esbuild
// (which tsx brings): loading tsx into every worker thread instead left each thread's esbuild process
// a zombie and about a dozen tsx cache files open, for the life of the process (1,000 file descriptors
// after 50 Trainers).

import { createHash } from 'node:crypto';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

let bundled: string | undefined;

/** The worker's file: dist/'s JavaScript, or (from source) the bundle of the TypeScript worker. */
export function workerFile(): string {
  const fromSource = import.meta.url.endsWith('.ts');
  const worker = fileURLToPath(new URL(`../../worker/worker.${fromSource ? 'ts' : 'js'}`, import.meta.url));
  return fromSource ? (bundled ??= bundle(worker)) : worker;
}

/** Bundles the worker and what it imports into one ES module in the temporary folder, named by its
 *  content's hash, so that processes running the same source share one file. */
function bundle(worker: string): string {
  const require = createRequire(createRequire(import.meta.url).resolve('tsx'));
  const esbuild = require('esbuild') as typeof import('esbuild');
  const wasm = new URL('../../shared/wasm.ts', import.meta.url).href;
  const result = esbuild.buildSync({
    entryPoints: [worker], bundle: true, format: 'esm', platform: 'node', target: 'node20', write: false,
    sourcemap: 'inline', logLevel: 'silent',
    // The kernels' .wasm files are found beside src/shared/wasm.ts, the one module that uses import.meta.
    define: { 'import.meta.url': JSON.stringify(wasm) },
  });
  const code = result.outputFiles[0].contents;
  const file = join(tmpdir(), `gradpool-worker-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
  if (!existsSync(file)) {
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, code);
    renameSync(tmp, file);
  }
  return file;
}
