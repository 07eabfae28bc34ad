import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    maxWorkers: 2,
    projects: [
      {
        // The pure rules of src/domain/: no Redis, no Postgres, no global setup.
        test: { name: 'domain', include: ['test/domain/**/*.test.ts'] },
      },
      {
        test: {
          name: 'service',
          globalSetup: ['./test/support/global-setup.ts'],
          include: ['test/**/*.test.ts'],
          // The fault suite kills processes and stops Redis for 45 s: `npm run test:faults`, on its own.
          exclude: [...configDefaults.exclude, 'test/domain/**', 'test/faults/**'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
        },
      },
    ],
  },
});
