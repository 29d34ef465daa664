import type { ManifestModel } from './manifest.js';

/** What makes two manifest entries the same preload. */
export function modelKey(model: Pick<ManifestModel, 'source' | 'repoType' | 'repo' | 'revision' | 'localDir'>): string {
  return [model.source, model.repoType, model.repo, model.revision, model.localDir ?? ''].join('\0');
}
