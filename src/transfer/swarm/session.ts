import type { Dispatcher } from 'undici';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isBlobStamped } from '../../cache/blob-store.js';
import type { RepoPaths } from '../../cache/layout.js';
import { assertRealFolders } from '../../cache/safe-path.js';
import { writeCacheFile } from '../../cache/snapshot.js';
import { isModelfetchError } from '../../core/errors.js';
import { formatBytes } from '../../core/format-bytes.js';
import type { FileDigest } from '../../core/types.js';
import type { SwarmBytes, SwarmEngine, SwarmProgress, SwarmSeeding, SwarmTransfer } from './engine.js';
import { createRangeReader } from '../range-read.js';
import { swarmFetchBlob } from './swarm-fetch.js';
import { parseTorrentFile, parseTorrentInfo, PIECE_SIZE, torrentFile, type TorrentInfo } from './torrent.js';

/**
 * One process's part in a swarm (a node agent, or `pull --swarm`): it asks the mirror for a blob's
 * torrent, downloads it through the engine into the cache (swarm-fetch.ts: SHA-256 is the final
 * gate), and stays in the swarm as its seed while the session lives. A stall keeps the verified
 * pieces and fetches the rest from the mirror's web seed over HTTP (finish-over-http.ts), with one
 * log line. Whatever else goes wrong on the swarm side (no torrent, a bad one, a failed finish) is
 * one log line and `undefined`: the caller fetches the file over HTTP. The engine (webtorrent) is
 * loaded on the first torrent, never for a cache hit.
 *
 * Credentials: the mirror's own headers go only to the torrent request (the mirror's origin). The
 * engine gets a torrent rebuilt from the verified info and the mirror's URLs without any userinfo,
 * so no token reaches the tracker, a web seed or a peer.
 */

export interface SwarmSessionOptions {
  /** TCP port peers reach this process on (`--swarm-port`); 0 picks a free one. Default 0. */
  port?: number;
  /** No piece verified for this long: the swarm is given up and the missing pieces come over HTTP. Default 30 s. */
  stallMs?: number;
  /** The last two pieces not verifying for this long: they come over HTTP. Default ENDGAME_WAIT_MS. */
  endgameMs?: number;
  /** HTTP dispatcher for the torrent requests. */
  dispatcher?: Dispatcher;
  /** One line per fallback. Default: none. */
  log?: (line: string) => void;
  /** The engine (default: webtorrent, announcing to the torrent's tracker). */
  createEngine?: (port: number) => Promise<SwarmEngine>;
}

export interface SwarmBlobRequest {
  /** The mirror's URL of this file's torrent (`/api/swarm/{type}s/{repo}/{commit}/{path}.torrent`). */
  torrentUrl: string;
  /** Headers for the torrent request only (the client's authorization, for the mirror). */
  headers?: Record<string, string>;
  repo: RepoPaths;
  file: { digest: FileDigest; size: number };
  /** Names the file in log lines (`org/name/path`). */
  label: string;
  signal?: AbortSignal;
  /** The download's progress while it runs (piece-verified bytes, bytes received, peers). */
  onProgress?: (progress: SwarmProgress) => void;
}

export interface SwarmTotals extends SwarmBytes {
  piecesRejected: number;
  peersDropped: number;
}

export interface SwarmStatus extends SwarmTotals {
  /** Bytes sent to peers by the blobs seeded now. */
  uploaded: number;
  /** Peers connected now, over every download and seed. */
  peers: number;
  downloading: number;
  seeding: number;
  /** The BitTorrent port, once the engine runs. */
  port: number | undefined;
}

/**
 * How long the last two pieces may go without one verifying before they come from the mirror over
 * HTTP. webtorrent 1.9 has no end game of its own: a slow peer holding the last blocks holds the
 * download (in a cluster bench one node ended its swarm download 19 s after all its peers had,
 * though they all seeded). Long enough for a piece's fetcher to take it from a busy mirror (4 MiB on
 * a link shared by eight nodes at 32 Mbit/s is about 8 s) and pass it on.
 */
const ENDGAME_WAIT_MS = 8000;

