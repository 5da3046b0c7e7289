// The type check of `npm test`: tsc over src/, scripts/ and test/ as tsconfig.json sets it (strict, no
// unused names), run as a test file so that it runs beside the others instead of before them all.

import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { expect, it } from 'vitest';

it('finds no type error in src/, scripts/ or test/ (tsc -p tsconfig.json --noEmit)', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit'], { encoding: 'utf8', timeout: 300_000 });
  expect(r.stdout + r.stderr).toBe('');
  expect(r.status).toBe(0);
}, 300_000);
