import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // builds dist/ once when lib/ is newer: the CLI tests spawn `node dist/cli/main.js`
    globalSetup: ['test/global_setup.ts'],
    // Native ops run on the addon's own thread pool; 2 vitest workers keep a 2-core machine busy
    // without oversubscribing it too much.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
