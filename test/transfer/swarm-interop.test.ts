import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Torrent } from 'webtorrent';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import type { FileDigest } from '../../src/core/types.js';
import { bencode } from '../../src/transfer/swarm/bencode.js';
import { swarmFetchBlob } from '../../src/transfer/swarm/swarm-fetch.js';
import { hashFileForTorrent, PIECE_SIZE, torrentFile, type TorrentInfo } from '../../src/transfer/swarm/torrent.js';
import { createWebTorrentEngine } from '../../src/transfer/swarm/webtorrent-engine.js';
import { freePort, startAria2c } from '../support/aria2c.js';
import { swarmBlob, swarmEngine as engine, type SwarmBlob } from '../support/swarm.js';
import { hasTool } from '../support/tools.js';

/**
 * BitTorrent wire compatibility with aria2c, an independent client, and the SHA-256 gate under
 * corrupt sources. Everything on loopback with explicit ports: no DHT, no local peer discovery, no
 * peer exchange, no tracker; every process and server is stopped even when the test fails.
 */

const content = randomBytes(PIECE_SIZE * 2 + 12_345);
const sha256 = createHash('sha256').update(content).digest('hex');
const digest: FileDigest = { algorithm: 'sha256', hex: sha256 };

async function setup(): Promise<SwarmBlob> {
  return swarmBlob(content);
}

async function writeTorrent(dir: string, info: TorrentInfo, webSeeds: string[]): Promise<string> {
  const path = join(dir, `${info.infoHash}-${webSeeds.length}.torrent`);
  await writeFile(path, torrentFile(info, { webSeeds }));
  return path;
}

describe.skipIf(!hasTool('aria2c'))('swarm interop with aria2c', () => {
  it('aria2c completes the file from the web seed of our torrent (BEP 19, ranged GETs)', async () => {
    const { dir, info, webSeed, webSeedUrl } = await setup();
    const out = join(dir, 'aria-out');
    const aria = startAria2c([`--listen-port=${await freePort()}`, '--seed-time=0', '-d', out, await writeTorrent(dir, info, [webSeedUrl])]);
    expect(await aria.exited, aria.output()).toBe(0);
    expect((await readFile(join(out, sha256))).equals(content)).toBe(true);
    expect(webSeed.requests.some((r) => r.url === `/blobs/${sha256}` && typeof r.headers.range === 'string')).toBe(true);
  });

  it('aria2c completes the file from a modelfetch seeder, its only source', async () => {
    const { dir, info } = await setup();
    const port = await freePort();
    const out = join(dir, 'aria-out');
    const aria = startAria2c([`--listen-port=${port}`, '--seed-time=0', '-d', out, await writeTorrent(dir, info, [])]);
    const seeder = await engine();
    const seeding = await seeder.seed({ torrent: torrentFile(info, {}), path: join(dir, 'source', sha256), peers: [`127.0.0.1:${port}`] });
    expect(await aria.exited, aria.output()).toBe(0);
    expect((await readFile(join(out, sha256))).equals(content)).toBe(true);
    expect(seeding.uploaded()).toBeGreaterThanOrEqual(content.length);
  });

  it('a modelfetch download completes when aria2c seeding the file is its only peer, and the blob is committed', async () => {
    const { dir, info } = await setup();
    const port = await freePort();
    const seedDir = join(dir, 'aria-seed');
    await mkdir(seedDir);
    await writeFile(join(seedDir, sha256), content);
    startAria2c([`--listen-port=${port}`, '--check-integrity=true', '--seed-ratio=0.0', '-d', seedDir, await writeTorrent(dir, info, [])]);
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    const { outcome, progress } = await swarmFetchBlob(await engine(), repo, { digest, size: content.length }, torrentFile(info, {}), { peers: [`127.0.0.1:${port}`] });
    expect(outcome).toBe('committed');
    expect((await readFile(repo.blob(digest))).equals(content)).toBe(true);
    expect(progress.fromPeers).toBeGreaterThanOrEqual(content.length);
    expect(progress.fromWebSeeds).toBe(0);
    expect(await readdir(join(repo.stateDir, 'partial', 'swarm'))).toEqual([]);
  });
});

