import { once } from 'node:events';
import { basename, dirname } from 'node:path';
import type { Torrent, Wire } from 'webtorrent';
import { ModelfetchError } from '../../core/errors.js';
import type { SwarmDownloadJob, SwarmEngine, SwarmProgress, SwarmSeedJob, SwarmSeeding, SwarmTransfer } from './engine.js';
import { parseTorrentFile } from './torrent.js';

/**
 * SwarmEngine on webtorrent 1.9 (in-process, TCP only: no DHT, no local peer discovery, no uTP, so
 * peers come only from the tracker and from what the caller names). Loaded only when a swarm is
 * used, so nothing else pays for its modules.
 */

export interface WebTorrentEngineOptions {
  /** TCP port for peers; 0 picks a free one. */
  port?: number;
  /** Announce to the trackers named in each torrent (off for tests that name peers directly). */
  useTrackers?: boolean;
}

/** webtorrent's only signal for a failed piece is this warning; its text is pinned with the version. */
const PIECE_FAILED = /^Piece (\d+) failed verification$/;

function checkName(path: string, name: string, what: string): void {
  if (basename(path) !== name) {
    throw new ModelfetchError('ERR_USAGE', `The ${what} ${path} must end with the torrent's name ${name}`);
  }
}

function destroyTorrent(torrent: Torrent): Promise<void> {
  return new Promise((resolve) => torrent.destroy({ destroyStore: false }, () => resolve()));
}

export async function createWebTorrentEngine(options: WebTorrentEngineOptions = {}): Promise<SwarmEngine> {
  const { default: WebTorrent } = await import('webtorrent');
  const client = new WebTorrent({ dht: false, lsd: false, utp: false, webSeeds: true, tracker: options.useTrackers ? {} : false, torrentPort: options.port ?? 0 });
  if (!client.listening) await once(client, 'listening');
  // An engine-level error (the listening socket) ends every transfer; each torrent's own errors reject its `done`.
  client.on('error', () => {});

  return {
    get port() {
      return client.torrentPort;
    },

    download(job: SwarmDownloadJob): SwarmTransfer {
      const { info } = parseTorrentFile(job.torrent);
      checkName(job.targetPath, info.name, 'download target');
      const torrent = client.add(job.torrent, { path: dirname(job.targetPath) });
      const counts = { fromPeers: 0, fromWebSeeds: 0, piecesRejected: 0 };
      torrent.on('wire', (wire: Wire) => {
        wire.on('download', (bytes: number) => {
          if (wire.type === 'webSeed') counts.fromWebSeeds += bytes;
          else counts.fromPeers += bytes;
        });
      });
      torrent.on('warning', (warning: Error) => {
        const failed = PIECE_FAILED.exec(warning.message);
        if (!failed) return;
        counts.piecesRejected += 1;
        job.onPieceRejected?.(Number(failed[1]));
      });
      const done = new Promise<void>((resolve, reject) => {
        torrent.once('done', () => resolve());
        torrent.once('error', (error: Error) => reject(new ModelfetchError('ERR_NETWORK', `The swarm download of ${info.name} failed: ${error.message}`, { cause: error })));
      });
      torrent.once('ready', () => {
        for (const url of job.webSeeds ?? []) torrent.addWebSeed(url);
        for (const peer of job.peers ?? []) torrent.addPeer(peer);
      });
      return {
        done,
        progress(): SwarmProgress {
          const peers = torrent.wires.filter((wire) => wire.type !== 'webSeed').length;
          return { ...counts, length: info.length, verified: torrent.downloaded, peers };
        },
        stop: () => destroyTorrent(torrent),
      };
    },

    async seed(job: SwarmSeedJob): Promise<SwarmSeeding> {
      const { info } = parseTorrentFile(job.torrent);
      checkName(job.path, info.name, 'seeded file');
      // The file was verified by SHA-256 before it became a blob, so its pieces are not hashed again.
      const torrent = client.add(job.torrent, { path: dirname(job.path), skipVerify: true });
      await Promise.race([
        once(torrent, 'ready'),
        once(torrent, 'error').then(([error]) => {
          throw new ModelfetchError('ERR_IO', `Cannot seed ${job.path}: ${(error as Error).message}`, { cause: error });
        }),
      ]);
      for (const peer of job.peers ?? []) torrent.addPeer(peer);
      return { infoHash: torrent.infoHash, uploaded: () => torrent.uploaded, stop: () => destroyTorrent(torrent) };
    },

    close: () => new Promise<void>((resolve) => client.destroy(() => resolve())),
  };
}
