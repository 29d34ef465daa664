import { createHash, type Hash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { FileDigest } from '../types.js';

/**
 * Hashing by a file's digest type, in one place: SHA-256 for LFS files, and git's blob SHA-1 for the
 * small files git stores itself, which hashes the header `blob {size}\0` before the bytes (so the size
 * must be known up front). The download engine, `verify`, `bake`, the mirror and the swarm all hash
 * through this module, on the main thread or in the hash workers.
 */

export type HashAlgorithm = FileDigest['algorithm'];

/** Bytes read per call when hashing a whole file: large enough that the hash, not the reads, is the cost. */
export const HASH_READ_BYTES = 4 << 20;

/** An incremental hasher for `algorithm`; a git blob SHA-1 has its header (which needs `size`) already fed. */
export function createDigestHash(algorithm: HashAlgorithm, size: number): Hash {
  if (algorithm === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

/** The hex digest of `bytes` held in memory. */
export function digestOfBytes(algorithm: HashAlgorithm, bytes: Uint8Array | string): string {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
  return createDigestHash(algorithm, size).update(bytes).digest('hex');
}

export interface HashedFile {
  hex: string;
  /** Bytes read. */
  size: number;
}

export interface HashFileOptions {
  /** The read buffer, reused across calls by a caller that hashes one file at a time (a worker). */
  buffer?: Buffer;
  /** Bytes read since the last call, at most every `reportEvery` bytes and once at the end. */
  onBytes?: (bytes: number) => void;
  reportEvery?: number;
}

/**
 * Opens for reading without updating the access time where the kernel allows (only the file's owner
 * may): hashing a blob is not a use of it, and gc orders blobs by last use.
 */
export async function openWithoutAtime(path: string): Promise<FileHandle> {
  if (constants.O_NOATIME) {
    try {
      return await open(path, constants.O_RDONLY | constants.O_NOATIME);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EPERM') throw error;
    }
  }
  return open(path, constants.O_RDONLY);
}

/**
 * Hashes a whole file the way its digest names it, reading through one buffer (never the whole file).
 * The git blob header takes the size of the opened file, so the file is named once.
 */
export async function hashFile(path: string, algorithm: HashAlgorithm, options: HashFileOptions = {}): Promise<HashedFile> {
  const buffer = options.buffer ?? Buffer.allocUnsafe(HASH_READ_BYTES);
  const reportEvery = options.reportEvery ?? 64 << 20;
  const file = await openWithoutAtime(path);
  try {
    const hash = createDigestHash(algorithm, algorithm === 'git-sha1' ? (await file.stat()).size : 0);
    let size = 0;
    let unreported = 0;
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
      unreported += bytesRead;
      if (options.onBytes && unreported >= reportEvery) {
        options.onBytes(unreported);
        unreported = 0;
      }
    }
    if (options.onBytes && unreported > 0) options.onBytes(unreported);
    return { hex: hash.digest('hex'), size };
  } finally {
    await file.close();
  }
}

/** Whether `actual` is the content `digest` names (and, when given, has `size` bytes). */
export function matchesDigest(actual: HashedFile, digest: FileDigest, size?: number): boolean {
  return actual.hex === digest.hex && (size === undefined || actual.size === size);
}

/** Whether the file at `path` hashes to `digest` (and, when given, has `size` bytes). */
export async function fileMatchesDigest(path: string, digest: FileDigest, size?: number): Promise<boolean> {
  return matchesDigest(await hashFile(path, digest.algorithm), digest, size);
}
