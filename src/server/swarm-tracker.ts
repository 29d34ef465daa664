import { isIPv4 } from 'node:net';
import { bencode } from '../transfer/swarm/bencode.js';

/**
 * The mirror's BitTorrent tracker (BEP 3 HTTP announce, BEP 23 compact answers). It tracks only
 * torrents the mirror itself served (so it is no open tracker), and a peer's address is the one its
 * connection comes from, never an `ip` parameter a client could point at someone else. IPv4 only.
 * Peers that stop announcing are forgotten after two intervals; every map is bounded.
 */

export interface TrackerOptions {
  /** Seconds between announces asked of clients. Default 60 (a cluster wants peers found quickly). */
  intervalSeconds?: number;
  /** Torrents tracked at most (least recently announced dropped first). Default 10,000. */
  maxTorrents?: number;
  /** Peers kept per torrent. Default 2,000. */
  maxPeersPerTorrent?: number;
  /** Peers returned per answer at most. Default 50. */
  maxNumwant?: number;
  now?: () => number;
}

interface PeerEntry {
  /** 6 bytes: IPv4 address and port, as compact answers carry them. */
  compact: Buffer;
  seenAt: number;
  seeding: boolean;
}

/** Bytes of a query parameter that carries binary (info_hash, peer_id): percent-decoded, never as UTF-8. */
function binaryParam(rawQuery: string, name: string): Buffer | undefined {
  for (const part of rawQuery.split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq) !== name) continue;
    const raw = part.slice(eq + 1);
    const bytes: number[] = [];
    for (let i = 0; i < raw.length; i++) {
      if (raw[i] === '%' && /^[0-9a-fA-F]{2}$/.test(raw.slice(i + 1, i + 3))) {
        bytes.push(Number.parseInt(raw.slice(i + 1, i + 3), 16));
        i += 2;
      } else {
        const code = raw.charCodeAt(i);
        if (code > 0x7f) return undefined;
        bytes.push(raw[i] === '+' ? 0x20 : code);
      }
    }
    return Buffer.from(bytes);
  }
  return undefined;
}

function failure(reason: string): Buffer {
  return bencode({ 'failure reason': Buffer.from(reason, 'utf8') });
}

export class SwarmTracker {
  /** Insertion-ordered: beyond maxTorrents the torrent allowed longest ago is dropped. */
  private readonly torrents = new Map<string, Map<string, PeerEntry>>();
  private readonly maxTorrents: number;
  private readonly interval: number;
  private readonly maxPeers: number;
  private readonly maxNumwant: number;
  private readonly now: () => number;
  announces = 0;

  constructor(options: TrackerOptions = {}) {
    this.maxTorrents = options.maxTorrents ?? 10_000;
    this.interval = options.intervalSeconds ?? 60;
    this.maxPeers = options.maxPeersPerTorrent ?? 2_000;
    this.maxNumwant = options.maxNumwant ?? 50;
    this.now = options.now ?? Date.now;
  }

  /** Starts tracking a torrent (when the mirror serves it); already tracked ones keep their peers. */
  allow(infoHash: string): void {
    if (this.torrents.has(infoHash)) return;
    this.torrents.set(infoHash, new Map());
    for (const oldest of this.torrents.keys()) {
      if (this.torrents.size <= this.maxTorrents) break;
      this.torrents.delete(oldest);
    }
  }

  /** Peers known now, over every torrent (expired ones not counted). */
  peerCount(): number {
    let count = 0;
    for (const infoHash of this.torrents.keys()) count += this.livePeers(infoHash).length;
    return count;
  }

  /** Answers one announce: `rawQuery` is the request's query string, still percent-encoded. */
  announce(rawQuery: string, remoteAddress: string | undefined): Buffer {
    this.announces += 1;
    const infoHash = binaryParam(rawQuery, 'info_hash');
    const peerId = binaryParam(rawQuery, 'peer_id');
    if (infoHash?.length !== 20) return failure('info_hash must be 20 bytes');
    if (peerId?.length !== 20) return failure('peer_id must be 20 bytes');
    const query = new URLSearchParams(rawQuery);
    const port = Number(query.get('port'));
    if (!Number.isInteger(port) || port < 1 || port > 65535) return failure('port must be 1-65535');
    const address = remoteAddress?.replace(/^::ffff:/, '');
    if (!address || !isIPv4(address)) return failure('this tracker answers IPv4 peers only');
    const key = infoHash.toString('hex');
    const peers = this.torrents.get(key);
    if (!peers) return failure('this mirror does not share that torrent');
    const id = peerId.toString('hex');
    const event = query.get('event');
    if (event === 'stopped') {
      peers.delete(id);
    } else if (peers.has(id) || peers.size < this.maxPeers) {
      const compact = Buffer.alloc(6);
      address.split('.').forEach((octet, i) => compact.writeUInt8(Number(octet), i));
      compact.writeUInt16BE(port, 4);
      peers.set(id, { compact, seenAt: this.now(), seeding: event === 'completed' || query.get('left') === '0' });
    }
    const numwant = Math.min(this.maxNumwant, Math.max(0, Number.parseInt(query.get('numwant') ?? '', 10) || this.maxNumwant));
    const others = this.livePeers(key).filter(([peer]) => peer !== id);
    const chosen = others.slice(0, numwant).map(([, entry]) => entry.compact);
    const seeders = others.filter(([, entry]) => entry.seeding).length;
    return bencode({ interval: this.interval, complete: seeders, incomplete: others.length - seeders, peers: Buffer.concat(chosen) });
  }

  private livePeers(infoHash: string): Array<[string, PeerEntry]> {
    const peers = this.torrents.get(infoHash);
    if (!peers) return [];
    const oldest = this.now() - 2 * this.interval * 1000;
    for (const [id, entry] of peers) if (entry.seenAt < oldest) peers.delete(id);
    return [...peers];
  }
}
