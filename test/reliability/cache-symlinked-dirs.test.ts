import { mkdir, readdir, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { gcCache } from '../../src/cache/gc.js';
import { RepoPaths } from '../../src/cache/layout.js';
import { removeFromCache } from '../../src/cache/remove.js';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { repairCache } from '../../src/repair.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { treeState } from '../support/tree-state.js';
import { testTempDir } from '../support/temp.js';

/**
 * Case 29: a symlink planted where the cache layout has a folder (the blobs or snapshots folder, a
 * snapshot, modelfetch's state folders) is never followed by gc, rm, verify --fix or pull.
 */

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

const HEX_A = 'a'.repeat(64);
const HEX_B = 'b'.repeat(40);

interface Planted {
  base: string;
  cacheDir: string;
  victim: string;
  hub: FixtureHub;
  repo: RepoPaths;
  commit: string;
}

/**
 * A cache holding one pulled revision of x/y, and beside it a victim folder holding files named like
 * blobs and a commit folder (old, so gc would count them as orphans), and a project with config.json.
 */
async function pulledCache(): Promise<Planted> {
  const base = await testTempDir('mf-symdirs-');
  const hub = await startFixtureHub({ repos: [{ repoId: 'x/y', files: [{ path: 'config.json', content: '{"a":1}' }, { path: 'w.bin', size: 64 * 1024, lfs: true }] }] });
  cleanup.push(() => hub.close());
  const cacheDir = join(base, 'cache');
  const result = await pull({ repo: 'x/y', cacheDir, endpoint: hub.endpoint, env: {} });
  const victim = join(base, 'victim');
  await mkdir(join(victim, result.commit), { recursive: true });
  await writeFile(join(victim, HEX_A), 'victim data named like a sha256 blob');
  await writeFile(join(victim, HEX_B), 'victim data named like a git blob');
  await writeFile(join(victim, result.commit, 'config.json'), 'the victim project config');
  await writeFile(join(victim, 'config.json'), 'the victim project config');
  const old = new Date(Date.now() - 7 * 24 * 3600_000);
  for (const name of [HEX_A, HEX_B, 'config.json']) await utimes(join(victim, name), old, old);
  return { base, cacheDir, victim, hub, repo: new RepoPaths(cacheDir, 'model', 'x/y'), commit: result.commit };
}

/** Replaces the folder at `path` (moved away inside the cache's parent, not deleted) with a link to `target`. */
async function plant(path: string, target: string): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await rename(path, `${path}.moved-away`).catch(() => undefined);
  await symlink(target, path);
}

async function outcome(run: Promise<unknown>): Promise<unknown> {
  return run.then(
    () => 'ok',
    (error: unknown) => error,
  );
}

function expectClearFailureOrSuccess(result: unknown): void {
  if (result !== 'ok') expect(isModelfetchError(result), `a ModelfetchError, not ${String(result)}`).toBe(true);
}

