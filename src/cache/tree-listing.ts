import { readFile } from 'node:fs/promises';
import type { FileDigest, RepoFile } from '../core/types.js';
import type { RepoPaths } from './layout.js';
import { writeCacheFile } from './snapshot.js';
import { assertDigest, assertSafeRelativePath, isSha1Hex } from '../core/validate.js';

/**
 * huggingface_hub's tree listing cache, `{repo}/trees/{commit}.json`: every file a commit has, so an
 * offline reader can tell a complete snapshot from a partial one. modelfetch reads and writes the same
 * format (version 1), which also lets huggingface_hub's offline completeness check see our downloads.
 */

interface TreeEntry {
  size: number;
  blob_id: string;
  lfs_sha256?: string;
  lfs_size?: number;
}

const FORMAT_VERSION = 1;

/** Writes the listing for `commit` (a file on disk the way huggingface_hub writes it). */
export function serializeTreeListing(files: RepoFile[]): string {
  const entries: Record<string, TreeEntry> = {};
  for (const file of files) {
    const lfs = file.digest.algorithm === 'sha256';
    entries[file.path] = {
      size: file.size,
      blob_id: file.blobId ?? (lfs ? '' : file.digest.hex),
      ...(lfs && { lfs_sha256: file.digest.hex, lfs_size: file.size }),
    };
  }
  return JSON.stringify({ format_version: FORMAT_VERSION, files: entries }, null, 2);
}

/** Writes the listing at `path` below `root` (a cache root or a local dir), through real folders only. */
export async function writeTreeListing(root: string, path: string, files: RepoFile[]): Promise<void> {
  await writeCacheFile(root, path, serializeTreeListing(files));
}

/**
 * Reads a listing written by modelfetch or huggingface_hub, validating every path, size and digest;
 * undefined when absent, of another format, or malformed (then the caller asks the hub again).
 */
export async function readTreeListing(path: string): Promise<RepoFile[] | undefined> {
  const raw = await readFile(path, 'utf8').catch(() => undefined);
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw) as { format_version?: unknown; files?: Record<string, Partial<TreeEntry>> };
    if (parsed.format_version !== FORMAT_VERSION || typeof parsed.files !== 'object' || parsed.files === null) return undefined;
    return Object.entries(parsed.files).map(([filePath, entry]) => {
      const size = entry.lfs_size ?? entry.size;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new Error('bad size');
      const digest: FileDigest = entry.lfs_sha256 ? { algorithm: 'sha256', hex: entry.lfs_sha256 } : { algorithm: 'git-sha1', hex: String(entry.blob_id) };
      return {
        path: assertSafeRelativePath(filePath, 'the tree listing cache'),
        size,
        digest: assertDigest(digest, filePath),
        ...(typeof entry.blob_id === 'string' && isSha1Hex(entry.blob_id) && { blobId: entry.blob_id }),
      };
    });
  } catch {
    return undefined;
  }
}

/** The cached listing of `commit` in a cache repo. */
export function readRepoTreeListing(repo: RepoPaths, commit: string): Promise<RepoFile[] | undefined> {
  return readTreeListing(repo.treeListing(commit));
}
