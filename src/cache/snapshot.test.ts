import { lstat, readFile, readlink, realpath } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { buildCachedRepo, digestOf, fakeCommit } from '../../test/support/cache-builder.js';
import { markNoExist, readRef } from './snapshot.js';
import { testTempDir } from '../../test/support/temp.js';

describe('snapshot entries', () => {
  const files = [
    { path: 'config.json', content: Buffer.from('{"a":1}') },
    { path: 'weights/model.safetensors', content: Buffer.from('weights'), lfs: true },
  ];

  it('links snapshot files to blobs with relative symlinks and writes refs', async () => {
    const root = await testTempDir('mf-snap-');
    const commit = fakeCommit('c1');
    const repo = await buildCachedRepo(root, { repoId: 'org/m', commit, files });
    const nested = repo.snapshotFile(commit, 'weights/model.safetensors');
    expect((await lstat(nested)).isSymbolicLink()).toBe(true);
    expect(await readlink(nested)).toBe(`../../../blobs/${digestOf(files[1]!).hex}`);
    expect(await realpath(nested)).toBe(await realpath(repo.blob(digestOf(files[1]!))));
    expect(await readFile(repo.snapshotFile(commit, 'config.json'), 'utf8')).toBe('{"a":1}');
    expect(await readRef(repo, 'main')).toBe(commit);
    await markNoExist(repo, commit, 'missing/file.txt');
    expect((await lstat(repo.noExist(commit, 'missing/file.txt'))).isFile()).toBe(true);
  });

  it('copies blobs into the snapshot where links are not wanted, with the same content', async () => {
    const root = await testTempDir('mf-snap-');
    const commit = fakeCommit('c2');
    const repo = await buildCachedRepo(root, { repoId: 'org/m', commit, files, mode: 'copy' });
    const nested = repo.snapshotFile(commit, 'weights/model.safetensors');
    expect((await lstat(nested)).isSymbolicLink()).toBe(false);
    expect(await readFile(nested, 'utf8')).toBe('weights');
  });
});
