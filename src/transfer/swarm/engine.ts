/**
 * The one interface modelfetch uses to move bytes over BitTorrent. Everything above it (which blob,
 * where it lands, the SHA-256 gate, commit into blobs/, metrics) is ours; everything below it (peer
 * wire protocol, piece picking, web seeds, tracker announces) is the engine's. The engine chosen and
 * why are in DESIGN.md ("Swarm"); `webtorrent-engine.ts` implements it, and another engine replaces
 * it by implementing this file's types.
 */

/** Bytes a transfer received, by where they came from (counted as received, before piece checks). */
export interface SwarmBytes {
  fromPeers: number;
  fromWebSeeds: number;
}

export interface SwarmProgress extends SwarmBytes {
  /** The file's size. */
  length: number;
  /** Bytes in pieces that passed their SHA-1 check and are on disk. */
  verified: number;
  /** Pieces that failed their SHA-1 check and were discarded (fetched again from another source). */
  piecesRejected: number;
  /** Peers connected now (web seeds not included). */
  peers: number;
  /** Peers disconnected and refused for sending a block of a piece that failed its SHA-1 check. */
  peersDropped: number;
}

/** How a dropped peer that came back was recognised: the address it was dropped at, or its peer id (from another port). */
export type SwarmRefusal = 'address' | 'peer id';

/** Where a block of bytes came from. */
export type SwarmByteSource = 'peer' | 'webSeed';

export interface SwarmDownloadJob {
  /** The .torrent file (single-file, v1) as served by the mirror. */
  torrent: Buffer;
  /** Web seeds (BEP 19) to use besides the ones in the torrent; each URL is the file itself. */
  webSeeds?: string[];
  /**
   * Where the file lands. Its last path element must be the torrent's name (the digest hex), and it
   * must be inside modelfetch's state folder: the caller checks SHA-256 before it becomes a blob.
   */
  targetPath: string;
  /** Peers to connect to directly ("host:port"), besides those the tracker names. */
  peers?: string[];
  /** Called for every piece that failed its SHA-1 check. */
  onPieceRejected?: (pieceIndex: number) => void;
  /** Called for every peer dropped for a bad piece, with its address. */
  onPeerDropped?: (address: string) => void;
  /** Called when a peer dropped before (in any transfer of the engine) connects again and is refused. */
  onPeerRefused?: (address: string, by: SwarmRefusal) => void;
  /** Called as bytes arrive (before piece checks), so counters move during the transfer. */
  onReceived?: (from: SwarmByteSource, bytes: number) => void;
}

export interface SwarmSeedJob {
  torrent: Buffer;
  /** The verified file. Its last path element must be the torrent's name; the engine only reads it. */
  path: string;
  /** Peers to connect to directly ("host:port"), besides those the tracker names. */
  peers?: string[];
}

export interface SwarmTransfer {
  /** Resolves when every piece is verified on disk (the file is complete, not yet SHA-256 checked). */
  readonly done: Promise<void>;
  progress(): SwarmProgress;
  /** Leaves the swarm; the file stays where it is. */
  stop(): Promise<void>;
  /** The pieces not yet verified on disk, in order (those on disk passed their SHA-1 check). */
  missingPieces(): number[];
  /**
   * After `done`: the transfer stays in the swarm as the file's seed, with its peers, instead of
   * leaving it (peers still missing pieces only it has would have to take them from the web seed)
   * and coming back as a new seed. The engine keeps reading through the handle it wrote with, so the
   * file may be renamed (committed) meanwhile.
   */
  keepSeeding(): SwarmSeeding;
}

export interface SwarmSeeding {
  readonly infoHash: string;
  /** Bytes sent to peers so far. */
  uploaded(): number;
  /** Peers connected now. */
  peers(): number;
  stop(): Promise<void>;
}

export interface SwarmEngine {
  /** The TCP port peers reach this engine on. */
  readonly port: number;
  download(job: SwarmDownloadJob): SwarmTransfer;
  seed(job: SwarmSeedJob): Promise<SwarmSeeding>;
  /** Stops every transfer and closes the listening socket. */
  close(): Promise<void>;
}
