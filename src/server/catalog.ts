import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { type RepoPaths } from '../cache/layout.js';
import { assertRepoId } from '../core/repo-ref.js';
import { writeCacheFile, writeRef } from '../cache/snapshot.js';
import { removeUnder } from '../cache/safe-path.js';
import { isModelfetchError, ModelfetchError } from '../core/errors.js';
import type { CacheView } from './cache-view.js';
import { HttpError, toHttpError } from './http-error.js';
import type { RepoFile } from '../core/types.js';
import { LruMap } from './lru.js';
import { isUpstreamDown } from '../transfer/retry-policy.js';
import type { RepoRef } from './route.js';

/**
 * What the mirror knows about a repo at a revision: the commit and its full file list, from the
 * cache and, where allowed, from upstream. Answers for a commit are immutable and kept; where a
 * branch points is asked upstream again after `revalidateAfterMs`, and served from `refs/` when
 * upstream cannot be reached.
 */
export interface ResolvedRevision {
  commit: string;
  files: RepoFile[];
  lastModified: Date;
  /** Where the file list came from: upstream's listing (complete) or the local snapshot (what is cached). */
  source: 'cache' | 'upstream';
}

/**
 * What an anonymous client may see of a repo upstream: anyone may read it, it is gated (its
 * existence is public, its files need an accepted token), or it is hidden (private or missing).
 */
export type Visibility = 'public' | 'gated' | 'hidden';

/** The upstream hub as the mirror uses it. The default implementation sits on the Hub source (src/source/hf.ts). */
export interface UpstreamHub {
  readonly origin: string;
  /** The commit a branch, tag or commit names now. */
  revisionCommit(repo: RepoRef, revision: string, token: string | undefined): Promise<string>;
  /** Every file at `commit`. */
  listFiles(repo: RepoRef, commit: string, token: string | undefined): Promise<RepoFile[]>;
  /** What an anonymous client may see of the repo: asked without any token. */
  visibility(repo: RepoRef, revision: string): Promise<Visibility>;
  /** Whether `token` may download `path` (or, without a path, read the repo at `revision`). */
  canRead(repo: RepoRef, revision: string, path: string | undefined, token: string): Promise<boolean>;
  /** Whether upstream answers at all (readiness). */
  ping(): Promise<boolean>;
}

/** Stores what upstream listed, so a later offline start still knows complete snapshots. */
export interface ListingStore {
  read(repo: RepoPaths, commit: string): Promise<RepoFile[] | undefined>;
  write(repo: RepoPaths, commit: string, files: RepoFile[]): Promise<void>;
}

export interface CatalogOptions {
  cache: CacheView;
  /** Undefined when offline. */
  upstream?: UpstreamHub;
  listings?: ListingStore;
  revalidateAfterMs: number;
  /** How long a token's access check is trusted. */
  accessTtlMs: number;
  /** Repos the operator declared public (`serve --public`): served without any check, also offline. */
  isPublic?: (repo: RepoRef) => boolean;
  /** At most this many listed files are kept in memory, least recently used dropped first. Default 200,000. */
  listingCacheFiles?: number;
  now?: () => number;
}

export interface ClientAuth {
  /** The client's own token (Authorization: Bearer …), if it sent one. */
  clientToken?: string;
  /** The token used upstream on the client's behalf (its own with passthrough, else the server's). */
  upstreamToken?: string;
}

/** Default bound of the in-memory listing cache, in files (about 250 bytes each). */
export const DEFAULT_LISTING_CACHE_FILES = 200_000;
/** Bound of each per-repo or per-token map (gating answers, access checks, branch lookups). */
const MAX_TRACKED = 10_000;

export class Catalog {
  /** Upstream listings by commit: immutable, so kept, within a bound (least recently used dropped first). */
  private readonly listings: LruMap<string, RepoFile[]>;
  private readonly validated = new LruMap<string, { at: number; commit: string }>(MAX_TRACKED);
  /** Upstream's last answer on each repo's visibility. Only `public` lets a client in without a token check. */
  private readonly visibilities = new LruMap<string, { value: Visibility; at: number }>(MAX_TRACKED);
  /** Positive token checks only: a refused or unanswered check is never remembered as access. */
  private readonly access = new LruMap<string, number>(MAX_TRACKED);
  /** Repos whose public marker this process wrote (or found), so it is not written per request. */
  private readonly recordedPublic = new LruMap<string, true>(MAX_TRACKED);
  private readonly now: () => number;
  /** After upstream was found unreachable, it is not asked again for a few seconds: requests are served from the cache meanwhile instead of each waiting for retries. */
  private downUntil = 0;
  private lastDownError: unknown;
  /** Upstream questions in progress: concurrent clients asking the same thing share one request. */
  private readonly asking = new Map<string, Promise<unknown>>();

