import type { Dispatcher } from 'undici';
import { resolveHfEndpoint } from '../core/env.js';
import type { CacheView } from './cache-view.js';
import { publicRepoMatcher, type ListingStore, type UpstreamHub } from './catalog.js';
import type { FetchFile } from './flights.js';
import { cacheInUseMarker, createHfUpstream, createPullFetcher, treeListingStore } from './hf-upstream.js';
import type { RepoRef } from './route.js';
import { SwarmSession } from '../transfer/swarm/session.js';
import type { SwarmEngine } from '../transfer/swarm/engine.js';

/** The mirror's options as a library user gives them, and the one place their defaults are written down. */

export interface MirrorServerOptions {
  /** Cache root (HF_HUB_CACHE layout). */
  cacheDir: string;
  host?: string;
  port?: number;
  /** One line per request, already redacted. Default: none. */
  log?: (line: string) => void;
  /** Entries per tree page. Default 1000, as the Hub. */
  treePageSize?: number;
  /** How long in-flight responses may finish after close() before connections are cut. Default 10 s. */
  graceMs?: number;
  /** Include Node.js process metrics in /metrics. Default false. */
  processMetrics?: boolean;
  /**
   * The hub to fill misses from: its URL (then pull-through runs on the Hub source and `pull`), or
   * an UpstreamHub of your own. Without it (or with `offline`) the mirror never asks upstream.
   */
  upstream?: string | UpstreamHub;
  /** Downloads one file into the cache. Default with a URL upstream: through `pull`. */
  fetchFile?: FetchFile;
  /** Where upstream file listings are kept across restarts. Default with a URL upstream: `trees/{commit}.json`. */
  listings?: ListingStore;
  /** HTTP dispatcher for upstream requests (tests, proxies). */
  dispatcher?: Dispatcher;
  /** false (`serve --no-xet`): upstream files stored in Xet come through the plain path. Default: Xet. */
  xet?: boolean;
  /**
   * The environment whose Xet settings pull-through follows (`HF_HUB_DISABLE_XET`,
   * `MODELFETCH_XET_CACHE_SIZE`), as `pull` does; nothing else of it is read. Default: none.
   */
  env?: NodeJS.ProcessEnv;
  offline?: boolean;
  /** Forward clients' tokens upstream; otherwise the server's own token is used. */
  tokenPassthrough?: boolean;
  /** The server's own token (HF_TOKEN). Never logged. */
  token?: string;
  /** Ask upstream again where a branch points after this long. Default 60 s. */
  revalidateAfterMs?: number;
  /** How long a client token's upstream access check is trusted. Default 60 s. */
  accessTtlMs?: number;
  /**
   * Repos anyone may read, declared by the operator (`org/name`, `org/*`, `*`, optionally prefixed
   * `datasets/` or `spaces/`): served without asking upstream, also offline or while it is down.
   * Any other repo is served only after upstream said it is public, or accepted the client's token.
   */
  publicRepos?: string[];
  /** `Authorization: Bearer` token that shows every repo on the status page and `/api/_status`. */
  adminToken?: string;
  /** Upstream listings kept in memory, in files (least recently used dropped first). Default 200,000. */
  listingCacheFiles?: number;
  /** Connections open beyond this many are answered 503 and closed. Default 1024. */
  maxConnections?: number;
  /** A client that takes no bytes of its response for this long is cut off. Default 30 s. */
  sendTimeoutMs?: number;
  /** Files below this size are answered after they are verified rather than streamed while downloading. Default 1 MiB. */
  streamThreshold?: number;
  /**
   * A client must send its request headers within this long, else its connection is closed
   * (slowloris). Default 20 s; the whole request within max(this, 60 s).
   */
  headersTimeoutMs?: number;
  /**
   * Keeps a revision marked in use (so gc leaves it alone) while the server serves or pulls it.
   * Default: the cache's in-use markers, and a last-use record for gc's LRU order.
   */
  markInUse?: (repo: RepoRef, commit: string) => Promise<{ release(): Promise<void> }>;
  /**
   * BitTorrent (`--swarm`): a tracker at `/api/swarm/announce`, each verified file's torrent and its
   * blob by digest as web seed. Only repos anyone may read, unless `private` (`--swarm-private`).
   * With a URL upstream that runs a swarm too (a node agent), files are fetched through it: torrent
   * from the upstream, pieces from peers and the upstream as web seed, seeded while the server runs.
   */
  swarm?: MirrorSwarmOptions;
}

