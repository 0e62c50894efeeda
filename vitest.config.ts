import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/interop/ checks orgsync against other SAML implementations that need Debian packages
    // (xmlsec1, pysaml2): `npm run test:interop` runs it (vitest.interop.config.ts); the fleet tier
    // (HAProxy, PgBouncer, several processes) runs with `npm run test:fleet`. `npm test` runs
    // everything else and needs only Node.js and PostgreSQL.
    exclude: [...configDefaults.exclude, 'test/interop/**', 'test/fleet/**'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    // expect.poll waits for a condition (a page's status message, a delivery) up to this deadline;
    // vitest's 1 s is short for a browser on a loaded 2-core machine.
    expect: { poll: { timeout: 10_000 } },
    hookTimeout: 60_000,
    // Each test file gets its own database, so files may run side by side.
    pool: 'forks',
    maxWorkers: 2,
  },
});
