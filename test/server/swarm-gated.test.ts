import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MirrorSwarmOptions } from '../../src/server/mirror-options.js';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { parseTorrentFile } from '../../src/transfer/swarm/torrent.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';

/** `serve --swarm` in front of a hub with a gated repo: shared only with --swarm-private, and only with clients allowed to read it. */

const GOOD_TOKEN = 'hf_swarmgoodtoken0001';
const auth = { authorization: `Bearer ${GOOD_TOKEN}` };

let hub: FixtureHub;
let work: string;
const mirrors: MirrorServer[] = [];

beforeAll(async () => {
  hub = await startFixtureHub({
    repos: [
      { repoId: 'org/model', files: [{ path: 'model.safetensors', size: 2 * 1024 * 1024 + 5, lfs: true }] },
      { repoId: 'org/gated', gatedToken: GOOD_TOKEN, files: [{ path: 'secret.bin', size: 1024 * 1024 + 3, lfs: true }, { path: 'other.bin', size: 1024 * 1024 + 7, lfs: true }] },
    ],
  });
  work = await mkdtemp(join(tmpdir(), 'mf-swarm-gated-'));
});

afterAll(async () => {
  for (const mirror of mirrors) await mirror.close();
  await hub.close();
  await rm(work, { recursive: true, force: true });
});

/** A mirror with the file already fetched (by a client allowed to), and the commit it is at. */
async function mirrorWith(name: string, swarm: MirrorSwarmOptions, repo: string, path: string, log?: (line: string) => void): Promise<{ url: string; commit: string }> {
  const mirror = createMirrorServer({ cacheDir: join(work, name), upstream: hub.endpoint, token: GOOD_TOKEN, swarm, ...(log && { log }) });
  mirrors.push(mirror);
  const url = await mirror.listen();
  const file = await fetch(`${url}/${repo}/resolve/main/${path}`, { headers: auth });
  expect(file.status).toBe(200);
  await file.arrayBuffer();
  // A Range request is answered from the cache once the file is verified and linked there.
  expect((await fetch(`${url}/${repo}/resolve/main/${path}`, { headers: { ...auth, Range: 'bytes=0-0' } })).status).toBe(206);
  return { url, commit: file.headers.get('x-repo-commit')! };
}

