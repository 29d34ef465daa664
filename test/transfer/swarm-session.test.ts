import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import type { FileDigest } from '../../src/core/types.js';
import { bencode } from '../../src/transfer/swarm/bencode.js';
import type { SwarmDownloadJob, SwarmEngine } from '../../src/transfer/swarm/engine.js';
import { SwarmSession } from '../../src/transfer/swarm/session.js';
import { parseTorrentFile, torrentFile, torrentInfoOf } from '../../src/transfer/swarm/torrent.js';
import { testTempDir } from '../support/temp.js';

/**
 * The session's edges, with a stand-in mirror and a stand-in engine: what reaches the engine (and
 * so the tracker, web seeds and peers), what goes to the mirror, and the fallback lines.
 */

const TOKEN = 'hf_sessionsecret0001';
const digest: FileDigest = { algorithm: 'sha256', hex: 'a'.repeat(64) };
const info = torrentInfoOf(digest.hex, 10, Buffer.alloc(20, 1));

interface StandIn {
  url: string;
  seen: Array<{ url: string; headers: IncomingHttpHeaders }>;
}

async function standInMirror(answers: { swarm: boolean; torrent?: Buffer }): Promise<StandIn> {
  const standIn: StandIn = { url: '', seen: [] };
  const server = createServer((req, res) => {
    standIn.seen.push({ url: req.url ?? '', headers: req.headers });
    if (answers.swarm && req.url === '/api/swarm/announce') {
      res.end(bencode({ 'failure reason': Buffer.from('info_hash must be 20 bytes') }));
    } else if (req.url?.endsWith('.torrent') && answers.torrent) {
      res.writeHead(200, { 'content-type': 'application/x-bittorrent' }).end(answers.torrent);
    } else {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  standIn.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return standIn;
}

/** An engine that records the jobs it is given and never finishes one. */
function recordingEngine(jobs: SwarmDownloadJob[]): () => Promise<SwarmEngine> {
  return async () => ({
    port: 4242,
    download(job) {
      jobs.push(job);
      const done = Promise.reject(new Error('no peer has it'));
      done.catch(() => {});
      return { done, progress: () => ({ fromPeers: 0, fromWebSeeds: 0, length: 10, verified: 0, piecesRejected: 0, peers: 0, peersDropped: 0 }), stop: async () => {}, missingPieces: () => [0], keepSeeding: () => {
          throw new Error('never done');
        } };
    },
    seed: () => Promise.reject(new Error('not used')),
    close: async () => {},
  });
}

async function fetchOne(session: SwarmSession, mirror: StandIn) {
  const dir = await testTempDir('mf-swarm-session-');
  const repo = new RepoPaths(join(dir, 'hub'), 'model', 'org/model');
  return session.fetchBlob({ torrentUrl: `${mirror.url}/api/swarm/models/org/model/${'c'.repeat(40)}/w.bin.torrent`, headers: { authorization: `Bearer ${TOKEN}` }, repo, file: { digest, size: 10 }, label: 'org/model/w.bin' });
}

describe('swarm session', () => {
  it('gives the engine a torrent without credentials, and sends the token only with the torrent request', async () => {
    const mirror = await standInMirror({
      swarm: true,
      torrent: torrentFile(info, { announce: `http://user:${TOKEN}@127.0.0.1:9/api/swarm/announce`, webSeeds: ['http://127.0.0.1:9/blob', `http://x:${TOKEN}@127.0.0.1:9/blob2`, 'ftp://127.0.0.1/blob3'] }),
    });
    const jobs: SwarmDownloadJob[] = [];
    const lines: string[] = [];
    const session = new SwarmSession({ createEngine: recordingEngine(jobs), log: (line) => lines.push(line) });
    onTestFinished(() => session.close());
    expect(await fetchOne(session, mirror)).toBeUndefined();
    expect(jobs).toHaveLength(1);
    const given = jobs[0]!.torrent;
    expect(given.toString('latin1')).not.toContain(TOKEN);
    const parsed = parseTorrentFile(given);
    expect(parsed.info.infoHash).toBe(info.infoHash);
    expect(parsed.announce).toBeUndefined();
    expect(parsed.webSeeds).toEqual(['http://127.0.0.1:9/blob']);
    const torrentRequests = mirror.seen.filter((r) => r.url.endsWith('.torrent'));
    expect(torrentRequests.map((r) => r.headers.authorization)).toEqual([`Bearer ${TOKEN}`]);
    expect(mirror.seen.filter((r) => !r.url.endsWith('.torrent')).every((r) => r.headers.authorization === undefined)).toBe(true);
    // The engine's failure is one line, and the caller downloads over HTTP.
    expect(lines.filter((line) => line.startsWith('swarm: org/model/w.bin: ') && line.endsWith('downloading it over HTTP'))).toHaveLength(1);
  });

  it('falls back with one line when the mirror has no torrent for a file', async () => {
    const mirror = await standInMirror({ swarm: true });
    const jobs: SwarmDownloadJob[] = [];
    const lines: string[] = [];
    const session = new SwarmSession({ createEngine: recordingEngine(jobs), log: (line) => lines.push(line) });
    onTestFinished(() => session.close());
    expect(await fetchOne(session, mirror)).toBeUndefined();
    expect(jobs).toHaveLength(0);
    expect(lines).toContain('swarm: org/model/w.bin: the mirror has no torrent for it; downloading it over HTTP');
  });

  it('asks an upstream without a tracker once, says so once, and asks it for no torrent', async () => {
    const mirror = await standInMirror({ swarm: false, torrent: torrentFile(info, {}) });
    const lines: string[] = [];
    const session = new SwarmSession({ createEngine: recordingEngine([]), log: (line) => lines.push(line) });
    onTestFinished(() => session.close());
    for (let i = 0; i < 3; i++) expect(await fetchOne(session, mirror)).toBeUndefined();
    expect(mirror.seen.map((r) => r.url)).toEqual(['/api/swarm/announce']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toEqual([`swarm: ${mirror.url} runs no swarm (no tracker at /api/swarm/announce); files come over HTTP`]);
  });

  it('falls back with one line when its BitTorrent port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, resolve));
    onTestFinished(() => new Promise<void>((resolve) => taken.close(() => resolve())));
    const port = (taken.address() as AddressInfo).port;
    const mirror = await standInMirror({ swarm: true, torrent: torrentFile(info, {}) });
    const lines: string[] = [];
    const session = new SwarmSession({ port, log: (line) => lines.push(line) });
    onTestFinished(() => session.close());
    expect(await fetchOne(session, mirror)).toBeUndefined();
    expect(lines.some((line) => line.startsWith(`swarm: org/model/w.bin: Cannot listen for BitTorrent peers on TCP port ${port}`) && line.endsWith('downloading it over HTTP'))).toBe(true);
  });
});
