import { mkdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { digestOf } from '../../test/support/cache-builder.js';
import { commitBlob, isBlobStamped, verifyBlob } from './blob-store.js';
import { hashFile } from '../core/hash/file-digest.js';
import { RepoPaths } from './layout.js';
import { testTempDir } from '../../test/support/temp.js';

let dir: string;
let repo: RepoPaths;
beforeEach(async () => {
  dir = await testTempDir('mf-blob-');
  repo = new RepoPaths(dir, 'model', 'org/name');
});

async function temp(content: Buffer): Promise<string> {
  const path = join(repo.stateDir, 'partial', `t${Math.random()}`);
  await mkdir(join(repo.stateDir, 'partial'), { recursive: true });
  await writeFile(path, content);
  return path;
}

describe('blob store', () => {
  const content = Buffer.from('hello blob store');

  it('hashes files as SHA-256 and as git blob SHA-1', async () => {
    const path = await temp(content);
    expect((await hashFile(path, 'sha256')).hex).toBe(digestOf({ path: 'x', content, lfs: true }).hex);
    expect((await hashFile(path, 'git-sha1')).hex).toBe(digestOf({ path: 'x', content }).hex);
  });

  it('commits a temp file as a stamped blob, and a second commit of the same blob finds it there', async () => {
    const digest = digestOf({ path: 'x', content, lfs: true });
    expect(await commitBlob(repo, digest, await temp(content))).toBe('committed');
    expect(await readFile(repo.blob(digest))).toEqual(content);
    expect(await isBlobStamped(repo, digest, content.length)).toBe(true);
    expect(await isBlobStamped(repo, digest, content.length + 1)).toBe(false);
    expect(await commitBlob(repo, digest, await temp(content))).toBe('exists');
  });

  it('a changed stat voids the stamp; the blob is hashed again once, then stamped', async () => {
    const digest = digestOf({ path: 'x', content });
    await commitBlob(repo, digest, await temp(content));
    const later = new Date((await stat(repo.blob(digest))).mtimeMs + 5_000);
    await utimes(repo.blob(digest), later, later);
    expect(await isBlobStamped(repo, digest)).toBe(false);
    expect(await verifyBlob(repo, digest, content.length)).toBe('verified');
    expect(await verifyBlob(repo, digest, content.length)).toBe('stamped');
  });

  it('an unstamped blob (written by another tool) is verified; a corrupt one is removed', async () => {
    const digest = digestOf({ path: 'x', content, lfs: true });
    await mkdir(repo.blobsDir, { recursive: true });
    await writeFile(repo.blob(digest), content);
    expect(await verifyBlob(repo, digest)).toBe('verified');
    const other = digestOf({ path: 'y', content: Buffer.from('other'), lfs: true });
    await writeFile(repo.blob(other), 'not the right bytes');
    expect(await verifyBlob(repo, other)).toBe('missing');
    await expect(stat(repo.blob(other))).rejects.toThrow();
    expect(await verifyBlob(repo, other)).toBe('missing');
  });
});
