import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Once per run: a fresh PGlite cluster's image that embedded contexts copy, and dist/ for the
    // tests that start tally as a process (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    // Each file works in its own PostgreSQL schema and Redis key prefix, so files run in parallel.
    pool: 'forks',
    // Tests wait on Redis, PostgreSQL and child processes more than they compute: three files at a
    // time keep this 2-core machine busy (the default, one per core less one, ran them one by one).
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
