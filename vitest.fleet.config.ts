import { defineConfig } from 'vitest/config';

// `npm run test:fleet`: orgsync processes behind HAProxy on PostgreSQL through PgBouncer (Debian
// packages, see .ci/apt-packages); needs DATABASE_URL.
export default defineConfig({
  test: {
    include: ['test/fleet/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: 1,
  },
});
