import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { swarmFetchBlob } from '../../src/transfer/swarm/swarm-fetch.js';
import { PIECE_SIZE, torrentFile } from '../../src/transfer/swarm/torrent.js';
import { WebSeedGate } from '../../src/transfer/swarm/web-seed-gate.js';
import type { Torrent, Wire } from 'webtorrent';
import { swarmBlob, swarmEngine } from '../support/swarm.js';

/**
 * The mirror's web seed sends only what no peer can, each piece to one node: a node with a seeding
 * peer and the web seed takes the pieces from the peer, and the web seed only while no peer had
 * unchoked it yet; nodes downloading together split the pieces no peer has. Everything on loopback;
 * the engines and the web seed stop when the test ends.
 */

describe('web seed gate', () => {
  it('takes the pieces a seeding peer has from the peer, not from the web seed', async () => {
    const content = randomBytes(PIECE_SIZE * 9 + 4321);
    const { dir, file, info, source, webSeed, webSeedUrl } = await swarmBlob(content, 'mf-swarm-gate-');
    const seeder = await swarmEngine();
    await seeder.seed({ torrent: torrentFile(info, {}), path: source });
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    const { outcome, progress } = await swarmFetchBlob(await swarmEngine(), repo, file, torrentFile(info, { webSeeds: [webSeedUrl] }), {
      peers: [`127.0.0.1:${seeder.port}`],
    });
    expect(outcome).toBe('committed');
    expect((await readFile(repo.blob(file.digest))).equals(content)).toBe(true);
    // At most the piece under way before the peer unchoked (and one more, as the wire came up), from the web seed.
    expect(progress.fromWebSeeds).toBeLessThanOrEqual(3 * PIECE_SIZE);
    expect(progress.fromPeers).toBeGreaterThanOrEqual(content.length - 3 * PIECE_SIZE);
    const served = webSeed.requests.reduce((sum, r) => sum + r.bodyBytes, 0);
    expect(served).toBeLessThanOrEqual(3 * PIECE_SIZE);
  });

  it('has each piece that no peer holds fetched from the web seed by one node of three downloading together', async () => {
    const pieces = 16;
    const data = randomBytes(PIECE_SIZE * pieces);
    const { dir, file, info, webSeed, webSeedUrl } = await swarmBlob(data, 'mf-swarm-gate-');
    // Slow enough that the nodes overlap, fast enough for a short test: a piece takes ~0.25 s.
    webSeed.addFault({ fault: { throttleBytesPerSec: 16 * 1024 * 1024 } });
    const engines = await Promise.all([swarmEngine(), swarmEngine(), swarmEngine()]);
    const torrent = torrentFile(info, { webSeeds: [webSeedUrl] });
    const results = await Promise.all(
      engines.map((node, i) =>
        swarmFetchBlob(node, new RepoPaths(join(dir, `node${i}`), 'model', 'org/name'), file, torrent, {
          peers: engines.filter((other) => other !== node).map((other) => `127.0.0.1:${other.port}`),
          // A node that is done stays in the swarm as a seed, as an agent does.
          keepSeeding: true,
        }),
      ),
    );
    await Promise.all(results.map((r) => r.seeding?.stop()));
    expect(results.map((r) => r.outcome)).toEqual(['committed', 'committed', 'committed']);
    expect(results.every((r) => r.seeding !== undefined)).toBe(true);
    const served = webSeed.requests.reduce((sum, r) => sum + r.bodyBytes, 0);
    // Each piece once, and at most one more per node: the piece a node asked for before it knew its peers.
    expect(served).toBeLessThanOrEqual((pieces + 3) * PIECE_SIZE);
    expect(results.reduce((sum, r) => sum + r.progress.fromPeers, 0)).toBeGreaterThanOrEqual((3 * pieces - pieces - 3) * PIECE_SIZE);
  });

  describe('with stand-in wires', () => {
    // Stand-ins for webtorrent's wires: what the gate reads and sets.
    const bits = (count: number, value: boolean): { get(i: number): boolean; set(i: number, v: boolean): void; all: boolean[] } => {
      const all = new Array<boolean>(count).fill(value);
      return { all, get: (i) => all[i] === true, set: (i, v) => void (all[i] = v) };
    };
    const wire = (type: string, pieces: ReturnType<typeof bits>, peerChoking: boolean, peerId?: string): Wire =>
      Object.assign(new EventEmitter(), { type, peerPieces: pieces, peerChoking, peerId: peerId ?? null, destroy: () => undefined }) as unknown as Wire;
    const stubTorrent = (onUpdate: () => void = () => undefined): Torrent => Object.assign(new EventEmitter(), { destroyed: false, _update: onUpdate }) as unknown as Torrent;
    const id = (n: number): string => createHash('sha1').update(`node ${n}`).digest('hex');

    it('opens every piece to the web seed when a peer that claims them sends nothing (stalled)', () => {
      let updates = 0;
      const torrent = stubTorrent(() => void (updates += 1));
      const webPieces = bits(4, true);
      const gate = new WebSeedGate(torrent, 4, id(0));
      gate.add(wire('webSeed', webPieces, false));
      const peer = wire('tcpOutgoing', bits(4, true), false, id(1));
      gate.add(peer);
      expect(webPieces.all).toEqual([false, false, false, false]);
      // The peer chokes us: its pieces no longer count, and the web seed may send them again.
      peer.emit('choke');
      expect(webPieces.all).toEqual([true, true, true, true]);
      (peer as unknown as { peerChoking: boolean }).peerChoking = false;
      peer.emit('unchoke');
      expect(webPieces.all).toEqual([false, false, false, false]);
      const before = updates;
      gate.stalled();
      expect(webPieces.all).toEqual([true, true, true, true]);
      expect(updates).toBeGreaterThan(before);
      // For good: a peer's new pieces no longer close them.
      peer.emit('have', 2);
      expect(webPieces.all).toEqual([true, true, true, true]);
    });

    it('splits the pieces no peer has among the nodes that lack them, each fetching its own share, and passes a leaver\'s share on', () => {
      const count = 64;
      const nodes = [0, 1, 2].map((n) => {
        const gate = new WebSeedGate(stubTorrent(), count, id(n));
        const web = bits(count, true);
        gate.add(wire('webSeed', web, false));
        const peers = new Map<number, Wire>();
        for (const other of [0, 1, 2].filter((o) => o !== n)) {
          const peer = wire('tcpOutgoing', bits(count, false), false, id(other));
          peers.set(other, peer);
          gate.add(peer);
        }
        return { web, peers };
      });
      const offeredBy = (index: number, among: number[]): number[] => among.filter((n) => nodes[n]!.web.all[index]);
      // Every piece is offered to exactly one node's web seed, and every node has a share.
      for (let i = 0; i < count; i++) expect(offeredBy(i, [0, 1, 2])).toHaveLength(1);
      for (const node of nodes) expect(node.web.all.filter(Boolean).length).toBeGreaterThan(count / 6);
      // Node 2 leaves: nodes 0 and 1 split everything between them.
      for (const n of [0, 1]) nodes[n]!.peers.get(2)!.emit('close');
      for (let i = 0; i < count; i++) expect(offeredBy(i, [0, 1])).toHaveLength(1);
      // A piece node 1 gets is held (it unchokes): node 0 no longer offers it, whoever fetched it.
      const piece = nodes[0]!.web.all.findIndex(Boolean);
      const fromOne = nodes[0]!.peers.get(1)!;
      (fromOne as unknown as { peerPieces: ReturnType<typeof bits> }).peerPieces.set(piece, true);
      fromOne.emit('have', piece);
      expect(nodes[0]!.web.all[piece]).toBe(false);
    });
  });
});