export interface MirrorSwarmOptions {
  private?: boolean;
  /** TCP port peers reach this server's BitTorrent engine on (`--swarm-port`); 0 picks a free one. Default 0. */
  port?: number;
  /** No piece verified for this long: the file comes over HTTP instead. Default 30 s. */
  stallMs?: number;
  /** The engine (tests); default webtorrent. */
  createEngine?: (port: number) => Promise<SwarmEngine>;
  /** How long the web seed capability of a private file's torrent is good for. Default 1 hour. */
  webSeedTtlMs?: number;
  /** The clock of web seed capabilities (tests). */
  now?: () => number;
}

export interface ResolvedMirrorOptions {
  cacheDir: string;
  host: string;
  port: number;
  log: (line: string) => void;
  treePageSize: number;
  graceMs: number;
  upstream: UpstreamHub | undefined;
  fetchFile: FetchFile | undefined;
  tokenPassthrough: boolean;
  token: string | undefined;
  revalidateAfterMs: number;
  accessTtlMs: number;
  isPublic: ((repo: RepoRef) => boolean) | undefined;
  adminToken: string | undefined;
  maxConnections: number;
  sendTimeoutMs: number;
  streamThreshold: number;
  headersTimeoutMs: number;
  listings: ListingStore | undefined;
  markInUse: MirrorServerOptions['markInUse'];
  /** The agent side of `--swarm` (fetching through the upstream's swarm), with a URL upstream. */
  swarmSession: SwarmSession | undefined;
}

/** Options normalised once: defaults written down here, and a URL upstream turned into the Hub source + pull. */
export function normaliseMirrorOptions(options: MirrorServerOptions, cache: CacheView): ResolvedMirrorOptions {
  const byUrl = typeof options.upstream === 'string' ? resolveHfEndpoint(options.upstream, {}) : undefined;
  const client = { ...(byUrl && { endpoint: byUrl }), ...(options.dispatcher && { dispatcher: options.dispatcher }) };
  const upstream = byUrl ? createHfUpstream({ endpoint: byUrl, ...client }) : (options.upstream as UpstreamHub | undefined);
  const swarm = options.swarm;
  const swarmSession = byUrl && swarm && !options.offline && !options.fetchFile
    ? new SwarmSession({ ...(swarm.port !== undefined && { port: swarm.port }), ...(swarm.stallMs !== undefined && { stallMs: swarm.stallMs }), ...(swarm.createEngine && { createEngine: swarm.createEngine }), ...(options.dispatcher && { dispatcher: options.dispatcher }), ...(options.log && { log: options.log }) })
    : undefined;
  const pull = { ...(options.xet === false && { xet: false }), ...(swarmSession && { swarm: swarmSession }) };
  const fetchFile = options.fetchFile ?? (byUrl ? createPullFetcher({ cacheDir: options.cacheDir, endpoint: byUrl, ...client, ...(options.env && { env: options.env }), pull }) : undefined);
  return {
    swarmSession,
    listings: options.listings ?? (byUrl ? treeListingStore() : undefined),
    markInUse: options.markInUse ?? (byUrl ? cacheInUseMarker(cache) : undefined),
    cacheDir: options.cacheDir,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    log: options.log ?? (() => {}),
    treePageSize: Math.max(1, options.treePageSize ?? 1000),
    graceMs: options.graceMs ?? 10_000,
    upstream: options.offline ? undefined : upstream,
    fetchFile: options.offline ? undefined : fetchFile,
    tokenPassthrough: options.tokenPassthrough ?? false,
    token: options.token || undefined,
    revalidateAfterMs: options.revalidateAfterMs ?? 60_000,
    accessTtlMs: options.accessTtlMs ?? 60_000,
    isPublic: options.publicRepos?.length ? publicRepoMatcher(options.publicRepos) : undefined,
    adminToken: options.adminToken || undefined,
    maxConnections: Math.max(1, options.maxConnections ?? 1024),
    sendTimeoutMs: Math.max(1, options.sendTimeoutMs ?? 30_000),
    streamThreshold: options.streamThreshold ?? 1 << 20,
    headersTimeoutMs: Math.max(1, options.headersTimeoutMs ?? 20_000),
  };
}
