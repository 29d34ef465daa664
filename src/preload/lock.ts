import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../cache/snapshot.js';
import { ModelfetchError } from '../core/errors.js';
import type { RepoFile } from '../core/types.js';
import { globMatch, loadGlobSupport } from '../pull/select-files.js';
import { modelIdentity, normaliseLockfile, serialiseLockfile, type LockedModel, type Lockfile } from './lockfile.js';
import type { Manifest, ManifestModel } from './manifest.js';

/** What a source says a revision is: its commit and every file with size and digest. */
export interface ResolvedRevision {
  commit: string;
  files: RepoFile[];
}

export type ResolveRevision = (model: ManifestModel) => Promise<ResolvedRevision>;

/**
 * Resolves every manifest entry to an exact commit and file list (filtered by its globs). Sources
 * are asked one model at a time and nothing about the request (endpoint, time, order) enters the
 * result, so the same manifest against the same hub always gives the same lockfile.
 */
export async function lockManifest(manifest: Manifest, resolve: ResolveRevision): Promise<Lockfile> {
  const models: LockedModel[] = [];
  await loadGlobSupport();
  for (const model of manifest.models) {
    const resolved = await resolve(model);
    // The same selection `pull --include/--exclude` makes.
    const keep = (path: string): boolean => (model.include.length === 0 || model.include.some((p) => globMatch(p, path))) && !model.exclude.some((p) => globMatch(p, path));
    const files = resolved.files.filter((f) => keep(f.path)).map((f) => ({ path: f.path, size: f.size, digest: { algorithm: f.digest.algorithm, hex: f.digest.hex } }));
    if (files.length === 0) {
      throw new ModelfetchError('ERR_NOT_FOUND', `No file of ${model.repo}@${model.revision} matches include ${JSON.stringify(model.include)} / exclude ${JSON.stringify(model.exclude)}`, {
        hint: 'Check the globs in the manifest: a pattern without `/` matches the file name at any depth, a pattern ending in `/` selects a folder.',
      });
    }
    const entry: LockedModel = { ...model, commit: resolved.commit, identity: modelIdentity({ ...model, commit: resolved.commit }), files };
    models.push(entry);
  }
  return normaliseLockfile({ lockfileVersion: 1, models });
}

/** Writes the lockfile atomically; leaves it untouched (same bytes, same mtime) when nothing changed. */
export async function writeLockfile(path: string, lock: Lockfile): Promise<{ changed: boolean; text: string }> {
  const text = serialiseLockfile(lock);
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current === text) return { changed: false, text };
  await writeFileAtomic(path, text);
  return { changed: true, text };
}
