import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { RepoPaths } from '../../src/cache/layout.js';
import { linkSnapshotFile, writeRef } from '../../src/cache/snapshot.js';
import { generateFile } from '../../test/support/fixture-server.js';

/**
 * A huggingface_hub cache holding large generated files (the test cache builder takes buffers; these
 * are GiB-sized and written in chunks). Every file is an LFS-style blob named by its SHA-256.
 */
export async function buildLargeCachedRepo(
  root: string,
  repoId: string,
  commit: string,
  files: Array<{ path: string; size: number }>,
): Promise<{ repo: RepoPaths; blobs: Array<{ path: string; blob: string; size: number; sha256: string }> }> {
  const repo = new RepoPaths(root, 'model', repoId);
  await mkdir(repo.blobsDir, { recursive: true });
  const blobs = [];
  for (const file of files) {
    const temp = join(repo.blobsDir, `.incoming-${blobs.length}`);
    const info = await generateFile(temp, file.size);
    const digest = { algorithm: 'sha256' as const, hex: info.sha256 };
    await rename(temp, repo.blob(digest));
    await linkSnapshotFile(repo, commit, file.path, digest);
    blobs.push({ path: file.path, blob: repo.blob(digest), size: file.size, sha256: info.sha256 });
  }
  await writeRef(repo, 'main', commit);
  return { repo, blobs };
}
