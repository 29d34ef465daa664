
import { describe, expect, it } from 'vitest';
import { transferFile, transferFiles } from '../../src/transfer/index.js';
import { isModelfetchError } from '../../src/core/errors.js';
import { serveFile, servedPath } from '../support/fixture-server.js';
import { exists, fakeClock, MiB, rangeRequests, type Setup, sha256Of, testScope } from './helpers.js';

let s: Setup | undefined;
const scope = testScope();

describe('transfer engine', () => {
  it('splits a large file over many connections and verifies it', async () => {
    s = await scope.setup(24 * MiB + 7);
    const file = servedPath(`${s.dir}/source.bin`, s.info);
    let live = 0;
    let peak = 0;
    s.server.route('/files/', async (req, res) => {
      live += 1;
      peak = Math.max(peak, live);
      res.on('close', () => (live -= 1));
      await serveFile(req, res, file, { throttleBytesPerSec: 8 * MiB });
    });
    const events: number[] = [];
    const result = await transferFile(s.job(), { segmentThreshold: 4 * MiB, onProgress: (e) => events.push(e.contiguousBytes) });
    expect(result.size).toBe(s.info.size);
    expect(result.digest).toEqual({ algorithm: 'sha256', hex: s.info.sha256 });
    expect(result.bytesFetched).toBe(s.info.size);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(await exists(`${result.tempPath}.journal`)).toBe(false);
    expect(peak).toBeGreaterThanOrEqual(8);
    expect(rangeRequests(s.server).length).toBeGreaterThanOrEqual(8);
    // the contiguous prefix only grows
    expect(events).toEqual([...events].sort((a, b) => a - b));
  });

  it('fetches a small file over one connection and computes a git blob SHA-1', async () => {
    s = await scope.setup(300_000);
    const phases: string[] = [];
    const result = await transferFile(s.job({ digest: { algorithm: 'git-sha1', hex: s.info.gitSha1 } }), { onProgress: (e) => phases.push(e.phase) });
    expect(result.digest.hex).toBe(s.info.gitSha1);
    expect(phases.slice(-3)).toEqual(['verify', 'sync', 'done']);
    expect(rangeRequests(s.server)).toEqual(['bytes=0-299999']);
    expect(s.server.requests.length).toBe(1); // a small file of known size needs no probe
    expect(result.etag).toBe(s.info.sha256); // learned from the answer
  });

  it('small files: a plain 200 is taken as the whole body; a 206 naming another size is retried, then fails', async () => {
    s = await scope.setup(200_000);
    s.server.addFault({ times: 1, fault: { ignoreRange: true } });
    const result = await transferFile(s.job());
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(s.server.requests.length).toBe(1);
    const error = await transferFile(s.job({ size: 200_001, tempPath: `${s.dir}/other.part` }), { clock: fakeClock(), maxAttempts: 2 }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_BAD_RANGE')).toBe(true);
    expect(s.server.requests.length).toBe(3);
    expect(await exists(`${s.dir}/other.part`)).toBe(false); // nothing resumable is left behind
  });

  it('fetches many small files, one request each, with a bounded number in flight', async () => {
    s = await scope.setup(1000);
    const { servedBuffer } = await import('../support/fixture-server.js');
    const { randomBytes } = await import('node:crypto');
    const jobs = Array.from({ length: 40 }, (_, i) => {
      const file = servedBuffer(randomBytes(5000 + i));
      s?.server.setFile(`/small/${i}.json`, file);
      return s!.job({ urls: [`${s!.server.origin}/small/${i}.json`], tempPath: `${s!.dir}/small-${i}.part`, size: file.size, digest: { algorithm: 'sha256', hex: file.sha256 } });
    });
    const totals: number[] = [];
    const results = await transferFiles(jobs, { connections: 2, onProgress: (e) => totals.push(e.batchTotalBytes) });
    expect(results.map((r) => r.digest.hex)).toEqual(jobs.map((j) => j.digest?.hex));
    expect(s.server.requests.length).toBe(40);
    expect(totals[0]).toBe(jobs.reduce((sum, j) => sum + (j.size ?? 0), 0));
  });

  it('learns the size from the probe when the job does not give it', async () => {
    s = await scope.setup(5 * MiB + 1);
    const job = s.job();
    delete job.size;
    const result = await transferFile(job, { segmentThreshold: MiB });
    expect(result.size).toBe(5 * MiB + 1);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
  });

  it('fails with ERR_INTEGRITY on corrupt bytes and leaves nothing behind', async () => {
    s = await scope.setup(3 * MiB);
    s.server.addFault({ fault: { corruptOffsets: [12345] } });
    const phases: string[] = [];
    const error = await transferFile(s.job(), { onProgress: (e) => phases.push(e.phase) }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_INTEGRITY')).toBe(true);
    expect(isModelfetchError(error) && error.expected).toBe(s.info.sha256);
    // 'sync' means the digest matched (a mirror sends its last byte then): never after a mismatch.
    expect(phases).not.toContain('sync');
    expect(await exists(s.job().tempPath)).toBe(false);
    expect(await exists(`${s.job().tempPath}.journal`)).toBe(false);
  });

  it('completes when the corruption was a one-off: the file is fetched again from zero', async () => {
    s = await scope.setup(3 * MiB);
    s.server.addFault({ times: 2, fault: { corruptOffsets: [0, 2 * MiB + 5] } });
    const result = await transferFile(s.job(), { segmentThreshold: MiB });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
  });

  it('does not retry 404, 401 or 403', async () => {
    for (const [status, code] of [
      [404, 'ERR_NOT_FOUND'],
      [401, 'ERR_AUTH'],
      [403, 'ERR_GATED'],
    ] as const) {
      s = await scope.setup(1000);
      s.server.addFault({ fault: { status } });
      const error = await transferFile(s.job()).catch((e: unknown) => e);
      expect(isModelfetchError(error, code)).toBe(true);
      expect(s.server.requests.length).toBe(1);
      if (status !== 404) expect(isModelfetchError(error) && error.hint).toMatch(/HF_TOKEN/);
      await s.close();
      s = undefined;
    }
  });

  it('retries 503', async () => {
    s = await scope.setup(2 * MiB);
    s.server.addFault({ times: 2, fault: { status: 503 } });
    const result = await transferFile(s.job(), { random: () => 0, clock: { now: () => Date.now(), sleep: async () => {} } });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(s.server.requests.filter((r) => r.status === 503).length).toBe(2);
  });

  it('sends credentials to their origin only, never after a cross-origin redirect', async () => {
    s = await scope.setup(2 * MiB);
    const front = await scope.server();
    const target = s.url;
    front.route('/resolve/', (_req, res) => {
      res.statusCode = 302;
      res.setHeader('Location', target);
      res.end();
    });
    const result = await transferFile(s.job({ urls: [`${front.origin}/resolve/model.bin`], headers: { Authorization: 'Bearer hf_secretsecret', 'X-Trace': 'keep' } }), { segmentThreshold: MiB });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(front.requests.every((r) => r.headers.authorization === 'Bearer hf_secretsecret')).toBe(true);
    expect(s.server.requests.length).toBeGreaterThan(1);
    for (const r of s.server.requests) {
      expect(r.headers.authorization).toBeUndefined();
      expect(r.headers['x-trace']).toBe('keep');
      expect(r.headers['accept-encoding']).toBe('identity');
    }
  });

  it('refuses a redirect loop and non-http targets', async () => {
    s = await scope.setup(1000);
    s.server.route('/loop/a', (_req, res) => {
      res.statusCode = 302;
      res.setHeader('Location', '/loop/b');
      res.end();
    });
    s.server.route('/loop/b', (_req, res) => {
      res.statusCode = 301;
      res.setHeader('Location', '/loop/a');
      res.end();
    });
    s.server.route('/file-scheme', (_req, res) => {
      res.statusCode = 302;
      res.setHeader('Location', 'file:///etc/passwd');
      res.end();
    });
    const loop = await transferFile(s.job({ urls: [`${s.server.origin}/loop/a`] })).catch((e: unknown) => e);
    expect(isModelfetchError(loop, 'ERR_REDIRECT')).toBe(true);
    const scheme = await transferFile(s.job({ urls: [`${s.server.origin}/file-scheme`] })).catch((e: unknown) => e);
    expect(isModelfetchError(scheme, 'ERR_REDIRECT')).toBe(true);
  });
});

describe('transfer engine over undici (https, custom dispatchers)', () => {
  const viaUndici = { fastHttp: false, segmentThreshold: MiB, clock: { now: () => Date.now(), sleep: async () => {} } };
  const isRange = (req: { headers: { range?: string } }): boolean => req.headers.range !== undefined && req.headers.range !== 'bytes=0-0';

  it('downloads in segments, retries a reset, and verifies', async () => {
    s = await scope.setup(6 * MiB + 1);
    s.server.addFault({ match: isRange, times: 1, fault: { resetAfterBytes: 300_000 } });
    const result = await transferFile(s.job(), viaUndici);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(rangeRequests(s.server).length).toBeGreaterThan(2);
  });

  it('drops credentials on a cross-origin redirect', async () => {
    s = await scope.setup(2 * MiB);
    const front = await scope.server();
    const target = s.url;
    front.route('/resolve/', (_req, res) => {
      res.statusCode = 307;
      res.setHeader('Location', target);
      res.end();
    });
    const result = await transferFile(s.job({ urls: [`${front.origin}/resolve/model.bin`], headers: { Cookie: 'session=1' } }), viaUndici);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(front.requests[0]?.headers.cookie).toBe('session=1');
    for (const r of s.server.requests) expect(r.headers.cookie).toBeUndefined();
  });

  it('refuses gzip and takes an ignored-Range answer as the one stream', async () => {
    s = await scope.setup(MiB);
    s.server.addFault({ match: isRange, times: 1, fault: { forceGzip: true } });
    const error = await transferFile(s.job(), viaUndici).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_BAD_RESPONSE')).toBe(true);
    s.server.clearFaults();
    s.server.addFault({ fault: { ignoreRange: true } });
    s.server.resetLog();
    const result = await transferFile(s.job(), viaUndici);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(s.server.requests.filter((r) => r.method === 'GET').length).toBe(1);
  });
});
