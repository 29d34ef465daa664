import { readFile } from 'node:fs/promises';
import { assertRepoId } from '../core/repo-ref.js';
import { assertCommit, assertDigest, assertSafeRelativePath, assertSafeRevision } from '../core/validate.js';
import { ModelfetchError } from '../core/errors.js';
import type { FileDigest, RepoFile, RepoType } from '../core/types.js';
import { canonicalJson, compareCodeUnits } from './canonical-json.js';
import type { Manifest, ManifestModel, PreloadSource } from './manifest.js';
import { modelKey } from './model-key.js';

/**
 * `modelfetch.lock.json`: the manifest resolved to exact commits and, for every file, its size and
 * digest (sha256 for LFS files, git-sha1 where that is all the hub gives). It names no endpoint: the
 * digests decide what is accepted, wherever the bytes come from. Written as canonical JSON (sorted
 * keys, models and files; no timestamps; trailing newline), so the same manifest against the same
 * hub always gives the same bytes, and a signature covers exactly those bytes.
 */

export const LOCKFILE_VERSION = 1;

/** What a lockfile records of a file: its path, size and digest, nothing a source may change. */
export type LockedFile = Pick<RepoFile, 'path' | 'size' | 'digest'>;

export interface LockedModel extends ManifestModel {
  /** The immutable commit `revision` resolved to. */
  commit: string;
  /** `{source}:{repoType}/{repo}@{commit}`: the same whichever mirror or endpoint served it. */
  identity: string;
  files: LockedFile[];
}

export interface Lockfile {
  lockfileVersion: typeof LOCKFILE_VERSION;
  models: LockedModel[];
}

export function modelIdentity(model: { source: PreloadSource; repoType: RepoType; repo: string; commit: string }): string {
  return `${model.source}:${model.repoType}/${model.repo}@${model.commit}`;
}

/** Sorts models and files and globs so that equal content gives equal bytes. */
export function normaliseLockfile(lock: Lockfile): Lockfile {
  const models = lock.models.map((model) => ({
    ...model,
    include: [...model.include].sort(compareCodeUnits),
    exclude: [...model.exclude].sort(compareCodeUnits),
    files: [...model.files].sort((a, b) => compareCodeUnits(a.path, b.path)).map((f) => ({ path: f.path, size: f.size, digest: { algorithm: f.digest.algorithm, hex: f.digest.hex } })),
  }));
  models.sort((a, b) => compareCodeUnits(modelKey(a), modelKey(b)));
  return { lockfileVersion: LOCKFILE_VERSION, models };
}

export function serialiseLockfile(lock: Lockfile): string {
  return canonicalJson(normaliseLockfile(lock));
}

export interface LoadedLockfile {
  lock: Lockfile;
  /** The canonical bytes: what a signature covers. */
  canonical: string;
  /** The file as read. */
  raw: string;
}

export async function readLockfile(path: string): Promise<LoadedLockfile> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (error) {
    throw new ModelfetchError('ERR_USAGE', `Cannot read the lockfile ${path}: ${(error as Error).message}`, {
      hint: 'Create it with `modelfetch lock`, or pass its path with --lock.',
      cause: error,
    });
  }
  const lock = parseLockfile(raw, path);
  return { lock, canonical: serialiseLockfile(lock), raw };
}

