import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCachedRepo, fakeCommit } from '../../test/support/cache-builder.js';
import { testTempDir } from '../../test/support/temp.js';
import { touchRevision } from '../cache/usage.js';
import { CacheView } from './cache-view.js';

describe('CacheView.listRepos', () => {
  it('lists each repo with its blob bytes, commits, refs and recorded last use', async () => {
    const root = await testTempDir('mf-view-');
    const c1 = fakeCommit('one');
    const c2 = fakeCommit('two');
    const weights = { path: 'w.bin', content: Buffer.alloc(3000, 1), lfs: true };
    await buildCachedRepo(root, { repoId: 'org/a', commit: c1, refs: ['v1'], files: [weights] });
    const a = await buildCachedRepo(root, { repoId: 'org/a', commit: c2, refs: ['main'], files: [weights, { path: 'c.json', content: Buffer.from('{}') }] });
    await buildCachedRepo(root, { repoId: 'org/d', repoType: 'dataset', commit: c1, files: [{ path: 'x.csv', content: Buffer.from('a,b\n') }] });
    await touchRevision(a, c1, { now: 1_700_000_000_000 });

    const repos = await new CacheView(root).listRepos();
    expect(repos.map((r) => `${r.repoType}:${r.repoId}`)).toEqual(['dataset:org/d', 'model:org/a']);
    const model = repos.find((r) => r.repoId === 'org/a')!;
    expect(model.size).toBe(3000 + 2);
    expect([...model.commits].sort()).toEqual([c1, c2].sort());
    expect(model.refs).toEqual({ main: c2, v1: c1 });
    expect(model.lastUsed).toBe(1_700_000_000_000);
    expect(repos.find((r) => r.repoId === 'org/d')!.lastUsed).toBeUndefined();
  });

  it('never reads through a linked repo folder or a linked blobs folder', async () => {
    const root = await testTempDir('mf-view-');
    const elsewhere = await testTempDir('mf-view-outside-');
    await buildCachedRepo(root, { repoId: 'org/real', commit: fakeCommit('r'), files: [{ path: 'a.txt', content: Buffer.from('a') }] });
    // A whole repo planted as a link to a folder outside the cache.
    await buildCachedRepo(elsewhere, { repoId: 'org/planted', commit: fakeCommit('p'), files: [{ path: 'secret.bin', content: Buffer.alloc(5000, 9), lfs: true }] });
    await symlink(join(elsewhere, 'models--org--planted'), join(root, 'models--org--planted'));
    // A repo whose blobs/ is a link to a folder of other files.
    const linked = await buildCachedRepo(root, { repoId: 'org/linked', commit: fakeCommit('l'), files: [] });
    await mkdir(join(elsewhere, 'big'));
    await writeFile(join(elsewhere, 'big', 'a'.repeat(64)), Buffer.alloc(7000));
    await rm(linked.blobsDir, { recursive: true });
    await symlink(join(elsewhere, 'big'), linked.blobsDir);

    const repos = await new CacheView(root).listRepos();
    expect(repos.map((r) => r.repoId).sort()).toEqual(['org/linked', 'org/real']);
    expect(repos.find((r) => r.repoId === 'org/linked')!.size).toBe(0);
  });

  it('lists nothing for a cache folder that does not exist', async () => {
    const root = await testTempDir('mf-view-');
    expect(await new CacheView(join(root, 'absent')).listRepos()).toEqual([]);
  });
});
