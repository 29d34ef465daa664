import { mkdir, readFile, readlink, symlink, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { commitTempFile } from '../../src/cache/atomic.js';
import { RepoPaths } from '../../src/cache/layout.js';
import { linkSnapshotFile, writeRef } from '../../src/cache/snapshot.js';
import { auditCache, isClean } from '../support/cache-audit.js';
import { buildCachedRepo, digestOf, fakeCommit } from '../support/cache-builder.js';
import { testTempDir } from '../support/temp.js';

/** Cases 3 and 4 at the cache layer: planted links are never followed or overwritten; copy mode matches link mode. */

const symlinkFailure = vi.hoisted(() => ({ on: false }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  // Stands in for a file system without symlinks (FAT, some Windows setups): the OS call itself fails.
  const patchedSymlink: typeof real.symlink = (target, path, type) =>
    symlinkFailure.on ? Promise.reject(Object.assign(new Error('operation not permitted'), { code: 'EPERM' })) : real.symlink(target, path, type);
  return { ...real, symlink: patchedSymlink, default: { ...real, symlink: patchedSymlink } };
});

async function outsideVictim(): Promise<string> {
  const dir = await testTempDir('mf-victim-');
  const victim = join(dir, 'victim.txt');
  await writeFile(victim, 'do not touch');
  return victim;
}

describe('planted links in the cache', () => {
  it('a symlink planted at a blob path is neither followed nor overwritten by a commit', async () => {
    const root = await testTempDir('mf-plant-');
    const victim = await outsideVictim();
    const repo = new RepoPaths(root, 'model', 'org/name');
    const file = { path: 'w.bin', content: Buffer.from('real weights'), lfs: true };
    const blob = repo.blob(digestOf(file));
    await mkdir(repo.blobsDir, { recursive: true });
    await symlink(victim, blob);
    const temp = join(root, 'w.part');
    await writeFile(temp, file.content);
    await commitTempFile(temp, blob);
    expect(await readFile(victim, 'utf8')).toBe('do not touch');
    expect(await readlink(blob)).toBe(victim);
    // And the independent audit flags it, so a verify pass can remove it.
    expect((await auditCache(root)).nonFileBlobs).toEqual([blob]);
  });

  it('a symlink planted at a snapshot path is replaced, its target untouched (link and copy mode)', async () => {
    for (const mode of ['symlink', 'copy'] as const) {
      const root = await testTempDir('mf-plant-');
      const victim = await outsideVictim();
      const commit = fakeCommit('c');
      const file = { path: 'config.json', content: Buffer.from('{"a":1}') };
      const repo = await buildCachedRepo(root, { repoId: 'org/name', commit, files: [] });
      await mkdir(repo.blobsDir, { recursive: true });
      await writeFile(repo.blob(digestOf(file)), file.content);
      await mkdir(repo.snapshotDir(commit), { recursive: true });
      await symlink(victim, repo.snapshotFile(commit, file.path));
      await linkSnapshotFile(repo, commit, file.path, digestOf(file), mode);
      expect(await readFile(victim, 'utf8')).toBe('do not touch');
      expect((await readFile(repo.snapshotFile(commit, file.path))).equals(file.content), 'same bytes').toBe(true);
      expect(isClean(await auditCache(root))).toBe(true);
    }
  });

  it('a planted ref symlink is replaced, not written through', async () => {
    const root = await testTempDir('mf-plant-');
    const victim = await outsideVictim();
    const repo = new RepoPaths(root, 'model', 'org/name');
    await mkdir(join(repo.dir, 'refs'), { recursive: true });
    await symlink(victim, repo.ref('main'));
    await writeRef(repo, 'main', fakeCommit('x'));
    expect(await readFile(victim, 'utf8')).toBe('do not touch');
    expect((await lstat(repo.ref('main'))).isSymbolicLink()).toBe(false);
  });
});

describe('symlinks unavailable', () => {
  it('falls back to copies that read exactly like the links', async () => {
    const files = [
      { path: 'config.json', content: Buffer.from('{"x":1}') },
      { path: 'sub/dir/w.bin', content: Buffer.alloc(100_000, 7), lfs: true },
    ];
    const commit = fakeCommit('s');
    const linked = await testTempDir('mf-links-');
    await buildCachedRepo(linked, { repoId: 'org/name', commit, files });
    const copied = await testTempDir('mf-copies-');
    symlinkFailure.on = true;
    let modes: string[];
    try {
      const repo = new RepoPaths(copied, 'model', 'org/name');
      await mkdir(repo.blobsDir, { recursive: true });
      modes = [];
      for (const file of files) {
        await writeFile(repo.blob(digestOf(file)), file.content);
        modes.push(await linkSnapshotFile(repo, commit, file.path, digestOf(file)));
      }
    } finally {
      symlinkFailure.on = false;
    }
    expect(modes).toEqual(['copy', 'copy']);
    for (const file of files) {
      const a = new RepoPaths(linked, 'model', 'org/name').snapshotFile(commit, file.path);
      const b = new RepoPaths(copied, 'model', 'org/name').snapshotFile(commit, file.path);
      expect((await lstat(a)).isSymbolicLink()).toBe(true);
      expect((await lstat(b)).isFile()).toBe(true);
      expect((await readFile(b)).equals(await readFile(a)), 'same bytes').toBe(true);
    }
    expect(isClean(await auditCache(copied))).toBe(true);
  });
});
