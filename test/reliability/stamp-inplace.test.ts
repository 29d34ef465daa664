import { lstat, mkdtemp, open, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';

/** Case 33: a blob rewritten in place with its size kept and its mtime restored is not taken as verified. */

describe('a blob edited in place (case 33)', () => {
  let hub: FixtureHub;
  let cacheDir: string;

  beforeAll(async () => {
    hub = await startFixtureHub({ repos: [{ repoId: 'org/weights', files: [{ path: 'model.safetensors', size: 256 * 1024, lfs: true }] }] });
    cacheDir = await mkdtemp(join(tmpdir(), 'mf-stamp-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('pull --check fails after the bytes change under a restored mtime (utimes, as touch -r does)', async () => {
    const first = await pull({ repo: 'org/weights', cacheDir, endpoint: hub.endpoint, env: {} });
    const reference = `org/weights@${first.commit}`;
    const repo = new RepoPaths(cacheDir, 'model', 'org/weights');
    const blob = repo.blob({ algorithm: 'sha256', hex: hub.file('org/weights', 'model.safetensors').sha256 });
    // Whole seconds, so utimes can restore the time exactly (Date and float seconds lose nanoseconds).
    const when = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
    await utimes(blob, when, when);
    // Untouched, the check passes (hashed once more for the new mtime, then from the stamp alone).
    await expect(pull({ repo: reference, cacheDir, env: {}, check: true })).resolves.toMatchObject({ cacheHits: 1 });
    await expect(pull({ repo: reference, cacheDir, env: {}, check: true })).resolves.toMatchObject({ cacheHits: 1 });

    const before = await lstat(blob);
    const handle = await open(blob, 'r+');
    try {
      await handle.write(Buffer.from('corrupted in place'), 0, 18, 1000);
    } finally {
      await handle.close();
    }
    await utimes(blob, when, when);
    const after = await lstat(blob);
    expect([after.size, after.mtimeMs, after.ino]).toEqual([before.size, before.mtimeMs, before.ino]);

    const error: unknown = await pull({ repo: reference, cacheDir, env: {}, check: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isModelfetchError(error, 'ERR_INCOMPLETE'), `pull --check must fail, got ${String(error)}`).toBe(true);
  });
});
