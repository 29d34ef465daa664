import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['test/reliability/chaos/**', 'node_modules/**', 'dist/**'],
    pool: 'forks',
    // The run works in its own temp folder, removed afterwards; it fails if mf-* entries are left behind.
    globalSetup: ['test/support/temp-guard.ts', 'test/support/interop-notice.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
