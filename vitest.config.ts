import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// The two files that replace node:fs with vi.mock (to fail a write half-way, an fsync, a rename) need a
// module graph of their own; every other file shares one (isolate: false), which saves each file from
// importing the library again.
const MOCKS_FS = ['test/checkpoint.test.ts', 'test/cli-hostile.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Files run two at a time (more on a machine of more than 4 CPUs): a third of the suite's time is spent
    // waiting on child processes (the CLI as a user starts it, torchrun, tsc, chromium), which leaves a core
    // idle when files run one by one. On 2 cores: 154 s against 197 s one by one.
    fileParallelism: true,
    maxWorkers: Math.max(2, Math.floor(availableParallelism() / 2)),
    projects: [
      { extends: true, test: { name: 'own-modules', include: MOCKS_FS, isolate: true } },
      { extends: true, test: { name: 'shared-modules', include: ['test/**/*.test.ts'], exclude: MOCKS_FS, isolate: false } },
    ],
  },
});
