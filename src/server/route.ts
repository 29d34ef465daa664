import { assertRepoId } from '../core/repo-ref.js';
import { assertSafeRelativePath, assertSafeRevision } from '../core/validate.js';
import { ModelfetchError } from '../core/errors.js';
import type { RepoType } from '../core/types.js';

/**
 * Turns a raw request target into one of the routes the mirror answers, refusing anything that
 * could name a file outside a repository. The raw path is split BEFORE percent-decoding, so
 * `%2F` can never create a segment boundary and `%2e%2e` is caught as a dot segment.
 */

export interface RepoRef {
  repoType: RepoType;
  repoId: string;
}

export type Route =
  | { kind: 'health' }
  | { kind: 'ready' }
  | { kind: 'metrics' }
  | { kind: 'status-page' }
  | { kind: 'status-json' }
  | ({ kind: 'info'; revision: string } & RepoRef)
  | ({ kind: 'tree'; revision: string; path: string } & RepoRef)
  | ({ kind: 'paths-info'; revision: string } & RepoRef)
  | ({ kind: 'resolve'; revision: string; path: string } & RepoRef)
  | { kind: 'not-found' }
  // BitTorrent (`serve --swarm`): tracker, a verified file's torrent, and a blob by digest for the web seed.
  | { kind: 'swarm-announce' }
  | ({ kind: 'swarm-torrent'; commit: string; path: string } & RepoRef)
  | ({ kind: 'swarm-blob'; commit: string; digest: string } & RepoRef);

const API_TYPES: Record<string, RepoType> = { models: 'model', datasets: 'dataset', spaces: 'space' };
const REPO_KEYWORDS = new Set(['revision', 'tree', 'paths-info']);

export function badPath(why: string): ModelfetchError {
  return new ModelfetchError('ERR_UNSAFE_PATH', `Refusing request path: ${why}`, { status: 400 });
}

/** Decodes one path segment; refuses encoded separators, dot segments, backslashes and control characters. */
function decodeSegment(raw: string, allowSlash: boolean): string {
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw badPath('malformed percent-encoding');
  }
  if (!allowSlash && value.includes('/')) throw badPath('encoded "/" inside a segment');
  if (value === '.' || value === '..') throw badPath('dot segment');
  if (value.includes('\\')) throw badPath('backslash');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw badPath('control character');
  return value;
}

function repoPath(segments: string[], what: string): string {
  const path = segments.map((s) => decodeSegment(s, false)).join('/');
  try {
    return assertSafeRelativePath(path, what);
  } catch {
    throw badPath(`unsafe ${what}`);
  }
}

function revisionOf(raw: string): string {
  // Revisions such as refs/pr/1 arrive percent-encoded as one segment.
  const revision = decodeSegment(raw, true);
  try {
    return assertSafeRevision(revision);
  } catch {
    throw badPath('unsafe revision');
  }
}

function repoOf(repoType: RepoType, segments: string[]): RepoRef {
  const repoId = segments.map((s) => decodeSegment(s, false)).join('/');
  try {
    return { repoType, repoId: assertRepoId(repoId) };
  } catch {
    throw badPath('invalid repo id');
  }
}

