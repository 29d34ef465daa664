import { createHash, timingSafeEqual } from 'node:crypto';
import { access } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { ModelfetchError } from '../core/errors.js';
import { resolveHfEndpoint } from '../core/env.js';
import { cacheInUseMarker, createHfUpstream, createPullFetcher, treeListingStore } from './hf-upstream.js';
import { redactText } from '../core/redact.js';
import { CacheView } from './cache-view.js';
import { linkSnapshotFile } from '../cache/snapshot.js';
import { touchRevision } from '../cache/usage.js';
import { Catalog, entryNotFound, publicRepoMatcher, type ClientAuth, type ListingStore, type ResolvedRevision, type UpstreamHub } from './catalog.js';
import { Flights, type FetchFile, type Flight } from './flights.js';
import { streamFlight } from './stream-flight.js';
import { HttpError, sendError, toHttpError } from './http-error.js';
import { listTree, pathsInfo, repoInfo, type TreeEntry } from './hub-json.js';
import { MirrorMetrics } from './metrics.js';
import { parseRoute, type RepoRef, type Route } from './route.js';
import { createSwarmRoutes } from './swarm-routes.js';
import { SwarmTracker } from './swarm-tracker.js';
import { headerOf, sendFile, type SendTimeout } from './send-file.js';
import { renderStatusPage, type MirrorStatus } from './status-page.js';
import { ThroughputMeter } from './throughput.js';

/**
 * A Hugging Face-compatible HTTP server over a modelfetch / huggingface_hub cache: the Hub's info,
 * tree, paths-info and resolve endpoints, plus /healthz, /readyz, /metrics and a status page.
 */

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
   */
  swarm?: { private?: boolean };
}

interface ResolvedOptions {
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
}

export interface MirrorServer {
  readonly server: Server;
  readonly metrics: MirrorMetrics;
  /** `http://host:port` once listening. */
  url: string;
  listen(): Promise<string>;
  /** What the status page shows: only repos anonymous clients may read, unless `full` (the admin view). */
  status(full?: boolean): Promise<MirrorStatus>;
  /** Stops accepting, lets responses in flight finish for the grace period, then cuts the rest. */
  close(): Promise<void>;
}

/** Per request, for the access log. */
interface RequestRecord {
  cache: 'hit' | 'miss' | '-';
  bytes: number;
  route: Route['kind'] | 'bad' | 'refused';
}

