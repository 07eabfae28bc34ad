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
          exclude: [...configDefaults.exclude, 'test/domain/**'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
        },
      },
    ],
  },
});
