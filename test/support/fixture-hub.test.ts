import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { snapshotDownload } from '@huggingface/hub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixtureHub, type FixtureHub } from './fixture-hub.js';

/** The peer client the benchmark compares with must be able to download from the fixture Hub. */
describe('fixture hub and @huggingface/hub', () => {
  let hub: FixtureHub;
  let cacheDir: string;
  beforeAll(async () => {
    hub = await startFixtureHub({ repos: [{ repoId: 'org/peer', files: [{ path: 'config.json', content: '{"a":1}' }, { path: 'w/model.bin', size: 1536 * 1024 }] }] });
    cacheDir = await mkdtemp(join(tmpdir(), 'mf-hfjs-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('answers paths-info, so snapshotDownload fetches every file', async () => {
    const snapshot = await snapshotDownload({ repo: 'org/peer', cacheDir, hubUrl: hub.endpoint });
    expect(snapshot).toContain(hub.commitOf('org/peer'));
    expect(await readFile(join(snapshot, 'config.json'), 'utf8')).toBe('{"a":1}');
    expect((await readFile(join(snapshot, 'w/model.bin'))).length).toBe(1536 * 1024);
    expect(hub.requests().some((r) => r.method === 'POST' && r.url.includes('/paths-info/') && r.status === 200)).toBe(true);
  });
});