/** Parses and validates every field; paths, digests and commits are checked before they can name a file. */
export function parseLockfile(text: string, fileName = 'modelfetch.lock.json'): Lockfile {
  const fail = (where: string, message: string): never => {
    throw new ModelfetchError('ERR_USAGE', `${fileName}: ${where}: ${message}`, { hint: 'Regenerate the lockfile with `modelfetch lock`; do not edit it by hand.' });
  };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    return fail('$', `not valid JSON (${(error as Error).message})`);
  }
  const root = asObject(data, '$', fail);
  exactKeys(root, ['lockfileVersion', 'models'], '$', fail);
  if (root.lockfileVersion !== LOCKFILE_VERSION) fail('lockfileVersion', `expected ${LOCKFILE_VERSION}, found ${JSON.stringify(root.lockfileVersion)}`);
  if (!Array.isArray(root.models)) return fail('models', 'must be a list');
  const models = root.models.map((entry: unknown, index: number): LockedModel => {
    const where = `models[${index}]`;
    const m = asObject(entry, where, fail);
    exactKeys(m, ['source', 'repoType', 'repo', 'revision', 'include', 'exclude', 'localDir', 'commit', 'identity', 'files'], where, fail);
    const str = (key: string): string => (typeof m[key] === 'string' && m[key] !== '' ? (m[key] as string) : fail(`${where}.${key}`, 'must be a non-empty string'));
    const strings = (key: string): string[] => (Array.isArray(m[key]) && (m[key] as unknown[]).every((s) => typeof s === 'string') ? (m[key] as string[]) : fail(`${where}.${key}`, 'must be a list of strings'));
    const guard = (key: string, check: () => unknown): void => {
      try {
        check();
      } catch (error) {
        fail(`${where}.${key}`, (error as Error).message);
      }
    };
    const source = str('source') as PreloadSource;
    if (!['hf', 'modelscope', 'url'].includes(source)) fail(`${where}.source`, 'must be hf, modelscope or url');
    const repoType = str('repoType') as RepoType;
    if (!['model', 'dataset', 'space'].includes(repoType)) fail(`${where}.repoType`, 'must be model, dataset or space');
    const repo = str('repo');
    if (source !== 'url') guard('repo', () => assertRepoId(repo));
    const revision = str('revision');
    guard('revision', () => assertSafeRevision(revision));
    const commit = str('commit');
    guard('commit', () => (/^[0-9a-f]{64}$/.test(commit) ? commit : assertCommit(commit, 'lockfile')));
    const model: LockedModel = { source, repoType, repo, revision, include: strings('include'), exclude: strings('exclude'), commit, identity: str('identity'), files: [] };
    if (m.localDir !== undefined) {
      model.localDir = str('localDir');
      guard('localDir', () => assertSafeRelativePath(model.localDir!, 'local-dir'));
    }
    if (model.identity !== modelIdentity(model)) fail(`${where}.identity`, `expected ${modelIdentity(model)}`);
    if (!Array.isArray(m.files)) return fail(`${where}.files`, 'must be a list');
    const paths = new Set<string>();
    model.files = m.files.map((fileEntry: unknown, fileIndex: number): LockedFile => {
      const at = `${where}.files[${fileIndex}]`;
      const f = asObject(fileEntry, at, fail);
      exactKeys(f, ['path', 'size', 'digest'], at, fail);
      if (typeof f.path !== 'string') return fail(`${at}.path`, 'must be a string');
      const path = f.path;
      guard(`files[${fileIndex}].path`, () => assertSafeRelativePath(path, 'lockfile'));
      if (paths.has(path)) fail(`${at}.path`, `${path} is listed twice`);
      paths.add(path);
      if (typeof f.size !== 'number' || !Number.isSafeInteger(f.size) || f.size < 0) return fail(`${at}.size`, 'must be a non-negative integer');
      const d = asObject(f.digest, `${at}.digest`, fail);
      exactKeys(d, ['algorithm', 'hex'], `${at}.digest`, fail);
      if ((d.algorithm !== 'sha256' && d.algorithm !== 'git-sha1') || typeof d.hex !== 'string') return fail(`${at}.digest`, 'must be {algorithm: sha256 | git-sha1, hex}');
      const digest: FileDigest = { algorithm: d.algorithm, hex: d.hex };
      guard(`files[${fileIndex}].digest`, () => assertDigest(digest, path));
      return { path, size: f.size, digest };
    });
    return model;
  });
  const keys = new Set<string>();
  for (const model of models) {
    if (keys.has(modelKey(model))) fail('models', `${model.repo}@${model.revision} is listed twice`);
    keys.add(modelKey(model));
  }
  return normaliseLockfile({ lockfileVersion: LOCKFILE_VERSION, models });
}

/**
 * What differs between the manifest and what the lockfile was made from; empty when they agree.
 * `sync --frozen` refuses to run on any difference (the manifest changed since `lock`).
 */
export function diffManifestAndLock(manifest: Manifest, lock: Lockfile): string[] {
  const describe = (m: ManifestModel): string => `${m.source}:${m.repoType}/${m.repo}@${m.revision}${m.localDir ? ` -> ${m.localDir}` : ''}`;
  const globs = (list: string[]): string => JSON.stringify([...list].sort(compareCodeUnits));
  const locked = new Map(lock.models.map((m) => [modelKey(m), m]));
  const differences: string[] = [];
  for (const wanted of manifest.models) {
    const have = locked.get(modelKey(wanted));
    locked.delete(modelKey(wanted));
    if (!have) {
      differences.push(`${describe(wanted)} is in the manifest but not in the lockfile`);
      continue;
    }
    if (globs(wanted.include) !== globs(have.include)) differences.push(`${describe(wanted)}: include ${globs(wanted.include)} in the manifest, ${globs(have.include)} in the lockfile`);
    if (globs(wanted.exclude) !== globs(have.exclude)) differences.push(`${describe(wanted)}: exclude ${globs(wanted.exclude)} in the manifest, ${globs(have.exclude)} in the lockfile`);
  }
  for (const extra of locked.values()) differences.push(`${describe(extra)} is in the lockfile but no longer in the manifest`);
  return differences;
}

export function assertLockMatchesManifest(manifest: Manifest, lock: Lockfile, manifestPath: string, lockPath: string): void {
  const differences = diffManifestAndLock(manifest, lock);
  if (differences.length === 0) return;
  throw new ModelfetchError('ERR_USAGE', `${lockPath} does not match ${manifestPath} (--frozen): ${differences.join('; ')}`, {
    hint: 'The manifest changed since the lockfile was made. Run `modelfetch lock` and commit (and sign) the new lockfile.',
  });
}

function asObject(value: unknown, where: string, fail: (where: string, message: string) => never): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail(where, 'must be an object');
  return value as Record<string, unknown>;
}

function exactKeys(value: Record<string, unknown>, allowed: string[], where: string, fail: (where: string, message: string) => never): void {
  for (const key of Object.keys(value)) if (!allowed.includes(key)) fail(where, `unknown field ${JSON.stringify(key)}`);
}
