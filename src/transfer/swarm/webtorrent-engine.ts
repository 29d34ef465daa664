import { once } from 'node:events';
import { basename, dirname } from 'node:path';
import type { Torrent, Wire } from 'webtorrent';
import { ModelfetchError } from '../../core/errors.js';
import type { SwarmDownloadJob, SwarmEngine, SwarmProgress, SwarmRefusal, SwarmSeedJob, SwarmSeeding, SwarmTransfer } from './engine.js';
import { parseTorrentFile, pieceCount } from './torrent.js';
import { WebSeedGate } from './web-seed-gate.js';

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

/** A download that receives nothing for this long lets its web seeds send every piece (web-seed-gate.ts). */
const GATE_STALL_MS = 5000;
/** webtorrent's only signal for a failed piece is this warning; its text is pinned with the version. */
const PIECE_FAILED = /^Piece (\d+) failed verification$/;

function checkName(path: string, name: string, what: string): void {
  if (basename(path) !== name) {
    throw new ModelfetchError('ERR_USAGE', `The ${what} ${path} must end with the torrent's name ${name}`);
  }
}

/** `host:port` of a wire; an IPv4 peer that dialled in is named as one dialled out (not `::ffff:a.b.c.d`). */
function addressOf(wire: Wire): string {
  return `${(wire.remoteAddress ?? '?').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')}:${wire.remotePort ?? '?'}`;
}

/**
 * Peers that sent a bad piece, refused engine-wide from then on (for every torrent): by the address
 * we reached them at, and by their peer id (a peer that connects to us comes from another port).
 */
class DroppedPeers {
  private readonly addresses = new Set<string>();
  private readonly ids = new Set<string>();

  drop(wire: Wire): string {
    const address = addressOf(wire);
    this.addresses.add(address);
    if (wire.peerId) this.ids.add(wire.peerId);
    wire.destroy();
    return address;
  }

  /** Destroys a new wire of a dropped peer, and says what it was known by; `undefined`: not a dropped peer. */
  refuse(wire: Wire): SwarmRefusal | undefined {
    const by = this.addresses.has(addressOf(wire)) ? 'address' : wire.peerId && this.ids.has(wire.peerId) ? 'peer id' : undefined;
    if (by) wire.destroy();
    return by;
  }
}

function peerWires(torrent: Torrent): Wire[] {
  return torrent.wires.filter((wire) => wire.type !== 'webSeed');
}

function destroyTorrent(torrent: Torrent): Promise<void> {
  return new Promise((resolve) => torrent.destroy({ destroyStore: false }, () => resolve()));
}

function seedingOf(torrent: Torrent): SwarmSeeding {
  return { infoHash: torrent.infoHash, uploaded: () => torrent.uploaded, peers: () => peerWires(torrent).length, stop: () => destroyTorrent(torrent) };
}

