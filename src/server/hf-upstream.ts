import { holdRevision } from '../cache/usage.js';
import type { Dispatcher } from 'undici';
import { readRepoTreeListing, writeTreeListing } from '../cache/tree-listing.js';
import { isModelfetchError } from '../core/errors.js';
import { pull, type PullOptions } from '../pull/index.js';
import { fetchRepoVisibility, fetchRevisionCommit, hubReachable, listRepoFiles, probeFileAccess, warmHubClient, type HfClientOptions } from '../source/hf.js';
import type { CacheView } from './cache-view.js';
import { repoNotFound, revisionNotFound, type ListingStore, type UpstreamHub } from './catalog.js';
import type { FetchFile } from './flights.js';
import type { RepoRef } from './route.js';

/**
 * The mirror's upstream on the Hub source (src/source/hf.ts) and pull (src/pull/): no HTTP of its
 * own. Listings go to huggingface_hub's `trees/{commit}.json`, so a later `pull` of the same commit
 * (and the mirror after a restart) makes no API call.
 */

export interface HfUpstreamOptions {
  endpoint: string;
  dispatcher?: Dispatcher;
}

/** A not-found answer from upstream, with the Hub error code clients expect (by the error's reason, never its wording). */
export function upstreamNotFound(error: unknown, repo: RepoRef, revision: string): unknown {
  if (!isModelfetchError(error, 'ERR_NOT_FOUND')) return error;
  return error.reason === 'revision-not-found' ? revisionNotFound(repo, revision) : repoNotFound(repo);
}

export function createHfUpstream(options: HfUpstreamOptions): UpstreamHub {
  // Not on the first client's request: that client would wait for the module to load.
  warmHubClient();
  const client = (token: string | undefined): HfClientOptions => ({ endpoint: options.endpoint, ...(token && { token }), ...(options.dispatcher && { dispatcher: options.dispatcher }) });
  return {
    origin: options.endpoint,
    revisionCommit: (repo, revision, token) => fetchRevisionCommit(repo, revision, client(token)).catch((error: unknown) => Promise.reject(upstreamNotFound(error, repo, revision))),
    listFiles: (repo, commit, token) => listRepoFiles(repo, commit, client(token)).catch((error: unknown) => Promise.reject(upstreamNotFound(error, repo, commit))),
    visibility: (repo, revision) => fetchRepoVisibility(repo, revision, client(undefined)).catch((error: unknown) => Promise.reject(upstreamNotFound(error, repo, revision))),
    canRead: async (repo, revision, path, token) => {
      if (path !== undefined) return probeFileAccess(repo, revision, path, client(token));
      try {
        await fetchRevisionCommit(repo, revision, client(token));
        return true;
      } catch (error) {
        if (isModelfetchError(error, 'ERR_GATED') || isModelfetchError(error, 'ERR_AUTH') || isModelfetchError(error, 'ERR_NOT_FOUND')) return false;
        throw error;
      }
    },
    ping: () => hubReachable(options),
  };
}

/** Upstream listings stored as huggingface_hub's tree listing cache. */
export function treeListingStore(): ListingStore {
  return {
    read: (repo, commit) => readRepoTreeListing(repo, commit),
    write: async (repo, commit, files) => {
      if (!(await readRepoTreeListing(repo, commit))) await writeTreeListing(repo.root, repo.treeListing(commit), files);
    },
  };
}

export interface PullFetcherOptions extends HfUpstreamOptions {
  cacheDir: string;
  /** Engine settings (connections, segment sizes, timeouts). */
  pull?: Pick<PullOptions, 'connections' | 'transfer' | 'transferFiles' | 'clock' | 'freeBytes' | 'xet' | 'swarm'>;
  /** The server's environment: only its Xet settings reach pull (see XET_VARIABLES). */
  env?: NodeJS.ProcessEnv;
}

/** What pull-through takes from the server's environment: Xet on or off, and the chunk cache's size. */
const XET_VARIABLES = ['HF_HUB_DISABLE_XET', 'MODELFETCH_XET_CACHE_SIZE'] as const;

function xetVariables(env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  const picked: NodeJS.ProcessEnv = {};
  for (const name of XET_VARIABLES) if (env?.[name] !== undefined) picked[name] = env[name];
  return picked;
}

/**
 * One file through `pull`, with the commit and listing entry the catalog resolved: it takes the
 * cross-process blob lock, runs the engine (verified while streaming), commits the blob, links the
 * snapshot, marks the revision in use meanwhile and records its use.
 */
export function createPullFetcher(options: PullFetcherOptions): FetchFile {
  // The engine (and its hashing worker) loads once at start, not while the first client waits.
  void import('../transfer/index.js').then(({ warmHashWorker }) => warmHashWorker(), () => undefined);
  return async (request) => {
    await pull({
      repo: request.repo.repoId,
      repoType: request.repo.repoType,
      revision: request.commit,
      files: [request.file.path],
      // What the catalog already resolved and validated: pull lists nothing again, and accepts only this size and digest.
      listing: [{ path: request.file.path, size: request.file.size, digest: request.file.digest, ...(request.file.xetHash && { xetHash: request.file.xetHash }) }],
      cacheDir: options.cacheDir,
      endpoint: options.endpoint,
      // The server decides which token goes upstream (none when it has none): pull reads none of its own.
      token: request.token ?? null,
      // Nor anything else from the process environment (HF_HUB_OFFLINE, …) but its Xet settings: the server's options decide.
      env: xetVariables(options.env),
      signal: request.signal,
      ...(options.dispatcher && { dispatcher: options.dispatcher }),
      ...options.pull,
      onProgress: (event) =>
        request.onProgress({
          tempPath: event.tempPath,
          contiguousBytes: event.contiguousBytes,
          bytesDone: event.bytesDone,
          totalBytes: event.totalBytes,
          // The job carries the listing's digest, so past 'verify' the bytes are the blob's.
          verified: event.phase === 'sync' || event.phase === 'done',
        }),
    });
  };
}

/** "In use" markers for gc, on the cache the view reads. */
export function cacheInUseMarker(cache: CacheView): (repo: RepoRef, commit: string) => Promise<{ release(): Promise<void> }> {
  return (repo, commit) => holdRevision(cache.repo(repo.repoType, repo.repoId), commit);
}
