import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPullFetcher } from '../../src/server/hf-upstream.js';
import { createMirrorServer } from '../../src/server/mirror-server.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

/**
 * The mirror's pull-through checks free space before fetching a blob (statfs injected here): a file
 * that cannot fit is refused with 507 and a sentence, nothing is fetched for it, and what the mirror
 * already has is still served.
 */

let hub: FixtureHub;
const WEIGHTS_SIZE = 1024 * 1024 + 9;

beforeAll(async () => {
  hub = await startFixtureHub({ repos: [{ repoId: 'org/space', files: [{ path: 'config.json', content: '{"a":1}' }, { path: 'model.safetensors', size: WEIGHTS_SIZE, lfs: true }] }] });
});
afterAll(() => hub.close());

describe('mirror pull-through on a nearly full disk', () => {
  it('answers 507 for a blob that does not fit and keeps serving what it has', async () => {
    const dir = await testTempDir('mf-mirror-space-');
    const cacheDir = join(dir, 'hub');
    let free = Number.POSITIVE_INFINITY;
    const fetchFile = createPullFetcher({ cacheDir, endpoint: hub.endpoint, pull: { freeBytes: () => Promise.resolve(free) } });
    const mirror = createMirrorServer({ cacheDir, upstream: hub.endpoint, fetchFile, log: () => undefined });
    await mirror.listen();
    try {
      const base = `${mirror.url}/org/space/resolve/main`;
      const first = await fetch(`${base}/config.json`);
      expect(first.status).toBe(200);
      expect(await first.text()).toBe('{"a":1}');

      free = 4096;
      hub.resetLogs();
      const refused = await fetch(`${base}/model.safetensors`);
      expect(refused.status).toBe(507);
      expect(refused.headers.get('x-error-code')).toBe('InsufficientStorage');
      const body = (await refused.json()) as { error: string };
      expect(body.error).toMatch(/^The mirror has no room to fetch this file \(1(\.0)? MiB still to download, 4(\.0)? KiB free\); files it already has are still served\./);
      expect(body.error).not.toContain(dir);
      expect(hub.cdn.requests.length).toBe(0);

      const again = await fetch(`${base}/config.json`);
      expect(again.status).toBe(200);
      expect(await again.text()).toBe('{"a":1}');

      free = Number.POSITIVE_INFINITY;
      const later = await fetch(`${base}/model.safetensors`);
      expect(later.status).toBe(200);
      expect((await later.arrayBuffer()).byteLength).toBe(WEIGHTS_SIZE);
    } finally {
      await mirror.close();
    }
  });
});
