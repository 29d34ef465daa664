import { ModelfetchError } from '../core/errors.js';
import type { RepoType } from '../core/types.js';
import { RepoPaths } from './layout.js';
import { isRevisionInUse } from './lock.js';
import { applyPrune, RepoPruner, type PrunePlan } from './prune.js';
import { scanCache, type ScanOptions, type ScannedRepo } from './scan.js';

/**
 * Frees cache space: first every revision not used within `unusedForMs`, then the least recently
 * used ones until the cache fits `maxSize`. Revisions a running pull or server holds, and repos in
 * `keep`, are never touched, not even to meet the size cap. A blob goes only when no remaining
 * snapshot links to it.
 */

/** Whether a running pull or server holds a revision (`commit`), or anything of the repo (no commit). */
export type InUseCheck = (repo: RepoPaths, commit?: string) => Promise<boolean>;

/** The in-use markers and download locks that pull and serve hold (cache/lock.ts). */
export const inUseByLocks: InUseCheck = (repo, commit) => isRevisionInUse(repo, commit);

export interface GcOptions extends Omit<ScanOptions, 'repos'> {
  /** Remove revisions whose last use is older than this (ms). */
  unusedForMs?: number;
  /** Then remove least-recently-used revisions until the cache is at most this many bytes. */
  maxSize?: number;
  /** Repos (`org/name` or folder name) never touched. */
  keep?: string[];
  /** Plan only; change nothing. */
  dryRun?: boolean;
  /** Whether a running pull or server holds a revision; default: their in-use markers and locks. */
  isInUse?: InUseCheck;
  now?: number;
  /** Blobs nothing links to are removed once older than this (ms); default one hour. */
  orphanGraceMs?: number;
}

export interface GcRevision {
  repoType: RepoType;
  repoId: string;
  commit: string;
  refs: string[];
  lastUsed: number;
  reason: 'unused' | 'size';
  /** Bytes its removal frees (content it shared with a kept revision is not counted). */
  bytes: number;
}

export interface GcSkipped {
  repoType: RepoType;
  repoId: string;
  commit: string;
  reason: 'in-use' | 'keep';
}

export interface GcReport {
  root: string;
  dryRun: boolean;
  revisions: GcRevision[];
  blobs: Array<{ repoId: string; name: string; size: number }>;
  /** Repo folders removed entirely. */
  repos: string[];
  skipped: GcSkipped[];
  bytesFreed: number;
  sizeBefore: number;
  sizeAfter: number;
  /** False when --max-size could not be met without touching kept or in-use revisions. */
  underCap: boolean;
  /** Xet dedup chunk cache entries removed: unused for `unusedForMs`, then least recently used over its own limit. */
  xetChunks: { entries: number; bytes: number };
}

