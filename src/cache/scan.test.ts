import { utimes, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCachedRepo, digestOf, fakeCommit } from '../../test/support/cache-builder.js';
import { scanCache } from './scan.js';
import { touchRevision } from './usage.js';
import { testTempDir } from '../../test/support/temp.js';

const shared = { path: 'model.safetensors', content: Buffer.alloc(1000, 7), lfs: true };

describe('scanCache', () => {
  it('lists repos and revisions with refs, counting a blob shared by two revisions once', async () => {
    const root = await testTempDir('mf-scan-');
    const c1 = fakeCommit('one');
    const c2 = fakeCommit('two');
    await buildCachedRepo(root, { repoId: 'org/a', commit: c1, refs: ['v1'], files: [shared, { path: 'config.json', content: Buffer.from('{"v":1}') }] });
    await buildCachedRepo(root, { repoId: 'org/a', commit: c2, refs: ['main'], files: [shared, { path: 'config.json', content: Buffer.from('{"v":22}') }] });
    await buildCachedRepo(root, { repoId: 'org/b', repoType: 'dataset', commit: c1, files: [{ path: 'data/x.csv', content: Buffer.from('a,b\n') }] });

    const scan = await scanCache({ cacheDir: root });
    expect(scan.issues).toEqual([]);
    expect(scan.repos.map((r) => `${r.repoType}:${r.repoId}`)).toEqual(['dataset:org/b', 'model:org/a']);
    const a = scan.repos.find((r) => r.repoId === 'org/a')!;
    expect(a.sizeOnDisk).toBe(1000 + 7 + 8);
    expect(a.revisions).toHaveLength(2);
    const r1 = a.revisions.find((r) => r.commit === c1)!;
    expect(r1.refs).toEqual(['v1']);
    expect(r1.sizeOnDisk).toBe(1007);
    expect(r1.files.map((f) => f.path)).toEqual(['config.json', 'model.safetensors']);
    expect(a.revisions.find((r) => r.commit === c2)!.refs).toEqual(['main']);
    expect(a.refs).toEqual({ main: c2, v1: c1 });
    expect(a.nbFiles).toBe(3);
    expect(scan.sizeOnDisk).toBe(1015 + 4);
  });

  it('reports foreign entries, temp files, dangling links, links outside the cache and bad refs instead of failing', async () => {
    const root = await testTempDir('mf-scan-');
    const commit = fakeCommit('odd');
    const repo = await buildCachedRepo(root, { repoId: 'org/odd', commit, files: [{ path: 'a.txt', content: Buffer.from('a') }] });
    await writeFile(join(root, 'stray.txt'), 'x');
    await mkdir(join(root, '.locks', 'modelfetch', repo.folder), { recursive: true });
    await writeFile(join(repo.blobsDir, 'notes.txt'), 'x');
    await writeFile(join(repo.blobsDir, `${'a'.repeat(64)}.incomplete`), 'x');
    await symlink('../../blobs/' + 'b'.repeat(40), repo.snapshotFile(commit, 'gone.txt'));
    await symlink('/etc/hostname', repo.snapshotFile(commit, 'outside.txt'));
    await writeFile(join(repo.dir, 'refs', 'broken'), 'not-a-commit');
    await writeFile(join(repo.dir, 'refs', 'stale'), fakeCommit('elsewhere'));

    const scan = await scanCache({ cacheDir: root });
    const kinds = scan.issues.map((i) => `${i.kind}:${i.path.slice(root.length + 1)}`).sort();
    expect(kinds).toEqual([
      `dangling:${repo.folder}/snapshots/${commit}/gone.txt`,
      `foreign:${repo.folder}/blobs/notes.txt`,
      'foreign:stray.txt',
      `outside:${repo.folder}/snapshots/${commit}/outside.txt`,
      `ref:${repo.folder}/refs/broken`,
      `ref:${repo.folder}/refs/stale`,
      `temp:${repo.folder}/blobs/${'a'.repeat(64)}.incomplete`,
    ]);
    expect(scan.repos[0]!.revisions[0]!.nbFiles).toBe(3);
  });

  it('takes last use from modelfetch records and the atime of its own blobs, whichever is later', async () => {
    const root = await testTempDir('mf-scan-');
    const commit = fakeCommit('used');
    const file = { path: 'w.bin', content: Buffer.from('w'), lfs: true };
    const repo = await buildCachedRepo(root, { repoId: 'org/u', commit, files: [file] });
    const old = new Date(Date.UTC(2020, 0, 1));
    await utimes(repo.blob(digestOf(file)), old, old);
    expect((await scanCache({ cacheDir: root })).repos[0]!.revisions[0]!.lastUsed).toBe(old.getTime());
    const recorded = Date.UTC(2021, 5, 1);
    await touchRevision(repo, commit, { now: recorded });
    expect((await scanCache({ cacheDir: root })).repos[0]!.revisions[0]!.lastUsed).toBe(recorded);
  });

  it('reads an empty or missing cache as empty, and filters by repo', async () => {
    const root = await testTempDir('mf-scan-');
    expect((await scanCache({ cacheDir: join(root, 'nope') })).repos).toEqual([]);
    await buildCachedRepo(root, { repoId: 'org/a', commit: fakeCommit('a'), files: [{ path: 'a', content: Buffer.from('a') }] });
    await buildCachedRepo(root, { repoId: 'org/b', commit: fakeCommit('b'), files: [{ path: 'b', content: Buffer.from('b') }] });
    expect((await scanCache({ cacheDir: root, repos: ['org/b'] })).repos.map((r) => r.repoId)).toEqual(['org/b']);
  });
});