/** Blobs seeded from the cache at start at most (each is one torrent in the engine). */
const MAX_SEEDED_AT_START = 2000;

/** A .torrent is ~20 bytes per 4 MiB piece: 8 MiB covers files far beyond any model's. */
const MAX_TORRENT_BYTES = 8 * 1024 * 1024;

/** Tracker and web seed URLs the engine may use: http(s), no userinfo. */
function withoutCredentials(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return undefined;
    if (parsed.username || parsed.password) return undefined;
    return parsed.href;
  } catch {
    return undefined;
  }
}

async function defaultEngine(port: number): Promise<SwarmEngine> {
  const { createWebTorrentEngine } = await import('./webtorrent-engine.js');
  return createWebTorrentEngine({ port, useTrackers: true });
}

export class SwarmSession {
  private engine: Promise<SwarmEngine> | undefined;
  /** Seeds starting or running, by infohash. */
  /** Infohashes being seeded or starting to (the engine's handle lands in `seeding`). */
  private readonly seeds = new Set<string>();
  private readonly seeding = new Map<string, SwarmSeeding>();
  private readonly downloads = new Set<SwarmTransfer>();
  private port: number | undefined;
  private readonly probes = new Map<string, { at: number; swarm: Promise<boolean> }>();
  private readonly totals: SwarmTotals = { fromPeers: 0, fromWebSeeds: 0, piecesRejected: 0, peersDropped: 0 };
  private closed = false;

  constructor(private readonly options: SwarmSessionOptions = {}) {}

  /** The bytes it took when the blob is now in the cache (committed and seeded); `undefined`: fetch it over HTTP. */
  async fetchBlob(blob: SwarmBlobRequest): Promise<SwarmBytes | undefined> {
    if (this.closed) return undefined;
    const log = this.options.log ?? (() => {});
    if (!(await this.mirrorHasSwarm(blob.torrentUrl.slice(0, blob.torrentUrl.indexOf('/api/swarm/'))))) return undefined;
    const torrent = await this.fetchTorrent(blob);
    if (typeof torrent === 'string') {
      log(`swarm: ${blob.label}: ${torrent}; downloading it over HTTP`);
      return undefined;
    }
    const engine = await this.startEngine().catch((error: unknown) => {
      log(`swarm: ${blob.label}: ${isModelfetchError(error) ? error.message : String(error)}; downloading it over HTTP`);
      return undefined;
    });
    if (!engine) return undefined;
    let transfer: SwarmTransfer | undefined;
    try {
      const { info } = parseTorrentFile(torrent);
      const { infoHash } = info;
      // Once committed, the download stays in the swarm as the blob's seed (unless it is seeded already).
      const keepSeeding = !this.closed && !this.seeds.has(infoHash);
      const { progress, seeding } = await swarmFetchBlob(engine, blob.repo, blob.file, torrent, {
        keepSeeding,
        stallMs: this.options.stallMs ?? 30_000,
        endgameMs: this.options.endgameMs ?? ENDGAME_WAIT_MS,
        finish: {
          read: createRangeReader({ ...(this.options.dispatcher && { dispatcher: this.options.dispatcher }), ...(blob.signal && { signal: blob.signal }) }),
          onStart: (why, pieces, bytes) => log(`swarm: ${blob.label}: ${why.message}; fetching the ${pieces} piece${pieces === 1 ? '' : 's'} still missing (${formatBytes(bytes)}) from the mirror over HTTP, keeping the rest`),
        },
        ...(blob.signal && { signal: blob.signal }),
        ...(blob.onProgress && { onProgress: blob.onProgress }),
        onTransfer: (started) => this.downloads.add((transfer = started)),
        onReceived: (from, n) => void (this.totals[from === 'peer' ? 'fromPeers' : 'fromWebSeeds'] += n),
        onPieceRejected: () => void (this.totals.piecesRejected += 1),
        onPeerDropped: (address) => {
          this.totals.peersDropped += 1;
          log(`swarm: ${blob.label}: dropped peer ${address}, which sent a piece that failed its SHA-1 check`);
        },
      });
      // The info came with bytes that matched both its piece hashes and the SHA-256: stamp it for reuse.
      if (info.pieceLength === PIECE_SIZE) await writeCacheFile(blob.repo.root, blob.repo.torrentInfo(blob.file.digest), info.encoded).catch(() => undefined);
      if (seeding) this.keep(infoHash, seeding);
      else this.seed(torrent, blob.repo.blob(blob.file.digest), blob.label);
      return { fromPeers: progress.fromPeers, fromWebSeeds: progress.fromWebSeeds };
    } catch (error) {
      if (blob.signal?.aborted) throw error;
      log(`swarm: ${blob.label}: ${isModelfetchError(error) ? error.message : String(error)}; downloading it over HTTP`);
      return undefined;
    } finally {
      if (transfer) this.downloads.delete(transfer);
    }
  }