describe('serve --swarm and gated repos', () => {
  it('shares a public repo with anyone', async () => {
    const { url, commit } = await mirrorWith('public', {}, 'org/model', 'model.safetensors');
    const torrent = await fetch(`${url}/api/swarm/models/org/model/${commit}/model.safetensors.torrent`);
    expect(torrent.status, await torrent.clone().text()).toBe(200);
    const { webSeeds } = parseTorrentFile(Buffer.from(await torrent.arrayBuffer()));
    expect((await fetch(webSeeds![0]!, { headers: { Range: 'bytes=0-9' } })).status).toBe(206);
    // A public file's web seed is the plain blob URL: no capability in it.
    const digest = hub.file('org/model', 'model.safetensors').sha256;
    expect(webSeeds).toEqual([`${url}/api/swarm/blobs/models/org/model/${commit}/${digest}`]);
  });

  it('without --swarm-private, puts a gated repo in no swarm, even for a client allowed to read it', async () => {
    const { url, commit } = await mirrorWith('gated-off', {}, 'org/gated', 'secret.bin');
    expect((await fetch(`${url}/api/swarm/models/org/gated/${commit}/secret.bin.torrent`, { headers: auth })).status).toBe(404);
    const digest = hub.file('org/gated', 'secret.bin').sha256;
    expect((await fetch(`${url}/api/swarm/blobs/models/org/gated/${commit}/${digest}`, { headers: auth })).status).toBe(404);
  });

  it('with --swarm-private, serves torrent and blob only to clients the mirror authorizes, as the file itself', async () => {
    const { url, commit } = await mirrorWith('gated-on', { private: true }, 'org/gated', 'secret.bin');
    const torrentUrl = `${url}/api/swarm/models/org/gated/${commit}/secret.bin.torrent`;
    expect((await fetch(torrentUrl)).status).toBe(401);
    expect((await fetch(torrentUrl, { headers: { authorization: 'Bearer hf_wrongtoken00000000' } })).status).toBe(403);
    const allowed = await fetch(torrentUrl, { headers: auth });
    expect(allowed.status).toBe(200);
    const { webSeeds } = parseTorrentFile(Buffer.from(await allowed.arrayBuffer()));
    // The blob URL without the torrent's capability is authorized as the file itself.
    const plain = webSeeds![0]!.split('?')[0]!;
    expect((await fetch(plain)).status).toBe(401);
    expect((await fetch(plain, { headers: { ...auth, Range: 'bytes=0-9' } })).status).toBe(206);
  });

  it('a node agent asks for a gated torrent with the token of its client, and refuses a client without one', async () => {
    const { url } = await mirrorWith('gated-agent-mirror', { private: true }, 'org/gated', 'secret.bin');
    const served = async (): Promise<number> => Number(/^modelfetch_swarm_torrents_served_total (\S+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
    const lines: string[] = [];
    const agent = createMirrorServer({ cacheDir: join(work, 'gated-agent'), upstream: url, tokenPassthrough: true, swarm: { port: 0, stallMs: 2000 }, log: (line) => lines.push(line) });
    mirrors.push(agent);
    const agentUrl = await agent.listen();
    // Without a token the agent's own check refuses, as the mirror would: no torrent is asked for.
    expect((await fetch(`${agentUrl}/org/gated/resolve/main/secret.bin`)).status).toBe(401);
    expect(await served()).toBe(0);
    const file = await fetch(`${agentUrl}/org/gated/resolve/main/secret.bin`, { headers: auth });
    expect(file.status).toBe(200);
    expect(Buffer.from(await file.arrayBuffer()).length).toBe(1024 * 1024 + 3);
    // The client's token went with the torrent request (the mirror served it); the web seed's
    // capability let the engine take the bytes from the mirror with no token and no peer.
    expect(await served()).toBe(1);
    expect(lines.filter((line) => line.startsWith('swarm: org/gated/secret.bin: '))).toEqual([]);
    expect(lines.filter((line) => /sig=(?!\*\*\*)/.test(line))).toEqual([]);
    const webSeedBytes = Number(/^modelfetch_swarm_webseed_bytes_total (\S+)$/m.exec(await (await fetch(`${agentUrl}/metrics`)).text())?.[1]);
    expect(webSeedBytes).toBeGreaterThan(0);
  });
});

/** A private file's web seed carries a capability for that one blob, short-lived and signed by the mirror. */
describe('serve --swarm --swarm-private: the web seed capability', () => {
  const TTL_MS = 60_000;
  let clock = 1_800_000_000_000;
  const mirrorLog: string[] = [];
  let url: string;
  let commit: string;
  let webSeed: URL;
  const digestOf = (path: string): string => hub.file('org/gated', path).sha256;
  let secretBytes: Buffer;

  beforeAll(async () => {
    ({ url, commit } = await mirrorWith('capability', { private: true, webSeedTtlMs: TTL_MS, now: () => clock }, 'org/gated', 'secret.bin', (line) => mirrorLog.push(line)));
    secretBytes = Buffer.from(await (await fetch(`${url}/org/gated/resolve/main/secret.bin`, { headers: auth })).arrayBuffer());
    const other = await fetch(`${url}/org/gated/resolve/main/other.bin`, { headers: auth });
    expect(other.status).toBe(200);
    await other.arrayBuffer();
    const torrent = await fetch(`${url}/api/swarm/models/org/gated/${commit}/secret.bin.torrent`, { headers: auth });
    expect(torrent.status).toBe(200);
    const parsed = parseTorrentFile(Buffer.from(await torrent.arrayBuffer()));
    expect(parsed.webSeeds).toHaveLength(1);
    webSeed = new URL(parsed.webSeeds![0]!);
  });

  const withQuery = (change: (query: URLSearchParams) => void, base = webSeed): string => {
    const changed = new URL(base);
    change(changed.searchParams);
    return changed.href;
  };

  it('lets a client without a token read that blob, with Range, until it expires', async () => {
    expect(webSeed.pathname).toBe(`/api/swarm/blobs/models/org/gated/${commit}/${digestOf('secret.bin')}`);
    const answer = await fetch(webSeed, { headers: { Range: 'bytes=5-14' } });
    expect(answer.status).toBe(206);
    expect(Buffer.from(await answer.arrayBuffer())).toEqual(secretBytes.subarray(5, 15));
  });

  it('refuses the blob URL without a capability (401)', async () => {
    expect((await fetch(withQuery((q) => [...q.keys()].forEach((key) => q.delete(key))))).status).toBe(401);
  });

  it('refuses a wrong signature (403), a changed expiry (403), and a capability of another blob (403)', async () => {
    const wrong = await fetch(withQuery((q) => q.set('sig', q.get('sig')!.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')))));
    expect(wrong.status).toBe(403);
    expect(await wrong.text()).toMatch(/capability/);
    expect((await fetch(withQuery((q) => q.set('expires', String(Number(q.get('expires')) + 3600))))).status).toBe(403);
    const otherBlob = new URL(webSeed);
    otherBlob.pathname = otherBlob.pathname.replace(digestOf('secret.bin'), digestOf('other.bin'));
    expect((await fetch(otherBlob)).status).toBe(403);
    expect((await fetch(withQuery((q) => q.set('path', 'other.bin'), otherBlob))).status).toBe(403);
  });

  it('refuses an expired capability (401, with what to do)', async () => {
    const saved = clock;
    clock += TTL_MS + 1000;
    try {
      const expired = await fetch(webSeed, { headers: { Range: 'bytes=0-0' } });
      expect(expired.status).toBe(401);
      expect(await expired.text()).toMatch(/expired/);
    } finally {
      clock = saved;
    }
    expect((await fetch(webSeed, { headers: { Range: 'bytes=0-0' } })).status).toBe(206);
  });

  it('never writes the capability into the access log', () => {
    const sig = webSeed.searchParams.get('sig')!;
    expect(sig.length).toBeGreaterThan(20);
    expect(mirrorLog.some((line) => line.includes('/api/swarm/blobs/'))).toBe(true);
    expect(mirrorLog.filter((line) => line.includes(sig))).toEqual([]);
  });
});
