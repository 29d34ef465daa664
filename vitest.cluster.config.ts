import { defineConfig } from 'vitest/config';

/**
 * `npm run test:cluster`: the network-namespace cluster (root only; CI runs it after `npm test`).
 * Kept out of `npm test` because it needs root and moves a few hundred MiB through rate-limited links.
 */
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    minWorkers: 1,
    globalSetup: ['test/support/temp-guard.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
