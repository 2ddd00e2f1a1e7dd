import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Temporal's worker and native modules need real processes, not threads.
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    include: ['test/**/*.test.ts'],
  },
});
