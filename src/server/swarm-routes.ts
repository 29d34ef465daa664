import type { IncomingMessage } from 'node:http';
import type { RepoFile } from '../core/types.js';
import { ensureTorrentInfo, torrentFile, type TorrentInfo } from '../transfer/swarm/torrent.js';
import type { CacheView } from './cache-view.js';
import { entryNotFound, type ResolvedRevision } from './catalog.js';
import { HttpError } from './http-error.js';
import type { MirrorMetrics } from './metrics.js';
import type { RepoRef, Route } from './route.js';
import type { SwarmTracker } from './swarm-tracker.js';
import type { WebSeedCapabilities } from './web-seed-capability.js';

/**
 * The mirror side of `serve --swarm`: the tracker's announce, the torrent of each verified file,
 * and that file's blob by digest (with Range) as the torrent's web seed. Torrents and blobs are
 * authorized exactly as the file itself (the same `resolve` with the same path), and files of repos
 * anonymous clients may not read are put in no swarm unless the operator chose `--swarm-private`.
 */

export type SwarmRoute = Extract<Route, { kind: 'swarm-announce' | 'swarm-torrent' | 'swarm-blob' }>;

export interface SwarmRouteDeps {
  cache: CacheView;
  tracker: SwarmTracker;
  metrics: MirrorMetrics;
  /**
   * `--swarm-private`: gated and private repos' files are shared too (still only with authorized
   * clients), their web seeds through capabilities.
   */
  sharePrivate: boolean;
  capabilities: WebSeedCapabilities;
  knownPublic(repo: RepoRef): Promise<boolean>;
  /** The mirror's own authorization and revision resolution (as for `resolve` requests). */
  resolve(req: IncomingMessage, repo: RepoRef, revision: string, path?: string): Promise<ResolvedRevision>;
  origin(req: IncomingMessage): string;
  /**
   * Fetches a listed file the cache lacks from upstream (the mirror's single-flight pull-through)
   * and links it at `commit`; absent when the mirror has no upstream. A torrent request for such a
   * file waits for it, so a cluster starting cold swarms from the first fetch rather than every
   * node falling back to HTTP.
   */
  fill?(req: IncomingMessage, repo: RepoRef, commit: string, file: RepoFile): Promise<void>;
}

/** How one request's answer goes out (the mirror's own body counting and Range-aware file sending). */
export interface SwarmSend {
  body(contentType: string, body: Buffer): void;
  blob(file: { file: string; size: number; digest: { hex: string } }): Promise<void>;
}

function notShared(repo: RepoRef): HttpError {
  return new HttpError(404, 'EntryNotFound', `${repo.repoId} is not shared in the swarm; download its files over HTTP.`);
}

export function createSwarmRoutes(deps: SwarmRouteDeps): (req: IncomingMessage, route: SwarmRoute, rawQuery: string, send: SwarmSend) => Promise<void> {
  // One computation per blob however many nodes ask at once.
  const computing = new Map<string, Promise<TorrentInfo>>();
  const torrentInfoOf = (repo: RepoRef, digest: { algorithm: 'sha256'; hex: string }, size: number): Promise<TorrentInfo> => {
    let pending = computing.get(digest.hex);
    if (!pending) {
      pending = ensureTorrentInfo(deps.cache.repo(repo.repoType, repo.repoId), digest, size).finally(() => computing.delete(digest.hex));
      computing.set(digest.hex, pending);
    }
    return pending;
  };

  /** Whether anyone may read the repo; a repo that is not shared is a 404. */
  const assertShared = async (repo: RepoRef): Promise<boolean> => {
    const isPublic = await deps.knownPublic(repo);
    if (!deps.sharePrivate && !isPublic) throw notShared(repo);
    return isPublic;
  };

  /** The verified, cached, SHA-256-named file of `path` at `commit` (after `fill` when the cache lacks it), or a 404. */
  const cachedFile = async (repo: RepoRef, commit: string, path: string, fill?: () => Promise<void>) => {
    const paths = deps.cache.repo(repo.repoType, repo.repoId);
    let file = await deps.cache.locate(paths, commit, path);
    if (!file && fill) {
      await fill();
      file = await deps.cache.locate(paths, commit, path);
    }
    if (!file) throw entryNotFound(repo, commit, path);
    if (file.digest.algorithm !== 'sha256') throw notShared(repo);
    return { ...file, digest: { algorithm: 'sha256' as const, hex: file.digest.hex } };
  };

  return async (req, route, rawQuery, send) => {
    if (route.kind === 'swarm-announce') {
      const body = deps.tracker.announce(rawQuery, req.socket.remoteAddress);
      deps.metrics.swarmAnnounces.inc();
      deps.metrics.swarmPeers.set(deps.tracker.peerCount());
      return send.body('text/plain', body);
    }
    if (route.kind === 'swarm-torrent') {
      // Authorized as the file itself, before anything is read.
      const resolved = await deps.resolve(req, route, route.commit, route.path);
      const isPublic = await assertShared(route);
      const listed = resolved.files.find((f) => f.path === route.path);
      const { fill } = deps;
      const file = await cachedFile(route, route.commit, route.path, fill && listed?.digest.algorithm === 'sha256' ? () => fill(req, route, route.commit, listed) : undefined);
      const info = await torrentInfoOf(route, file.digest, file.size);
      deps.tracker.allow(info.infoHash);
      const origin = deps.origin(req);
      const repoPath = route.repoId.split('/').map(encodeURIComponent).join('/');
      const blobUrl = `${origin}/api/swarm/blobs/${route.repoType}s/${repoPath}/${route.commit}/${file.digest.hex}`;
      // An engine sends a web seed no token: a private file's web seed carries a capability for this blob alone.
      const webSeed = isPublic ? blobUrl : `${blobUrl}?${deps.capabilities.issue({ ...route, path: route.path, digest: file.digest.hex })}`;
      deps.metrics.swarmTorrentsServed.inc();
      return send.body('application/x-bittorrent', torrentFile(info, { announce: `${origin}/api/swarm/announce`, webSeeds: [webSeed] }));
    }
    const granted = deps.capabilities.check(route, new URLSearchParams(rawQuery));
    if (granted !== undefined) {
      // The capability stands for the authorization the torrent request had; the repo must still be shared.
      await assertShared(route);
      const file = await cachedFile(route, route.commit, granted);
      if (file.digest.hex !== route.digest) throw new HttpError(404, 'EntryNotFound', `No file of ${route.repoId} at ${route.commit} has digest ${route.digest}`);
      return send.blob(file);
    }
    const listed = (await deps.resolve(req, route, route.commit)).files.find((f) => f.digest.algorithm === 'sha256' && f.digest.hex === route.digest);
    if (!listed) throw new HttpError(404, 'EntryNotFound', `No file of ${route.repoId} at ${route.commit} has digest ${route.digest}`);
    // The file-level check (gated repos let anyone see their listing, not their files).
    await deps.resolve(req, route, route.commit, listed.path);
    await assertShared(route);
    return send.blob(await cachedFile(route, route.commit, listed.path));
  };
}