export async function createWebTorrentEngine(options: WebTorrentEngineOptions = {}): Promise<SwarmEngine> {
  const { default: WebTorrent } = await import('webtorrent');
  const client = new WebTorrent({ dht: false, lsd: false, utp: false, webSeeds: true, tracker: options.useTrackers ? {} : false, torrentPort: options.port ?? 0 });
  if (!client.listening) {
    // webtorrent destroys the client itself when its port cannot be had.
    await once(client, 'listening').catch((error: NodeJS.ErrnoException) => {
      throw new ModelfetchError(error.code === 'EADDRINUSE' ? 'ERR_PORT_IN_USE' : 'ERR_IO', `Cannot listen for BitTorrent peers on TCP port ${options.port ?? 0}: ${error.message}`, {
        hint: 'Another program (or another modelfetch) uses that port: choose another --swarm-port (0 picks a free one).',
        cause: error,
      });
    });
  }
  // An engine-level error (the listening socket) ends every transfer; each torrent's own errors reject its `done`.
  client.on('error', () => {});
  const dropped = new DroppedPeers();

  return {
    get port() {
      return client.torrentPort;
    },

    download(job: SwarmDownloadJob): SwarmTransfer {
      const { info } = parseTorrentFile(job.torrent);
      checkName(job.targetPath, info.name, 'download target');
      // Rarest first, ties at random, and one piece at a time from a web seed (webtorrent's default
      // is four): nodes starting together ask the mirror for different pieces and trade them, where
      // in order every node fetched the same pieces from the mirror.
      const torrent = client.add(job.torrent, { path: dirname(job.targetPath), strategy: 'rarest', maxWebConns: 1 });
      // The mirror (web seed) sends only what no peer can, each piece to one node: see web-seed-gate.ts.
      const pieces = pieceCount(info.length, info.pieceLength);
      const gate = new WebSeedGate(torrent, pieces, client.peerId);
      let lastReceivedAt = performance.now();
      torrent.on('download', () => void (lastReceivedAt = performance.now()));
      // Nothing received for GATE_STALL_MS (well inside the session's 30 s stall limit): let the web seed send anything.
      const stallCheck = setInterval(() => {
        if (performance.now() - lastReceivedAt > GATE_STALL_MS) gate.stalled();
      }, 1000);
      stallCheck.unref();
      torrent.once('close', () => clearInterval(stallCheck));
      torrent.once('done', () => clearInterval(stallCheck));
      const counts = { fromPeers: 0, fromWebSeeds: 0, piecesRejected: 0, peersDropped: 0 };
      // Which peer wires sent blocks of each piece being assembled: a piece failing SHA-1 names them.
      const senders = new Map<number, Set<Wire>>();
      torrent.on('wire', (wire: Wire) => {
        const refusedBy = dropped.refuse(wire);
        if (refusedBy) {
          job.onPeerRefused?.(addressOf(wire), refusedBy);
          return;
        }
        gate.add(wire);
        const webSeed = wire.type === 'webSeed';
        wire.on('download', (bytes: number) => {
          if (webSeed) counts.fromWebSeeds += bytes;
          else counts.fromPeers += bytes;
          job.onReceived?.(webSeed ? 'webSeed' : 'peer', bytes);
        });
        if (webSeed) return;
        wire.on('piece', (index: number) => {
          let wires = senders.get(index);
          if (!wires) senders.set(index, (wires = new Set()));
          wires.add(wire);
        });
      });
      torrent.on('warning', (warning: Error) => {
        const failed = PIECE_FAILED.exec(warning.message);
        if (!failed) return;
        const index = Number(failed[1]);
        counts.piecesRejected += 1;
        job.onPieceRejected?.(index);
        // The check can run inside the delivery of the piece's last block, before that block's
        // 'piece' event: blame once the delivery is over. No block says which of several senders
        // lied, so every peer that sent a block of the bad piece is dropped (the web seed and the
        // other peers refill it; the SHA-256 check stays the final gate either way).
        queueMicrotask(() => {
          const blamed = senders.get(index) ?? new Set<Wire>();
          senders.delete(index);
          for (const wire of blamed) {
            counts.peersDropped += 1;
            job.onPeerDropped?.(dropped.drop(wire));
          }
        });
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
          return { ...counts, length: info.length, verified: torrent.downloaded, peers: peerWires(torrent).length };
        },
        stop: () => destroyTorrent(torrent),
        // webtorrent writes a piece to the file only after its SHA-1 check, then sets its bit.
        missingPieces: () => Array.from({ length: pieces }, (_, index) => index).filter((index) => !torrent.bitfield.get(index)),
        // webtorrent keeps a finished torrent in the swarm, serving pieces from the file handle its store opened.
        keepSeeding: () => seedingOf(torrent),
      };
    },

    async seed(job: SwarmSeedJob): Promise<SwarmSeeding> {
      const { info } = parseTorrentFile(job.torrent);
      checkName(job.path, info.name, 'seeded file');
      // The file was verified by SHA-256 before it became a blob, so its pieces are not hashed again.
      const torrent = client.add(job.torrent, { path: dirname(job.path), skipVerify: true });
      torrent.on('wire', (wire: Wire) => dropped.refuse(wire));
      await Promise.race([
        once(torrent, 'ready'),
        once(torrent, 'error').then(([error]) => {
          throw new ModelfetchError('ERR_IO', `Cannot seed ${job.path}: ${(error as Error).message}`, { cause: error });
        }),
      ]);
      for (const peer of job.peers ?? []) torrent.addPeer(peer);
      return seedingOf(torrent);
    },

    close: () => new Promise<void>((resolve) => client.destroy(() => resolve())),
  };
}
