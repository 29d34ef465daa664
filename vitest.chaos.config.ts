import { defineConfig } from 'vitest/config';

/** The soak part of `npm run test:chaos`: the 100k-file listing through the mirror. */
export default defineConfig({
  test: {
    include: ['test/reliability/serve-hostile.test.ts'],
    testNamePattern: 'large listings',
    env: { MODELFETCH_BIG_LISTING: '100000' },
    pool: 'forks',
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
});
