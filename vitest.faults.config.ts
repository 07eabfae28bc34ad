import { defineConfig } from 'vitest/config';

/**
 * `npm run test:faults`: the fault suite (test/faults/), on real processes, a private Redis per
 * scenario and the test Postgres. One file at a time: the scenarios kill and time processes, and
 * the machine's cores are what they measure against.
 */
export default defineConfig({
  test: {
    globalSetup: ['./test/support/global-setup.ts', './test/faults/global-setup.ts'],
    include: ['test/faults/**/*.test.ts'],
    testTimeout: 600_000,
    // Starting three service processes on a busy machine takes minutes.
    hookTimeout: 400_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
  },
});
