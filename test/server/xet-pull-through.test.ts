import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMirrorServer, type MirrorServer, type MirrorServerOptions } from '../../src/server/mirror-server.js';
import { startFixtureCas, type FixtureCas } from '../support/fixture-cas.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { interopPython, runPython } from '../support/python.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A mirror in front of a Xet-backed Hub: it pulls through Xet, and its clients get plain HTTP only. */
describe('pull-through from a Xet-backed upstream', () => {
  let cas: FixtureCas;
  let hub: FixtureHub;
  let work: string;
  let mirror: MirrorServer | undefined;
  const content = randomBytes(2 * 1024 * 1024 + 333);
  const other = randomBytes(1024 * 1024 + 7);

  beforeAll(async () => {
    cas = await startFixtureCas({ chunksPerXorb: 8 });
    hub = await startFixtureHub({ cas, repos: [{ repoId: 'org/xet', files: [{ path: 'config.json', content: '{}' }, { path: 'w.bin', content, xet: true }, { path: 'v.bin', content: other, xet: true }] }] });
    work = await mkdtemp(join(tmpdir(), 'mf-xet-mirror-'));
  });
  afterEach(async () => {
    await mirror?.close();
    mirror = undefined;
  });
  afterAll(async () => {
    await hub.close();
    await cas.close();
    await rm(work, { recursive: true, force: true });
  });

  async function startMirror(name: string, extra: Partial<MirrorServerOptions> = {}): Promise<MirrorServer> {
    mirror = createMirrorServer({ cacheDir: join(work, name), upstream: hub.endpoint, log: () => undefined, ...extra });
    await mirror.listen();
    return mirror;
  }

  const lfsBytes = (): number => hub.cdn.requests.filter((r) => r.url.startsWith('/lfs/')).reduce((sum, r) => sum + r.bodyBytes, 0);

  it('fetches a miss through Xet and answers a plain client with plain HTTP, no Xet headers or links', async () => {
    const server = await startMirror('plain');
    hub.resetLogs();
    cas.server.resetLog();
    const url = `${server.url}/org/xet/resolve/main/w.bin`;
    const get = await fetch(url);
    expect(get.status).toBe(200);
    expect(sha256(Buffer.from(await get.arrayBuffer()))).toBe(sha256(content));
    expect([...get.headers.keys()].filter((k) => k.startsWith('x-xet') || k === 'link')).toEqual([]);
    const head = await fetch(url, { method: 'HEAD' });
    expect(head.headers.get('x-linked-etag')).toBe(`"${sha256(content)}"`);
    expect([...head.headers.keys()].filter((k) => k.startsWith('x-xet') || k === 'link')).toEqual([]);
    // Upstream bytes came from the CAS; the bridge (CDN) sent none.
    expect(cas.xorbBytesServed()).toBeGreaterThan(0);
    expect(lfsBytes()).toBe(0);
    // The mirror's listing does not send clients to the CAS either.
    const tree = await (await fetch(`${server.url}/api/models/org/xet/tree/main?recursive=true`)).text();
    expect(tree).not.toContain('xetHash');
  });

  it.each([
    ['HF_HUB_DISABLE_XET=1 in the server\'s environment', { env: { HF_HUB_DISABLE_XET: '1' } }],
    ['xet: false (serve --no-xet)', { xet: false }],
  ] as const)('with %s, a miss comes through the plain path and the CAS is never asked', async (_name, extra) => {
    const server = await startMirror(`plain-path-${Object.keys(extra)[0]}`, extra);
    hub.resetLogs();
    cas.server.resetLog();
    const get = await fetch(`${server.url}/org/xet/resolve/main/w.bin`);
    expect(get.status).toBe(200);
    expect(sha256(Buffer.from(await get.arrayBuffer()))).toBe(sha256(content));
    expect(cas.server.requests).toEqual([]);
    expect(lfsBytes()).toBe(content.length);
  });

  it('only the Xet settings of the server\'s environment reach pull-through: HF_HUB_OFFLINE there does not stop it', async () => {
    const server = await startMirror('env-offline', { env: { HF_HUB_OFFLINE: '1' } });
    const get = await fetch(`${server.url}/org/xet/resolve/main/v.bin`);
    expect(get.status).toBe(200);
    expect(sha256(Buffer.from(await get.arrayBuffer()))).toBe(sha256(other));
  });

  it.skipIf(!interopPython())('huggingface_hub (with hf_xet installed) downloads through the mirror and never reaches the CAS', async () => {
    const server = await startMirror('python');
    const python = interopPython()!;
    // Warm the mirror, then watch what the Python client does on its own.
    expect((await fetch(`${server.url}/org/xet/resolve/main/v.bin`)).status).toBe(200);
    cas.server.resetLog();
    hub.resetLogs();
    const out = await runPython(python, 'from huggingface_hub import hf_hub_download; print(hf_hub_download("org/xet", "v.bin"))', { HF_ENDPOINT: server.url, HF_HUB_CACHE: join(work, 'client-python') });
    expect(sha256(await readFile(out.trim().split('\n').pop()!))).toBe(sha256(other));
    expect(cas.server.requests).toEqual([]);
    expect(hub.hub.requests.filter((r) => r.url.includes('xet-read-token'))).toEqual([]);
  });
});
