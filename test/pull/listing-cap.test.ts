import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { listTree } from '../support/cache-audit.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';

/** Case 34: a listing with more files than the configured maximum is refused while its pages stream in. */

describe('the maximum number of files per repo (case 34)', () => {
  let hub: FixtureHub;
  let cacheDir: string;
  const files = Array.from({ length: 9 }, (_, i) => ({ path: `d${i % 3}/f${i}.json`, content: `{"i":${i}}` }));

  beforeAll(async () => {
    // 2 entries per page: 9 files and 3 folders make 6 pages.
    hub = await startFixtureHub({ repos: [{ repoId: 'org/many', files }], pageSize: 2 });
    cacheDir = await mkdtemp(join(tmpdir(), 'mf-cap-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  const treePages = (): number => hub.requests().filter((r) => r.url.startsWith('/api/models/org/many/tree/')).length;

  it('refuses a listing over the cap before reading all its pages, and writes nothing', async () => {
    hub.resetLogs();
    const before = await listTree(cacheDir);
    const error: unknown = await pull({ repo: 'org/many', cacheDir, endpoint: hub.endpoint, env: {}, maxFiles: 3 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isModelfetchError(error, 'ERR_USAGE'), `refused, got ${String(error)}`).toBe(true);
    expect((error as Error).message).toMatch(/more than 3 files/);
    expect((error as { hint?: string }).hint).toContain('MODELFETCH_MAX_FILES');
    expect(treePages()).toBeLessThan(6);
    expect(await listTree(cacheDir)).toEqual(before);
  });

  it('MODELFETCH_MAX_FILES sets it from the environment; the CLI says so in a sentence with exit 2', async () => {
    const run = await runCli(['pull', 'org/many', '--cache-dir', cacheDir, '--endpoint', hub.endpoint], { MODELFETCH_MAX_FILES: '4', TMPDIR: tmpdir() });
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toMatch(/more than 4 files/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('a listing of exactly the cap is pulled', async () => {
    const result = await pull({ repo: 'org/many', cacheDir, endpoint: hub.endpoint, env: { MODELFETCH_MAX_FILES: '9' } });
    expect(result.files).toBe(9);
  });

  it('refuses a value that is not a positive integer', async () => {
    const error: unknown = await pull({ repo: 'org/many', cacheDir, endpoint: hub.endpoint, env: { MODELFETCH_MAX_FILES: 'lots' } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isModelfetchError(error, 'ERR_USAGE'), String(error)).toBe(true);
  });
});
