import { lstat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { isModelfetchError, ModelfetchError } from '../core/errors.js';
import type { RepoType } from '../core/types.js';
import { stampBlob } from './blob-store.js';
import { HashPool } from '../core/hash/hash-pool.js';
import { RepoPaths } from './layout.js';
import { assertRealFolders, removeUnder } from './safe-path.js';
import { scanCache, type CacheIssueKind, type CacheScan, type ScanOptions, type ScannedBlob, type ScannedRepo } from './scan.js';

/**
 * Re-hashes every blob against the digest its name encodes (64-hex: SHA-256; 40-hex: git blob
 * SHA-1 of `blob {size}\0` + content), checks that every snapshot link resolves into its own repo's
 * blobs, and reports what is broken, missing or foreign. With `fix`, bad blobs are removed and their
 * revisions pulled again, links that cannot be restored are removed, and the cache is verified again.
 */

export type VerifyProblemKind = 'broken' | 'missing' | Exclude<CacheIssueKind, 'dangling'>;

export interface VerifyProblem {
  kind: VerifyProblemKind;
  path: string;
  folder?: string;
  detail: string;
  expected?: string;
  found?: string;
}

export interface VerifyProgress {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
}

/** A revision to fetch again; what `fix` asks the puller for. */
export interface RefetchTarget {
  cacheDir: string;
  repoType: RepoType;
  repoId: string;
  commit: string;
}

export interface FixAction {
  action: 'removed-blob' | 'refetched' | 'refetch-failed' | 'removed-link';
  path: string;
  detail?: string;
}

export interface VerifyOptions extends ScanOptions {
  /** Remove bad blobs and links, pull the revisions again, and verify again. */
  fix?: boolean;
  /** Fetches a revision again (normally `pull`). Without it, `fix` only removes what is bad. */
  refetch?: (target: RefetchTarget) => Promise<void>;
  /** Called after each verified blob; default: refresh its stamp, so pulls skip re-hashing it. */
  onVerified?: (repo: RepoPaths, blob: ScannedBlob) => Promise<void>;
  /** Hash workers; default: one per core. */
  workers?: number;
  onProgress?: (progress: VerifyProgress) => void;
}

export interface VerifyReport {
  root: string;
  repos: number;
  blobsChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
  /** What `fix` did (empty without it). */
  fixes: FixAction[];
  ok: boolean;
  /** Xet dedup chunk cache entries re-hashed (whole-cache runs only), and the bad ones, which were dropped. */
  xetChunks?: { entries: number; bad: string[] };
}

export async function verifyCache(options: VerifyOptions = {}): Promise<VerifyReport> {
  // Workers boot while the cache is scanned.
  const pool = new HashPool(Math.max(1, options.workers ?? availableParallelism()));
  try {
    const scan = await scanCache(options);
    if (options.repos?.length && scan.repos.length === 0) {
      throw new ModelfetchError('ERR_NOT_FOUND', `No cached repo matches ${options.repos.join(', ')} in ${scan.root}`, { hint: 'Run `modelfetch ls` to see what is cached.' });
    }
    const first = await checkScan(scan, pool, options);
    if (!options.repos?.length) {
      // The chunk cache is only a cache: a bad entry is dropped (and fetched again when needed), not a failure.
      const { chunkCacheFor } = await import('./xet-chunk-cache.js');
      first.xetChunks = await chunkCacheFor(scan.root, options.env ?? process.env).verify();
    }
    if (!options.fix || first.problems.length === 0) return first;
    const fixes = await fixProblems(scan, first.problems, options);
    const again = await checkScan(await scanCache(options), pool, { ...options, onProgress: undefined });
    // A revision that could not be fetched again is now incomplete: still a failure.
    return { ...again, ...(first.xetChunks && { xetChunks: first.xetChunks }), fixes, ok: again.ok && !fixes.some((f) => f.action === 'refetch-failed') };
  } finally {
    await pool.close();
  }
}

async function checkScan(scan: CacheScan, pool: HashPool, options: VerifyOptions): Promise<VerifyReport> {
  const problems: VerifyProblem[] = scan.issues.map((issue) => ({
    kind: issue.kind === 'dangling' ? 'missing' : issue.kind,
    path: issue.path,
    ...(issue.folder !== undefined && { folder: issue.folder }),
    detail: issue.detail,
  }));
  const jobs = scan.repos.flatMap((repo) => repo.blobs.map((blob) => ({ repo, blob }))).sort((a, b) => b.blob.size - a.blob.size);
  const progress: VerifyProgress = { bytesDone: 0, bytesTotal: jobs.reduce((sum, j) => sum + j.blob.size, 0), filesDone: 0, filesTotal: jobs.length };
  options.onProgress?.({ ...progress });
  let bytesChecked = 0;
  // Largest first, each worker taking the next file when it is free: the longest file starts at once.
  await Promise.all(
    jobs.map(async ({ repo, blob }) => {
      const digest = blob.digest!;
      try {
        const outcome = await pool.hash(blob.path, digest.algorithm, (bytes) => {
          progress.bytesDone += bytes;
          options.onProgress?.({ ...progress });
        });
        bytesChecked += outcome.size;
        if (outcome.hex !== digest.hex) {
          problems.push({ kind: 'broken', path: blob.path, folder: repo.folder, detail: `content does not match its ${digest.algorithm} name`, expected: digest.hex, found: outcome.hex });
        } else {
          await (options.onVerified ?? refreshStamp)(new RepoPaths(scan.root, repo.repoType, repo.repoId), blob);
        }
      } catch (error) {
        if (!isModelfetchError(error, 'ERR_NOT_FOUND')) throw error;
        problems.push({ kind: 'missing', path: blob.path, folder: repo.folder, detail: 'blob vanished while verifying' });
      }
      progress.filesDone += 1;
      options.onProgress?.({ ...progress });
    }),
  );
  problems.sort((a, b) => a.path.localeCompare(b.path) || a.kind.localeCompare(b.kind));
  return { root: scan.root, repos: scan.repos.length, blobsChecked: jobs.length, bytesChecked, problems, fixes: [], ok: problems.length === 0 };
}

async function fixProblems(scan: CacheScan, problems: VerifyProblem[], options: VerifyOptions): Promise<FixAction[]> {
  const fixes: FixAction[] = [];
  const byFolder = new Map(scan.repos.map((repo) => [repo.folder, repo]));
  /** Revisions to pull again, per repo folder. */
  const affected = new Map<string, Set<string>>();
  const mark = (repo: ScannedRepo, commit: string): void => {
    affected.set(repo.folder, (affected.get(repo.folder) ?? new Set()).add(commit));
  };

  for (const problem of problems) {
    const repo = problem.folder === undefined ? undefined : byFolder.get(problem.folder);
    if (!repo) continue;
    if (problem.kind === 'broken') {
      const name = problem.expected!;
      const paths = new RepoPaths(scan.root, repo.repoType, repo.repoId);
      await removeUnder(scan.root, problem.path);
      const digest = repo.blobs.find((b) => b.name === name)?.digest;
      if (digest) await removeUnder(scan.root, paths.stamp(digest));
      fixes.push({ action: 'removed-blob', path: problem.path });
      for (const revision of repo.revisions) if (revision.blobs.includes(name)) mark(repo, revision.commit);
    } else if (problem.kind === 'missing' || problem.kind === 'outside') {
      const revision = repo.revisions.find((r) => problem.path.startsWith(`${r.path}/`));
      if (revision) mark(repo, revision.commit);
    }
  }

  for (const [folder, commits] of affected) {
    const repo = byFolder.get(folder)!;
    for (const commit of commits) {
      const where = `${repo.repoId}@${commit}`;
      if (!options.refetch) {
        fixes.push({ action: 'refetch-failed', path: where, detail: 'no source to fetch from' });
        continue;
      }
      try {
        await options.refetch({ cacheDir: scan.root, repoType: repo.repoType, repoId: repo.repoId, commit });
        fixes.push({ action: 'refetched', path: where });
      } catch (error) {
        fixes.push({ action: 'refetch-failed', path: where, detail: error instanceof Error ? error.message : String(error) });
      }
    }
  }

  // Links the pull did not restore are removed, so loaders see a missing file instead of a broken one.
  const rescan = await scanCache(options);
  for (const issue of rescan.issues) {
    if (issue.kind !== 'dangling' && issue.kind !== 'outside') continue;
    const repo = rescan.repos.find((r) => r.folder === issue.folder);
    const revision = repo?.revisions.find((r) => issue.path.startsWith(`${r.path}/`));
    if (!revision || !affected.get(repo!.folder)?.has(revision.commit)) continue;
    await assertRealFolders(rescan.root, issue.path);
    const stats = await lstat(issue.path).catch(() => undefined);
    if (!stats?.isSymbolicLink()) continue;
    await removeUnder(rescan.root, issue.path);
    fixes.push({ action: 'removed-link', path: issue.path });
  }
  return fixes;
}

async function refreshStamp(repo: RepoPaths, blob: ScannedBlob): Promise<void> {
  try {
    await stampBlob(repo, blob.digest!);
  } catch (error) {
    // A linked state folder is already in the report (scan's 'link' issue); stamps are an optimisation.
    if (!isModelfetchError(error, 'ERR_UNSAFE_PATH')) throw error;
  }
}