  constructor(private readonly options: CatalogOptions) {
    this.now = options.now ?? Date.now;
    this.listings = new LruMap(MAX_TRACKED, options.listingCacheFiles ?? DEFAULT_LISTING_CACHE_FILES, (files) => Math.max(1, files.length));
  }

  get offline(): boolean {
    return this.options.upstream === undefined;
  }

  /** Listings held in memory now: how many, and their files in total. */
  listingCacheSize(): { listings: number; files: number } {
    return { listings: this.listings.size, files: this.listings.weight };
  }

  async resolve(repoRef: RepoRef, revision: string, auth: ClientAuth): Promise<ResolvedRevision> {
    const upstream = this.options.upstream;
    if (!upstream) return resolveFromCache(this.options.cache, repoRef, revision);
    const repo = this.options.cache.repo(repoRef.repoType, repoRef.repoId);
    const commit = await this.commitOf(upstream, repoRef, repo, revision, auth);
    await this.recordPublic(repoRef, repo);
    const known = this.listings.get(listingKey(repoRef, commit)) ?? (await this.options.listings?.read(repo, commit));
    if (known) {
      this.listings.set(listingKey(repoRef, commit), known);
      return { commit, files: known, lastModified: await snapshotTime(repo, commit), source: 'upstream' };
    }
    try {
      const files = await this.ask(`list ${listingKey(repoRef, commit)} ${tokenKey(auth.upstreamToken)}`, () => upstream.listFiles(repoRef, commit, auth.upstreamToken));
      this.listings.set(listingKey(repoRef, commit), files);
      await this.options.listings?.write(repo, commit, files).catch(() => {});
      return { commit, files, lastModified: await snapshotTime(repo, commit), source: 'upstream' };
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      // Upstream is down: what the cache holds of this commit is better than nothing.
      const local = await resolveFromCache(this.options.cache, repoRef, commit).catch(() => undefined);
      if (local) return local;
      throw upstreamDown(error);
    }
  }

  private async commitOf(upstream: UpstreamHub, repoRef: RepoRef, repo: RepoPaths, revision: string, auth: ClientAuth): Promise<string> {
    if (/^[0-9a-f]{40}$/.test(revision)) return revision;
    const key = `${repoRef.repoType}:${repoRef.repoId}@${revision}`;
    const checked = this.validated.get(key);
    if (checked && this.now() - checked.at < this.options.revalidateAfterMs) return checked.commit;
    try {
      const commit = await this.ask(`revision ${key} ${tokenKey(auth.upstreamToken)}`, () => upstream.revisionCommit(repoRef, revision, auth.upstreamToken));
      if (revision !== 'HEAD') await writeRef(repo, revision, commit).catch(() => {});
      this.validated.set(key, { at: this.now(), commit });
      return commit;
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      const local = await this.options.cache.resolveCommit(repo, revision);
      if (local) return local;
      throw upstreamDown(error);
    }
  }

  private async ask<T>(key: string, call: () => Promise<T>): Promise<T> {
    if (this.now() < this.downUntil) throw this.lastDownError;
    const running = this.asking.get(key) as Promise<T> | undefined;
    if (running) return running;
    const asked = (async () => {
      try {
        return await call();
      } catch (error) {
        if (isUnreachable(error)) {
          this.downUntil = this.now() + DOWN_BACKOFF_MS;
          this.lastDownError = error;
        }
        throw error;
      } finally {
        this.asking.delete(key);
      }
    })();
    this.asking.set(key, asked);
    return asked;
  }