  status(): SwarmStatus {
    const seeds = [...this.seeding.values()];
    const peers = seeds.reduce((sum, seed) => sum + seed.peers(), 0) + [...this.downloads].reduce((sum, transfer) => sum + transfer.progress().peers, 0);
    const uploaded = seeds.reduce((sum, seed) => sum + seed.uploaded(), 0);
    return { ...this.totals, uploaded, peers, downloading: this.downloads.size, seeding: seeds.length, port: this.port };
  }

  /** Blobs seeded now or about to be (a seed starts in the background once its blob is committed). */
  seedCount(): number {
    return this.seeds.size;
  }

  /** Leaves every swarm and closes the BitTorrent port. */
  async close(): Promise<void> {
    this.closed = true;
    const engine = await this.engine?.catch(() => undefined);
    await engine?.close();
  }

  /**
   * Whether the mirror runs a swarm at all (its tracker answers), asked once a minute: an upstream
   * without one (the Hub itself, a mirror without --swarm) costs one request and one log line, not
   * one per file.
   */
  private mirrorHasSwarm(base: string): Promise<boolean> {
    const known = this.probes.get(base);
    if (known && Date.now() - known.at < 60_000) return known.swarm;
    const swarm = (async () => {
      try {
        const { request } = await import('undici');
        const answer = await request(`${base}/api/swarm/announce`, { method: 'GET', ...(this.options.dispatcher && { dispatcher: this.options.dispatcher }), headersTimeout: 10_000, bodyTimeout: 10_000 });
        const body = Buffer.from(await answer.body.arrayBuffer());
        // The tracker answers an announce without parameters with a bencoded failure reason.
        return answer.statusCode === 200 && body.subarray(0, 18).toString('latin1') === 'd14:failure reason';
      } catch {
        return false;
      }
    })();
    this.probes.set(base, { at: Date.now(), swarm });
    void swarm.then(async (now) => {
      if ((await known?.swarm) !== now) this.options.log?.(now ? `swarm: ${base} runs a swarm; files it has torrents for come from peers` : `swarm: ${base} runs no swarm (no tracker at /api/swarm/announce); files come over HTTP`);
    });
    return swarm;
  }

