import { createHash } from 'node:crypto';
import { stat, unlink } from 'node:fs/promises';
import type { RepoPaths } from '../cache/layout.js';
import { writeFileAtomic, writeRef } from '../cache/snapshot.js';
import { isModelfetchError } from '../errors.js';
import type { CacheView } from './cache-view.js';
import { HttpError, toHttpError } from './http-error.js';
import type { ListedFile } from './hub-json.js';
import type { RepoRef } from './route.js';

/**
 * What the mirror knows about a repo at a revision: the commit and its full file list, from the
 * cache and, where allowed, from upstream. Answers for a commit are immutable and kept; where a
 * branch points is asked upstream again after `revalidateAfterMs`, and served from `refs/` when
 * upstream cannot be reached.
 */
export interface ResolvedRevision {
  commit: string;
  files: ListedFile[];
  lastModified: Date;
  /** Where the file list came from: upstream's listing (complete) or the local snapshot (what is cached). */
  source: 'cache' | 'upstream';
}

/** The upstream hub as the mirror uses it. The default implementation sits on the Hub source (src/source/hf.ts). */
export interface UpstreamHub {
  readonly origin: string;
  /** The commit a branch, tag or commit names now. */
  revisionCommit(repo: RepoRef, revision: string, token: string | undefined): Promise<string>;
  /** Every file at `commit`. */
  listFiles(repo: RepoRef, commit: string, token: string | undefined): Promise<ListedFile[]>;
  /** Whether the repo is gated or private: asked without any token. */
  isRestricted(repo: RepoRef, revision: string): Promise<boolean>;
  /** Whether `token` may download `path` (or, without a path, read the repo at `revision`). */
  canRead(repo: RepoRef, revision: string, path: string | undefined, token: string): Promise<boolean>;
  /** Whether upstream answers at all (readiness). */
  ping(): Promise<boolean>;
}

/** Stores what upstream listed, so a later offline start still knows complete snapshots. */
export interface ListingStore {
  read(repo: RepoPaths, commit: string): Promise<ListedFile[] | undefined>;
  write(repo: RepoPaths, commit: string, files: ListedFile[]): Promise<void>;
}

export interface CatalogOptions {
  cache: CacheView;
  /** Undefined when offline. */
  upstream?: UpstreamHub;
  listings?: ListingStore;
  revalidateAfterMs: number;
  /** How long a token's access check is trusted. */
  accessTtlMs: number;
  now?: () => number;
}

export interface ClientAuth {
  /** The client's own token (Authorization: Bearer …), if it sent one. */
  clientToken?: string;
  /** The token used upstream on the client's behalf (its own with passthrough, else the server's). */
  upstreamToken?: string;
}

export class Catalog {
  private readonly listings = new Map<string, ListedFile[]>();
  private readonly validated = new Map<string, { at: number; commit: string }>();
  private readonly restricted = new Map<string, { value: boolean; at: number }>();
  private readonly access = new Map<string, number>();
  /** Restricted-status lookups started ahead of `authorize` (see `prefetchRestricted`). */
  private readonly restrictedLookups = new Map<string, { lookup: Promise<boolean>; at: number }>();
  private readonly now: () => number;
  /** After upstream was found unreachable, it is not asked again for a few seconds: requests are served from the cache meanwhile instead of each waiting for retries. */
  private downUntil = 0;
  private lastDownError: unknown;
  /** Upstream questions in progress: concurrent clients asking the same thing share one request. */
  private readonly asking = new Map<string, Promise<unknown>>();

  constructor(private readonly options: CatalogOptions) {
    this.now = options.now ?? Date.now;
  }

  get offline(): boolean {
    return this.options.upstream === undefined;
  }

