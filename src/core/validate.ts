import { ModelfetchError } from './errors.js';
import type { FileDigest } from './types.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const SHA1_HEX = /^[0-9a-f]{40}$/;

export function isSha256Hex(value: string): boolean {
  return SHA256_HEX.test(value);
}

export function isSha1Hex(value: string): boolean {
  return SHA1_HEX.test(value);
}

/** A digest that names a blob on disk; anything else never reaches a path. */
export function assertDigest(digest: FileDigest, context: string): FileDigest {
  const ok = digest.algorithm === 'sha256' ? isSha256Hex(digest.hex) : isSha1Hex(digest.hex);
  if (!ok) {
    throw new ModelfetchError('ERR_INVALID_DIGEST', `Refusing ${digest.algorithm} digest ${JSON.stringify(digest.hex.slice(0, 80))} for ${context}: not ${digest.algorithm === 'sha256' ? 64 : 40} lower-case hex characters`, {
      hint: 'The server sent a malformed digest; check the endpoint (HF_ENDPOINT / --endpoint) points at a real hub.',
    });
  }
  return digest;
}

/** A commit id as the Hub returns it: 40 lower-case hex characters. */
export function assertCommit(commit: string, context: string): string {
  if (!SHA1_HEX.test(commit)) {
    throw new ModelfetchError('ERR_INVALID_DIGEST', `Refusing commit ${JSON.stringify(commit.slice(0, 80))} for ${context}: not 40 lower-case hex characters`);
  }
  return commit;
}

/** Revision names that are safe as a file name under refs/ (branches may contain `/`). */
export function assertSafeRevision(revision: string): string {
  if (revision.length === 0 || revision.length > 255 || revision.includes('\0') || revision.includes('\\')) {
    throw new ModelfetchError('ERR_UNSAFE_PATH', `Refusing revision ${JSON.stringify(revision.slice(0, 80))}`);
  }
  assertSafeRelativePath(revision, 'revision');
  return revision;
}

/**
 * Code points HFS+ ignores when it compares names (git's `is_hfs_dotgit` list): `.g\u200Cit` is `.git` there.
 */
const HFS_IGNORABLE = /[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g;

/**
 * Whether a path segment names git's own folder on some file system: `.git` in any case; on NTFS also
 * with trailing dots or spaces, an alternate data stream (`.git::$INDEX_ALLOCATION`) or its 8.3 short
 * name `git~1`; on HFS+ with ignorable code points anywhere inside. Git trees never hold such entries,
 * so a listing that does is hostile: writing it would plant configuration (hooks, fsmonitor) that git runs.
 */
export function isDotGitSegment(segment: string): boolean {
  const name = segment.replace(HFS_IGNORABLE, '').toLowerCase();
  return /^(\.git|git~1)[. ]*(:.*)?$/.test(name);
}

/**
 * A repo-relative path from a server listing, a lockfile or a request. Refused: empty, absolute,
 * `..` or `.` segments, backslashes, drive letters, NUL and control characters, empty segments,
 * and `.git` segments in any of their aliases (see isDotGitSegment).
 */
export function assertSafeRelativePath(path: string, context: string): string {
  const fail = (why: string): never => {
    throw new ModelfetchError('ERR_UNSAFE_PATH', `Refusing path ${JSON.stringify(path.slice(0, 200))} from ${context}: ${why}`, {
      hint: 'The server listed a file outside the repository; nothing was written. Check the endpoint you are pulling from.',
    });
  };
  if (path.length === 0) fail('empty');
  if (path.length > 4096) fail('too long');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) fail('control character');
  if (path.includes('\\')) fail('backslash');
  if (path.startsWith('/')) fail('absolute');
  if (/^[A-Za-z]:/.test(path)) fail('drive letter');
  for (const segment of path.split('/')) {
    if (segment === '') fail('empty segment');
    if (segment === '.' || segment === '..') fail('dot segment');
    if (isDotGitSegment(segment)) fail('a .git folder (git repositories never contain one; writing it could plant commands git runs)');
    if (Buffer.byteLength(segment) > 255) fail('segment longer than 255 bytes');
  }
  return path;
}

/** A strong ETag (`"…"`, not `W/"…"`), unquoted; undefined for weak or missing ones. */
export function strongEtag(header: string | null | undefined): string | undefined {
  if (!header) return undefined;
  const value = header.trim();
  if (value.startsWith('W/')) return undefined;
  const match = /^"([\x21\x23-\x7e]{1,256})"$/.exec(value);
  return match ? match[1] : undefined;
}
