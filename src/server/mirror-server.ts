import { access } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ModelfetchError } from '../errors.js';
import { redactText } from '../redact.js';
import { CacheView } from './cache-view.js';
import { entryNotFound, resolveFromCache, type ResolvedRevision } from './catalog.js';
import { HttpError, sendError, toHttpError } from './http-error.js';
import { listTree, pathsInfo, repoInfo, type TreeEntry } from './hub-json.js';
import { MirrorMetrics } from './metrics.js';
import { parseRoute, type RepoRef, type Route } from './route.js';
import { headerOf, sendFile } from './send-file.js';
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
}

interface ResolvedOptions {
  cacheDir: string;
  host: string;
  port: number;
  log: (line: string) => void;
  treePageSize: number;
  graceMs: number;
}

export interface MirrorServer {
  readonly server: Server;
  readonly metrics: MirrorMetrics;
  /** `http://host:port` once listening. */
  url: string;
  listen(): Promise<string>;
  status(): Promise<MirrorStatus>;
  /** Stops accepting, lets responses in flight finish for the grace period, then cuts the rest. */
  close(): Promise<void>;
}

/** Per request, for the access log. */
interface RequestRecord {
  cache: 'hit' | 'miss' | '-';
  bytes: number;
  route: Route['kind'] | 'bad';
}

function normalise(options: MirrorServerOptions): ResolvedOptions {
  return {
    cacheDir: options.cacheDir,
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    log: options.log ?? (() => {}),
    treePageSize: Math.max(1, options.treePageSize ?? 1000),
    graceMs: options.graceMs ?? 10_000,
  };
}

export function createMirrorServer(userOptions: MirrorServerOptions): MirrorServer {
  const options = normalise(userOptions);
  const cache = new CacheView(options.cacheDir);
  const metrics = new MirrorMetrics({ processMetrics: userOptions.processMetrics ?? false });
  const throughput = new ThroughputMeter();
  const startedAt = Date.now();
  const lastUsed = new Map<string, number>();
  const inFlight = new Set<ServerResponse>();

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

  const resolve = async (repo: RepoRef, revision: string): Promise<ResolvedRevision> => {
    const resolved = await resolveFromCache(cache, repo, revision);
    lastUsed.set(`${repo.repoType}:${repo.repoId}`, Date.now());
    return resolved;
  };

  const status = async (): Promise<MirrorStatus> => {
    const counters = await metrics.snapshot();
    const repos = await cache.listRepos();
    return {
      startedAt,
      upstream: null,
      offline: true,
      repos: repos.map((r) => ({
        repoType: r.repoType,
        repoId: r.repoId,
        size: r.size,
        commits: r.commits.length,
        refs: r.refs,
        lastUsed: Math.max(lastUsed.get(`${r.repoType}:${r.repoId}`) ?? 0, r.lastModified),
      })),
      downloads: [],
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

  const handleResolve = async (req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: Extract<Route, { kind: 'resolve' }>): Promise<void> => {
    const resolved = await resolve(route, route.revision);
    const repo = cache.repo(route.repoType, route.repoId);
    const file = await cache.locate(repo, resolved.commit, route.path);
    if (!file) {
      metrics.cacheMisses.inc();
      record.cache = 'miss';
      throw entryNotFound(route, resolved.commit, route.path);
    }
    metrics.cacheHits.inc();
    record.cache = 'hit';
    const etag = `"${file.digest.hex}"`;
    await sendFile(req, res, {
      file: file.file,
      size: file.size,
      etag,
      headers: {
        'Content-Type': 'application/octet-stream',
        'Content-Disposition': contentDisposition(route.path),
        'X-Repo-Commit': resolved.commit,
        'X-Linked-Etag': etag,
        'X-Linked-Size': String(file.size),
      },
      onBytes: countBody(record),
    });
  };

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
        return sendText(res, record, readable ? 200 : 503, 'text/plain; charset=utf-8', readable ? 'ready\n' : 'cache not readable\n');
      }
      case 'metrics': {
        const rendered = await metrics.render();
        return sendText(res, record, 200, rendered.contentType, rendered.body);
      }
      case 'status-page':
        return sendText(res, record, 200, 'text/html; charset=utf-8', renderStatusPage(await status()));
      case 'status-json':
        return sendJson(res, record, await status(), { 'Cache-Control': 'no-store' });
      case 'info': {
        const resolved = await resolve(route, route.revision);
        return sendJson(res, record, repoInfo({ ...route, commit: resolved.commit, files: resolved.files, lastModified: resolved.lastModified }));
      }
      case 'tree':
        return handleTree(req, res, record, route, query, await resolve(route, route.revision));
      case 'paths-info': {
        const paths = await readPathsInfoBody(req);
        const resolved = await resolve(route, route.revision);
        const expand = paths.expand;
        return sendJson(res, record, pathsInfo(resolved.files, paths.paths).map((e) => (expand ? expandEntry(e, resolved) : e)));
      }
      case 'resolve':
        return handleResolve(req, res, record, route);
      case 'not-found':
        throw new HttpError(404, undefined, 'Not found');
    }
  };

  const server = createServer((req, res) => {
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
    handle(req, res, record).catch((error: unknown) => {
      record.bytes += sendError(res, toHttpError(error));
    });
  });
  server.keepAliveTimeout = 65_000;

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
      server.closeAllConnections();
      await closed;
    },
  };
  return mirror;
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
