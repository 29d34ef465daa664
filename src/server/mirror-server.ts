import { createHash, timingSafeEqual } from 'node:crypto';
import { access } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { CacheView } from './cache-view.js';
import { Catalog, type ClientAuth, type ResolvedRevision } from './catalog.js';
import { Flights } from './flights.js';
import { HttpError, sendError, toHttpError } from './http-error.js';
import { createHubRoutes, originOf } from './hub-routes.js';
import { MirrorMetrics } from './metrics.js';
import { normaliseMirrorOptions, type MirrorServerOptions } from './mirror-options.js';
import { collectMirrorStatus } from './mirror-status.js';
import { createResponders, observeRequest, type RequestRecord } from './responses.js';
import { createUseRecorder, InUseMarkers } from './revision-use.js';
import { parseRoute, type RepoRef } from './route.js';
import { headerOf, sendFile, type SendTimeout } from './send-file.js';
import { renderStatusPage, type MirrorStatus } from './status-page.js';
import { createSwarmRoutes } from './swarm-routes.js';
import { SwarmTracker } from './swarm-tracker.js';
import { ThroughputMeter } from './throughput.js';
import { createWebSeedCapabilities } from './web-seed-capability.js';

/**
 * A Hugging Face-compatible HTTP server over a modelfetch / huggingface_hub cache: the Hub's info,
 * tree, paths-info and resolve endpoints (hub-routes.ts), plus /healthz, /readyz, /metrics and a
 * status page. This file wires the parts together, caps connections and shuts down gracefully.
 */

export type { MirrorServerOptions } from './mirror-options.js';

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

export function createMirrorServer(userOptions: MirrorServerOptions): MirrorServer {
  const cache = new CacheView(userOptions.cacheDir);
  const options = normaliseMirrorOptions(userOptions, cache);
  const metrics = new MirrorMetrics({ processMetrics: userOptions.processMetrics ?? false });
  const swarmSession = options.swarmSession;
  if (swarmSession) metrics.observeSwarm(() => swarmSession.status());
  const throughput = new ThroughputMeter();
  const startedAt = Date.now();
  const recordUse = createUseRecorder(cache);
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
  const responders = createResponders(metrics, throughput);
  const { countBody, sendBody, sendJson, sendText } = responders;

  const resolve = async (req: IncomingMessage, repo: RepoRef, revision: string, path?: string): Promise<ResolvedRevision> => {
    const auth = authOf(req);
    // Authorized before anything is asked or written with the server's own token.
    await catalog.authorize(repo, revision, path, auth);
    const resolved = await catalog.resolve(repo, revision, auth);
    recordUse(repo, resolved.commit);
    return resolved;
  };

  const status = (full = false): Promise<MirrorStatus> => collectMirrorStatus({ startedAt, cache, catalog, flights, metrics, throughput, upstream: options.upstream?.origin ?? null, ...(swarmSession && { swarm: () => swarmSession.status() }) }, full);

  const hub = createHubRoutes({
    cache,
    metrics,
    responders,
    resolve,
    upstreamToken: (req) => authOf(req).upstreamToken,
    flights,
    inUse,
    treePageSize: options.treePageSize,
    streamThreshold: options.streamThreshold,
    sendTimeout,
  });

  const swarm = userOptions.swarm
    ? createSwarmRoutes({
        cache,
        tracker: new SwarmTracker(),
        metrics,
        sharePrivate: userOptions.swarm.private === true,
        capabilities: createWebSeedCapabilities({ ...(userOptions.swarm.webSeedTtlMs !== undefined && { ttlMs: userOptions.swarm.webSeedTtlMs }), ...(userOptions.swarm.now && { now: userOptions.swarm.now }) }),
        knownPublic: (repo) => catalog.knownPublic(repo),
        resolve,
        origin: originOf,
        ...(flights && { fill: hub.fill }),
      })
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
      case 'info':
        return hub.info(req, res, record, route);
      case 'tree':
        return hub.tree(req, res, record, route, query);
      case 'paths-info':
        return hub.pathsInfo(req, res, record, route);
      case 'resolve':
        return hub.resolve(req, res, record, route);
      case 'swarm-announce':
      case 'swarm-torrent':
      case 'swarm-blob':
        if (!swarm) throw new HttpError(404, undefined, 'Not found: this mirror runs without --swarm');
        return swarm(req, route, queryAt === -1 ? '' : raw.slice(queryAt + 1), {
          body: (contentType, body) => sendBody(res, record, 200, contentType, body, { 'Cache-Control': 'no-store' }),
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
    const record = observeRequest(req, res, metrics, options.log);
    inFlight.add(res);
    res.on('close', () => inFlight.delete(res));
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
          // An agent goes on seeding what it got through the swarm before a restart.
          const upstreamOrigin = options.upstream?.origin;
          if (swarmSession && upstreamOrigin) {
            void cache.listRepos().then((repos) => swarmSession.seedStamped(repos.map((r) => cache.repo(r.repoType, r.repoId)), upstreamOrigin), () => 0);
          }
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
      // Seeding ends with the server; the blobs stay in the cache.
      await swarmSession?.close();
      await inUse.releaseAll();
    },
  };
  return mirror;
}

/** Compared by hash in constant time, so the comparison reveals nothing of the admin token. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/** Creates the mirror and starts listening: the library's one-call entry. */
export async function serve(options: MirrorServerOptions): Promise<MirrorServer> {
  const mirror = createMirrorServer(options);
  await mirror.listen();
  return mirror;
}
