import { RepoPaths } from '../cache/layout.js';
import { cacheStore, type FileStore } from '../cache/file-store.js';
import { LocalDir } from '../cache/local-dir.js';
import { resolveCacheDir } from '../core/env.js';
import { parseTargetDtype } from '../safetensors/plan.js';
import type { CheckedPull } from './options.js';
import type { FolderOfFiles } from './resolve-listing.js';

/** Where a pull writes: the hub cache, a local dir (`--local-dir`), or the modelscope layout. */
export interface PullTarget {
  /** The repo in the hub cache (also named for a local dir, where it holds nothing). */
  repo: RepoPaths;
  /** The folder of real files, when not the hub cache. */
  local: FolderOfFiles | undefined;
  store(commit: string): FileStore;
  /** What the application is pointed at. */
  path(commit: string): string;
}

export async function openTarget(pull: CheckedPull): Promise<PullTarget> {
  const { options, env } = pull;
  const repo = new RepoPaths(pull.modelscopeLayout ? resolveCacheDir(env) : (options.cacheDir ?? resolveCacheDir(env)), pull.repoType, pull.repoId);
  const local: FolderOfFiles | undefined = options.localDir ? new LocalDir(options.localDir) : pull.modelscopeLayout ? await modelScopeFolder(pull) : undefined;
  const keptWarning = {
    ...(options.forceDownload && { forceDownload: true }),
    onKept: (path: string) => options.onWarning?.(`${path} was changed since it was downloaded; kept as it is (--force-download replaces it)`),
    // pull --dtype: a file this conversion already made from the upstream file is complete.
    ...(options.dtype && { converted: { dtype: parseTargetDtype(options.dtype), keep: options.keep ?? [] } }),
  };
  return {
    repo,
    local,
    store: (commit) => (local ? local.store(commit, keptWarning) : cacheStore(repo, commit)),
    path: (commit) => (local ? local.root : repo.snapshotDir(commit)),
  };
}

/** The modelscope-layout folder of a model (MODELSCOPE_CACHE, or --cache-dir). */
async function modelScopeFolder({ options, env, repoId, revision }: CheckedPull): Promise<FolderOfFiles> {
  const layout = await import('../cache/modelscope-layout.js');
  return new layout.ModelScopeFolder(new layout.ModelScopePaths(options.cacheDir ?? layout.resolveModelScopeCache(env), repoId), revision);
}
