import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { RepoPaths } from '../../src/cache/layout.js';
import { linkSnapshotFile, writeRef, type LinkMode } from '../../src/cache/snapshot.js';
import type { FileDigest, RepoType } from '../../src/core/types.js';

/** Writes a cache the way huggingface_hub would leave it, for tests of code that reads caches. */

export interface BuiltFile {
  path: string;
  content: Buffer;
  /** Large files are named by SHA-256 (LFS), small ones by git blob SHA-1, as on the Hub. */
  lfs?: boolean;
}

export interface BuiltRepo {
  repoId: string;
  repoType?: RepoType;
  commit: string;
  refs?: string[];
  files: BuiltFile[];
  mode?: LinkMode;
}

export function digestOf(file: BuiltFile): FileDigest {
  if (file.lfs) return { algorithm: 'sha256', hex: createHash('sha256').update(file.content).digest('hex') };
  return { algorithm: 'git-sha1', hex: createHash('sha1').update(`blob ${file.content.length}\0`).update(file.content).digest('hex') };
}

export function fakeCommit(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

export async function buildCachedRepo(root: string, spec: BuiltRepo): Promise<RepoPaths> {
  const repo = new RepoPaths(root, spec.repoType ?? 'model', spec.repoId);
  await mkdir(repo.blobsDir, { recursive: true });
  for (const file of spec.files) {
    const digest = digestOf(file);
    await writeFile(repo.blob(digest), file.content);
    await linkSnapshotFile(repo, spec.commit, file.path, digest, spec.mode ?? 'symlink');
  }
  for (const ref of spec.refs ?? ['main']) await writeRef(repo, ref, spec.commit);
  return repo;
}
