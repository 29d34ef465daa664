import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import type { SwarmEngine } from '../../src/transfer/swarm/engine.js';
import { swarmFetchBlob } from '../../src/transfer/swarm/swarm-fetch.js';
import { hashFileForTorrent, PIECE_SIZE, torrentFile } from '../../src/transfer/swarm/torrent.js';
import { WebSeedGate } from '../../src/transfer/swarm/web-seed-gate.js';
import { createWebTorrentEngine } from '../../src/transfer/swarm/webtorrent-engine.js';
import type { Torrent, Wire } from 'webtorrent';
import { startFixtureServer } from '../support/fixture-server.js';
import { testTempDir } from '../support/temp.js';

/**
 * The mirror's web seed sends only what no peer can: a node with a seeding peer and the web seed
 * takes the pieces from the peer, and the web seed only while no peer had unchoked it yet and for
 * the last pieces. Everything on loopback; both engines and the web seed stop when the test ends.
 */

const PIECES = 10;
const content = randomBytes(PIECE_SIZE * (PIECES - 1) + 4321);
const sha256 = createHash('sha256').update(content).digest('hex');

async function engine(): Promise<SwarmEngine> {
  const started = await createWebTorrentEngine();
  onTestFinished(() => started.close());
  return started;
}

describe('web seed gate', () => {
  it('takes the pieces a seeding peer has from the peer, not from the web seed', async () => {
    const dir = await testTempDir('mf-swarm-gate-');
    await mkdir(join(dir, 'seed'));
    await writeFile(join(dir, 'seed', sha256), content);
    const { info } = await hashFileForTorrent(join(dir, 'seed', sha256), sha256);
    const webSeed = await startFixtureServer();
    onTestFinished(() => webSeed.close());
    webSeed.setFile(`/blobs/${sha256}`, { source: { data: content }, size: content.length, etag: `"${sha256}"`, sha256 });
    const seeder = await engine();
    await seeder.seed({ torrent: torrentFile(info, {}), path: join(dir, 'seed', sha256) });
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    const { outcome, progress } = await swarmFetchBlob(await engine(), repo, { digest: { algorithm: 'sha256', hex: sha256 }, size: content.length }, torrentFile(info, { webSeeds: [`${webSeed.origin}/blobs/${sha256}`] }), {
      peers: [`127.0.0.1:${seeder.port}`],
    });
    expect(outcome).toBe('committed');
    expect((await readFile(repo.blob({ algorithm: 'sha256', hex: sha256 }))).equals(content)).toBe(true);
    // At most the piece under way before the peer unchoked, and the last two (the end game), from the web seed.
    expect(progress.fromWebSeeds).toBeLessThanOrEqual(3 * PIECE_SIZE);
    expect(progress.fromPeers).toBeGreaterThanOrEqual(content.length - 3 * PIECE_SIZE);
    const served = webSeed.requests.reduce((sum, r) => sum + r.bodyBytes, 0);
    expect(served).toBeLessThanOrEqual(3 * PIECE_SIZE);
  });

  it('opens every piece to the web seed when a peer that claims them sends nothing (stalled), and near the end', () => {
    // Stand-ins for webtorrent's wires: what the gate reads and sets.
    const bits = (count: number, value: boolean): { get(i: number): boolean; set(i: number, v: boolean): void; all: boolean[] } => {
      const all = new Array<boolean>(count).fill(value);
      return { all, get: (i) => all[i] === true, set: (i, v) => void (all[i] = v) };
    };
    const wire = (type: string, pieces: ReturnType<typeof bits>, peerChoking: boolean): Wire => Object.assign(new EventEmitter(), { type, peerPieces: pieces, peerChoking, destroy: () => undefined }) as unknown as Wire;
    let updates = 0;
    const torrent = Object.assign(new EventEmitter(), { destroyed: false, _update: () => void (updates += 1) }) as unknown as Torrent;
    const webPieces = bits(4, true);
    const gate = new WebSeedGate(torrent, 4);
    gate.add(wire('webSeed', webPieces, false));
    const peer = wire('tcpOutgoing', bits(4, true), false);
    gate.add(peer);
    expect(webPieces.all).toEqual([false, false, false, false]);
    // The peer chokes us: its pieces no longer count, and the web seed may send them again.
    peer.emit('choke');
    expect(webPieces.all).toEqual([true, true, true, true]);
    (peer as unknown as { peerChoking: boolean }).peerChoking = false;
    peer.emit('unchoke');
    expect(webPieces.all).toEqual([false, false, false, false]);
    gate.remaining(3);
    expect(webPieces.all).toEqual([false, false, false, false]);
    const before = updates;
    gate.stalled();
    expect(webPieces.all).toEqual([true, true, true, true]);
    expect(updates).toBeGreaterThan(before);
    // For good: a peer's new pieces no longer close them.
    peer.emit('have', 2);
    expect(webPieces.all).toEqual([true, true, true, true]);
  });
});
