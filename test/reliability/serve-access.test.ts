import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMirrorServer, type MirrorServer, type MirrorServerOptions } from '../../src/server/mirror-server.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { rawRequest, type RawResponse } from '../support/raw-request.js';

/** Cases 27 and 31: access to gated and private repos fails closed, and private repos look missing. */

const TOKEN = 'hf_accessservertoken0001';
const SECRET = 'gated bytes nobody anonymous may read';
const PRIVATE = 'private bytes of a private repo';

describe('gating fails closed (case 27) and private repos look missing (case 31)', () => {
  let hub: FixtureHub;
  let work: string;
  let cacheDir: string;
  let mirror: MirrorServer | undefined;

  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [
        { repoId: 'org/gated', gatedToken: TOKEN, files: [{ path: 'secret.txt', content: SECRET }] },
        { repoId: 'org/secret', gatedToken: TOKEN, private: true, files: [{ path: 'private.txt', content: PRIVATE }] },
        { repoId: 'org/open', files: [{ path: 'open.txt', content: 'open bytes' }] },
        { repoId: 'org/flaky', files: [{ path: 'f.txt', content: 'flaky' }] },
      ],
    });
    work = await mkdtemp(join(tmpdir(), 'mf-serve-access-'));
    cacheDir = join(work, 'cache');
    // The cache is filled by `pull`, as an operator would: no mirror-written gating record exists.
    for (const repo of ['org/gated', 'org/secret', 'org/open']) {
      const run = await runCli(['pull', repo, '--cache-dir', cacheDir, '--quiet'], { HF_ENDPOINT: hub.endpoint, HF_TOKEN: TOKEN });
      expect(run.code, run.stderr).toBe(0);
    }
  }, 120_000);

  afterEach(async () => {
    hub.hub.clearFaults();
    await mirror?.close();
    mirror = undefined;
  });

  afterAll(async () => {
    await hub?.close();
    await rm(work, { recursive: true, force: true });
  });

  async function start(options: Partial<MirrorServerOptions> = {}): Promise<MirrorServer> {
    mirror = createMirrorServer({ cacheDir, upstream: hub.endpoint, token: TOKEN, graceMs: 100, ...options });
    await mirror.listen();
    return mirror;
  }

  const get = (m: MirrorServer, path: string, headers: Record<string, string> = {}): Promise<RawResponse> => rawRequest(m.url, path, { headers });

  it('case 27: an anonymous client gets no gated bytes while upstream is marked down by another repo', async () => {
    const m = await start();
    hub.hub.addFault({ match: (req) => req.url?.includes('org/flaky') ?? false, fault: { status: 503 } });
    const flaky = await get(m, '/org/flaky/resolve/main/f.txt');
    expect(flaky.status).toBeGreaterThanOrEqual(500);
    // Upstream is now considered down for a few seconds: the gated repo's status cannot be asked.
    const gated = await get(m, '/org/gated/resolve/main/secret.txt');
    expect(gated.status, gated.body.toString()).not.toBe(200);
    expect([401, 503]).toContain(gated.status);
    expect(gated.body.toString()).not.toContain(SECRET);
    expect(gated.body.toString()).toMatch(/cannot|restricted|declare|unavailable/i);
    // A client whose token upstream accepted is no reason to let anonymous clients in either.
    const info = await get(m, '/api/models/org/gated/revision/main');
    expect(info.status).not.toBe(200);
  });

  it('case 27: upstream failing for every request fails closed; declared and seen-public repos stay served', async () => {
    const m = await start({ publicRepos: ['org/open'] });
    // Seen public while upstream answered.
    const seen = createMirrorServer({ cacheDir, upstream: hub.endpoint, token: TOKEN, graceMs: 100 });
    await seen.listen();
    try {
      expect((await get(seen, '/org/open/resolve/main/open.txt')).status).toBe(200);
      hub.hub.addFault({ fault: { status: 429 } });
      expect((await get(seen, '/org/open/resolve/main/open.txt')).status).toBe(200);
      const gated = await get(seen, '/org/gated/resolve/main/secret.txt');
      expect([401, 503]).toContain(gated.status);
      expect(gated.body.toString()).not.toContain(SECRET);
    } finally {
      await seen.close();
    }
    // Declared public by the operator: served while upstream is down, without asking it.
    expect((await get(m, '/org/open/resolve/main/open.txt')).body.toString()).toBe('open bytes');
    const secret = await get(m, '/org/secret/resolve/main/private.txt');
    expect(secret.status).not.toBe(200);
    expect(secret.body.toString()).not.toContain(PRIVATE);
  });

  it('case 27: an offline mirror serves only repos declared or recorded public', async () => {
    // Recorded public by an online mirror's positive answer.
    const online = await start();
    expect((await get(online, '/org/open/resolve/main/open.txt')).status).toBe(200);
    await online.close();
    mirror = undefined;
    const offline = await start({ offline: true });
    expect((await get(offline, '/org/open/resolve/main/open.txt')).body.toString()).toBe('open bytes');
    for (const [path, bytes] of [['/org/gated/resolve/main/secret.txt', SECRET], ['/org/secret/resolve/main/private.txt', PRIVATE]] as const) {
      for (const headers of [{}, { Authorization: `Bearer ${TOKEN}` }] as Array<Record<string, string>>) {
        const res = await get(offline, path, headers);
        expect(res.status, path).not.toBe(200);
        expect(res.body.toString()).not.toContain(bytes);
      }
    }
    await offline.close();
    mirror = undefined;
    const declared = await start({ offline: true, publicRepos: ['org/gated'] });
    expect((await get(declared, '/org/gated/resolve/main/secret.txt')).body.toString()).toBe(SECRET);
  });

  it('case 27: with upstream healthy, gating still works: anonymous 401, accepted token 200', async () => {
    const m = await start();
    const anonymous = await get(m, '/org/gated/resolve/main/secret.txt');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['x-error-code']).toBe('GatedRepo');
    const allowed = await get(m, '/org/gated/resolve/main/secret.txt', { Authorization: `Bearer ${TOKEN}` });
    expect(allowed.body.toString()).toBe(SECRET);
  });

  it('case 31: an anonymous client cannot tell a private repo from a missing one, and nothing is written for it', async () => {
    const fresh = join(work, 'fresh');
    const m = await start({ cacheDir: fresh });
    const same = (a: RawResponse, b: RawResponse): void => {
      expect(a.status).toBe(b.status);
      expect(a.body.toString().replaceAll('org/secret', 'X')).toBe(b.body.toString().replaceAll('org/absent', 'X'));
      const headers = (r: RawResponse, name: string): Record<string, string> =>
        Object.fromEntries(Object.entries(r.headers).filter(([k]) => k !== 'date').map(([k, v]) => [k, String(v).replaceAll(name, 'X')]));
      expect(headers(a, 'org/secret')).toEqual(headers(b, 'org/absent'));
    };
    for (const suffix of ['', '/revision/main', '/tree/main']) {
      same(await get(m, `/api/models/org/secret${suffix}`), await get(m, `/api/models/org/absent${suffix}`));
    }
    same(await get(m, '/org/secret/resolve/main/private.txt'), await get(m, '/org/absent/resolve/main/private.txt'));
    // Nothing about the private repo reached the cache: no refs, no listing.
    expect((await readdir(fresh).catch(() => [] as string[])).filter((name) => name.includes('secret'))).toEqual([]);
    const status = (await get(m, '/api/_status')).body.toString();
    expect(status).not.toContain('org/secret');
    expect((await get(m, '/')).body.toString()).not.toContain('org/secret');
  });

  it('case 31: the status output lists only what anonymous clients may see, unless asked with the admin token', async () => {
    const m = await start({ adminToken: 'admin-secret-1' });
    // A client with a token reads the private repo through the mirror.
    expect((await get(m, '/org/secret/resolve/main/private.txt', { Authorization: `Bearer ${TOKEN}` })).body.toString()).toBe(PRIVATE);
    expect((await get(m, '/org/open/resolve/main/open.txt')).status).toBe(200);
    for (const path of ['/api/_status', '/']) {
      const anonymous = (await get(m, path)).body.toString();
      expect(anonymous).toContain('org/open');
      expect(anonymous, path).not.toContain('org/secret');
      expect(anonymous, path).not.toContain('org/gated');
      const wrong = (await get(m, path, { Authorization: `Bearer ${TOKEN}` })).body.toString();
      expect(wrong, path).not.toContain('org/secret');
      const admin = (await get(m, path, { Authorization: 'Bearer admin-secret-1' })).body.toString();
      expect(admin, path).toContain('org/secret');
      expect(admin, path).toContain('org/gated');
    }
  });
});
