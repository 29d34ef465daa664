import { ModelfetchError } from '../core/errors.js';
import type { RepoFile } from '../core/types.js';
import type { Resolved } from './resolve-listing.js';

/** Which files of a listing a pull takes: exact paths (FILES), then --include / --exclude globs. */

export interface Selection {
  files: RepoFile[];
  /** Requested paths the listing does not have. */
  missing: string[];
}

/** Files to pull: exact paths if given, then include/exclude globs. */
export function selectFiles(listing: RepoFile[], requested: string[], include: string[] = [], exclude: string[] = []): Selection {
  let files = listing;
  let missing: string[] = [];
  if (requested.length) {
    const byPath = new Map(listing.map((f) => [f.path, f]));
    missing = requested.filter((path) => !byPath.has(path));
    files = [...new Set(requested)].flatMap((path) => byPath.get(path) ?? []);
  }
  if (include.length) files = files.filter((f) => include.some((pattern) => globMatch(pattern, f.path)));
  if (exclude.length) files = files.filter((f) => !exclude.some((pattern) => globMatch(pattern, f.path)));
  return { files, missing };
}

/** Requested paths that the listing does not have: not found (or, offline from a snapshot folder, not cached). */
export function missingFiles(missing: string[], repoId: string, resolved: Resolved, offline: boolean): ModelfetchError {
  return new ModelfetchError(offline && !resolved.authoritative ? 'ERR_OFFLINE' : 'ERR_NOT_FOUND', `${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''} not found in ${repoId}@${resolved.commit.slice(0, 12)}`, {
    hint: 'Check the file names (they are case-sensitive and relative to the repo root) and the revision.',
  });
}

/** A selection that matches nothing is an error that shows what there is, never an empty success. */
export function emptySelection(repoId: string, resolved: Resolved, offline: boolean, filters: { include?: string[]; exclude?: string[] }): ModelfetchError {
  const flags = [...(filters.include ?? []).map((g) => `--include ${JSON.stringify(g)}`), ...(filters.exclude ?? []).map((g) => `--exclude ${JSON.stringify(g)}`)];
  const at = `${repoId}@${resolved.commit.slice(0, 12)}`;
  const sample = resolved.listing.map((f) => f.path).sort();
  const shown = sample.slice(0, 10).join(', ');
  const has = sample.length === 0 ? `${at} has no files` : `${at} has ${sample.length} file${sample.length === 1 ? '' : 's'}: ${shown}${sample.length > 10 ? `, … (${sample.length - 10} more)` : ''}`;
  const code = offline && !resolved.authoritative ? 'ERR_OFFLINE' : 'ERR_NOT_FOUND';
  return new ModelfetchError(code, `No file matches ${flags.length ? flags.join(' ') : 'the selection'}; ${has}`, {
    expected: 'at least one file',
    found: 0,
    hint: 'Check the patterns: a pattern without "/" matches the file name at any depth, "dir/" matches everything under dir, and names are case-sensitive.',
  });
}

let picomatchModule: typeof import('picomatch') | undefined;

/** huggingface_hub's allow/ignore patterns: a pattern without `/` matches the name at any depth, `dir/` means everything under it. */
export function globMatch(pattern: string, path: string): boolean {
  const normalized = pattern.endsWith('/') ? `${pattern}**` : pattern;
  const subject = normalized.includes('/') ? path : (path.split('/').pop() ?? path);
  return picomatch().isMatch(subject, normalized, { dot: true });
}

function picomatch(): typeof import('picomatch') {
  if (!picomatchModule) throw new Error('picomatch not loaded');
  return picomatchModule;
}

/** Loads picomatch before selection when globs are used (kept off the plain cache-hit path). */
export async function loadGlobSupport(): Promise<void> {
  picomatchModule ??= (await import('picomatch')).default;
}
