import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { startFixtureHub } from '../support/fixture-hub.js';

describe('pull announces retries like get', () => {
  it('a 503 from the CDN shows "HTTP 503, retry 1/7" on stderr and the pull completes', async () => {
    const hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files: [{ path: 'model.bin', size: 2 * 1024 * 1024, lfs: true }] }] });
    const cacheDir = await mkdtemp(join(tmpdir(), 'mf-retry-'));
    try {
      hub.cdn.addFault({ times: 1, fault: { status: 503 } });
      const run = await runCli(['pull', 'org/tiny', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(new RegExp(`modelfetch: ${hub.cdn.origin.replace('http://', '').replace(/\./g, '\\.')}: HTTP 503, retry 1/7 in \\d+\\.\\d s`));
    } finally {
      await hub.close();
      await rm(cacheDir, { recursive: true, force: true });
    }
  });

  it('a 503 from the hub API is announced the same way before its wait, and the pull completes', async () => {
    const hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files: [{ path: 'model.bin', size: 1024, lfs: true }] }] });
    const cacheDir = await mkdtemp(join(tmpdir(), 'mf-retry-'));
    try {
      hub.hub.addFault({ times: 1, match: (req) => (req.url ?? '').includes('/revision/'), fault: { status: 503 } });
      const run = await runCli(['pull', 'org/tiny', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(new RegExp(`modelfetch: ${hub.endpoint.replace('http://', '').replace(/\./g, '\\.')}: HTTP 503, retry 1/2 in \\d+\\.\\d s`));
    } finally {
      await hub.close();
      await rm(cacheDir, { recursive: true, force: true });
    }
  });

  it('a CDN that refuses connections gets the short budget a dead host gets from get and the hub API, and the error names it', async () => {
    const hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files: [{ path: 'model.bin', size: 2 * 1024 * 1024, lfs: true }] }] });
    const cacheDir = await mkdtemp(join(tmpdir(), 'mf-retry-'));
    const cdnHost = hub.cdn.origin.replace('http://', '');
    try {
      await hub.cdn.close();
      const run = await runCli(['pull', 'org/tiny', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
      expect(run.code).toBe(6);
      expect(run.stderr).toContain(`${cdnHost}: connection refused, retry 2/2 in`);
      expect(run.stderr).not.toContain('retry 3/');
      expect(run.stderr).toContain(`Could not connect to ${cdnHost}: connection refused (3 attempts) [ERR_NETWORK]`);
    } finally {
      await hub.close().catch(() => undefined);
      await rm(cacheDir, { recursive: true, force: true });
    }
  });
});
