import type { IncomingMessage, ServerResponse } from 'node:http';
import { ModelfetchError } from '../core/errors.js';
import type { RepoFile } from '../core/types.js';
import type { CacheView } from './cache-view.js';
import { entryNotFound, type ResolvedRevision } from './catalog.js';
import type { Flight, Flights } from './flights.js';
import { HttpError } from './http-error.js';
import { listTree, pathsInfo, repoInfo, type TreeEntry } from './hub-json.js';
import type { MirrorMetrics } from './metrics.js';
import type { RequestRecord, Responders } from './responses.js';
import type { InUseMarkers } from './revision-use.js';
import type { RepoRef, Route } from './route.js';
import { headerOf, sendFile, type SendTimeout } from './send-file.js';
import { streamFlight } from './stream-flight.js';

/**
 * The Hub API routes the mirror answers: repo info, tree, paths-info and resolve. A resolve is
 * served from the cache when it can be, else from one upstream download shared by every client
 * that asks for the same file (src/server/flights.ts).
 */

type RouteOf<K extends Route['kind']> = Extract<Route, { kind: K }>;

export interface HubRouteDeps {
  cache: CacheView;
  metrics: MirrorMetrics;
  responders: Responders;
  /** Authorizes the client, then resolves the revision (src/server/catalog.ts). */
  resolve(req: IncomingMessage, repo: RepoRef, revision: string, path?: string): Promise<ResolvedRevision>;
  /** The token to send upstream for this client, if any. */
  upstreamToken(req: IncomingMessage): string | undefined;
  /** Undefined when the mirror is offline. */
  flights: Flights | undefined;
  inUse: InUseMarkers;
  treePageSize: number;
  streamThreshold: number;
  sendTimeout: SendTimeout;
}

export interface HubRoutes {
  info(req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: RouteOf<'info'>): Promise<void>;
  tree(req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: RouteOf<'tree'>, query: URLSearchParams): Promise<void>;
  pathsInfo(req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: RouteOf<'paths-info'>): Promise<void>;
  resolve(req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: RouteOf<'resolve'>): Promise<void>;
  /**
   * The resolve route's pull-through with no client reading along (a swarm torrent asked for a file
   * the cache lacks): the file is linked at `commit` when this resolves. Nothing when offline.
   */
  fill(req: IncomingMessage, repo: RepoRef, commit: string, file: RepoFile): Promise<void>;
}

export function createHubRoutes(deps: HubRouteDeps): HubRoutes {
  const { cache, metrics, flights, inUse, sendTimeout } = deps;
  const { countBody, sendJson } = deps.responders;

  const handleTree = (req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: RouteOf<'tree'>, query: URLSearchParams, resolved: ResolvedRevision): void => {
    const recursive = query.get('recursive') === 'true' || query.get('recursive') === '1';
    const expand = query.get('expand') === 'true' || query.get('expand') === '1';
    const entries = listTree(resolved.files, route.path, recursive);
    if (!entries) throw entryNotFound(route, resolved.commit, route.path);
    const cursor = Number.parseInt(query.get('cursor') ?? '0', 10);
    const start = Number.isFinite(cursor) && cursor > 0 ? cursor : 0;
    const page = entries.slice(start, start + deps.treePageSize).map((e) => (expand ? expandEntry(e, resolved) : e));
    const headers: Record<string, string> = { 'X-Repo-Commit': resolved.commit };
    if (start + deps.treePageSize < entries.length) {
      // Clients fetch the next page as given, so the link is absolute, on the host they asked.
      const next = new URLSearchParams(query);
      next.set('cursor', String(start + deps.treePageSize));
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

  const serveCached = async (req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: RouteOf<'resolve'>, commit: string): Promise<boolean> => {
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

  /** The same bytes may already be stored for another path or commit: pull links them (no download). True when it did. */
  const linkIfStored = async (req: IncomingMessage, repo: RepoRef, commit: string, file: RepoFile): Promise<boolean> => {
    if (!flights || !(await cache.insideRoot(cache.repo(repo.repoType, repo.repoId).blob(file.digest)))) return false;
    await flights.linkStored(repo, commit, file, deps.upstreamToken(req));
    return true;
  };

  const fill = async (req: IncomingMessage, repo: RepoRef, commit: string, file: RepoFile): Promise<void> => {
    if (!flights) return;
    const release = await inUse.hold(repo, commit);
    try {
      if (await linkIfStored(req, repo, commit, file)) return;
      await flights.start(repo, commit, file, deps.upstreamToken(req)).done;
      // The flight may have been another path's or commit's with the same bytes: link this one too.
      await flights.linkStored(repo, commit, file, deps.upstreamToken(req));
    } finally {
      await release();
    }
  };

  const handleResolve = async (req: IncomingMessage, res: ServerResponse, record: RequestRecord, route: RouteOf<'resolve'>): Promise<void> => {
    const resolved = await deps.resolve(req, route, route.revision, route.path);
    const release = await inUse.hold(route, resolved.commit);
    try {
      if (await serveCached(req, res, record, route, resolved.commit)) return;
      const listed = resolved.files.find((f) => f.path === route.path);
      if (!listed) throw entryNotFound(route, resolved.commit, route.path);
      if ((await linkIfStored(req, route, resolved.commit, listed)) && (await serveCached(req, res, record, route, resolved.commit))) return;
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
      const flight = flights.start(route, resolved.commit, listed, deps.upstreamToken(req));
      const streamable = listed.size >= deps.streamThreshold && req.headers.range === undefined;
      if (streamable) {
        for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
        res.setHeader('Content-Length', String(listed.size));
        res.statusCode = 200;
        if ((await streamFlight(res, flight, countBody(record), sendTimeout)) === 'streamed') return;
      } else {
        await waitFor(flight, res);
      }
      if (res.destroyed) return;
      if (await serveCached(req, res, record, route, resolved.commit)) return;
      // The flight that stored the blob was another path's or commit's (flights are per blob): pull links this one too.
      await flights.linkStored(route, resolved.commit, listed, deps.upstreamToken(req));
      if (!(await serveCached(req, res, record, route, resolved.commit))) throw entryNotFound(route, resolved.commit, route.path);
    } finally {
      await release();
    }
  };

  return {
    info: async (req, res, record, route) => {
      const resolved = await deps.resolve(req, route, route.revision);
      sendJson(res, record, repoInfo({ ...route, commit: resolved.commit, files: resolved.files, lastModified: resolved.lastModified }));
    },
    tree: async (req, res, record, route, query) => handleTree(req, res, record, route, query, await deps.resolve(req, route, route.revision)),
    pathsInfo: async (req, res, record, route) => {
      const paths = await readPathsInfoBody(req);
      const resolved = await deps.resolve(req, route, route.revision);
      const expand = paths.expand;
      sendJson(res, record, pathsInfo(resolved.files, paths.paths).map((e) => (expand ? expandEntry(e, resolved) : e)));
    },
    resolve: handleResolve,
    fill,
  };
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

function expandEntry(entry: TreeEntry, resolved: ResolvedRevision): TreeEntry & { lastCommit: { id: string; title: string; date: string } } {
  // The cache does not know which commit last touched a file; the snapshot's own commit is what
  // clients use lastCommit for (naming the snapshot folder), so that is what is reported.
  return { ...entry, lastCommit: { id: resolved.commit, title: '', date: resolved.lastModified.toISOString() } };
}

function contentDisposition(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return `inline; filename*=UTF-8''${encodeURIComponent(name)}; filename="${name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"`;
}

export function originOf(req: IncomingMessage): string {
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