export async function gcCache(options: GcOptions): Promise<GcReport> {
  if (options.unusedForMs === undefined && options.maxSize === undefined) {
    throw new ModelfetchError('ERR_USAGE', 'gc needs --unused-for and/or --max-size', { hint: 'For example: modelfetch gc --unused-for 7d --max-size 200G --dry-run' });
  }
  const now = options.now ?? Date.now();
  const isInUse = options.isInUse ?? inUseByLocks;
  const scan = await scanCache(options);
  const keep = new Set(options.keep ?? []);
  const skipped: GcSkipped[] = [];
  const candidates: Array<{ repo: ScannedRepo; pruner: RepoPruner; commit: string; lastUsed: number; refs: string[] }> = [];
  const pruners: RepoPruner[] = [];

  for (const repo of scan.repos) {
    const paths = new RepoPaths(scan.root, repo.repoType, repo.repoId);
    const kept = keep.has(repo.repoId) || keep.has(repo.folder);
    const repoBusy = !kept && (await isInUse(paths));
    const pruner = new RepoPruner(repo, kept || repoBusy ? undefined : now - (options.orphanGraceMs ?? 3_600_000));
    pruners.push(pruner);
    for (const revision of repo.revisions) {
      const skip = kept ? 'keep' : (await isInUse(paths, revision.commit)) ? 'in-use' : undefined;
      if (skip) skipped.push({ repoType: repo.repoType, repoId: repo.repoId, commit: revision.commit, reason: skip });
      else candidates.push({ repo, pruner, commit: revision.commit, lastUsed: revision.lastUsed, refs: revision.refs });
    }
  }

  const removed: GcRevision[] = [];
  let size = scan.sizeOnDisk - pruners.reduce((sum, p) => sum + p.orphanBytes(), 0);
  const take = (candidate: (typeof candidates)[number], reason: GcRevision['reason']): void => {
    const bytes = candidate.pruner.remove(candidate.commit);
    size -= bytes;
    removed.push({ repoType: candidate.repo.repoType, repoId: candidate.repo.repoId, commit: candidate.commit, refs: candidate.refs, lastUsed: candidate.lastUsed, reason, bytes });
  };
  const remaining = [...candidates].sort((a, b) => a.lastUsed - b.lastUsed || a.repo.folder.localeCompare(b.repo.folder));
  if (options.unusedForMs !== undefined) {
    const cutoff = now - options.unusedForMs;
    for (const candidate of remaining.filter((c) => c.lastUsed < cutoff)) take(candidate, 'unused');
  }
  if (options.maxSize !== undefined) {
    for (const candidate of remaining) {
      if (size <= options.maxSize) break;
      if (!removed.some((r) => r.commit === candidate.commit && r.repoId === candidate.repo.repoId && r.repoType === candidate.repo.repoType)) take(candidate, 'size');
    }
  }

  const plans: PrunePlan[] = [];
  for (const plan of pruners.map((p) => p.plan()).filter((p) => p.revisions.length > 0 || p.blobs.length > 0)) {
    // A pull may have started since the plan was made: such a repo is left alone this time.
    if (!options.dryRun && (await claimedSince(plan, scan.root, isInUse))) {
      for (const r of plan.revisions) skipped.push({ repoType: plan.repo.repoType, repoId: plan.repo.repoId, commit: r.commit, reason: 'in-use' });
      removed.splice(0, removed.length, ...removed.filter((r) => r.repoId !== plan.repo.repoId || r.repoType !== plan.repo.repoType));
      continue;
    }
    if (!options.dryRun) await applyPrune(scan.root, plan);
    plans.push(plan);
  }
  const bytesFreed = plans.reduce((sum, p) => sum + p.bytes, 0);
  const { chunkCacheFor } = await import('./xet-chunk-cache.js');
  const chunks = chunkCacheFor(scan.root, options.env ?? process.env);
  const xetChunks = await chunks.trim(chunks.limit, { ...(options.unusedForMs !== undefined && { unusedBefore: now - options.unusedForMs }), ...(options.dryRun && { dryRun: true }) });
  return {
    root: scan.root,
    dryRun: options.dryRun ?? false,
    revisions: removed,
    blobs: plans.flatMap((p) => p.blobs.map((b) => ({ repoId: p.repo.repoId, name: b.name, size: b.size }))),
    repos: plans.filter((p) => p.wholeRepo || (p.repo.revisions.length === 0 && p.blobs.length === p.repo.blobs.length)).map((p) => p.repo.folder),
    skipped,
    bytesFreed,
    sizeBefore: scan.sizeOnDisk,
    sizeAfter: scan.sizeOnDisk - bytesFreed,
    underCap: options.maxSize === undefined || scan.sizeOnDisk - bytesFreed <= options.maxSize,
    xetChunks,
  };
}

async function claimedSince(plan: PrunePlan, root: string, isInUse: InUseCheck): Promise<boolean> {
  const paths = new RepoPaths(root, plan.repo.repoType, plan.repo.repoId);
  if (plan.wholeRepo && (await isInUse(paths))) return true;
  for (const revision of plan.revisions) if (await isInUse(paths, revision.commit)) return true;
  return false;
}
