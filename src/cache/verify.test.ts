import { randomBytes } from 'node:crypto';
import { lstat, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCachedRepo, digestOf, fakeCommit } from '../../test/support/cache-builder.js';
import { linkSnapshotFile } from './snapshot.js';
import { verifyCache, type RefetchTarget } from './verify.js';
import { testTempDir } from '../../test/support/temp.js';

const big = { path: 'model.safetensors', content: randomBytes(3 << 20), lfs: true };
const small = { path: 'config.json', content: Buffer.from('{"hidden":4}') };
const other = { path: 'tokenizer.json', content: randomBytes(70_000), lfs: true };

describe('verifyCache', () => {
  it('passes a healthy cache, hashing SHA-256 and git-SHA-1 blobs on several workers', async () => {
    const root = await testTempDir('mf-verify-');
    await buildCachedRepo(root, { repoId: 'org/ok', commit: fakeCommit('ok'), files: [big, small, other] });
    const seen: number[] = [];
    const report = await verifyCache({ cacheDir: root, workers: 2, onProgress: (p) => seen.push(p.filesDone) });
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.blobsChecked).toBe(3);
    expect(report.bytesChecked).toBe(big.content.length + small.content.length + other.content.length);
    expect(seen.at(-1)).toBe(3);
  });

  it('reports a corrupted blob, a dangling link, a foreign file and a link outside the cache', async () => {
    const root = await testTempDir('mf-verify-');
    const commit = fakeCommit('bad');
    const repo = await buildCachedRepo(root, { repoId: 'org/bad', commit, files: [big, small] });
    const corrupted = Buffer.from(big.content);
    corrupted.writeUInt8(corrupted.readUInt8(12345) ^ 0xff, 12345);
    await writeFile(repo.blob(digestOf(big)), corrupted);
    await writeFile(repo.blob(digestOf(small)), '{"hidden":5}');
    await symlink(`../../blobs/${'c'.repeat(64)}`, repo.snapshotFile(commit, 'gone.bin'));
    await symlink('../../../../elsewhere/secret', repo.snapshotFile(commit, 'escape.txt'));
    await writeFile(join(repo.blobsDir, 'README'), 'x');

    const report = await verifyCache({ cacheDir: root });
    expect(report.ok).toBe(false);
    const summary = report.problems.map((p) => `${p.kind}:${p.path.slice(repo.dir.length + 1)}`).sort();
    expect(summary).toEqual([
      `broken:blobs/${digestOf(small).hex}`,
      `broken:blobs/${digestOf(big).hex}`,
      'foreign:blobs/README',
      `outside:snapshots/${commit}/escape.txt`,
      `missing:snapshots/${commit}/gone.bin`,
    ].sort());
    const broken = report.problems.find((p) => p.path === repo.blob(digestOf(big)))!;
    expect(broken.expected).toBe(digestOf(big).hex);
    expect(broken.found).not.toBe(digestOf(big).hex);
  });

  it('with fix, removes bad blobs, fetches their revisions again and removes links it cannot restore', async () => {
    const root = await testTempDir('mf-verify-');
    const commit = fakeCommit('fix');
    const repo = await buildCachedRepo(root, { repoId: 'org/fix', commit, files: [big, small] });
    await writeFile(repo.blob(digestOf(big)), Buffer.alloc(10));
    await symlink(`../../blobs/${'d'.repeat(64)}`, repo.snapshotFile(commit, 'lost.bin'));
    const asked: RefetchTarget[] = [];
    // Restores the good bytes the way a pull would (blob, then link), but knows nothing of lost.bin.
    const refetch = async (target: RefetchTarget): Promise<void> => {
      asked.push(target);
      await writeFile(repo.blob(digestOf(big)), big.content);
      await linkSnapshotFile(repo, commit, big.path, digestOf(big));
    };
    const report = await verifyCache({ cacheDir: root, fix: true, refetch });
    expect(asked).toEqual([{ cacheDir: root, repoType: 'model', repoId: 'org/fix', commit }]);
    expect(report.fixes.map((f) => f.action).sort()).toEqual(['refetched', 'removed-blob', 'removed-link']);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect((await readFile(repo.snapshotFile(commit, big.path))).equals(big.content)).toBe(true);
    await expect(lstat(repo.snapshotFile(commit, 'lost.bin'))).rejects.toThrow();
  });

  it('with fix and no way to fetch, removes the bad blob and its links and still fails', async () => {
    const root = await testTempDir('mf-verify-');
    const commit = fakeCommit('nofetch');
    const repo = await buildCachedRepo(root, { repoId: 'org/nofetch', commit, files: [other, small] });
    await writeFile(repo.blob(digestOf(other)), 'rotten');
    const report = await verifyCache({ cacheDir: root, fix: true });
    expect(report.ok).toBe(false);
    expect(report.fixes.map((f) => f.action).sort()).toEqual(['refetch-failed', 'removed-blob', 'removed-link']);
    await expect(lstat(repo.blob(digestOf(other)))).rejects.toThrow();
    await expect(lstat(repo.snapshotFile(commit, other.path))).rejects.toThrow();
    expect(await readFile(repo.snapshotFile(commit, small.path), 'utf8')).toBe('{"hidden":4}');
  });
});
