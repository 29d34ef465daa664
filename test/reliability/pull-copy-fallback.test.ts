import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { pull } from '../../src/pull/index.js';
import { auditCache, isClean } from '../support/cache-audit.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

/** Case 4 through `pull`: where the OS refuses symlinks, the snapshot holds copies with the same bytes. */

const symlinkFailure = vi.hoisted(() => ({ on: false, attempts: 0 }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const patched: typeof real.symlink = (target, path, type) => {
    if (!symlinkFailure.on) return real.symlink(target, path, type);
    symlinkFailure.attempts += 1;
    return Promise.reject(Object.assign(new Error('operation not permitted'), { code: 'EPERM' }));
  };
  return { ...real, symlink: patched, default: { ...real, symlink: patched } };
});

let hub: FixtureHub | undefined;
afterEach(async () => hub?.close());

describe('symlinks unavailable (case 4)', () => {
  it('a pull without symlinks gives the same files as one with them', async () => {
    const files = [
      { path: 'config.json', content: '{"x":1}' },
      { path: 'w.safetensors', size: 1536 * 1024 },
      { path: 'deep/er/vocab.txt', content: 'a\nb\n' },
    ];
    hub = await startFixtureHub({ repos: [{ repoId: 'org/copy', files }] });
    const linked = await testTempDir('mf-linked-');
    const copied = await testTempDir('mf-copied-');
    const withLinks = await pull({ repo: 'org/copy', cacheDir: linked, endpoint: hub.endpoint, env: {} });
    symlinkFailure.on = true;
    let withCopies;
    try {
      withCopies = await pull({ repo: 'org/copy', cacheDir: copied, endpoint: hub.endpoint, env: {} });
    } finally {
      symlinkFailure.on = false;
    }
    expect(symlinkFailure.attempts).toBeGreaterThan(0);
    for (const file of files) {
      const a = join(withLinks.path, file.path);
      const b = join(withCopies.path, file.path);
      expect((await lstat(a)).isSymbolicLink()).toBe(true);
      expect((await lstat(b)).isFile()).toBe(true);
      expect((await readFile(b)).equals(await readFile(a)), 'same bytes').toBe(true);
    }
    expect(isClean(await auditCache(copied))).toBe(true);
    // A second pull over the copies is a cache hit, not a re-download.
    hub.resetLogs();
    symlinkFailure.on = true;
    try {
      const again = await pull({ repo: 'org/copy', cacheDir: copied, endpoint: hub.endpoint, env: {} });
      expect(again.downloaded).toBe(0);
    } finally {
      symlinkFailure.on = false;
    }
  });
});
