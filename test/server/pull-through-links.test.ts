import { createHash, randomBytes } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { createMirrorServer, type MirrorServer, type MirrorServerOptions } from '../../src/server/mirror-server.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * One blob under two paths at two commits: the mirror downloads it once, and every path a client
 * asks for is linked into its snapshot (by pull, the one place that links) and served. pull gets the
 * commit and listing entry the mirror resolved, so it asks upstream for no listing of its own.
 */
describe('the mirror hands pull what it resolved, and only pull links', () => {
  let hub: FixtureHub;
  let mirror: MirrorServer | undefined;
  const weights = randomBytes(3 * 1024 * 1024 + 17);

  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [{ repoId: 'org/moved', branches: { main: [{ path: 'w.bin', content: weights, lfs: true }], renamed: [{ path: 'sub/w2.bin', content: weights, lfs: true }] } }],
    });
  });
  afterEach(async () => {
    await mirror?.close();
    mirror = undefined;
  });
  afterAll(() => hub.close());

  async function start(options: Partial<MirrorServerOptions> = {}): Promise<{ mirror: MirrorServer; cacheDir: string }> {
    const cacheDir = await testTempDir('mf-links-');
    // Above the file size: clients wait for the verified blob rather than follow the download.
    mirror = createMirrorServer({ cacheDir, upstream: hub.endpoint, streamThreshold: 64 * 1024 * 1024, log: () => undefined, ...options });
    await mirror.listen();
    return { mirror, cacheDir };
  }

  const lfsBytes = (): number => hub.cdn.requests.filter((r) => r.url.startsWith('/lfs/')).reduce((sum, r) => sum + r.bodyBytes, 0);
  const linked = async (cacheDir: string, branch: string, path: string): Promise<boolean> =>
    (await lstat(new RepoPaths(cacheDir, 'model', 'org/moved').snapshotFile(hub.commitOf('org/moved', branch), path)).catch(() => undefined))?.isSymbolicLink() === true;

  it('serves a second path of a stored blob without downloading it again, linked into its snapshot', async () => {
    const { mirror: server, cacheDir } = await start();
    hub.resetLogs();
    const first = await fetch(`${server.url}/org/moved/resolve/main/w.bin`);
    expect(sha256(Buffer.from(await first.arrayBuffer()))).toBe(sha256(weights));
    const downloaded = lfsBytes();
    expect(downloaded).toBe(weights.length);
    const second = await fetch(`${server.url}/org/moved/resolve/renamed/sub/w2.bin`);
    expect(second.status).toBe(200);
    expect(sha256(Buffer.from(await second.arrayBuffer()))).toBe(sha256(weights));
    expect(lfsBytes()).toBe(downloaded);
    expect(await linked(cacheDir, 'renamed', 'sub/w2.bin')).toBe(true);
  });

  it('links every path whose clients shared one download of the blob', async () => {
    const { mirror: server, cacheDir } = await start();
    hub.resetLogs();
    const [a, b] = await Promise.all([fetch(`${server.url}/org/moved/resolve/main/w.bin`), fetch(`${server.url}/org/moved/resolve/renamed/sub/w2.bin`)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(sha256(Buffer.from(await a.arrayBuffer()))).toBe(sha256(weights));
    expect(sha256(Buffer.from(await b.arrayBuffer()))).toBe(sha256(weights));
    expect(lfsBytes()).toBe(weights.length);
    expect(await linked(cacheDir, 'main', 'w.bin')).toBe(true);
    expect(await linked(cacheDir, 'renamed', 'sub/w2.bin')).toBe(true);
  });

  it('hands pull the listing entry it resolved, so upstream is listed once per commit', async () => {
    // Listings kept nowhere on disk: a pull that listed again would have to ask upstream.
    const { mirror: server } = await start({ listings: { read: async () => undefined, write: async () => {} } });
    hub.resetLogs();
    const res = await fetch(`${server.url}/org/moved/resolve/main/w.bin`);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(weights));
    expect(hub.hub.requests.filter((r) => r.url.includes('/tree/'))).toHaveLength(1);
  });
});
