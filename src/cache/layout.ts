import { join } from 'node:path';
import { assertRepoId } from '../core/repo-ref.js';
import type { FileDigest, RepoType } from '../core/types.js';
import { assertCommit, assertDigest, assertSafeRelativePath, assertSafeRevision } from '../core/validate.js';

/**
 * The on-disk layout huggingface_hub reads, and nothing else: where each thing lives.
 *
 *   {root}/models--{org}--{name}/blobs/{digest}
 *   {root}/models--{org}--{name}/snapshots/{commit}/{path}  -> ../../blobs/{digest}
 *   {root}/models--{org}--{name}/refs/{branch}
 *   {root}/models--{org}--{name}/.no_exist/{commit}/{path}
 *   {root}/models--{org}--{name}/trees/{commit}.json      (huggingface_hub's tree listing cache)
 *   {root}/.locks/models--{org}--{name}/{digest}.lock
 *
 * modelfetch's own state (partial downloads, resume journals, verification stamps, last use) lives in
 * {root}/.locks/modelfetch/: same file system as the blobs, so a finished file is renamed, never
 * copied, and in a folder that huggingface_hub's cache scan skips. Decoded Xet chunks kept for
 * deduplication live in {root}/.locks/modelfetch/xet-chunks/{xorb hash}/.
 */





/** `models--org--name`, exactly as huggingface_hub's repo_folder_name. */
export function repoFolderName(repoType: RepoType, repoId: string): string {
  return [`${repoType}s`, ...assertRepoId(repoId).split('/')].join('--');
}

/** Parses a folder name back into its repo, or undefined for anything that is not one. */
export function parseRepoFolderName(folder: string): { repoType: RepoType; repoId: string } | undefined {
  const match = /^(models|datasets|spaces)--(.+)$/.exec(folder);
  if (!match) return undefined;
  const repoType = match[1]!.slice(0, -1) as RepoType;
  const repoId = match[2]!.split('--').join('/');
  try {
    assertRepoId(repoId);
  } catch {
    return undefined;
  }
  return { repoType, repoId };
}

/** Blob file name: the digest hex, validated. */
export function blobName(digest: FileDigest): string {
  return assertDigest(digest, 'blob name').hex;
}

export class RepoPaths {
  readonly dir: string;
  readonly folder: string;

  constructor(
    readonly root: string,
    readonly repoType: RepoType,
    readonly repoId: string,
  ) {
    this.folder = repoFolderName(repoType, repoId);
    this.dir = join(root, this.folder);
  }

  get blobsDir(): string {
    return join(this.dir, 'blobs');
  }

  blob(digest: FileDigest): string {
    return join(this.blobsDir, blobName(digest));
  }

  snapshotDir(commit: string): string {
    return join(this.dir, 'snapshots', assertCommitOrHash(commit));
  }

  snapshotFile(commit: string, path: string): string {
    return join(this.snapshotDir(commit), assertSafeRelativePath(path, 'snapshot'));
  }

  /** The relative link target from a snapshot file to its blob, e.g. `../../blobs/{digest}` (deeper for nested paths). */
  linkTarget(path: string, digest: FileDigest): string {
    const depth = assertSafeRelativePath(path, 'snapshot').split('/').length - 1;
    return `${'../'.repeat(depth + 2)}blobs/${blobName(digest)}`;
  }

  ref(revision: string): string {
    return join(this.dir, 'refs', assertSafeRevision(revision));
  }

  noExist(commit: string, path: string): string {
    return join(this.dir, '.no_exist', assertCommitOrHash(commit), assertSafeRelativePath(path, '.no_exist'));
  }

  lock(digest: FileDigest): string {
    return join(this.root, '.locks', this.folder, `${blobName(digest)}.lock`);
  }

  /** modelfetch's own state for this repo. */
  get stateDir(): string {
    return join(this.root, '.locks', 'modelfetch', this.folder);
  }

  /** Partial download of a blob; its journal is `${partial}.journal`. */
  partial(digest: FileDigest): string {
    return join(this.stateDir, 'partial', `${blobName(digest)}.part`);
  }

  /** Folder a swarm download of a blob lands in (as `{folder}/{digest}`, the torrent's name) before its SHA-256 check. */
  swarmPartialDir(digest: FileDigest): string {
    return join(this.stateDir, 'partial', 'swarm', blobName(digest));
  }

  /** Verification stamp of a blob (stat fingerprint at the time it was hashed). */
  stamp(digest: FileDigest): string {
    return join(this.stateDir, 'stamps', blobName(digest));
  }

  /**
   * BitTorrent v1 info dictionary of a blob (bencoded), computed once from its verified bytes and kept
   * beside its verification stamp: the same blob gives the same infohash on every node.
   */
  torrentInfo(digest: FileDigest): string {
    return join(this.stateDir, 'torrents', `${blobName(digest)}.info`);
  }

  /**
   * modelfetch's cross-process lock for downloading one blob. Not huggingface_hub's `{digest}.lock`
   * (flock'd by Python and left behind): an exclusive-create file with holder info and a heartbeat.
   */
  blobLock(digest: FileDigest): string {
    return join(this.blobLocksDir, `${blobName(digest)}.lock`);
  }

  /** One heartbeat file per process (pull, server) holding a revision, so gc leaves it alone. */
  inUseDir(commit: string): string {
    return join(this.inUseRoot, assertCommitOrHash(commit));
  }

  /** The in-use markers of every revision of this repo. */
  get inUseRoot(): string {
    return join(this.stateDir, 'in-use');
  }

  /** The download locks of every blob of this repo (see blobLock). */
  get blobLocksDir(): string {
    return join(this.stateDir, 'locks');
  }

  /** huggingface_hub's tree listing cache for a commit (`trees/{commit}.json`): which files the commit has. */
  treeListing(commit: string): string {
    return join(this.dir, 'trees', `${assertCommitOrHash(commit)}.json`);
  }

  /** Last-use record of a revision: an empty file whose mtime is the last time pull/serve/run used it. */
  lastUsed(commit: string): string {
    return join(this.stateDir, 'used', assertCommitOrHash(commit));
  }

  /**
   * Present once upstream answered that anyone may read the repo (removed when it says otherwise):
   * the mirror serves a repo without checks, offline or while upstream is down, only on this record
   * or the operator's `--public`.
   */
  get publicMarker(): string {
    return join(this.stateDir, 'public');
  }
}

/**
 * Snapshot folder names are commits; ModelScope and URL sources use other stable ids (still hex),
 * so any 40- or 64-hex id is accepted, nothing else.
 */
function assertCommitOrHash(commit: string): string {
  if (/^[0-9a-f]{64}$/.test(commit)) return commit;
  return assertCommit(commit, 'snapshot');
}

/** modelfetch's Xet dedup chunk cache, as folders below the cache root (src/transfer/xet/chunk-cache.ts). */
export const XET_CHUNK_CACHE_PARTS: readonly string[] = ['.locks', 'modelfetch', 'xet-chunks'];