/** Options normalised once: defaults written down here, and a URL upstream turned into the Hub source + pull. */
function normalise(options: MirrorServerOptions, cache: CacheView): ResolvedOptions & { listings: ListingStore | undefined; markInUse: MirrorServerOptions['markInUse'] } {
  const byUrl = typeof options.upstream === 'string' ? resolveHfEndpoint(options.upstream, {}) : undefined;
  const client = { ...(byUrl && { endpoint: byUrl }), ...(options.dispatcher && { dispatcher: options.dispatcher }) };
  const upstream = byUrl ? createHfUpstream({ endpoint: byUrl, ...client }) : (options.upstream as UpstreamHub | undefined);
  const fetchFile = options.fetchFile ?? (byUrl ? createPullFetcher({ cacheDir: options.cacheDir, endpoint: byUrl, ...client }) : undefined);
  return {
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

export function createMirrorServer(userOptions: MirrorServerOptions): MirrorServer {
  const cache = new CacheView(userOptions.cacheDir);
  const options = normalise(userOptions, cache);
  const metrics = new MirrorMetrics({ processMetrics: userOptions.processMetrics ?? false });
  const throughput = new ThroughputMeter();
  const startedAt = Date.now();
  const lastTouched = new Map<string, number>();
  /** The revision's last-use record (read by gc and the status page), touched at most once a minute. */
  const recordUse = (repo: RepoRef, commit: string): void => {
    const key = `${repo.repoType}:${repo.repoId}@${commit}`;
    const now = Date.now();
    if ((lastTouched.get(key) ?? 0) > now - 60_000) return;
    lastTouched.set(key, now);
    void touchRevision(cache.repo(repo.repoType, repo.repoId), commit, { now }).catch(() => {});
  };
  const inFlight = new Set<ServerResponse>();
  const catalog = new Catalog({
    cache,
    ...(options.upstream && { upstream: options.upstream }),
    ...(options.listings && { listings: options.listings }),
    revalidateAfterMs: options.revalidateAfterMs,
    accessTtlMs: options.accessTtlMs,
    ...(options.isPublic && { isPublic: options.isPublic }),
    ...(userOptions.listingCacheFiles !== undefined && { listingCacheFiles: userOptions.listingCacheFiles }),
  });
  const fetchFile = options.fetchFile;
  const flights = fetchFile
    ? new Flights({
        fetchFile,
        onUpstreamBytes: (n) => metrics.upstreamBytes.inc(n),
        onStart: () => metrics.pullsInFlight.inc(),
        onEnd: () => metrics.pullsInFlight.dec(),
      })
    : undefined;
  const inUse = new InUseMarkers(options.markInUse);

  const authOf = (req: IncomingMessage): ClientAuth => {
    const header = headerOf(req, 'authorization');
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    const clientToken = match?.[1];
    const upstreamToken = options.tokenPassthrough ? (clientToken ?? options.token) : options.token;
    return { ...(clientToken && { clientToken }), ...(upstreamToken && { upstreamToken }) };
  };

  const isAdmin = (req: IncomingMessage): boolean => {
    const token = authOf(req).clientToken;
    return options.adminToken !== undefined && token !== undefined && sameSecret(token, options.adminToken);
  };

  const sendTimeout: SendTimeout = { ms: options.sendTimeoutMs, onTimeout: () => metrics.sendTimeouts.inc() };

  const countBody = (record: RequestRecord) => (n: number) => {
    record.bytes += n;
    metrics.bytesServed.inc(n);
    throughput.add(n);
  };

  const sendJson = (res: ServerResponse, record: RequestRecord, value: unknown, headers: Record<string, string> = {}): void => {
    const body = Buffer.from(JSON.stringify(value));
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(body.length), ...headers });
    res.end(res.req.method === 'HEAD' ? undefined : body);
    if (res.req.method !== 'HEAD') countBody(record)(body.length);
  };

  const sendText = (res: ServerResponse, record: RequestRecord, status: number, contentType: string, text: string): void => {
    const body = Buffer.from(text);
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': String(body.length), 'Cache-Control': 'no-store' });
    res.end(res.req.method === 'HEAD' ? undefined : body);
    if (res.req.method !== 'HEAD') countBody(record)(body.length);
  };

  const resolve = async (req: IncomingMessage, repo: RepoRef, revision: string, path?: string): Promise<ResolvedRevision> => {
    const auth = authOf(req);
    // Authorized before anything is asked or written with the server's own token.
    await catalog.authorize(repo, revision, path, auth);
    const resolved = await catalog.resolve(repo, revision, auth);
    recordUse(repo, resolved.commit);
    return resolved;
  };

  /** With the admin token, everything; otherwise only repos any anonymous client may read. */
  const status = async (full = false): Promise<MirrorStatus> => {
    const counters = await metrics.snapshot();
    const visible = async <T extends RepoRef>(items: T[]): Promise<T[]> => (full ? items : (await Promise.all(items.map(async (r) => ((await catalog.knownPublic(r)) ? [r] : [])))).flat());
    const repos = await visible(await cache.listRepos());
    const downloads = await visible((flights?.list() ?? []).map((f) => ({ repoType: f.repo.repoType, repoId: f.repo.repoId, path: f.file.path, bytesDone: f.bytesDone, totalBytes: f.total, waiting: f.waiting })));
    return {
      startedAt,
      upstream: options.upstream?.origin ?? null,
      offline: !options.upstream,
      repos: repos.map((r) => ({
        repoType: r.repoType,
        repoId: r.repoId,
        size: r.size,
        commits: r.commits.length,
        refs: r.refs,
        lastUsed: r.lastUsed ?? r.lastModified,
      })),
      downloads,
      hits: counters.hits,
      misses: counters.misses,
      hitRate: counters.hits + counters.misses === 0 ? null : counters.hits / (counters.hits + counters.misses),
      bytesServed: counters.bytesServed,
      upstreamBytes: counters.upstreamBytes,
      throughput: throughput.rate(),
    };
  };

  const handleTree = (req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: Extract<Route, { kind: 'tree' }>, query: URLSearchParams, resolved: ResolvedRevision): void => {
    const recursive = query.get('recursive') === 'true' || query.get('recursive') === '1';
    const expand = query.get('expand') === 'true' || query.get('expand') === '1';
    const entries = listTree(resolved.files, route.path, recursive);
    if (!entries) throw entryNotFound(route, resolved.commit, route.path);
    const cursor = Number.parseInt(query.get('cursor') ?? '0', 10);
    const start = Number.isFinite(cursor) && cursor > 0 ? cursor : 0;
    const page = entries.slice(start, start + options.treePageSize).map((e) => (expand ? expandEntry(e, resolved) : e));
    const headers: Record<string, string> = { 'X-Repo-Commit': resolved.commit };
    if (start + options.treePageSize < entries.length) {
      // Clients fetch the next page as given, so the link is absolute, on the host they asked.
      const next = new URLSearchParams(query);
      next.set('cursor', String(start + options.treePageSize));
      headers.Link = `<${originOf(req)}${pathOf(req)}?${next.toString()}>; rel="next"`;
    }
    sendJson(res, record, page, headers);
  };

  const fileHeaders = (route: RepoRef & { path: string }, commit: string, file: { size: number; digest: { hex: string } }): Record<string, string> => {
    const etag = `"${file.digest.hex}"`;
    return {
      'Content-Type': 'application/octet-stream',
      'Content-Disposition': contentDisposition(route.path),
      'X-Repo-Commit': commit,
      'X-Linked-Etag': etag,
      'X-Linked-Size': String(file.size),
    };
  };

  const serveCached = async (req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: Extract<Route, { kind: 'resolve' }>, commit: string): Promise<boolean> => {
    const file = await cache.locate(cache.repo(route.repoType, route.repoId), commit, route.path);
    if (!file) return false;
    // Counted before the body goes out: the access log line is written when the response closes.
    if (record.cache !== 'miss') {
      metrics.cacheHits.inc();
      record.cache = 'hit';
    }
    await sendFile(req, res, { file: file.file, size: file.size, etag: `"${file.digest.hex}"`, headers: fileHeaders(route, commit, file), onBytes: countBody(record), sendTimeout });
    return true;
  };

  const handleResolve = async (req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: Extract<Route, { kind: 'resolve' }>): Promise<void> => {
    const resolved = await resolve(req, route, route.revision, route.path);
    const repo = cache.repo(route.repoType, route.repoId);
    const release = await inUse.hold(route, resolved.commit);
    try {
      if (await serveCached(req, res, record, route, resolved.commit)) return;
      const listed = resolved.files.find((f) => f.path === route.path);
      if (!listed) throw entryNotFound(route, resolved.commit, route.path);
      // The same bytes may already be stored for another path or commit: link and serve them.
      if (await cache.insideRoot(repo.blob(listed.digest))) {
        await linkSnapshotFile(repo, resolved.commit, route.path, listed.digest);
        if (await serveCached(req, res, record, route, resolved.commit)) return;
      }
      metrics.cacheMisses.inc();
      record.cache = 'miss';
      // Until the blob is verified a Range is answered only once the whole blob is: `none` tells clients
      // that read it (modelfetch does) to take the streamed GET, which follows the download as it lands.
      const headers = { ...fileHeaders(route, resolved.commit, listed), ETag: `"${listed.digest.hex}"`, 'Accept-Ranges': 'none' };
      if (req.method === 'HEAD') {
        // Metadata is known from the listing; a HEAD never starts a download.
        res.writeHead(200, { ...headers, 'Content-Length': String(listed.size) });
        res.end();
        return;
      }
      if (!flights) throw new HttpError(504, 'Offline', `${route.path} of ${route.repoId} is not in the mirror's cache and the mirror is offline.`);
      const flight = flights.start(route, resolved.commit, listed, authOf(req).upstreamToken);
      const streamable = listed.size >= options.streamThreshold && req.headers.range === undefined;
      if (streamable) {
        for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
        res.setHeader('Content-Length', String(listed.size));
        res.statusCode = 200;
        if ((await streamFlight(res, flight, countBody(record), sendTimeout)) === 'streamed') return;
      } else {
        await waitFor(flight, res);
      }
      if (res.destroyed) return;
      await linkSnapshotFile(repo, resolved.commit, route.path, listed.digest);
      if (!(await serveCached(req, res, record, route, resolved.commit))) throw entryNotFound(route, resolved.commit, route.path);
    } finally {
      await release();
    }
  };

  const swarm = userOptions.swarm
    ? createSwarmRoutes({ cache, tracker: new SwarmTracker(), metrics, sharePrivate: userOptions.swarm.private === true, knownPublic: (repo) => catalog.knownPublic(repo), resolve, origin: originOf })
    : undefined;

  const handle = async (req: IncomingMessage, res: ServerResponse, record: RequestRecord): Promise<void> => {
    const raw = req.url ?? '/';
    const queryAt = raw.indexOf('?');
    const pathname = queryAt === -1 ? raw : raw.slice(0, queryAt);
    const query = new URLSearchParams(queryAt === -1 ? '' : raw.slice(queryAt + 1));
    const method = req.method ?? 'GET';
    const route = parseRoute(method, pathname);
    record.route = route.kind;
    if (method !== 'GET' && method !== 'HEAD' && route.kind !== 'paths-info') throw new HttpError(405, undefined, `${method} is not supported`);
    switch (route.kind) {
      case 'health':
        return sendText(res, record, 200, 'text/plain; charset=utf-8', 'ok\n');
      case 'ready': {
        const readable = await access(options.cacheDir).then(() => true, () => false);
        const reachable = !options.upstream || (await options.upstream.ping().catch(() => false));
        const ready = readable && reachable;
        const why = !readable ? 'cache not readable\n' : !reachable ? 'upstream unreachable\n' : 'ready\n';
        return sendText(res, record, ready ? 200 : 503, 'text/plain; charset=utf-8', why);
      }
      case 'metrics': {
        const rendered = await metrics.render();
        return sendText(res, record, 200, rendered.contentType, rendered.body);
      }
      case 'status-page':
        return sendText(res, record, 200, 'text/html; charset=utf-8', renderStatusPage(await status(isAdmin(req))));
      case 'status-json':
        return sendJson(res, record, await status(isAdmin(req)), { 'Cache-Control': 'no-store' });
      case 'info': {
        const resolved = await resolve(req, route, route.revision);
        return sendJson(res, record, repoInfo({ ...route, commit: resolved.commit, files: resolved.files, lastModified: resolved.lastModified }));
      }
      case 'tree':
        return handleTree(req, res, record, route, query, await resolve(req, route, route.revision));
      case 'paths-info': {
        const paths = await readPathsInfoBody(req);
        const resolved = await resolve(req, route, route.revision);
        const expand = paths.expand;
        return sendJson(res, record, pathsInfo(resolved.files, paths.paths).map((e) => (expand ? expandEntry(e, resolved) : e)));
      }
      case 'resolve':
        return handleResolve(req, res, record, route);
      case 'swarm-announce':
      case 'swarm-torrent':
      case 'swarm-blob':
        if (!swarm) throw new HttpError(404, undefined, 'Not found: this mirror runs without --swarm');
        return swarm(req, route, queryAt === -1 ? '' : raw.slice(queryAt + 1), {
          body: (contentType, body) => {
            res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': String(body.length), 'Cache-Control': 'no-store' });
            res.end(method === 'HEAD' ? undefined : body);
            if (method !== 'HEAD') countBody(record)(body.length);
          },
          blob: (file) => sendFile(req, res, { file: file.file, size: file.size, etag: `"${file.digest.hex}"`, headers: { 'Content-Type': 'application/octet-stream' }, onBytes: countBody(record), sendTimeout }),
        });
      case 'not-found':
        throw new HttpError(404, undefined, 'Not found');
    }
  };

  // Slow clients are cut off: headers within headersTimeoutMs, checked often enough to matter.
  const server = createServer({
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: Math.max(options.headersTimeoutMs, 60_000),
    connectionsCheckingInterval: Math.min(1000, Math.ceil(options.headersTimeoutMs / 4)),
  }, (req, res) => {
    const started = process.hrtime.bigint();
    const record: RequestRecord = { cache: '-', bytes: 0, route: 'bad' };
    inFlight.add(res);
    res.on('close', () => {
      inFlight.delete(res);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.latency.observe({ route: record.route }, seconds);
      metrics.requests.inc({ route: record.route, status: String(res.statusCode) });
      const short = res.writableFinished ? '' : ' aborted';
      options.log(redactText(`${new Date().toISOString()} ${req.method} ${req.url} ${res.statusCode} ${record.bytes} ${(seconds * 1000).toFixed(1)}ms ${record.cache}${short}`));
    });
    if (overCapacity.has(req.socket)) {
      record.route = 'refused';
      res.setHeader('Connection', 'close');
      res.setHeader('Retry-After', '5');
      record.bytes += sendError(res, new HttpError(503, undefined, `The mirror has ${options.maxConnections} connections open, its limit; retry shortly.`));
      return;
    }
    handle(req, res, record).catch((error: unknown) => {
      record.bytes += sendError(res, toHttpError(error));
    });
  });
  server.keepAliveTimeout = 65_000;
  // Beyond the cap a connection is still answered (503, then closed) rather than dropped unanswered,
  // so clients see why; it holds nothing but its socket meanwhile.
  const overCapacity = new WeakSet<Socket>();
  let openConnections = 0;
  server.on('connection', (socket: Socket) => {
    if (openConnections >= options.maxConnections) {
      overCapacity.add(socket);
      metrics.refusedConnections.inc();
      return;
    }
    openConnections++;
    metrics.openConnections.inc();
    socket.once('close', () => {
      openConnections--;
      metrics.openConnections.dec();
    });
  });

  const mirror: MirrorServer = {
    server,
    metrics,
    url: '',
    listen: () =>
      new Promise<string>((resolveListen, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          mirror.url = `http://${host}:${address.port}`;
          resolveListen(mirror.url);
        });
      }),
    status,
    close: async () => {
      const closed = new Promise<void>((done) => server.close(() => done()));
      server.closeIdleConnections();
      const drained = new Promise<void>((done) => {
        const check = (): void => {
          if (inFlight.size === 0) done();
          else setTimeout(check, 20);
        };
        check();
      });
      const grace = new Promise<void>((done) => setTimeout(done, options.graceMs).unref());
      await Promise.race([drained, grace]);
      // Downloads still running stop here; the engine keeps their partial data and journals for the next start.
      flights?.abortAll();
      await flights?.settled();
      server.closeAllConnections();
      await closed;
      await inUse.releaseAll();
    },
  };
  return mirror;
}

