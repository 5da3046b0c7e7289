// Whether the PyTorch reference is here: Debian's python3-torch under /usr/bin/python3. Without it the
// tests that run PyTorch are skipped, saying so, except under CI (CI=true), where .ci/run installs it:
// there they run and fail, since a missing reference must not pass as a green suite.

import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

export const PYTHON = '/usr/bin/python3';
export const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 }).status === 0;
export const underCi = process.env.CI === 'true';
/** it.skipIf / describe.skipIf's condition for the tests that need torch. */
export const skipWithoutTorch = !hasTorch && !underCi;

/** Call at the top of a test file that needs torch: says so where its tests are skipped. */
export function needsTorch(file: string): void {
  if (skipWithoutTorch) console.warn(`${file}: ${PYTHON} has no torch; the PyTorch tests are skipped (apt-get install python3-torch)`);
}

/** Call first in each test that needs torch: under CI without it, the test fails here, saying why. */
export function requireTorch(): void {
  if (!hasTorch) throw new Error(`CI=true and ${PYTHON} has no torch (import torch failed): .ci/run installs python3-torch; under CI the PyTorch tests fail rather than skip`);
}

/** torchrun's arguments for one machine on a free port. Not --standalone: torch 1.13 binds it to the fixed
 *  port 29400, which another test process on the machine may hold. */
export async function torchrunLocal(): Promise<string[]> {
  const port = await new Promise<number>((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
  return ['--nnodes', '1', '--master_addr', '127.0.0.1', '--master_port', String(port), '--monitor_interval', '0.1'];
}