/** Parses `pathname` (raw, still percent-encoded, without the query). Throws ERR_UNSAFE_PATH (400). */
export function parseRoute(method: string, pathname: string): Route {
  if (!pathname.startsWith('/')) throw badPath('not origin-form');
  if (pathname === '/') return { kind: 'status-page' };
  // A trailing slash is tolerated; empty inner segments are not.
  const segments = pathname.slice(1).replace(/\/$/, '').split('/');
  for (const raw of segments) {
    if (raw === '') throw badPath('empty segment');
    if (raw === '.' || raw === '..') throw badPath('dot segment');
  }
  if (segments.length === 1) {
    if (segments[0] === 'healthz') return { kind: 'health' };
    if (segments[0] === 'readyz') return { kind: 'ready' };
    if (segments[0] === 'metrics') return { kind: 'metrics' };
  }
  if (segments[0] === 'api') {
    if (segments.length === 2 && segments[1] === '_status') return { kind: 'status-json' };
    if (segments[1] === 'swarm') return parseSwarmRoute(segments.slice(2));
    const repoType = API_TYPES[segments[1] ?? ''];
    if (!repoType) return { kind: 'not-found' };
    return parseApiRoute(method, repoType, segments.slice(2));
  }
  let repoType: RepoType = 'model';
  let rest = segments;
  if (segments[0] === 'datasets' || segments[0] === 'spaces') {
    repoType = API_TYPES[segments[0]]!;
    rest = segments.slice(1);
  }
  for (const repoLength of [2, 1]) {
    if (rest[repoLength] === 'resolve' && rest.length >= repoLength + 3) {
      return {
        kind: 'resolve',
        ...repoOf(repoType, rest.slice(0, repoLength)),
        revision: revisionOf(rest[repoLength + 1]!),
        path: repoPath(rest.slice(repoLength + 2), 'file path'),
      };
    }
  }
  return { kind: 'not-found' };
}

function parseApiRoute(method: string, repoType: RepoType, rest: string[]): Route {
  for (const repoLength of [2, 1]) {
    if (rest.length === repoLength && !REPO_KEYWORDS.has(rest[repoLength - 1]!)) {
      return { kind: 'info', ...repoOf(repoType, rest), revision: 'main' };
    }
    const keyword = rest[repoLength];
    if (keyword === undefined || !REPO_KEYWORDS.has(keyword)) continue;
    const repo = repoOf(repoType, rest.slice(0, repoLength));
    const tail = rest.slice(repoLength + 1);
    if (keyword === 'revision' && tail.length >= 1) return { kind: 'info', ...repo, revision: revisionOf(tail.join('/')) };
    if (keyword === 'tree' && tail.length >= 1) {
      return { kind: 'tree', ...repo, revision: revisionOf(tail[0]!), path: tail.length > 1 ? repoPath(tail.slice(1), 'tree path') : '' };
    }
    if (keyword === 'paths-info' && tail.length === 1 && method === 'POST') return { kind: 'paths-info', ...repo, revision: revisionOf(tail[0]!) };
    return { kind: 'not-found' };
  }
  return { kind: 'not-found' };
}

const COMMIT_HEX = /^[0-9a-f]{40}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * `/api/swarm/announce`, `/api/swarm/{type}s/{repo}/{commit}/{path}.torrent` and
 * `/api/swarm/blobs/{type}s/{repo}/{commit}/{sha256}`. Only full commits: a torrent names one
 * file's bytes, never a branch that moves.
 */
function parseSwarmRoute(rest: string[]): Route {
  if (rest.length === 1 && rest[0] === 'announce') return { kind: 'swarm-announce' };
  const blob = rest[0] === 'blobs';
  const repoType = API_TYPES[(blob ? rest[1] : rest[0]) ?? ''];
  if (!repoType) return { kind: 'not-found' };
  const tail = rest.slice(blob ? 2 : 1);
  for (const repoLength of [2, 1]) {
    const commit = tail[repoLength];
    if (commit === undefined || !COMMIT_HEX.test(commit)) continue;
    const after = tail.slice(repoLength + 1);
    if (blob) {
      if (after.length !== 1 || !SHA256_HEX.test(after[0]!)) return { kind: 'not-found' };
      return { kind: 'swarm-blob', ...repoOf(repoType, tail.slice(0, repoLength)), commit, digest: after[0]! };
    }
    const last = after[after.length - 1];
    if (!last?.endsWith('.torrent') || last === '.torrent') return { kind: 'not-found' };
    const path = repoPath([...after.slice(0, -1), last.slice(0, -'.torrent'.length)], 'file path');
    return { kind: 'swarm-torrent', ...repoOf(repoType, tail.slice(0, repoLength)), commit, path };
  }
  return { kind: 'not-found' };
}
