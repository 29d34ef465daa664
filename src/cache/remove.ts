import { ModelfetchError } from '../core/errors.js';
import type { RepoType } from '../core/types.js';
import { inUseByLocks, type InUseCheck } from './gc.js';
import { RepoPaths } from './layout.js';
import { resolveCacheDir } from '../core/env.js';
import { applyPrune, RepoPruner, type PrunePlan } from './prune.js';
import { scanCache } from './scan.js';

/** `rm REPO[@rev]`: removes a whole repo, or one revision and the blobs only it used. */

export interface RemoveOptions {
  cacheDir?: string;
  env?: NodeJS.ProcessEnv;
  repoId: string;
  repoType?: RepoType;
  /** A commit (or a unique prefix of at least 7 characters) or a ref name; the whole repo when absent. */
  revision?: string;
  dryRun?: boolean;
  /** Default: the in-use markers and locks of running pulls and servers. */
  isInUse?: InUseCheck;
}

export interface RemoveReport {
  root: string;
  repoId: string;
  repoType: RepoType;
  commits: string[];
  blobs: number;
  bytesFreed: number;
  wholeRepo: boolean;
  dryRun: boolean;
}

export async function removeFromCache(options: RemoveOptions): Promise<RemoveReport> {
  const root = options.cacheDir ?? resolveCacheDir(options.env);
  const repoType = options.repoType ?? 'model';
  const isInUse = options.isInUse ?? inUseByLocks;
  const scan = await scanCache({ cacheDir: root, repos: [options.repoId], repoType });
  const repo = scan.repos[0];
  if (!repo) {
    throw new ModelfetchError('ERR_NOT_FOUND', `${repoType} ${options.repoId} is not in the cache ${root}`, { hint: 'Run `modelfetch ls` to see what is cached; use --repo-type for datasets and spaces.' });
  }
  const paths = new RepoPaths(root, repo.repoType, repo.repoId);
  const pruner = new RepoPruner(repo, options.revision === undefined ? Number.POSITIVE_INFINITY : undefined);
  let commits: string[];
  if (options.revision === undefined) {
    commits = repo.revisions.map((r) => r.commit);
    if (await isInUse(paths)) throw locked(`${options.repoId} is in use by a running pull or server`);
  } else {
    const revision = findRevision(repo.revisions, repo.refs, options.revision);
    if (!revision) {
      throw new ModelfetchError('ERR_NOT_FOUND', `Revision ${options.revision} of ${options.repoId} is not in the cache`, { hint: `Cached revisions: ${repo.revisions.map((r) => r.commit.slice(0, 12)).join(', ') || 'none'}.` });
    }
    commits = [revision];
  }
  for (const commit of commits) {
    if (await isInUse(paths, commit)) throw locked(`${options.repoId}@${commit.slice(0, 12)} is in use by a running pull or server`);
    pruner.remove(commit);
  }
  const plan: PrunePlan = options.revision === undefined ? { ...pruner.plan(), wholeRepo: true } : pruner.plan();
  if (!options.dryRun) await applyPrune(root, plan);
  return { root, repoId: repo.repoId, repoType: repo.repoType, commits, blobs: plan.blobs.length, bytesFreed: plan.wholeRepo ? repo.sizeOnDisk : plan.bytes, wholeRepo: plan.wholeRepo, dryRun: options.dryRun ?? false };
}

function findRevision(revisions: Array<{ commit: string }>, refs: Record<string, string>, wanted: string): string | undefined {
  if (refs[wanted]) return refs[wanted];
  if (wanted.length >= 7 && /^[0-9a-f]+$/.test(wanted)) {
    const matches = revisions.filter((r) => r.commit.startsWith(wanted));
    if (matches.length > 1) throw new ModelfetchError('ERR_USAGE', `Revision ${wanted} is ambiguous`, { hint: 'Give more characters of the commit.' });
    return matches[0]?.commit;
  }
  return undefined;
}

function locked(message: string): ModelfetchError {
  return new ModelfetchError('ERR_LOCKED', message, { hint: 'Wait for it to finish (or stop it), then run the command again.' });
}
