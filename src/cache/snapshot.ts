import { randomBytes } from 'node:crypto';
import { copyFile, lstat, mkdir, open, readFile, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fromSystemError } from '../core/errors.js';
import type { FileDigest } from '../core/types.js';
import type { RepoPaths } from './layout.js';
import { assertRealFolders, makeRealFolders, touchMarker } from './safe-path.js';
import { assertCommit } from '../core/validate.js';

/** Writes snapshot entries, refs and `.no_exist` markers the way huggingface_hub does. Never writes blob content. */

export type LinkMode = 'symlink' | 'copy';

function tempSibling(path: string): string {
  return `${path}.mf-${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
}

/** Creates `path` (which must not exist) with `content`, on disk (fsynced) when this returns. */
export async function writeNewFileSynced(path: string, content: string | Buffer): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `path` with `content` atomically (temp file + rename); readers never see a torn file. */
export async function writeFileAtomic(path: string, content: string | Buffer): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = tempSibling(path);
  await writeNewFileSynced(temp, content);
  try {
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}

/** writeFileAtomic for a file below a cache root: reached through real folders only (see safe-path.ts). */
export async function writeCacheFile(root: string, path: string, content: string | Buffer): Promise<void> {
  await makeRealFolders(root, dirname(path));
  await writeFileAtomic(path, content);
}

/**
 * Points `snapshots/{commit}/{path}` at its blob: a relative symlink, or a copy of the blob where
 * symlinks fail (or `mode` is 'copy'). An existing correct entry is left alone; a wrong one is
 * replaced atomically. The blob must already be in place.
 */
export async function linkSnapshotFile(repo: RepoPaths, commit: string, path: string, digest: FileDigest, mode: LinkMode = 'symlink'): Promise<LinkMode> {
  const target = repo.snapshotFile(commit, path);
  const relative = repo.linkTarget(path, digest);
  try {
    await makeRealFolders(repo.root, dirname(target));
    if (mode === 'symlink') {
      const current = await readlink(target).catch(() => undefined);
      if (current === relative) return 'symlink';
      const temp = tempSibling(target);
      try {
        await symlink(relative, temp);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
        return linkSnapshotFile(repo, commit, path, digest, 'copy');
      }
      await rename(temp, target);
      return 'symlink';
    }
    const temp = tempSibling(target);
    try {
      await copyFile(repo.blob(digest), temp);
      await rename(temp, target);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw error;
    }
    return 'copy';
  } catch (error) {
    throw fromSystemError(error, `linking ${path} into the snapshot`);
  }
}

/** `refs/{revision}` holds the commit a branch or tag pointed to when last resolved. */
export async function writeRef(repo: RepoPaths, revision: string, commit: string): Promise<void> {
  assertCommit(commit, `ref ${revision}`);
  const path = repo.ref(revision);
  await assertRealFolders(repo.root, path);
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current === commit) return;
  await writeCacheFile(repo.root, path, commit);
}

/** The commit a ref points to, or undefined when the ref is unknown or malformed. */
export async function readRef(repo: RepoPaths, revision: string): Promise<string | undefined> {
  const content = await readFile(repo.ref(revision), 'utf8').catch(() => undefined);
  const commit = content?.trim();
  return commit && /^[0-9a-f]{40}$/.test(commit) ? commit : undefined;
}

/** Records that `path` does not exist at `commit` (an empty file, as huggingface_hub writes). */
export async function markNoExist(repo: RepoPaths, commit: string, path: string): Promise<void> {
  await touchMarker(repo.root, repo.noExist(commit, path));
}

/**
 * Whether `snapshots/{commit}/{path}` already points at its blob: the expected relative symlink, or a
 * regular file of the right size where links are copies. A cheap check for cache hits.
 */
export async function isSnapshotLinked(repo: RepoPaths, commit: string, path: string, digest: FileDigest, size: number): Promise<boolean> {
  const target = repo.snapshotFile(commit, path);
  // A snapshot folder that is a link is never taken as holding the file (nor written through later).
  await assertRealFolders(repo.root, target);
  const current = await readlink(target).catch((error: NodeJS.ErrnoException) => (error.code === 'EINVAL' ? null : undefined));
  if (current === null) return (await lstat(target).catch(() => undefined))?.size === size;
  return current === repo.linkTarget(path, digest);
}
