import type { Torrent, Wire } from 'webtorrent';

/**
 * Keeps a download's web seeds (the mirror) for the pieces no peer can give it. webtorrent treats a
 * web seed as a peer that has every piece and keeps asking it for one whenever its connection is
 * idle, so in a cluster every node pulled a share of the model from the mirror all the way through,
 * and the mirror's link (shared by all nodes) stayed the bottleneck. Here a web seed offers a piece
 * only while no connected peer that lets us download (not choking us) has it, and every piece once
 * the download is down to its last ENDGAME_PIECES (so a slow peer cannot hold up the end) or nothing
 * has arrived for a few seconds (the engine calls `stalled`).
 *
 * This works through what webtorrent 1.9.7 (pinned) decides with: a wire's `peerPieces` bitfield,
 * the torrent's rarity counts (`_rarityMap._pieces`, kept in step with each bit changed) and
 * `_update()`, which makes every wire ask for more after a piece opens up again.
 */

const ENDGAME_PIECES = 2;

interface RarityCounts {
  _pieces: number[] | null;
}

interface TorrentInternals {
  _rarityMap?: RarityCounts | null;
  _update?: () => void;
  bitfield?: { get(index: number): boolean };
}

export class WebSeedGate {
  /** How many unchoking peers have each piece. */
  private readonly held: number[];
  private readonly webSeeds = new Set<Wire>();
  /** Peers whose pieces are counted in `held` (connected and not choking us). */
  private readonly counted = new Set<Wire>();
  private endgame = false;

  constructor(
    private readonly torrent: Torrent,
    pieceCount: number,
  ) {
    this.held = new Array<number>(pieceCount).fill(0);
  }

  /** Takes a new wire: a web seed is gated from now on; a peer's pieces count while it unchokes us. */
  add(wire: Wire): void {
    if (wire.type === 'webSeed') {
      this.webSeeds.add(wire);
      wire.once('close', () => this.webSeeds.delete(wire));
      // Its bitfield (every piece) arrives after the wire; a piece it failed to send comes back with a 'have'.
      const applyAll = (): void => {
        for (let index = 0; index < this.held.length; index++) this.apply(wire, index);
      };
      wire.on('bitfield', applyAll);
      wire.on('have', (index: number) => this.apply(wire, index));
      applyAll();
      return;
    }
    const count = (): void => {
      if (wire.peerChoking || this.counted.has(wire)) return;
      this.counted.add(wire);
      for (let index = 0; index < this.held.length; index++) if (wire.peerPieces.get(index)) this.change(index, +1);
    };
    const uncount = (): void => {
      if (!this.counted.delete(wire)) return;
      for (let index = 0; index < this.held.length; index++) if (wire.peerPieces.get(index)) this.change(index, -1);
      this.reopen();
    };
    wire.on('unchoke', count);
    wire.on('choke', uncount);
    wire.once('close', uncount);
    wire.on('have', (index: number) => {
      if (this.counted.has(wire) && index >= 0 && index < this.held.length) this.change(index, +1);
    });
    wire.on('bitfield', () => {
      // A full bitfield replaces what was known: count it afresh.
      if (!this.counted.has(wire)) return;
      uncount();
      count();
    });
    count();
  }

  /** How many pieces the download still lacks: near the end every piece opens up again. */
  remaining(missing: number): void {
    if (missing <= ENDGAME_PIECES) this.openAll();
  }

  /**
   * Nothing arrived for a while: every piece opens up again for good, so peers that claim pieces but
   * do not send them cannot hold the download until the swarm's stall limit sends it to HTTP.
   */
  stalled(): void {
    this.openAll();
  }

  private openAll(): void {
    if (this.endgame) return;
    this.endgame = true;
    for (const wire of this.webSeeds) for (let index = 0; index < this.held.length; index++) this.apply(wire, index);
    this.reopen();
  }

  private change(index: number, by: number): void {
    this.held[index] = Math.max(0, (this.held[index] as number) + by);
    for (const wire of this.webSeeds) this.apply(wire, index);
  }

  /** Sets whether web seed `wire` offers piece `index`, keeping webtorrent's rarity counts in step. */
  private apply(wire: Wire, index: number): void {
    const offer = this.endgame || this.held[index] === 0;
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