  /** The torrent, rebuilt from its checked info and credential-free URLs, or why there is none. */
  private async fetchTorrent(blob: SwarmBlobRequest): Promise<Buffer | string> {
    let answer: Dispatcher.ResponseData;
    try {
      const { request } = await import('undici');
      answer = await request(blob.torrentUrl, {
        method: 'GET',
        headers: { ...blob.headers, accept: 'application/x-bittorrent' },
        ...(this.options.dispatcher && { dispatcher: this.options.dispatcher }),
        ...(blob.signal && { signal: blob.signal }),
        // A mirror that lacks the file fetches it from its upstream before it answers.
        headersTimeout: 30 * 60_000,
        bodyTimeout: 60_000,
      });
    } catch (error) {
      if (blob.signal?.aborted) throw error;
      return `the mirror did not answer the torrent request (${(error as Error).message})`;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of answer.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_TORRENT_BYTES) {
        answer.body.destroy();
        return 'the mirror sent a torrent larger than any model file needs';
      }
      chunks.push(chunk);
    }
    if (answer.statusCode === 404) return 'the mirror has no torrent for it';
    if (answer.statusCode !== 200) return `the mirror answered the torrent request with HTTP ${answer.statusCode}`;
    try {
      const parsed = parseTorrentFile(Buffer.concat(chunks));
      const announce = withoutCredentials(parsed.announce);
      const webSeeds = (parsed.webSeeds ?? []).map(withoutCredentials).filter((url): url is string => url !== undefined);
      return torrentFile(parsed.info, { ...(announce && { announce }), webSeeds });
    } catch (error) {
      return isModelfetchError(error) ? error.message : 'the mirror sent a torrent that does not parse';
    }
  }

  private startEngine(): Promise<SwarmEngine> {
    this.engine ??= (this.options.createEngine ?? defaultEngine)(this.options.port ?? 0).then((engine) => {
      this.port = engine.port;
      this.options.log?.(`swarm: peers reach this process on TCP port ${engine.port} (every interface; the tracker names the address it sees)`);
      return engine;
    });
    this.engine.catch(() => (this.engine = undefined));
    return this.engine;
  }

  /**
   * Seeds the blobs of `repos` that an earlier run got through a swarm (their torrent info is
   * stamped beside a still valid verification stamp), announcing to the tracker of `mirror` (which
   * tracks them again once any node asks it for their torrent); nothing when `mirror` runs no
   * swarm (the Hub itself). Returns how many it started (at most MAX_SEEDED_AT_START).
   */
  async seedStamped(repos: RepoPaths[], mirror: string): Promise<number> {
    const found: Array<{ repo: RepoPaths; digest: FileDigest; info: TorrentInfo }> = [];
    for (const repo of repos) {
      const folder = join(repo.stateDir, 'torrents');
      const names = await assertRealFolders(repo.root, folder).then(() => readdir(folder), () => [] as string[]).catch(() => [] as string[]);
      for (const name of names) {
        const hex = /^([0-9a-f]{64})\.info$/.exec(name)?.[1];
        if (!hex || found.length >= MAX_SEEDED_AT_START) continue;
        const digest: FileDigest = { algorithm: 'sha256', hex };
        try {
          const info = parseTorrentInfo(await readFile(join(folder, name)));
          if (info.name === hex && info.pieceLength === PIECE_SIZE && (await isBlobStamped(repo, digest, info.length))) found.push({ repo, digest, info });
        } catch {
          // A damaged stamp: that blob is not seeded (a later swarm download stamps it again).
        }
      }
    }
    // Asked only when there is something to seed, so a mirror in front of the Hub never asks the Hub.
    if (!found.length || this.closed || !(await this.mirrorHasSwarm(mirror))) return 0;
    for (const { repo, digest, info } of found) this.seed(torrentFile(info, { announce: `${mirror}/api/swarm/announce` }), repo.blob(digest), `${repo.repoId} blob ${digest.hex.slice(0, 12)}`);
    this.options.log?.(`swarm: seeding ${found.length} blob${found.length === 1 ? '' : 's'} already in the cache`);
    return found.length;
  }

  /** Keeps a finished download as the blob's seed until the session closes (it left the swarm if the session closed meanwhile). */
  private keep(infoHash: string, seeding: SwarmSeeding): void {
    if (this.closed || this.seeds.has(infoHash)) {
      void seeding.stop();
      return;
    }
    this.seeds.add(infoHash);
    this.seeding.set(infoHash, seeding);
  }

  /** Seeds a verified blob (once per infohash) until the session closes. */
  private seed(torrent: Buffer, path: string, label: string): void {
    const { info } = parseTorrentFile(torrent);
    if (this.closed || this.seeds.has(info.infoHash)) return;
    const log = this.options.log ?? (() => {});
    this.seeds.add(info.infoHash);
    void this.startEngine()
      .then((engine) => engine.seed({ torrent, path }))
      .then(
        (seeding) => void this.seeding.set(info.infoHash, seeding),
        (error: unknown) => {
          log(`swarm: ${label}: not seeding it (${(error as Error).message})`);
          this.seeds.delete(info.infoHash);
        },
      );
  }
}
