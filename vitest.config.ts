import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The fleet tier (HAProxy, PgBouncer, several processes) runs on its own: npm run test:fleet.
    exclude: ['test/fleet/**', 'node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each test file gets its own database, so files may run side by side.
    pool: 'forks',
    maxWorkers: 2,
  },
});
