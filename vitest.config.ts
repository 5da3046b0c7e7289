import { defineConfig } from 'vitest/config';

// The two files that replace node:fs with vi.mock (to fail a write half-way, an fsync, a rename) need a
// module graph of their own; every other file shares one (isolate: false), which saves each file from
// importing the library again: the suite went from 201 s to 161 s on 2 cores.
const MOCKS_FS = ['test/checkpoint.test.ts', 'test/cli-hostile.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Worker pools inside tests already use both cores; running test files in parallel would only
    // oversubscribe them and make timings noisy.
    fileParallelism: false,
    projects: [
      { extends: true, test: { name: 'own-modules', include: MOCKS_FS, isolate: true } },
      { extends: true, test: { name: 'shared-modules', include: ['test/**/*.test.ts'], exclude: MOCKS_FS, isolate: false } },
    ],
  },
});