describe('symlinked folders in the cache (case 29)', () => {
  it('blobs -> victim: gc --max-size 100G, rm --yes and verify --fix leave the victim alone', async () => {
    for (const command of ['gc', 'rm', 'verify'] as const) {
      const c = await pulledCache();
      await plant(c.repo.blobsDir, c.victim);
      const before = await treeState(c.victim);
      const run =
        command === 'gc'
          ? gcCache({ cacheDir: c.cacheDir, maxSize: 100 * 2 ** 30 })
          : command === 'rm'
            ? removeFromCache({ cacheDir: c.cacheDir, repoId: 'x/y' })
            : repairCache({ cacheDir: c.cacheDir, endpoint: c.hub.endpoint, workers: 1 });
      const result = await outcome(run);
      expectClearFailureOrSuccess(result);
      expect(await treeState(c.victim), `${command} left the victim unchanged`).toEqual(before);
    }
  });

  it('verify reports a symlinked blobs folder as a problem', async () => {
    const c = await pulledCache();
    await plant(c.repo.blobsDir, c.victim);
    const { verifyCache } = await import('../../src/cache/verify.js');
    const report = await verifyCache({ cacheDir: c.cacheDir, workers: 1 });
    expect(report.ok).toBe(false);
    expect(report.problems.some((p) => p.path === c.repo.blobsDir)).toBe(true);
  });

  it('verify reports a symlinked stamps folder as a problem and writes no stamp through it', async () => {
    const c = await pulledCache();
    const stamps = join(c.repo.stateDir, 'stamps');
    await plant(stamps, c.victim);
    const before = await treeState(c.victim);
    const { verifyCache } = await import('../../src/cache/verify.js');
    const report = await verifyCache({ cacheDir: c.cacheDir, workers: 1 });
    expect(report.ok).toBe(false);
    expect(report.problems.filter((p) => p.kind === 'link').map((p) => p.path)).toEqual([stamps]);
    expect(await treeState(c.victim)).toEqual(before);
  });

  it('snapshots -> victim: rm x/y@<commit> leaves the victim alone', async () => {
    const c = await pulledCache();
    await plant(join(c.repo.dir, 'snapshots'), c.victim);
    const before = await treeState(c.victim);
    expectClearFailureOrSuccess(await outcome(removeFromCache({ cacheDir: c.cacheDir, repoId: 'x/y', revision: c.commit })));
    expect(await treeState(c.victim)).toEqual(before);
  });

  it('snapshots/<commit> -> victim project: pull fails with ERR_UNSAFE_PATH naming it, config.json untouched', async () => {
    const c = await pulledCache();
    await plant(c.repo.snapshotDir(c.commit), c.victim);
    const before = await treeState(c.victim);
    const result = await outcome(pull({ repo: 'x/y', cacheDir: c.cacheDir, endpoint: c.hub.endpoint, env: {} }));
    expect(isModelfetchError(result, 'ERR_UNSAFE_PATH'), `ERR_UNSAFE_PATH, got ${String(result)}`).toBe(true);
    expect((result as Error).message).toContain(c.repo.snapshotDir(c.commit));
    expect(await treeState(c.victim)).toEqual(before);
  });

  it('the CLI: pull exits 9 with a sentence naming the link and saying to remove it; ls lists it', async () => {
    const c = await pulledCache();
    const snapshot = c.repo.snapshotDir(c.commit);
    await plant(snapshot, c.victim);
    const run = await runCli(['pull', 'x/y', '--cache-dir', c.cacheDir, '--endpoint', c.hub.endpoint], { TMPDIR: tmpdir() });
    expect(run.code, run.stderr).toBe(9);
    expect(run.stderr).toContain(snapshot);
    expect(run.stderr).toMatch(/remove it/i);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    const ls = await runCli(['ls', '--cache-dir', c.cacheDir], { TMPDIR: tmpdir() });
    expect(ls.stderr).toContain(`link: ${snapshot}`);
  });

  it('used/<commit> and .no_exist/<commit>/<file> -> a missing path outside: pull creates nothing there', async () => {
    const c = await pulledCache();
    const missingUse = join(c.base, 'created-through-used');
    const missingNoExist = join(c.base, 'created-through-no-exist');
    await rm(c.repo.lastUsed(c.commit), { force: true });
    await symlink(missingUse, c.repo.lastUsed(c.commit));
    await mkdir(join(c.repo.dir, '.no_exist', c.commit), { recursive: true });
    await symlink(missingNoExist, c.repo.noExist(c.commit, 'absent.txt'));
    await outcome(pull({ repo: 'x/y', cacheDir: c.cacheDir, endpoint: c.hub.endpoint, env: {} }));
    await outcome(pull({ repo: 'x/y', cacheDir: c.cacheDir, endpoint: c.hub.endpoint, env: {}, files: ['absent.txt'] }));
    expect((await readdir(c.base)).sort()).toEqual(['cache', 'victim']);
  });

  for (const folder of ['stamps', 'partial', 'used', 'in-use', 'locks'] as const) {
    it(`the ${folder} state folder -> victim: pull fails with ERR_UNSAFE_PATH and writes nothing into it`, async () => {
      const c = await pulledCache();
      await rm(join(c.cacheDir, 'models--x--y'), { recursive: true, force: true }); // so the pull downloads again
      await plant(join(c.repo.stateDir, folder), c.victim);
      const before = await treeState(c.victim);
      const result = await outcome(pull({ repo: 'x/y', cacheDir: c.cacheDir, endpoint: c.hub.endpoint, env: {} }));
      expect(isModelfetchError(result, 'ERR_UNSAFE_PATH'), `ERR_UNSAFE_PATH, got ${String(result)}`).toBe(true);
      expect((result as Error).message).toContain(join(c.repo.stateDir, folder));
      expect(await treeState(c.victim)).toEqual(before);
    });
  }

  it('a symlinked cache root is followed (users point ~/.cache/huggingface at a big disk)', async () => {
    const c = await pulledCache();
    const alias = join(c.base, 'alias');
    await symlink(c.cacheDir, alias);
    cleanup.push(() => rm(alias, { force: true }));
    const result = await pull({ repo: 'x/y', cacheDir: alias, endpoint: c.hub.endpoint, env: {} });
    expect(result.cacheHits).toBe(2);
    const report = await repairCache({ cacheDir: alias, endpoint: c.hub.endpoint, workers: 1 });
    expect(report.ok, JSON.stringify(report.problems)).toBe(true);
  });
});