/** Waits until the flight is verified (resolves) or failed (throws), or the client went away. */
async function waitFor(flight: Flight, res: ServerResponse): Promise<void> {
  flight.waiting++;
  try {
    await Promise.race([flight.done, new Promise<void>((resolve) => res.once('close', () => resolve()))]);
  } catch (error) {
    // Whatever failed, it failed upstream of this mirror.
    throw error instanceof HttpError || error instanceof ModelfetchError ? error : new HttpError(502, 'UpstreamUnavailable', `Upstream download failed: ${String(error)}`);
  } finally {
    flight.waiting--;
  }
}

/** Reference-counted "in use" markers per revision, so gc never deletes what is being served or pulled. */
class InUseMarkers {
  private readonly held = new Map<string, { count: number; marker: Promise<{ release(): Promise<void> } | undefined> }>();

  constructor(private readonly mark?: (repo: RepoRef, commit: string) => Promise<{ release(): Promise<void> }>) {}

  async hold(repo: RepoRef, commit: string): Promise<() => Promise<void>> {
    if (!this.mark) return async () => {};
    const key = `${repo.repoType}:${repo.repoId}@${commit}`;
    let entry = this.held.get(key);
    if (!entry) {
      entry = { count: 0, marker: this.mark(repo, commit).catch(() => undefined) };
      this.held.set(key, entry);
    }
    entry.count++;
    await entry.marker;
    const current = entry;
    return async () => {
      current.count--;
      if (current.count > 0 || this.held.get(key) !== current) return;
      this.held.delete(key);
      await (await current.marker)?.release();
    };
  }

