import type { Torrent, Wire } from 'webtorrent';

/**
 * Keeps a download's web seeds (the mirror) for the pieces no peer can give it, and has each such
 * piece fetched from the mirror by one node only.
 *
 * webtorrent treats a web seed as a peer that has every piece and keeps asking it for one whenever
 * its connection is idle, so in a cluster every node pulled a share of the model from the mirror all
 * the way through, and the mirror's link (shared by all nodes) stayed the bottleneck. Here a web seed
 * offers piece i only while
 * - no connected peer that lets us download (not choking us) has it, and
 * - this node is the piece's fetcher: of this node and the connected peers that lack piece i, the
 *   one whose (peer id, i) hashes highest (rendezvous hashing). Nodes that see the same peers agree
 *   on it without a word, so the mirror sends each piece once and the nodes trade the rest; with
 *   random picks (before) two nodes often took the same piece from the mirror at once, because a
 *   piece in flight is invisible to the others.
 *
 * Every piece opens up again, for good, when nothing has arrived for a few seconds (the engine calls
 * `stalled`), so peers that claim pieces but send nothing, or fetchers that do not fetch (a client
 * that does not take part, such as aria2c), cannot hold the download. A peer leaving passes its share
 * on at once. The last pieces have their own end game over HTTP (swarm-fetch.ts).
 *
 * This works through what webtorrent 1.9.7 (pinned) decides with: a wire's `peerPieces` bitfield,
 * the torrent's rarity counts (`_rarityMap._pieces`, kept in step with each bit changed) and
 * `_update()`, which makes every wire ask for more after a piece opens up again.
 */

interface RarityCounts {
  _pieces: number[] | null;
}

interface TorrentInternals {
  _rarityMap?: RarityCounts | null;
  _update?: () => void;
}

/** FNV-1a of a string: a peer's seed for its piece scores. */
function seedOf(peerId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < peerId.length; i++) hash = Math.imul(hash ^ peerId.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** The rendezvous score of piece `index` for the peer seeded `seed` (murmur3's finalizer mixes it). */
function score(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class WebSeedGate {
  /** How many unchoking peers have each piece. */
  private readonly held: number[];
  private readonly webSeeds = new Set<Wire>();
  /** Peers whose pieces are counted in `held` (connected and not choking us), with the pieces counted. */
  private readonly counted = new Map<Wire, Uint8Array>();
  /** Connected peers that may fetch pieces from the mirror themselves, with their score seeds. */
  private readonly fetchers = new Map<Wire, number>();
  private readonly ownSeed: number;
  private endgame = false;

  constructor(
    private readonly torrent: Torrent,
    pieceCount: number,
    /** This node's peer id (hex, as its peers see it in the handshake). */
    ownPeerId: string,
  ) {
    this.held = new Array<number>(pieceCount).fill(0);
    this.ownSeed = seedOf(ownPeerId);
  }

  /** Takes a new wire: a web seed is gated from now on; a peer's pieces count while it unchokes us. */
  add(wire: Wire): void {
    if (wire.type === 'webSeed') {
      this.webSeeds.add(wire);
      wire.once('close', () => this.webSeeds.delete(wire));
      // Its bitfield (every piece) arrives after the wire; a piece it failed to send comes back with a 'have'.
      wire.on('bitfield', () => this.applyAll(wire));
      wire.on('have', (index: number) => this.apply(wire, index));
      this.applyAll(wire);
      return;
    }
    const count = (): void => {
      if (wire.peerChoking || this.counted.has(wire)) return;
      // What was counted is kept, so exactly that is taken back (a bitfield may replace the pieces meanwhile).
      const mine = new Uint8Array(this.held.length);
      this.counted.set(wire, mine);
      for (let index = 0; index < this.held.length; index++) {
        if (!wire.peerPieces.get(index)) continue;
        mine[index] = 1;
        this.change(index, +1);
      }
    };
    const uncount = (): void => {
      const mine = this.counted.get(wire);
      if (!mine) return;
      this.counted.delete(wire);
      for (let index = 0; index < this.held.length; index++) if (mine[index]) this.change(index, -1);
      this.reopen();
    };
    wire.on('unchoke', count);
    wire.on('choke', uncount);
    wire.once('close', () => {
      uncount();
      // Its share of the pieces to fetch passes to the others.
      if (this.fetchers.delete(wire)) this.reapply();
    });
    wire.on('have', (index: number) => {
      if (index < 0 || index >= this.held.length) return;
      const mine = this.counted.get(wire);
      if (mine && !mine[index]) {
        mine[index] = 1;
        this.change(index, +1);
      }
      // It no longer fetches this piece: whoever is next in line for it may.
      else this.applyAllWebSeeds(index);
    });
    wire.on('bitfield', () => {
      // A full bitfield replaces what was known: count it afresh.
      if (this.counted.has(wire)) {
        uncount();
        count();
      }
      this.reapply();
    });
    if (wire.peerId) {
      this.fetchers.set(wire, seedOf(wire.peerId));
      this.reapply();
    }
    count();
  }

  /**
   * Nothing arrived for a while: every piece opens up again for good, so peers that claim pieces but
   * do not send them cannot hold the download until the swarm's stall limit sends it to HTTP.
   */
  stalled(): void {
    if (this.endgame) return;
    this.endgame = true;
    this.reapply();
  }

  /** Whether this node fetches piece `index` from the mirror: it scores highest of the connected nodes that lack it. */
  private fetchesHere(index: number): boolean {
    const own = score(this.ownSeed, index);
    for (const [wire, seed] of this.fetchers) {
      if (wire.peerPieces.get(index)) continue;
      const theirs = score(seed, index);
      // Equal scores (two ids with one seed) go to both: a piece fetched twice, never one fetched by nobody.
      if (theirs > own) return false;
    }
    return true;
  }

  private change(index: number, by: number): void {
    this.held[index] = (this.held[index] as number) + by;
    this.applyAllWebSeeds(index);
  }

  private applyAllWebSeeds(index: number): void {
    for (const wire of this.webSeeds) this.apply(wire, index);
  }

  private applyAll(wire: Wire): void {
    for (let index = 0; index < this.held.length; index++) this.apply(wire, index);
  }

  /** Every piece decided again (the set of fetchers changed, or the end game began), then every wire asked to request. */
  private reapply(): void {
    for (const wire of this.webSeeds) this.applyAll(wire);
    this.reopen();
  }

  /** Sets whether web seed `wire` offers piece `index`, keeping webtorrent's rarity counts in step. */
  private apply(wire: Wire, index: number): void {
    const offer = this.endgame || (this.held[index] === 0 && this.fetchesHere(index));
    if (wire.peerPieces.get(index) === offer) return;
    wire.peerPieces.set(index, offer);
    const rarity = (this.torrent as unknown as TorrentInternals)._rarityMap?._pieces;
    if (rarity && index < rarity.length) rarity[index] = Math.max(0, (rarity[index] as number) + (offer ? 1 : -1));
  }

  /** Pieces may have opened up for the web seeds: let every wire ask again. */
  private reopen(): void {
    if (this.webSeeds.size > 0 && !this.torrent.destroyed) (this.torrent as unknown as TorrentInternals)._update?.();
  }
}