  /**
   * Whether anonymous clients may see the repo: declared public by the operator, or upstream's
   * answer (asked again after `revalidateAfterMs`). When upstream cannot answer, only a `public`
   * answer it gave before (in memory, or recorded on disk) counts; anything else is 'unknown'.
   */
  private async visibility(repoRef: RepoRef, revision: string): Promise<Visibility | 'unknown'> {
    if (this.options.isPublic?.(repoRef)) return 'public';
    const key = repoKey(repoRef);
    const repo = this.options.cache.repo(repoRef.repoType, repoRef.repoId);
    const upstream = this.options.upstream;
    const known = this.visibilities.get(key);
    if (known && this.now() - known.at < this.options.revalidateAfterMs) return known.value;
    if (!upstream) return (await exists(repo.publicMarker)) ? 'public' : 'unknown';
    try {
      const value = await this.ask(`visibility ${key}@${revision}`, () => upstream.visibility(repoRef, revision));
      this.visibilities.set(key, { value, at: this.now() });
      if (value !== 'public') {
        this.recordedPublic.delete(key);
        await removeUnder(repo.root, repo.publicMarker).catch(() => {});
      }
      return value;
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      if (known?.value === 'public' || (await exists(repo.publicMarker))) return 'public';
      return 'unknown';
    }
  }

  /** Records upstream's fresh `public` answer on disk once the repo resolved (so the repo folder is a real one). */
  private async recordPublic(repoRef: RepoRef, repo: RepoPaths): Promise<void> {
    const key = repoKey(repoRef);
    if (this.visibilities.get(key)?.value !== 'public' || this.recordedPublic.get(key)) return;
    if (!(await exists(repo.publicMarker))) await writeCacheFile(repo.root, repo.publicMarker, '').catch(() => {});
    this.recordedPublic.set(key, true);
  }

  /** Whether anonymous clients may read the repo, from what is known without asking upstream (status output). */
  async knownPublic(repoRef: RepoRef): Promise<boolean> {
    if (this.options.isPublic?.(repoRef)) return true;
    const known = this.visibilities.get(repoKey(repoRef));
    if (known) return known.value === 'public';
    return exists(this.options.cache.repo(repoRef.repoType, repoRef.repoId).publicMarker);
  }

  /**
   * Refuses a client that may not read the repo, before anything is asked upstream with the
   * server's own token. Fails closed: a repo is served without a token check only when the
   * operator declared it public or upstream said it is; a client's token only on upstream's yes
   * for that token (trusted for `accessTtlMs`). A private repo answers exactly as a missing one.
   */
  async authorize(repoRef: RepoRef, revision: string, path: string | undefined, auth: ClientAuth): Promise<void> {
    const visibility = await this.visibility(repoRef, revision);
    if (visibility === 'public') return;
    const upstream = this.options.upstream;
    const accessKey = auth.clientToken ? `${tokenKey(auth.clientToken)}:${repoKey(repoRef)}:${path === undefined ? 'meta' : 'file'}` : undefined;
    const checkedAt = accessKey ? this.access.get(accessKey) : undefined;
    if (checkedAt !== undefined && this.now() - checkedAt < this.options.accessTtlMs) return;
    if (!upstream) throw notKnownPublic(repoRef);
    if (visibility === 'unknown') throw accessUnknown(repoRef);
    if (!auth.clientToken || !accessKey) {
      if (visibility === 'hidden') throw repoNotFound(repoRef);
      throw new HttpError(401, 'GatedRepo', `Access to ${repoRef.repoId} is restricted upstream; send a token that can read it (HF_TOKEN).`);
    }
    let allowed: boolean;
    try {
      allowed = await upstream.canRead(repoRef, revision, path, auth.clientToken);
    } catch (error) {
      if (isUnreachable(error)) throw accessUnknown(repoRef);
      throw toHttpError(error);
    }
    if (!allowed) {
      if (visibility === 'hidden') throw repoNotFound(repoRef);
      throw new HttpError(403, 'GatedRepo', `The token was refused upstream for ${repoRef.repoId}; accept the repo's terms with the account it belongs to.`);
    }
    this.access.set(accessKey, this.now());
  }
}

/** Upstream could not say whether the client may read the repo: refused, never guessed. */
function accessUnknown(repo: RepoRef): HttpError {
  return new HttpError(503, 'UpstreamUnavailable', `The upstream hub cannot be reached to check whether ${repo.repoId} may be read, so access is refused; retry later, or have the operator declare the repo public (serve --public).`);
}

/**
 * Offline, a repo not known to be public answers as a missing one does, whatever the cache holds:
 * an anonymous client cannot learn which private repos the cache holds.
 */
function notKnownPublic(repo: RepoRef): HttpError {
  return new HttpError(404, 'RepoNotFound', `Repository ${repo.repoType === 'model' ? '' : `${repo.repoType}s/`}${repo.repoId} is not served by this offline mirror: it is not in the cache, or not known to be public (the operator declares public repos with serve --public).`);
}