describe('swarm downloads and corrupt sources', () => {
  it('a web seed that corrupts a byte: the piece fails SHA-1, is counted, fetched again, and the right blob lands', async () => {
    const { dir, info, webSeed, webSeedUrl } = await setup();
    // The first response that covers byte PIECE_SIZE + 7 flips it; later ones are honest.
    webSeed.addFault({ times: 1, match: (req) => coversOffset(req.headers.range, PIECE_SIZE + 7), fault: { corruptOffsets: [PIECE_SIZE + 7] } });
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    const rejected: number[] = [];
    const { outcome, progress } = await swarmFetchBlob(await engine(), repo, { digest, size: content.length }, torrentFile(info, { webSeeds: [webSeedUrl] }), {
      onPieceRejected: (index) => rejected.push(index),
    });
    expect(outcome).toBe('committed');
    expect((await readFile(repo.blob(digest))).equals(content)).toBe(true);
    expect(rejected).toEqual([1]);
    expect(progress.piecesRejected).toBe(1);
    expect(progress.fromWebSeeds).toBeGreaterThan(content.length);
  });

  it('a torrent whose pieces describe other bytes never makes a wrong blob land: the SHA-256 gate refuses it', async () => {
    const { dir, webSeed } = await setup();
    // Consistent lies: other bytes, their own piece hashes, served under the expected digest's name.
    const other = Buffer.from(content);
    other[123] = other[123]! ^ 0xff;
    await writeFile(join(dir, 'source', 'other'), other);
    const lying = (await hashFileForTorrent(join(dir, 'source', 'other'), sha256)).info;
    webSeed.setFile('/lies', { source: { data: other }, size: other.length, etag: '"lies"', sha256: 'x' });
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    await expect(swarmFetchBlob(await engine(), repo, { digest, size: content.length }, torrentFile(lying, { webSeeds: [`${webSeed.origin}/lies`] }))).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    await expect(readFile(repo.blob(digest))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readdir(join(repo.stateDir, 'partial', 'swarm'))).toEqual([]);
  });

  it('a peer dropped for a bad piece is refused when it comes back: dialled at its address, or dialling in from another port (its peer id)', async () => {
    const { dir, info } = await setup();
    const torrent = torrentFile(info, {});
    // The liar seeds the true torrent over flipped bytes: every piece it sends fails SHA-1.
    await mkdir(join(dir, 'liar'));
    const corrupt = Buffer.from(content);
    for (let at = 0; at < corrupt.length; at += 4096) corrupt[at]! ^= 0xff;
    await writeFile(join(dir, 'liar', sha256), corrupt);
    const liar = await engine();
    const liarSeed = await liar.seed({ torrent, path: join(dir, 'liar', sha256) });
    const ours = await engine();
    const liarAddress = `127.0.0.1:${liar.port}`;

    const dropped: string[] = [];
    const first = ours.download({ torrent, targetPath: join(dir, 'first', sha256), peers: [liarAddress], onPeerDropped: (address) => dropped.push(address) });
    first.done.catch(() => {});
    await until(() => dropped.length > 0, 'the liar dropped');
    expect(dropped).toEqual([liarAddress]);
    await first.stop();

    // Another transfer of the same engine dials the liar again at the address it was dropped at.
    const refused: Array<{ address: string; by: string }> = [];
    const second = ours.download({ torrent, targetPath: join(dir, 'second', sha256), peers: [liarAddress], onPeerRefused: (address, by) => refused.push({ address, by }) });
    second.done.catch(() => {});
    await until(() => refused.length > 0, 'the liar refused at its address');
    expect(refused[0]).toEqual({ address: liarAddress, by: 'address' });

    // The liar dials in: its connection comes from another port, and its peer id gives it away.
    await liarSeed.stop();
    const again = await liar.seed({ torrent, path: join(dir, 'liar', sha256), peers: [`127.0.0.1:${ours.port}`] });
    await until(() => refused.some((r) => r.by === 'peer id'), 'the liar refused by its peer id');
    const byId = refused.find((r) => r.by === 'peer id')!;
    expect(byId.address).not.toBe(liarAddress);
    expect(byId.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(second.progress().fromPeers).toBe(0);
    expect(second.progress().piecesRejected).toBe(0);
    await again.stop();
    await second.stop();
  });

  it("a torrent's url-list (a private web seed's capability) reaches neither a peer (ut_metadata sends the info dictionary only) nor the tracker", async () => {
    const { dir, info } = await setup();
    const capability = 'Q2FwYWJpbGl0eU5ldmVyU2hhcmVk';
    const announces: string[] = [];
    const tracker = createServer((req, res) => {
      announces.push(req.url ?? '');
      res.end(bencode({ interval: 60, peers: Buffer.alloc(0) }));
    });
    await new Promise<void>((resolve) => tracker.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => tracker.close(() => resolve())));
    const announce = `http://127.0.0.1:${(tracker.address() as AddressInfo).port}/announce`;
    const torrent = torrentFile(info, { announce, webSeeds: [`http://127.0.0.1:9/api/swarm/blobs/models/org/p/${'c'.repeat(40)}/${sha256}?path=w.bin&expires=1&sig=${capability}`] });
    await mkdir(join(dir, 'seed'));
    await writeFile(join(dir, 'seed', sha256), content);
    const seeder = await createWebTorrentEngine({ useTrackers: true });
    onTestFinished(() => seeder.close());
    await seeder.seed({ torrent, path: join(dir, 'seed', sha256) });
    await until(() => announces.length > 0, 'the seeder announced');

    // A peer that knows only the infohash asks the seeder for the metadata (BEP 9).
    const { default: WebTorrent } = await import('webtorrent');
    const peer = new WebTorrent({ dht: false, lsd: false, utp: false, tracker: false, torrentPort: 0 });
    onTestFinished(() => new Promise<void>((resolve) => peer.destroy(() => resolve())));
    const addByInfoHash = peer.add.bind(peer) as unknown as (id: string, options: { path: string }) => Torrent & { urlList: string[]; torrentFile: Buffer };
    const fetched = addByInfoHash(info.infoHash, { path: join(dir, 'peer') });
    const metadata = once(fetched, 'metadata');
    fetched.addPeer(`127.0.0.1:${seeder.port}`);
    await metadata;
    expect(fetched.infoHash).toBe(info.infoHash);
    expect(fetched.urlList).toEqual([]);
    expect(fetched.torrentFile.includes(capability)).toBe(false);
    // The announce names the torrent by its infohash, and nothing of the url-list.
    for (const line of announces) {
      expect(line).not.toContain(capability);
      expect(line).not.toContain('sig');
      expect([...new URL(line, 'http://x').searchParams.keys()].sort()).toEqual(expect.arrayContaining(['info_hash', 'peer_id', 'port']));
    }
  });

  it('refuses a torrent for another blob before joining any swarm', async () => {
    const { dir, info } = await setup();
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/name');
    const elsewhere: FileDigest = { algorithm: 'sha256', hex: 'a'.repeat(64) };
    await expect(swarmFetchBlob(await engine(), repo, { digest: elsewhere, size: content.length }, torrentFile(info, {}))).rejects.toMatchObject({ code: 'ERR_BAD_RESPONSE' });
  });
});

/** Polls until `condition` holds; fails the test (saying what never happened) after ~20 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let tries = 0; tries < 400; tries++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`never happened: ${what}`);
}

function coversOffset(range: string | undefined, offset: number): boolean {
  const match = /^bytes=(\d+)-(\d*)$/.exec(range ?? '');
  if (!match) return false;
  const start = Number(match[1]);
  const end = match[2] ? Number(match[2]) : Number.POSITIVE_INFINITY;
  return start <= offset && offset <= end;
}
