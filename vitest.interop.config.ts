import { configDefaults, defineConfig } from 'vitest/config';
import main from './vitest.config.ts';

/** The interop tier (`npm run test:interop`): test/interop/ alone, with the main suite's settings. */
export default defineConfig({
  ...main,
  test: { ...main.test, include: ['test/interop/**/*.test.ts'], exclude: configDefaults.exclude },
});
