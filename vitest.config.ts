import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['test/reliability/chaos/**', 'test/cluster/**', 'node_modules/**', 'dist/**'],
    pool: 'forks',
    // Two test files at a time: most tests wait on sockets, child processes and disks, so on a 2-core
    // machine two workers finish the suite in about 450 s instead of about 660 s with the default one.
    maxWorkers: 2,
    minWorkers: 1,
    // The run works in its own temp folder, removed afterwards; it fails if mf-* entries are left behind.
    globalSetup: ['test/support/temp-guard.ts', 'test/support/interop-notice.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
