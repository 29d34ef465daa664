import { lstat, readFile, stat, unlink } from 'node:fs/promises';
import { fromSystemError } from '../core/errors.js';
import { hashFile } from '../core/hash/file-digest.js';
import type { FileDigest } from '../core/types.js';
import { commitTempFile, type CommitFs, type CommitOutcome } from './atomic.js';
import type { RepoPaths } from './layout.js';
import { assertRealFolders, makeRealFolders } from './safe-path.js';
import { writeCacheFile } from './snapshot.js';

/**
 * Blobs are named by their digest and never change. Once a blob has been hashed, a stamp records its
 * stat fingerprint; while the fingerprint matches, the blob counts as verified without re-hashing.
 * A blob without a stamp (e.g. written by huggingface_hub) is hashed once, then stamped.
 */

/**
 * What a stamp vouches for. mtime alone can be put back after an in-place edit (`touch -r`, utimes);
 * ctime cannot be set from user space and changes on every write, chmod or link, so an edited blob
 * (or one replaced by another file: inode, device) is hashed again.
 */
export interface Fingerprint {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

interface Stamp extends Fingerprint {
  algorithm: FileDigest['algorithm'];
  hex: string;
  verifiedAt: number;
}

export function fingerprintOf(info: Fingerprint): Fingerprint {
  return { size: info.size, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, ino: info.ino, dev: info.dev };
}

/** Whether a recorded fingerprint (parsed from a stamp file, so maybe partial) still matches the file. */
export function sameFingerprint(recorded: Partial<Fingerprint>, now: Fingerprint): boolean {
  return recorded.size === now.size && recorded.mtimeMs === now.mtimeMs && recorded.ctimeMs === now.ctimeMs && recorded.ino === now.ino && recorded.dev === now.dev;
}

/** Records the blob's current stat fingerprint as verified. Call only after its bytes were checked. */
export async function stampBlob(repo: RepoPaths, digest: FileDigest): Promise<void> {
  try {
    const info = await stat(repo.blob(digest));
    const stamp: Stamp = { ...fingerprintOf(info), algorithm: digest.algorithm, hex: digest.hex, verifiedAt: Date.now() };
    await writeCacheFile(repo.root, repo.stamp(digest), JSON.stringify(stamp));
  } catch (error) {
    throw fromSystemError(error, `stamping blob ${digest.hex}`);
  }
}

/** True when the blob exists, has the expected size, and its stat matches its stamp: no re-hash needed. */
export async function isBlobStamped(repo: RepoPaths, digest: FileDigest, expectedSize?: number): Promise<boolean> {
  const [info, raw] = await Promise.all([lstat(repo.blob(digest)).catch(() => undefined), readFile(repo.stamp(digest), 'utf8').catch(() => undefined)]);
  if (!info?.isFile() || !raw || (expectedSize !== undefined && info.size !== expectedSize)) return false;
  try {
    const stamp = JSON.parse(raw) as Partial<Stamp>;
    return stamp.hex === digest.hex && stamp.algorithm === digest.algorithm && sameFingerprint(stamp, fingerprintOf(info));
  } catch {
    return false;
  }
}

export type BlobState = 'stamped' | 'verified' | 'missing';

/**
 * Whether the blob is present and right: stamped (free), or hashed now and stamped. A blob whose bytes
 * do not match its name is removed, so the next download replaces it, and reported 'missing'.
 */
export async function verifyBlob(repo: RepoPaths, digest: FileDigest, expectedSize?: number): Promise<BlobState> {
  const path = repo.blob(digest);
  // A blobs folder that is a link is neither trusted nor cleaned up through.
  await assertRealFolders(repo.root, path);
  if (await isBlobStamped(repo, digest, expectedSize)) return 'stamped';
  const info = await lstat(path).catch(() => undefined);
  if (!info) return 'missing';
  if (!info.isFile()) {
    // A link (or anything else) planted at the blob path is never followed: removed, the blob is fetched.
    await unlink(path).catch(() => {});
    return 'missing';
  }
  let actual: { hex: string; size: number };
  try {
    actual = await hashFile(path, digest.algorithm);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw fromSystemError(error, `verifying blob ${digest.hex}`);
  }
  if (actual.hex !== digest.hex || (expectedSize !== undefined && actual.size !== expectedSize)) {
    await unlink(path).catch(() => {});
    return 'missing';
  }
  await stampBlob(repo, digest);
  return 'verified';
}

/** Moves a transferred, verified temp file into `blobs/{digest}` (never overwriting) and stamps it. */
export async function commitBlob(repo: RepoPaths, digest: FileDigest, tempPath: string, fs?: CommitFs): Promise<CommitOutcome> {
  await makeRealFolders(repo.root, repo.blobsDir).catch((error: unknown) => {
    throw fromSystemError(error, 'creating the blobs folder');
  });
  const outcome = await commitTempFile(tempPath, repo.blob(digest), fs);
  if (outcome === 'committed') await stampBlob(repo, digest);
  return outcome;
}
