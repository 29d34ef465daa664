import { buildCachedRepo, digestOf, type BuiltRepo } from './cache-builder.js';
import type { RepoPaths } from '../../src/cache/layout.js';
import { modelIdentity, normaliseLockfile, type LockedModel, type Lockfile } from '../../src/preload/lockfile.js';

/** The lockfile entry that describes a repo built with buildCachedRepo. */
export function lockedModelOf(spec: BuiltRepo, revision = 'main'): LockedModel {
  const base = { source: 'hf' as const, repoType: spec.repoType ?? 'model', repo: spec.repoId, revision, include: [], exclude: [], commit: spec.commit };
  return { ...base, identity: modelIdentity(base), files: spec.files.map((f) => ({ path: f.path, size: f.content.length, digest: digestOf(f) })) };
}

/** Builds the repos in a cache and returns the lockfile that pins exactly them. */
export async function buildLockedCache(root: string, specs: BuiltRepo[]): Promise<{ lock: Lockfile; repos: RepoPaths[] }> {
  const repos: RepoPaths[] = [];
  for (const spec of specs) repos.push(await buildCachedRepo(root, spec));
  return { lock: normaliseLockfile({ lockfileVersion: 1, models: specs.map((s) => lockedModelOf(s)) }), repos };
}
