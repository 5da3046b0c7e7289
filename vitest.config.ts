import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Worker pools inside tests already use both cores; running test files in parallel would only
    // oversubscribe them and make timings noisy.
    fileParallelism: false,
  },
});
