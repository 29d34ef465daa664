import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
      { repoId: 'org/gated', gatedToken: GOOD_TOKEN, files: [{ path: 'secret.bin', size: 1024 * 1024 + 3, lfs: true }] },
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
async function mirrorWith(name: string, swarm: { private?: boolean }, repo: string, path: string): Promise<{ url: string; commit: string }> {
  const mirror = createMirrorServer({ cacheDir: join(work, name), upstream: hub.endpoint, token: GOOD_TOKEN, swarm });
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
    expect((await fetch(webSeeds![0]!)).status).toBe(401);
    expect((await fetch(webSeeds![0]!, { headers: { ...auth, Range: 'bytes=0-9' } })).status).toBe(206);
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
    // The client's token went with the torrent request (the mirror served it); the web seed needs a
    // token the engine never sends, so with no peer the file came over HTTP after the stall.
    expect(await served()).toBe(1);
    expect(lines.some((line) => line.startsWith('swarm: org/gated/secret.bin: ') && line.endsWith('over HTTP'))).toBe(true);
  });
});
