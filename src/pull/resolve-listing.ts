import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { RepoPaths } from '../cache/layout.js';
import type { LocalDir } from '../cache/local-dir.js';
import { digestFromBlobName } from '../cache/scan.js';
import { readRef } from '../cache/snapshot.js';
import { readRepoTreeListing } from '../cache/tree-listing.js';
import { isModelfetchError, ModelfetchError, type ErrorCode } from '../core/errors.js';
import type { RepoFile } from '../core/types.js';
import { isSha1Hex } from '../core/validate.js';
import type { Remote } from '../source/remote.js';

/** Revision → commit and its files: from the cache when it can answer, else from the remote; offline, from the snapshot folder. */

/** A folder of real files instead of the hub cache: a local dir, or a model in the modelscope layout. */
export type FolderOfFiles = Pick<LocalDir, 'root' | 'onlyCommit' | 'readListing' | 'store'>;

export interface Resolved {
  commit: string;
  listing: RepoFile[];
  /** Where the listing came from: the hub or a cached tree listing (authoritative), or the snapshot folder. */
  authoritative: boolean;
  fromHub: boolean;
  /** Set when the hub could not be reached and the revision was resolved from the cache instead. */
  fallback?: { error: ModelfetchError };
}

export interface ResolveInput {
  repo: RepoPaths;
  local: FolderOfFiles | undefined;
  revision: string;
  offline: boolean;
  /** The remote, opened on first use (so a cache hit loads no network code). */
  online: () => Promise<Remote>;
  /** Whether an unreachable hub may be replaced by the cache (not for --check). */
  mayFallBack: boolean;
}

/** A listing the caller vouches for (a lockfile's; its revision is checked to be a commit): not written as the commit's tree listing, which it may only be part of. */
export function pinnedListing(commit: string, listing: RepoFile[]): Resolved {
  return { commit, listing, authoritative: false, fromHub: false };
}

/** The commit and its file listing, from the cache when it can answer, else from the hub. */
export async function resolveListing(input: ResolveInput): Promise<Resolved> {
  try {
    return await resolveListingOnce(input);
  } catch (error) {
    if (input.offline || !input.mayFallBack || !isModelfetchError(error) || !isUnreachable(error)) throw error;
    // As huggingface_hub does: the hub is unreachable, so the cache answers if it can (pull checks it is complete).
    const cached = await resolveListingOnce({ ...input, offline: true }).catch(() => undefined);
    if (!cached) throw error;
    return { ...cached, fallback: { error } };
  }
}

/** Failures that mean "the hub could not be reached", as opposed to an answer (401, 404, gated). */
const UNREACHABLE: ReadonlySet<ErrorCode> = new Set(['ERR_NETWORK', 'ERR_STALL']);

export function isUnreachable(error: ModelfetchError): boolean {
  return UNREACHABLE.has(error.code) || (error.code === 'ERR_HTTP' && (error.status ?? 0) >= 500);
}

async function resolveListingOnce({ repo, local, revision, offline, online }: ResolveInput): Promise<Resolved> {
  let commit: string | undefined = isSha1Hex(revision) ? revision : undefined;
  if (!commit && offline) commit = local ? await local.onlyCommit() : await readRef(repo, revision);
  if (!commit && offline) {
    throw new ModelfetchError('ERR_OFFLINE', `Revision ${JSON.stringify(revision)} of ${repo.repoId} is not in the cache and offline mode is on`, {
      hint: 'Pull it once online, or pass the commit hash as @<commit>.',
    });
  }
  let hub: Remote | undefined;
  if (!commit) {
    hub = await online();
    commit = await hub.fetchCommit(revision);
  }
  const cached = local ? await local.readListing(commit) : await readRepoTreeListing(repo, commit);
  if (cached) return { commit, listing: cached, authoritative: true, fromHub: !!hub };
  if (offline) {
    const scanned = local ? undefined : await listSnapshotFolder(repo, commit);
    if (!scanned) throw new ModelfetchError('ERR_OFFLINE', `${repo.repoId}@${commit.slice(0, 12)} is not in the cache and offline mode is on`, { hint: 'Pull it once online first.' });
    return { commit, listing: scanned, authoritative: false, fromHub: false };
  }
  hub ??= await online();
  return { commit, listing: await hub.listFiles(commit), authoritative: true, fromHub: true };
}

/**
 * Offline and without a tree listing (a cache written by an older huggingface_hub): the snapshot
 * folder itself says what is there. Symlinks name their blob (read as the cache scan reads blob
 * names); copies are taken as they are.
 */
async function listSnapshotFolder(repo: RepoPaths, commit: string): Promise<RepoFile[] | undefined> {
  const root = repo.snapshotDir(commit);
  const entries = await readdir(root, { recursive: true }).catch(() => undefined);
  if (!entries) return undefined;
  const files: RepoFile[] = [];
  for (const entry of entries) {
    const path = entry.split('\\').join('/');
    const full = join(root, path);
    const info = await lstat(full);
    if (info.isDirectory()) continue;
    const digest = info.isSymbolicLink() ? digestFromBlobName(basename(await readlink(full))) : undefined;
    const size = (await stat(full).catch(() => undefined))?.size;
    if (size === undefined) continue;
    files.push({ path, size, digest: digest ?? { algorithm: 'sha256', hex: '' } });
  }
  return files;
}
