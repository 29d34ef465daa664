/**
 * The part of webtorrent 1.9.x that modelfetch uses (the package ships no types). Kept to what
 * `webtorrent-engine.ts` calls, so a change of engine shows up here first.
 */
declare module 'webtorrent' {
  import type { EventEmitter } from 'node:events';

  interface ClientOptions {
    dht?: boolean;
    lsd?: boolean;
    utp?: boolean;
    webSeeds?: boolean;
    tracker?: boolean | Record<string, unknown>;
    torrentPort?: number;
    maxConns?: number;
  }

  interface AddOptions {
    path?: string;
    skipVerify?: boolean;
    announce?: string[];
    /** Piece order: 'sequential' (the default) or 'rarest' (rarest first, ties broken at random). */
    strategy?: 'sequential' | 'rarest';
    /** Pieces requested from one web seed at a time (default 4). */
    maxWebConns?: number;
  }

  export interface Wire extends EventEmitter {
    type: string;
    /** Set once the connection is up (webtorrent fills them in its 'wire' handling). */
    remoteAddress?: string;
    remotePort?: number;
    /** The remote peer id, hex, after the handshake. */
    peerId?: string | null;
    /** Whether the remote side chokes us (we may not request from it). */
    peerChoking: boolean;
    /** The pieces the remote side has (a web seed: every piece, unless we say otherwise). */
    peerPieces: { get(index: number): boolean; set(index: number, value: boolean): void };
    destroy(): void;
  }

  export interface Torrent extends EventEmitter {
    infoHash: string;
    name: string;
    length: number;
    downloaded: number;
    uploaded: number;
    done: boolean;
    destroyed: boolean;
    numPeers: number;
    wires: Wire[];
    /** Pieces verified and written (set only after a piece's SHA-1 check). */
    bitfield: { get(index: number): boolean };
    addPeer(peer: string): boolean;
    addWebSeed(url: string): void;
    destroy(options: { destroyStore?: boolean }, callback?: (error?: Error | null) => void): void;
  }

  export default class WebTorrent extends EventEmitter {
    constructor(options?: ClientOptions);
    /** This client's peer id, hex (as peers see it in the handshake). */
    peerId: string;
    torrentPort: number;
    listening: boolean;
    add(torrent: Buffer, options: AddOptions, onTorrent?: (torrent: Torrent) => void): Torrent;
    destroy(callback?: (error?: Error | null) => void): void;
  }
}
