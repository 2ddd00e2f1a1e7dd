import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Temporal's worker and native modules need real processes, not threads.
    pool: 'forks',
    globalSetup: ['test/support/global-setup.ts'],
    // Backstops only: a test's own waits carry deadlines that name what never happened. End-to-end
    // tests start processes and servers and wait minutes in sum on a loaded 2-core CI machine.
    testTimeout: 600_000,
    hookTimeout: 300_000,
    include: ['test/**/*.test.ts'],
  },
});
