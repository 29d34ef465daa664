import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { createMirrorServer, type MirrorServer, type MirrorServerOptions } from '../../src/server/mirror-server.js';
import { bdecode, type BencodeDict } from '../../src/transfer/swarm/bencode.js';
import type { SwarmStatus } from '../../src/transfer/swarm/session.js';
import { parseTorrentFile, PIECE_SIZE } from '../../src/transfer/swarm/torrent.js';
import { createWebTorrentEngine } from '../../src/transfer/swarm/webtorrent-engine.js';
import { Writable } from 'node:stream';
import { main } from '../../src/cli/main.js';
import { freePort } from '../support/aria2c.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';

/**
 * The node agent (`serve --upstream <mirror> --swarm`) and `pull --swarm`: a mirror in front of the
 * fixture Hub, agents in front of the mirror, all on loopback. An HTTP front that can refuse the
 * mirror's web seed stands between an agent and the mirror where a test needs every byte to come
 * from peers; it also records what crossed it (announces, web seed requests, their headers).
 */

const TOKEN = 'hf_swarmagentsecret0001';
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

interface Front {
  url: string;
  /** Refuse the mirror's web seed (`/api/swarm/blobs/…`) with 503. */
  blockWebSeed: boolean;
  seen: Array<{ url: string; headers: IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/** An HTTP front for `target` that keeps the Host it was asked with, so the mirror's torrents name the front. */
async function startFront(target: string): Promise<Front> {
  const to = new URL(target);
  const front: Front = { url: '', blockWebSeed: false, seen: [], close: async () => {} };
  const server: Server = createServer((req, res) => {
    front.seen.push({ url: req.url ?? '', headers: req.headers });
    if (front.blockWebSeed && req.url?.startsWith('/api/swarm/blobs/')) {
      res.writeHead(503).end();
      return;
    }
    const upstream = httpRequest({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  front.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  front.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return front;
}

async function metric(server: MirrorServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`metric ${name} missing from /metrics`);
  return Number(match[1]);
}

async function swarmOf(server: MirrorServer): Promise<SwarmStatus> {
  const status = (await (await fetch(`${server.url}/api/_status`)).json()) as { swarm?: SwarmStatus };
  if (!status.swarm) throw new Error('the status has no swarm');
  return status.swarm;
}

/** Waits until the mirror's tracker names a peer on `port` for the torrent of `torrentUrl` (the agent seeds it). */
async function waitForSeeder(mirror: MirrorServer, torrentUrl: string, port: number): Promise<void> {
  const { info } = parseTorrentFile(Buffer.from(await (await fetch(torrentUrl)).arrayBuffer()));
  const escape = (bytes: Buffer): string => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  const announce = (event: string): Promise<Response> =>
    fetch(`${mirror.url}/api/swarm/announce?info_hash=${escape(Buffer.from(info.infoHash, 'hex'))}&peer_id=${escape(Buffer.from('-TEST00-watcher00000'))}&port=1&left=1&compact=1${event}`);
  try {
    for (let tries = 0; tries < 400; tries++) {
      const answer = bdecode(Buffer.from(await (await announce('')).arrayBuffer())) as BencodeDict;
      const peers = answer.peers as Buffer;
      for (let at = 0; at + 6 <= peers.length; at += 6) if (peers.readUInt16BE(at + 4) === port) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`no seeder on port ${port} announced itself`);
  } finally {
    await announce('&event=stopped');
  }
}

// Several servers, engines and a child process per test: generous on a loaded machine.
describe('swarm node agents', { timeout: 180_000 }, () => {
  let hub: FixtureHub;
  let work: string;
  let mirror: MirrorServer;
  const servers: MirrorServer[] = [];
  const logs: string[] = [];
  let agents: { first: MirrorServer; second: MirrorServer } | undefined;

  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [
        {
          repoId: 'org/model',
          files: [
            { path: 'config.json', content: '{"layers": 2}\n' },
            { path: 'weights.bin', size: 2 * PIECE_SIZE + 12_345 },
            { path: 'other.bin', size: PIECE_SIZE + 777 },
            { path: 'third.bin', size: PIECE_SIZE + 99 },
            { path: 'seeded.bin', size: PIECE_SIZE + 4321 },
          ],
        },
      ],
    });
    work = await mkdtemp(join(tmpdir(), 'mf-swarm-agent-'));
    mirror = await start({ cacheDir: join(work, 'mirror'), upstream: hub.endpoint, swarm: {}, publicRepos: ['org/model'] });
  });

  afterAll(async () => {
    for (const server of servers.reverse()) await server.close();
    await hub?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function start(options: MirrorServerOptions): Promise<MirrorServer> {
    const server = createMirrorServer({ graceMs: 100, log: (line) => logs.push(line), ...options });
    servers.push(server);
    await server.listen();
    return server;
  }

  async function stop(server: MirrorServer): Promise<void> {
    servers.splice(servers.indexOf(server), 1);
    await server.close();
  }

  const agent = (name: string, upstream: string, extra: Partial<MirrorServerOptions> = {}): Promise<MirrorServer> =>
    start({ cacheDir: join(work, name), upstream, swarm: { port: 0, stallMs: 20_000 }, ...extra });

  const expected = async (path: string): Promise<Buffer> => Buffer.from(await (await fetch(`${hub.endpoint}/org/model/resolve/main/${path}`)).arrayBuffer());

  it('a second agent gets the file from the first (bytes from peers), both files correct, and keeps seeding it', async () => {
    const want = await expected('weights.bin');
    const first = await agent('agent-a', mirror.url, { token: TOKEN });
    const body = Buffer.from(await (await fetch(`${first.url}/org/model/resolve/main/weights.bin`)).arrayBuffer());
    expect(sha256(body)).toBe(sha256(want));
    const a = await swarmOf(first);
    // No peer had it yet: the mirror was the web seed.
    expect(a.fromWebSeeds).toBeGreaterThanOrEqual(want.length);
    expect(a.seeding).toBe(1);
    expect(await metric(first, 'modelfetch_swarm_webseed_bytes_total')).toBeGreaterThanOrEqual(want.length);
    expect(await metric(first, 'modelfetch_upstream_bytes_total')).toBe(0);

    // The second agent reaches the mirror through a front that refuses the web seed: every byte comes from the first agent.
    const front = await startFront(mirror.url);
    onTestFinished(() => front.close());
    front.blockWebSeed = true;
    await waitForSeeder(mirror, `${mirror.url}/api/swarm/models/org/model/${hub.commitOf('org/model')}/weights.bin.torrent`, a.port!);
    const second = await agent('agent-b', front.url, { token: TOKEN });
    const again = Buffer.from(await (await fetch(`${second.url}/org/model/resolve/main/weights.bin`)).arrayBuffer());
    expect(sha256(again)).toBe(sha256(want));
    const b = await swarmOf(second);
    expect(b.fromPeers).toBeGreaterThanOrEqual(want.length);
    expect(b.fromWebSeeds).toBe(0);
    expect(await metric(second, 'modelfetch_swarm_peer_bytes_total')).toBeGreaterThanOrEqual(want.length);
    expect(await metric(first, 'modelfetch_swarm_uploaded_bytes_total')).toBeGreaterThan(0);
    const scrape = await (await fetch(`${second.url}/metrics`)).text();
    expect(scrape).toMatch(/^modelfetch_swarm_torrents\{state="seeding"\} 1$/m);
    expect(scrape).toMatch(/^modelfetch_swarm_torrents\{state="downloading"\} 0$/m);
    expect(scrape).toMatch(/^modelfetch_swarm_peers_connected \d+$/m);
    agents = { first, second };
    const page = await (await fetch(`${second.url}/`)).text();
    expect(page).toMatch(/Swarm: <span class="torrents">0 downloading, 1 seeding/);

    // No token ever went to the tracker or the web seed: only the torrent request (to the mirror, its origin) carried it.
    const announces = front.seen.filter((r) => r.url.startsWith('/api/swarm/announce'));
    expect(announces.length).toBeGreaterThan(0);
    for (const r of front.seen.filter((r) => !r.url.endsWith('.torrent') && !r.url.includes('/resolve/') && !r.url.startsWith('/api/models/'))) {
      expect(JSON.stringify(r)).not.toContain(TOKEN);
    }
    expect(front.seen.some((r) => r.url.endsWith('.torrent') && r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('an agent restarted on its cache seeds what it got through the swarm before', async () => {
    const want = await expected('weights.bin');
    await stop(agents!.first);
    await stop(agents!.second);
    const restarted = await agent('agent-a', mirror.url);
    let port: number | undefined;
    for (let tries = 0; tries < 200 && !port; tries++) {
      const status = await swarmOf(restarted);
      if (status.seeding === 1) port = status.port;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(port).toBeGreaterThan(0);
    expect(logs).toContain('swarm: seeding 1 blob already in the cache');
    const front = await startFront(mirror.url);
    onTestFinished(() => front.close());
    front.blockWebSeed = true;
    await waitForSeeder(mirror, `${mirror.url}/api/swarm/models/org/model/${hub.commitOf('org/model')}/weights.bin.torrent`, port!);
    const third = await agent('agent-d', front.url);
    const body = Buffer.from(await (await fetch(`${third.url}/org/model/resolve/main/weights.bin`)).arrayBuffer());
    expect(sha256(body)).toBe(sha256(want));
    expect((await swarmOf(third)).fromPeers).toBeGreaterThanOrEqual(want.length);
  });

  it('falls back to HTTP, with one line saying so, when the upstream mirror runs no swarm', async () => {
    const plainMirror = await start({ cacheDir: join(work, 'plain-mirror'), upstream: hub.endpoint, publicRepos: ['org/model'] });
    const node = await agent('agent-plain', plainMirror.url);
    const want = await expected('other.bin');
    const body = Buffer.from(await (await fetch(`${node.url}/org/model/resolve/main/other.bin`)).arrayBuffer());
    expect(sha256(body)).toBe(sha256(want));
    expect(logs.filter((line) => line.includes(`${plainMirror.url} runs no swarm`))).toHaveLength(1);
    const swarm = await swarmOf(node);
    expect(swarm.fromPeers + swarm.fromWebSeeds).toBe(0);
    expect(await metric(node, 'modelfetch_upstream_bytes_total')).toBeGreaterThanOrEqual(want.length);
  });

  it('rejects the pieces of a corrupt peer, drops it, and still lands the right file (over HTTP once the swarm stalls)', async () => {
    const want = await expected('third.bin');
    const torrentUrl = `${mirror.url}/api/swarm/models/org/model/${hub.commitOf('org/model')}/third.bin.torrent`;
    const torrent = Buffer.from(await (await fetch(torrentUrl)).arrayBuffer());
    const { info } = parseTorrentFile(torrent);
    // A seeder of the true torrent over flipped bytes, announcing to the mirror's tracker.
    const dir = join(work, 'corrupt');
    await mkdir(dir, { recursive: true });
    const corrupt = Buffer.from(want);
    for (let at = 0; at < corrupt.length; at += 4096) corrupt[at]! ^= 0xff;
    await writeFile(join(dir, info.name), corrupt);
    const liar = await createWebTorrentEngine({ useTrackers: true });
    onTestFinished(() => liar.close());
    await liar.seed({ torrent, path: join(dir, info.name) });
    await waitForSeeder(mirror, torrentUrl, liar.port);

    const front = await startFront(mirror.url);
    onTestFinished(() => front.close());
    front.blockWebSeed = true;
    // A short stall limit: with the liar dropped and no web seed, nothing else can come.
    const node = await agent('agent-c', front.url, { swarm: { port: 0, stallMs: 3000 } });
    const body = Buffer.from(await (await fetch(`${node.url}/org/model/resolve/main/third.bin`)).arrayBuffer());
    expect(sha256(body)).toBe(sha256(want));
    const swarm = await swarmOf(node);
    expect(swarm.piecesRejected).toBeGreaterThan(0);
    expect(swarm.peersDropped).toBeGreaterThanOrEqual(1);
    expect(await metric(node, 'modelfetch_swarm_pieces_rejected_total')).toBeGreaterThan(0);
    expect(await metric(node, 'modelfetch_swarm_peers_dropped_total')).toBeGreaterThanOrEqual(1);
    expect(logs.some((line) => line.includes(`dropped peer 127.0.0.1:${liar.port}`))).toBe(true);
    expect(logs.some((line) => line.includes('org/model/third.bin') && line.includes('over HTTP'))).toBe(true);
  });

  it('pull --swarm takes files through the swarm and reports bytes by source in --json', async () => {
    const cacheDir = join(work, 'pull-cache');
    const run = await runCli(['pull', 'org/model', '--swarm', mirror.url, '--json', '--cache-dir', cacheDir, '--include', 'weights.bin', 'config.json']);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { ok: boolean; path: string; bytesBySource: { xet: number; plain: number; peers: number; webSeeds: number } };
    expect(result.ok).toBe(true);
    const want = await expected('weights.bin');
    expect(sha256(await readFile(join(result.path, 'weights.bin')))).toBe(sha256(want));
    // weights.bin (LFS) through the swarm (agents from the first test may seed it, the mirror is the web seed); config.json over HTTP.
    expect(result.bytesBySource.peers + result.bytesBySource.webSeeds).toBeGreaterThanOrEqual(want.length);
    expect(result.bytesBySource.plain).toBe('{"layers": 2}\n'.length);
  });

  it('pull --swarm shows the progress line a plain pull shows, fed by the swarm', async () => {
    const want = await expected('other.bin');
    let stderr = '';
    const terminal = Object.assign(new Writable({ write: (chunk: Buffer, _encoding, done) => ((stderr += chunk.toString()), done()) }), { isTTY: true, columns: 120 });
    const code = await main(['pull', 'org/model', 'other.bin', '--swarm', mirror.url, '--cache-dir', join(work, 'pull-progress')], { stdout: new Writable({ write: (_chunk, _encoding, done) => done() }), stderr: terminal, env: {} });
    expect(code, stderr).toBe(0);
    // The file came through the swarm (no fallback line), so every frame is the swarm's.
    expect(stderr).not.toMatch(/over HTTP/);
    const frames = stderr.split('\r').filter((frame) => frame.startsWith('['));
    expect(frames.length).toBeGreaterThan(0);
    for (const frame of frames) expect(frame).toMatch(/^\[[#.]+\] \d+% \S+ \S+\/4\.0 MiB \S+ \S+\/s \d+ conn/);
    expect(frames.at(-1)).toMatch(/^\[#+\] 100% 4\.0 MiB\/4\.0 MiB /);
    expect(want.length).toBe(PIECE_SIZE + 777);
  });

  it('pull --swarm --seed-time S keeps seeding after the pull: another node gets the file from it then, and it exits afterwards', async () => {
    const want = await expected('seeded.bin');
    const commit = hub.commitOf('org/model');
    const cacheDir = join(work, 'pull-seed-time');
    const port = await freePort();
    const pulling = runCli(['pull', 'org/model', 'seeded.bin', '--swarm', mirror.url, '--cache-dir', cacheDir, '--swarm-port', String(port), '--seed-time', '25']);
    // The pull is over once the file is in its snapshot; from then on the process only seeds.
    const snapshotFile = join(cacheDir, 'models--org--model', 'snapshots', commit, 'seeded.bin');
    let pulled = false;
    for (let tries = 0; tries < 1200 && !pulled; tries++) {
      pulled = await access(snapshotFile).then(() => true, () => false);
      if (!pulled) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(pulled).toBe(true);
    await waitForSeeder(mirror, `${mirror.url}/api/swarm/models/org/model/${commit}/seeded.bin.torrent`, port);
    // No web seed for this node: the seeding pull is the only source of the bytes.
    const front = await startFront(mirror.url);
    onTestFinished(() => front.close());
    front.blockWebSeed = true;
    const node = await agent('agent-seed-time', front.url);
    const body = Buffer.from(await (await fetch(`${node.url}/org/model/resolve/main/seeded.bin`)).arrayBuffer());
    expect(sha256(body)).toBe(sha256(want));
    expect((await swarmOf(node)).fromPeers).toBeGreaterThanOrEqual(want.length);
    const run = await pulling;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('modelfetch: seeding for 25 s');
  });

  it('reports a connected peer in modelfetch_swarm_peers_connected (its value)', async () => {
    const want = await expected('other.bin');
    const node = await agent('agent-peers', mirror.url);
    expect(sha256(Buffer.from(await (await fetch(`${node.url}/org/model/resolve/main/other.bin`)).arrayBuffer()))).toBe(sha256(want));
    const status = await swarmOf(node);
    expect(status.seeding).toBe(1);
    expect(await metric(node, 'modelfetch_swarm_peers_connected')).toBe(0);
    // A peer of the test's own seeds the same file and dials the node.
    const torrent = Buffer.from(await (await fetch(`${mirror.url}/api/swarm/models/org/model/${hub.commitOf('org/model')}/other.bin.torrent`)).arrayBuffer());
    const { info } = parseTorrentFile(torrent);
    await mkdir(join(work, 'peer'), { recursive: true });
    await writeFile(join(work, 'peer', info.name), want);
    const peer = await createWebTorrentEngine();
    let peerOpen = true;
    onTestFinished(() => (peerOpen ? peer.close() : undefined));
    await peer.seed({ torrent, path: join(work, 'peer', info.name), peers: [`127.0.0.1:${status.port!}`] });
    const connected = async (want: number): Promise<number> => {
      let value = -1;
      for (let tries = 0; tries < 400 && value !== want; tries++) {
        value = await metric(node, 'modelfetch_swarm_peers_connected');
        if (value !== want) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return value;
    };
    expect(await connected(1)).toBe(1);
    expect((await swarmOf(node)).peers).toBe(1);
    peerOpen = false;
    await peer.close();
    expect(await connected(0)).toBe(0);
  });

  it('pull --swarm refuses an --endpoint that names another server, and --local-dir', async () => {
    const run = async (args: string[]): Promise<{ code: number; stderr: string }> => {
      let stderr = '';
      const sink = (write: (text: string) => void) => new Writable({ write: (chunk: Buffer, _encoding, done) => { write(chunk.toString()); done(); } });
      const code = await main(args, { stdout: sink(() => {}), stderr: sink((text) => (stderr += text)), env: {} });
      return { code, stderr };
    };
    const other = await run(['pull', 'org/model', '--swarm', mirror.url, '--endpoint', hub.endpoint]);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/name different servers/);
    const local = await run(['pull', 'org/model', '--swarm', mirror.url, '--local-dir', join(work, 'local')]);
    expect(local.code).not.toBe(0);
    expect(local.stderr).toMatch(/not a --local-dir/);
  });
});
