import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

describe('pull announces retries like get', () => {
  it('a 503 from the CDN shows "HTTP 503, retry 1/7" on stderr and the pull completes', async () => {
    const hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files: [{ path: 'model.bin', size: 2 * 1024 * 1024, lfs: true }] }] });
    const cacheDir = await testTempDir('mf-retry-');
    try {
      hub.cdn.addFault({ times: 1, fault: { status: 503 } });
      const run = await runCli(['pull', 'org/tiny', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(new RegExp(`modelfetch: ${hub.cdn.origin.replace('http://', '').replace(/\./g, '\\.')}: HTTP 503, retry 1/7 in \\d+\\.\\d s`));
    } finally {
      await hub.close();
    }
  });

  it('a 503 from the hub API is announced the same way before its wait, and the pull completes', async () => {
    const hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files: [{ path: 'model.bin', size: 1024, lfs: true }] }] });
    const cacheDir = await testTempDir('mf-retry-');
    try {
      hub.hub.addFault({ times: 1, match: (req) => (req.url ?? '').includes('/revision/'), fault: { status: 503 } });
      const run = await runCli(['pull', 'org/tiny', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
      expect(run.code).toBe(0);
      expect(run.stderr).toMatch(new RegExp(`modelfetch: ${hub.endpoint.replace('http://', '').replace(/\./g, '\\.')}: HTTP 503, retry 1/2 in \\d+\\.\\d s`));
    } finally {
      await hub.close();
    }
  });

  it('a CDN that refuses connections gets the short budget a dead host gets from get and the hub API, and the error names it', async () => {
    const hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files: [{ path: 'model.bin', size: 2 * 1024 * 1024, lfs: true }] }] });
    const cacheDir = await testTempDir('mf-retry-');
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
    }
  });

  it('on a terminal, a 429 on a resolve request shows the wait on the progress line, counting down, and the pull completes', async () => {
    const hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files: [{ path: 'model.bin', size: 2 * 1024 * 1024, lfs: true }] }] });
    const cacheDir = await testTempDir('mf-retry-');
    try {
      hub.hub.addFault({ times: 1, match: (req) => (req.url ?? '').includes('/resolve/'), fault: { status: 429, statusHeaders: { 'Retry-After': '2' } } });
      let stderr = '';
      const terminal = Object.assign(new Writable({ write: (chunk: Buffer, _encoding, done) => ((stderr += chunk.toString()), done()) }), { isTTY: true, columns: 120 });
      const stdout = new Writable({ write: (_chunk, _encoding, done) => done() });
      const code = await main(['pull', 'org/tiny', '--cache-dir', cacheDir], { stdout, stderr: terminal, env: { HF_ENDPOINT: hub.endpoint } });
      expect(code).toBe(0);
      const host = hub.endpoint.replace('http://', '');
      const frames = stderr.split('\r').map((frame) => frame.replaceAll('\u001b[K', ''));
      const waits = frames.filter((frame) => frame.includes('waiting'));
      // On the bar, counted down while it waited (the bar redraws each second), then gone.
      expect(waits[0]).toMatch(new RegExp(`^\\[\\.+\\] .*, waiting 2 s \\(${host.replace(/\./g, '\\.')}: HTTP 429\\)$`));
      expect(waits.some((frame) => frame.endsWith(`, waiting 1 s (${host}: HTTP 429)`))).toBe(true);
      expect(frames.at(-2)).not.toContain('waiting');
      expect(stderr).toContain(`modelfetch: ${host}: HTTP 429, retry 1/7 in 2.0 s\n`);
      expect(stderr).toMatch(/1 files ready \(0 cached, 1 fetched/);
    } finally {
      await hub.close();
    }
  });
});