const DOWN_BACKOFF_MS = 5_000;

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** Tokens are told apart by their hash; the token itself is never kept as a key. */
function tokenKey(token: string | undefined): string {
  return token ? createHash('sha256').update(token).digest('hex') : '-';
}

function listingKey(repo: RepoRef, commit: string): string {
  return `${repo.repoType}:${repo.repoId}@${commit}`;
}

/** Network trouble (as opposed to an answer such as 404 or 403) means upstream is unreachable: the retry policy's table says which. */
export function isUnreachable(error: unknown): boolean {
  return isModelfetchError(error) && isUpstreamDown(error.code, error.status);
}

function upstreamDown(error: unknown): HttpError {
  const detail = error instanceof Error ? error.message : String(error);
  const timeout = isModelfetchError(error) && error.code === 'ERR_STALL';
  return new HttpError(timeout ? 504 : 502, 'UpstreamUnavailable', `Upstream hub unreachable and not in the mirror's cache: ${detail}`);
}

export async function resolveFromCache(cache: CacheView, repoRef: RepoRef, revision: string): Promise<ResolvedRevision> {
  const repo = cache.repo(repoRef.repoType, repoRef.repoId);
  if (!(await cache.repoExists(repo))) throw repoNotFound(repoRef);
  const commit = await cache.resolveCommit(repo, revision);
  if (!commit) throw revisionNotFound(repoRef, revision);
  const files = await cache.listSnapshot(repo, commit);
  return { commit, files, lastModified: await snapshotTime(repo, commit), source: 'cache' };
}

async function snapshotTime(repo: RepoPaths, commit: string): Promise<Date> {
  const info = await stat(repo.snapshotDir(commit)).catch(() => undefined);
  return info ? info.mtime : new Date(0);
}

export function repoNotFound(repo: RepoRef): HttpError {
  return new HttpError(404, 'RepoNotFound', `Repository ${repo.repoType === 'model' ? '' : `${repo.repoType}s/`}${repo.repoId} not found`);
}

export function revisionNotFound(repo: RepoRef, revision: string): HttpError {
  return new HttpError(404, 'RevisionNotFound', `Revision ${revision} not found in ${repo.repoId}`);
}

export function entryNotFound(repo: RepoRef, commit: string, path: string): HttpError {
  return new HttpError(404, 'EntryNotFound', `${path} does not exist in ${repo.repoId} at ${commit}`);
}

/** A repo's key in the catalog's maps (visibility, access checks). */
function repoKey(repo: RepoRef): string {
  return `${repo.repoType}:${repo.repoId}`;
}

const TYPE_PREFIXES: Record<string, RepoRef['repoType']> = { 'datasets/': 'dataset', 'spaces/': 'space' };

/**
 * The repos an operator declared public (`serve --public`): `org/name`, `org/*` (a whole
 * organisation) or `*` (the whole cache), each optionally prefixed `datasets/` or `spaces/`
 * (models by default). Anything else is a usage error, so a typo never silently serves nothing.
 */
export function publicRepoMatcher(patterns: readonly string[]): (repo: RepoRef) => boolean {
  const rules = patterns.map((pattern) => {
    const prefix = Object.keys(TYPE_PREFIXES).find((p) => pattern.startsWith(p));
    const repoType = prefix ? TYPE_PREFIXES[prefix]! : 'model';
    const rest = prefix ? pattern.slice(prefix.length) : pattern;
    const validId = (id: string): string => {
      try {
        return assertRepoId(id);
      } catch {
        throw badPublicPattern(pattern);
      }
    };
    if (rest === '*') return (repo: RepoRef) => repo.repoType === repoType || !prefix;
    if (rest.endsWith('/*')) {
      const org = validId(rest.slice(0, -2));
      if (org.includes('/')) throw badPublicPattern(pattern);
      return (repo: RepoRef) => repo.repoType === repoType && repo.repoId.startsWith(`${org}/`);
    }
    if (rest.includes('*')) throw badPublicPattern(pattern);
    const repoId = validId(rest);
    return (repo: RepoRef) => repo.repoType === repoType && repo.repoId === repoId;
  });
  return (repo) => rules.some((rule) => rule(repo));
}

function badPublicPattern(pattern: string): ModelfetchError {
  return new ModelfetchError('ERR_USAGE', `Invalid --public pattern ${JSON.stringify(pattern.slice(0, 120))}`, {
    hint: 'Use org/name, org/* or *, optionally prefixed datasets/ or spaces/.',
  });
}