  async releaseAll(): Promise<void> {
    const entries = [...this.held.values()];
    this.held.clear();
    await Promise.all(entries.map(async (e) => (await e.marker)?.release()));
  }
}

/** Compared by hash in constant time, so the comparison reveals nothing of the admin token. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function expandEntry(entry: TreeEntry, resolved: ResolvedRevision): TreeEntry & { lastCommit: { id: string; title: string; date: string } } {
  // The cache does not know which commit last touched a file; the snapshot's own commit is what
  // clients use lastCommit for (naming the snapshot folder), so that is what is reported.
  return { ...entry, lastCommit: { id: resolved.commit, title: '', date: resolved.lastModified.toISOString() } };
}

function contentDisposition(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return `inline; filename*=UTF-8''${encodeURIComponent(name)}; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"`;
}

function originOf(req: IncomingMessage): string {
  const host = headerOf(req, 'host') ?? `${req.socket.localAddress}:${req.socket.localPort}`;
  return `http://${host}`;
}

function pathOf(req: IncomingMessage): string {
  const raw = req.url ?? '/';
  const at = raw.indexOf('?');
  return at === -1 ? raw : raw.slice(0, at);
}

const MAX_BODY = 1 << 20;

/** paths-info bodies come as JSON (@huggingface/hub) or as a form (huggingface_hub). */
async function readPathsInfoBody(req: IncomingMessage): Promise<{ paths: string[]; expand: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ModelfetchError('ERR_USAGE', 'paths-info body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const type = headerOf(req, 'content-type') ?? '';
  if (type.includes('json')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ModelfetchError('ERR_USAGE', 'paths-info body is not valid JSON');
    }
    const body = parsed as { paths?: unknown; expand?: unknown };
    const paths = Array.isArray(body.paths) ? body.paths.filter((p): p is string => typeof p === 'string') : typeof body.paths === 'string' ? [body.paths] : [];
    return { paths, expand: body.expand === true || body.expand === 'true' };
  }
  const form = new URLSearchParams(text);
  const expand = (form.get('expand') ?? '').toLowerCase();
  return { paths: form.getAll('paths'), expand: expand === 'true' || expand === '1' };
}

/** Creates the mirror and starts listening: the library's one-call entry. */
export async function serve(options: MirrorServerOptions): Promise<MirrorServer> {
  const mirror = createMirrorServer(options);
  await mirror.listen();
  return mirror;
}
