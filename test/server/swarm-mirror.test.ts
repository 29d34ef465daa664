import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { bdecode, type BencodeDict } from '../../src/transfer/swarm/bencode.js';
import { swarmFetchBlob } from '../../src/transfer/swarm/swarm-fetch.js';
import { ensureTorrentInfo, parseTorrentFile, PIECE_SIZE, torrentFile } from '../../src/transfer/swarm/torrent.js';
import { createWebTorrentEngine } from '../../src/transfer/swarm/webtorrent-engine.js';
import { buildCachedRepo, digestOf, fakeCommit, type BuiltFile } from '../support/cache-builder.js';
import { freePort, startAria2c } from '../support/aria2c.js';
import { testTempDir } from '../support/temp.js';
import { hasTool } from '../support/tools.js';

/** `serve --swarm`, the mirror side: torrents of verified files, the tracker, blobs by digest as web seed. */

const commit = fakeCommit('swarm');
const weights: BuiltFile = { path: 'weights/model.safetensors', content: randomBytes(PIECE_SIZE + 54_321), lfs: true };
const config: BuiltFile = { path: 'config.json', content: Buffer.from('{"hidden": 8}\n') };
const digest = digestOf(weights);

let root: string;
let mirror: MirrorServer;
let plain: MirrorServer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'mf-swarm-mirror-'));
  await buildCachedRepo(root, { repoId: 'org/model', commit, files: [weights, config] });
  await buildCachedRepo(root, { repoId: 'org/private', commit, files: [weights] });
  mirror = createMirrorServer({ cacheDir: root, publicRepos: ['org/model'], swarm: {} });
  plain = createMirrorServer({ cacheDir: root, publicRepos: ['org/model'] });
  await mirror.listen();
  await plain.listen();
});

afterAll(async () => {
  await mirror?.close();
  await plain?.close();
  await rm(root, { recursive: true, force: true });
});

const torrentUrl = (base: string, repo = 'org/model', path = weights.path): string => `${base}/api/swarm/models/${repo}/${commit}/${path}.torrent`;

