import { stat } from 'node:fs/promises';
import type { RepoPaths } from '../cache/layout.js';
import type { CacheView } from './cache-view.js';
import { HttpError } from './http-error.js';
import type { ListedFile } from './hub-json.js';
import type { RepoRef } from './route.js';

/**
 * What the mirror knows about a repo at a revision: the commit and the full file list. From the
 * cache alone here; the pull-through layer adds upstream answers on top.
 */
export interface ResolvedRevision {
  commit: string;
  files: ListedFile[];
  lastModified: Date;
  /** Gated or private upstream: files need a client token checked upstream. */
  restricted: boolean;
  /** Where the answer came from. */
  source: 'cache' | 'upstream';
}

export async function resolveFromCache(cache: CacheView, repoRef: RepoRef, revision: string): Promise<ResolvedRevision> {
  const repo = cache.repo(repoRef.repoType, repoRef.repoId);
  if (!(await cache.repoExists(repo))) throw repoNotFound(repoRef);
  const commit = await cache.resolveCommit(repo, revision);
  if (!commit) throw revisionNotFound(repoRef, revision);
  const files = await cache.listSnapshot(repo, commit);
  return { commit, files, lastModified: await snapshotTime(repo, commit), restricted: false, source: 'cache' };
}

async function snapshotTime(repo: RepoPaths, commit: string): Promise<Date> {
  const info = await stat(repo.snapshotDir(commit)).catch(() => undefined);
  return info ? info.mtime : new Date(0);
}

export function repoNotFound(repo: RepoRef): HttpError {
  return new HttpError(404, 'RepoNotFound', `Repository ${repo.repoType === 'model' ? '' : `${repo.repoType}s/`}${repo.repoId} not found`);
}

export function revisionNotFound(repo: RepoRef, revision: string): HttpError {
  return new HttpError(404, 'RevisionNotFound', `Revision ${revision} not found in ${repo.repoId}`);
}

export function entryNotFound(repo: RepoRef, commit: string, path: string): HttpError {
  return new HttpError(404, 'EntryNotFound', `${path} does not exist in ${repo.repoId} at ${commit}`);
}