  async resolve(repoRef: RepoRef, revision: string, auth: ClientAuth): Promise<ResolvedRevision> {
    const upstream = this.options.upstream;
    if (!upstream) return resolveFromCache(this.options.cache, repoRef, revision);
    const repo = this.options.cache.repo(repoRef.repoType, repoRef.repoId);
    const commit = await this.commitOf(upstream, repoRef, repo, revision, auth);
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
   * Starts asking upstream whether a repo is restricted while its revision is being resolved, so
   * `authorize` does not add a round trip. Nothing is recorded until `authorize` runs: a repo that
   * turns out not to exist leaves no trace in the cache.
   */
  prefetchRestricted(repoRef: RepoRef, revision: string): void {
    const upstream = this.options.upstream;
    if (upstream && this.restrictedIsStale(repoKey(repoRef))) this.restrictedLookup(upstream, repoRef, revision).catch(() => undefined);
  }

  private restrictedIsStale(key: string): boolean {
    const known = this.restricted.get(key);
    return !known || this.now() - known.at >= this.options.revalidateAfterMs;
  }

  /** The lookup `prefetchRestricted` started, while fresh, or a new one. */
  private restrictedLookup(upstream: UpstreamHub, repoRef: RepoRef, revision: string): Promise<boolean> {
    const key = repoKey(repoRef);
    const fresh = (at: number): boolean => this.now() - at < this.options.revalidateAfterMs;
    const started = this.restrictedLookups.get(key);
    if (started && fresh(started.at)) return started.lookup;
    const lookup = this.ask(`restricted ${key}`, () => upstream.isRestricted(repoRef, revision));
    // Lookups for repos that then failed to resolve are never consumed: drop stale ones, so names
    // a client makes up cannot grow the map without bound.
    for (const [other, { at }] of this.restrictedLookups) if (!fresh(at)) this.restrictedLookups.delete(other);
    this.restrictedLookups.set(key, { lookup, at: this.now() });
    return lookup;
  }

  /**
   * Refuses a client that may not read a gated or private repo: the repo's status is asked
   * upstream without a token, and a client's token is checked upstream (and trusted for a while).
   * Offline, nothing can be checked, so a repo known to be restricted is refused.
   */
  async authorize(repoRef: RepoRef, revision: string, path: string | undefined, auth: ClientAuth): Promise<void> {
    const key = repoKey(repoRef);
    const upstream = this.options.upstream;
    const repo = this.options.cache.repo(repoRef.repoType, repoRef.repoId);
    let restricted = this.restricted.get(key);
    if (upstream && this.restrictedIsStale(key)) {
      try {
        const lookup = this.restrictedLookup(upstream, repoRef, revision);
        this.restrictedLookups.delete(key);
        restricted = { value: await lookup, at: this.now() };
        this.restricted.set(key, restricted);
        await recordRestricted(repo.restrictedMarker, restricted.value);
      } catch (error) {
        if (!isUnreachable(error)) throw error;
      }
    }
    // Offline, or upstream down: what was last learned, kept on disk across restarts.
    restricted ??= { value: await exists(repo.restrictedMarker), at: this.now() };
    if (!restricted.value) return;
    if (!auth.clientToken) throw new HttpError(401, 'GatedRepo', `Access to ${repoRef.repoId} is restricted upstream; send a token that can read it (HF_TOKEN).`);
    if (!upstream) throw new HttpError(403, 'GatedRepo', `Access to ${repoRef.repoId} is restricted and this mirror is offline, so the token cannot be checked.`);
    const accessKey = `${tokenKey(auth.clientToken)}:${key}:${path === undefined ? 'meta' : 'file'}`;
    const checkedAt = this.access.get(accessKey);
    if (checkedAt !== undefined && this.now() - checkedAt < this.options.accessTtlMs) return;
    let allowed: boolean;
    try {
      allowed = await upstream.canRead(repoRef, revision, path, auth.clientToken);
    } catch (error) {
      throw toHttpError(error);
    }
    if (!allowed) throw new HttpError(403, 'GatedRepo', `The token was refused upstream for ${repoRef.repoId}; accept the repo's terms with the account it belongs to.`);
    this.access.set(accessKey, this.now());
  }
}

const DOWN_BACKOFF_MS = 5_000;

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

async function recordRestricted(marker: string, restricted: boolean): Promise<void> {
  if (restricted) {
    if (!(await exists(marker))) await writeFileAtomic(marker, '').catch(() => {});
  } else {
    await unlink(marker).catch(() => {});
  }
}

/** Tokens are told apart by their hash; the token itself is never kept as a key. */
function tokenKey(token: string | undefined): string {
  return token ? createHash('sha256').update(token).digest('hex') : '-';
}

function listingKey(repo: RepoRef, commit: string): string {
  return `${repo.repoType}:${repo.repoId}@${commit}`;
}

/** Network trouble (as opposed to an answer such as 404 or 403) means upstream is unreachable. */
export function isUnreachable(error: unknown): boolean {
  if (!isModelfetchError(error)) return false;
  if (error.code === 'ERR_NETWORK' || error.code === 'ERR_STALL') return true;
  return error.code === 'ERR_HTTP' && (error.status === undefined || error.status >= 500 || error.status === 429);
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

/** A repo's key in the catalog's maps (gating status, lookups in progress). */
function repoKey(repo: RepoRef): string {
  return `${repo.repoType}:${repo.repoId}`;
}