describe('serve --swarm', () => {
  it('serves the torrent of a verified file: our infohash, the tracker, and its blob by digest as web seed', async () => {
    const response = await fetch(torrentUrl(mirror.url));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-bittorrent');
    const torrent = parseTorrentFile(Buffer.from(await response.arrayBuffer()));
    const expected = await ensureTorrentInfo(new RepoPaths(root, 'model', 'org/model'), digest, weights.content.length);
    expect(torrent.info.infoHash).toBe(expected.infoHash);
    expect(torrent.info.name).toBe(digest.hex);
    expect(torrent.announce).toBe(`${mirror.url}/api/swarm/announce`);
    expect(torrent.webSeeds).toEqual([`${mirror.url}/api/swarm/blobs/models/org/model/${commit}/${digest.hex}`]);
    const range = await fetch(torrent.webSeeds![0]!, { headers: { Range: 'bytes=10-19' } });
    expect(range.status).toBe(206);
    expect(Buffer.from(await range.arrayBuffer())).toEqual(weights.content.subarray(10, 20));
    expect(await (await fetch(`${mirror.url}/metrics`)).text()).toMatch(/modelfetch_swarm_torrents_served_total [1-9]/);
  });

  it('answers 404 for a file not in the cache, a git-hashed (non-LFS) file, and a digest the commit does not list', async () => {
    expect((await fetch(torrentUrl(mirror.url, 'org/model', 'missing.bin'))).status).toBe(404);
    expect((await fetch(torrentUrl(mirror.url, 'org/model', config.path))).status).toBe(404);
    expect((await fetch(`${mirror.url}/api/swarm/blobs/models/org/model/${commit}/${'b'.repeat(64)}`)).status).toBe(404);
  });

  it('never serves the torrent or blob of a repo the client may not read', async () => {
    const torrent = await fetch(torrentUrl(mirror.url, 'org/private'));
    expect(torrent.status).not.toBe(200);
    const blob = await fetch(`${mirror.url}/api/swarm/blobs/models/org/private/${commit}/${digest.hex}`);
    expect(blob.status).not.toBe(200);
    // The same file over the ordinary route is refused too: the swarm opens nothing new.
    expect((await fetch(`${mirror.url}/org/private/resolve/${commit}/${weights.path}`)).status).toBe(torrent.status);
  });

  it('has no swarm routes without --swarm', async () => {
    expect((await fetch(torrentUrl(plain.url))).status).toBe(404);
    expect((await fetch(`${plain.url}/api/swarm/announce`)).status).toBe(404);
  });

  it('tracks only torrents it served, and answers announces with compact peers from the connection address', async () => {
    const served = parseTorrentFile(Buffer.from(await (await fetch(torrentUrl(mirror.url))).arrayBuffer()));
    const hash = Buffer.from(served.info.infoHash, 'hex');
    const escape = (bytes: Buffer): string => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
    const announce = async (infoHash: Buffer, peerId: string, port: number, extra = ''): Promise<BencodeDict> => {
      const url = `${mirror.url}/api/swarm/announce?info_hash=${escape(infoHash)}&peer_id=${escape(Buffer.from(peerId))}&port=${port}&uploaded=0&downloaded=0&left=5&compact=1&ip=10.9.9.9${extra}`;
      return bdecode(Buffer.from(await (await fetch(url)).arrayBuffer())) as BencodeDict;
    };
    const first = await announce(hash, '-MF0001-aaaaaaaaaaaa', 6881);
    expect(first.peers).toEqual(Buffer.alloc(0));
    const second = await announce(hash, '-MF0001-bbbbbbbbbbbb', 6882);
    // The first peer, at the address its connection came from (the `ip` parameter is ignored), port 6881.
    expect(second.peers).toEqual(Buffer.from([127, 0, 0, 1, 0x1a, 0xe1]));
    const unknown = await announce(Buffer.alloc(20, 7), '-MF0001-cccccccccccc', 6883);
    expect(String(unknown['failure reason'])).toMatch(/does not share/);
    await announce(hash, '-MF0001-aaaaaaaaaaaa', 6881, '&event=stopped');
    expect((await announce(hash, '-MF0001-bbbbbbbbbbbb', 6882)).peers).toEqual(Buffer.alloc(0));
    const metrics = await (await fetch(`${mirror.url}/metrics`)).text();
    expect(metrics).toMatch(/modelfetch_swarm_announces_total [1-9]/);
    expect(metrics).toMatch(/modelfetch_swarm_peers 1/);
  });

  it.skipIf(!hasTool('aria2c'))('aria2c completes the file from the torrent the mirror serves (web seed and tracker)', async () => {
    const dir = await testTempDir('mf-swarm-aria-');
    const torrentPath = join(dir, 'model.torrent');
    await writeFile(torrentPath, Buffer.from(await (await fetch(torrentUrl(mirror.url))).arrayBuffer()));
    const port = await freePort();
    const aria = startAria2c([`--listen-port=${port}`, '--seed-time=0', '-d', dir, torrentPath]);
    expect(await aria.exited, aria.output()).toBe(0);
    expect((await readFile(join(dir, digest.hex))).equals(weights.content)).toBe(true);
    expect(await (await fetch(`${mirror.url}/metrics`)).text()).toMatch(/modelfetch_swarm_announces_total [1-9]/);
  });

  it.skipIf(!hasTool('aria2c'))('a modelfetch download finds an aria2c seeder through the mirror tracker, its only source', async () => {
    const dir = await testTempDir('mf-swarm-tracker-');
    const served = parseTorrentFile(Buffer.from(await (await fetch(torrentUrl(mirror.url))).arrayBuffer()));
    // The mirror's tracker, but no web seed: every byte has to come from the peer the tracker names.
    const trackerOnly = torrentFile(served.info, { announce: served.announce! });
    await writeFile(join(dir, 'tracker-only.torrent'), trackerOnly);
    await mkdir(join(dir, 'seed'));
    await writeFile(join(dir, 'seed', digest.hex), weights.content);
    const peersBefore = Number(/modelfetch_swarm_peers (\d+)/.exec(await (await fetch(`${mirror.url}/metrics`)).text())?.[1] ?? 0);
    startAria2c([`--listen-port=${await freePort()}`, '--check-integrity=true', '--seed-ratio=0.0', '-d', join(dir, 'seed'), join(dir, 'tracker-only.torrent')]);
    // Wait until aria2c has announced itself, so the first announce of ours already names it.
    for (let tries = 0; ; tries++) {
      const peers = Number(/modelfetch_swarm_peers (\d+)/.exec(await (await fetch(`${mirror.url}/metrics`)).text())?.[1] ?? 0);
      if (peers > peersBefore) break;
      if (tries > 200) throw new Error('aria2c never announced to the mirror tracker');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const engine = await createWebTorrentEngine({ useTrackers: true });
    onTestFinished(() => engine.close());
    const repo = new RepoPaths(join(dir, 'cache'), 'model', 'org/model');
    const { outcome, progress } = await swarmFetchBlob(engine, repo, { digest, size: weights.content.length }, trackerOnly);
    expect(outcome).toBe('committed');
    expect((await readFile(repo.blob(digest))).equals(weights.content)).toBe(true);
    expect(progress.fromPeers).toBeGreaterThanOrEqual(weights.content.length);
    expect(progress.fromWebSeeds).toBe(0);
  });
});
