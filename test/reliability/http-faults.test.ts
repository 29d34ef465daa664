import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Agent } from 'undici';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { transferFile } from '../../src/transfer/index.js';
import type { TransferJob, TransferOptions } from '../../src/transfer/types.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { servedBuffer, startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { testTempDir } from '../support/temp.js';
import { hasTool } from '../support/tools.js';
import { engineCase, FAST, filesIn, sha256Of, sizeOf, sleepsAsked } from './engine-fixture.js';

/** Cases 6–15 and 20: what the transfer engine does with hostile or broken HTTP. */

const servers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of servers.splice(0).reverse()) await s.close();
});
async function fixture(host?: string): Promise<FixtureServer> {
  const server = await startFixtureServer(host ? { host } : {});
  servers.push(server);
  return server;
}
async function setup(size?: number) {
  const c = await engineCase(size, await fixture());
  return c;
}
async function expectFailure(promise: Promise<unknown>, codes?: string[]): Promise<string> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the transfer must fail').toBeDefined();
  expect(isModelfetchError(error), `a ModelfetchError, got ${String(error)}`).toBe(true);
  const code = (error as { code: string }).code;
  if (codes) expect(codes).toContain(code);
  return code;
}
/** Starts a download, kills it (abort) once some ranges are on disk, and leaves the partial file and journal. */
async function interrupt(c: Awaited<ReturnType<typeof setup>>, after = 1_000_000): Promise<void> {
  c.server.addFault({ fault: { throttleBytesPerSec: 1_000_000 } });
  const controller = new AbortController();
  await expectFailure(transferFile(c.job, { ...FAST, signal: controller.signal, onProgress: (e) => e.bytesDone > after && controller.abort() }));
  c.server.clearFaults();
  expect(await sizeOf(`${c.job.tempPath}.journal`)).toBeGreaterThan(0);
}
const notProbe = (req: { headers: Record<string, unknown> }): boolean => req.headers.range !== undefined && req.headers.range !== 'bytes=0-0';
const CREDENTIALS = { authorization: 'Bearer hf_SecretToken123456', cookie: 'session=s3cret', 'x-custom-auth-token': 'tok-s3cret' };
const leaked = (headers: Record<string, unknown>): string[] => Object.keys(headers).filter((h) => ['authorization', 'cookie', 'x-custom-auth-token'].includes(h));

describe('credentials on redirects (case 6)', () => {
  const crossOrigin = [
    ['another host', '127.0.0.2'],
    ['another port', undefined],
  ] as const;
  for (const [what, host] of crossOrigin) {
    it(`drops Authorization, Cookie and auth headers on a redirect to ${what}`, async () => {
      const origin = await fixture();
      const target = await fixture(host);
      const data = randomBytes(300_000);
      target.setFile('/blob', servedBuffer(data));
      origin.route('/resolve', (_req, res) => {
        res.statusCode = 302;
        res.setHeader('location', `${target.origin}/blob`);
        res.end();
      });
      const dir = await testTempDir('mf-redir-');
      const result = await transferFile(
        { urls: [`${origin.origin}/resolve`], size: data.length, digest: { algorithm: 'sha256', hex: sha256Of(data) }, tempPath: join(dir, 'p'), identity: 'redir', headers: CREDENTIALS },
        FAST,
      );
      expect(result.digest.hex).toBe(sha256Of(data));
      // The origin saw the credentials (they are meant for it), the other origin never did.
      expect(origin.requests.some((r) => r.headers.authorization === CREDENTIALS.authorization)).toBe(true);
      expect(target.requests.length).toBeGreaterThan(0);
      for (const r of target.requests) expect(leaked(r.headers)).toEqual([]);
    });
  }

  it.skipIf(!hasTool('openssl'))('drops them on an https → http downgrade', async () => {
    const dir = await testTempDir('mf-tls-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const target = await fixture();
    const data = randomBytes(100_000);
    target.setFile('/blob', servedBuffer(data));
    const seen: Array<Record<string, unknown>> = [];
    const tls = createHttpsServer({ key: await readFile(join(dir, 'k.pem')), cert: await readFile(join(dir, 'c.pem')) }, (req, res) => {
      seen.push(req.headers);
      res.statusCode = 302;
      // Same host and port number scheme aside: only the scheme differs from what the client trusted.
      res.setHeader('location', `${target.origin}/blob`);
      res.end();
    });
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise<void>((resolve) => tls.close(() => resolve())) });
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    const port = (tls.address() as AddressInfo).port;
    const result = await transferFile(
      { urls: [`https://127.0.0.1:${port}/resolve`], size: data.length, digest: { algorithm: 'sha256', hex: sha256Of(data) }, tempPath: join(dir, 'p'), identity: 'tls', headers: CREDENTIALS },
      { ...FAST, dispatcher },
    );
    await dispatcher.close();
    expect(result.digest.hex).toBe(sha256Of(data));
    expect(seen.some((h) => h.authorization === CREDENTIALS.authorization)).toBe(true);
    for (const r of target.requests) expect(leaked(r.headers)).toEqual([]);
  });
});

describe('redirect limits (case 7)', () => {
  const redirectTo = (server: FixtureServer, prefix: string, location: (n: number) => string): void =>
    server.route(prefix, (req, res) => {
      const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n') ?? '0');
      res.statusCode = 302;
      res.setHeader('location', location(n));
      res.end();
    });

  it('refuses a redirect loop', async () => {
    const c = await setup(100_000);
    redirectTo(c.server, '/loop', () => `${c.server.origin}/loop`);
    await expectFailure(transferFile({ ...c.job, urls: [`${c.server.origin}/loop`] }, FAST), ['ERR_REDIRECT', 'ERR_HTTP', 'ERR_NETWORK']);
    expect(await filesIn(c.dir)).not.toContain('f.part.complete');
  });

  it('refuses more than 10 hops but follows 10', async () => {
    const c = await setup(100_000);
    redirectTo(c.server, '/hop', (n) => (n >= 9 ? `${c.server.origin}/f.bin` : `${c.server.origin}/hop?n=${n + 1}`));
    const ok = await transferFile({ ...c.job, urls: [`${c.server.origin}/hop?n=0`] }, FAST);
    expect(ok.digest.hex).toBe(c.sha256);

    const d = await setup(100_000);
    redirectTo(d.server, '/hop', (n) => (n >= 11 ? `${d.server.origin}/f.bin` : `${d.server.origin}/hop?n=${n + 1}`));
    await expectFailure(transferFile({ ...d.job, urls: [`${d.server.origin}/hop?n=0`] }, FAST), ['ERR_REDIRECT', 'ERR_HTTP', 'ERR_NETWORK']);
    // It gave up: a bounded number of hops was asked for, not an endless chain.
    expect(d.server.requests.filter((r) => r.url.startsWith('/hop')).length).toBeLessThan(12 * FAST.maxAttempts!);
    expect(d.server.requests.some((r) => r.url === '/f.bin')).toBe(false);
  });

  for (const target of ['file:///etc/passwd', 'ftp://127.0.0.1/f.bin', 'data:application/octet-stream;base64,AAAA', 'javascript:alert(1)']) {
    it(`refuses a redirect to ${target.split(':')[0]}:`, async () => {
      const c = await setup(100_000);
      redirectTo(c.server, '/bad', () => target);
      await expectFailure(transferFile({ ...c.job, urls: [`${c.server.origin}/bad`] }, FAST), ['ERR_REDIRECT', 'ERR_HTTP', 'ERR_BAD_RESPONSE', 'ERR_NETWORK']);
      expect(await sizeOf(c.job.tempPath)).toBeLessThanOrEqual(0);
    });
  }
});

describe('servers that get ranges wrong (cases 8, 9, 15)', () => {
  it('Range ignored: one full stream, no misplaced bytes', async () => {
    const c = await setup();
    c.server.addFault({ fault: { ignoreRange: true } });
    const result = await transferFile(c.job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
    // Segments were not each given the whole body: at most one full stream plus aborted starts.
    const full200 = c.server.requests.filter((r) => r.status === 200 && r.method === 'GET' && r.bodyBytes >= c.data.length);
    expect(full200.length).toBe(1);
  });

  it('Range ignored on resume: the download starts over', async () => {
    const c = await setup();
    await interrupt(c);
    c.server.addFault({ fault: { ignoreRange: true } });
    const result = await transferFile(c.job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expect(result.bytesResumed).toBe(0);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
  });

  // Without an expected digest nothing downstream would catch bytes written at the wrong offset.
  const withoutDigest = (job: TransferJob): TransferJob => ({ urls: job.urls, ...(job.size !== undefined && { size: job.size }), tempPath: job.tempPath, identity: job.identity });

  it('Range ignored on resume of a file with no expected digest: starts over, no misplaced bytes', async () => {
    const c = await setup();
    await interrupt(c);
    c.server.addFault({ fault: { ignoreRange: true } });
    const result = await transferFile(withoutDigest(c.job), FAST);
    expect(result.bytesResumed).toBe(0);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
    expect(result.digest.hex).toBe(c.sha256);
  });

  it('Range ignored only after the probe, no expected digest: a failure or the right bytes, never misplaced ones', async () => {
    const c = await setup();
    c.server.addFault({ match: notProbe, fault: { ignoreRange: true } });
    const outcome = await transferFile(withoutDigest(c.job), FAST).then(
      (r) => r.digest.hex,
      (e: unknown) => (isModelfetchError(e) ? e.code : String(e)),
    );
    // A 200 after If-Range reads as a changed file (ERR_ETAG_CHANGED); without an ETag, as Range ignored.
    expect([c.sha256, 'ERR_RANGE_IGNORED', 'ERR_ETAG_CHANGED']).toContain(outcome);
    if (outcome === c.sha256) expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
  });

  const rangeStart = (req: { headers: Record<string, unknown> }): string | undefined => /^bytes=(\d+)-/.exec(String(req.headers.range))?.[1];
  const notFromZero = (req: { headers: Record<string, unknown> }): boolean => notProbe(req) && rangeStart(req) !== '0';
  /** The first `n` answers to requests matching `faulted` were not used: each start was asked for again. */
  function expectAskedAgain(server: FixtureServer, n: number, faulted = notProbe): void {
    const requests = server.requests.filter(notProbe);
    const lied = requests.filter(faulted).slice(0, n);
    expect(lied.length).toBe(n);
    for (const req of lied) {
      const later = requests.slice(requests.indexOf(req) + 1).map(rangeStart);
      expect(later, `bytes=${rangeStart(req)}- asked for again`).toContain(rangeStart(req));
    }
  }

  it('206 with a shifted start/end is rejected and retried', async () => {
    const c = await setup();
    c.server.addFault({ times: 2, match: notProbe, fault: { wrongRangeShift: 1 } });
    const result = await transferFile(c.job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
    expectAskedAgain(c.server, 2);
  });

  it('206 with the wrong total is rejected and retried', async () => {
    const c = await setup();
    c.server.addFault({ times: 2, match: notProbe, fault: { wrongRangeTotal: c.data.length + 10 } });
    const result = await transferFile(c.job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expectAskedAgain(c.server, 2);
  });

  it('206 that starts before the requested byte (honest Content-Range, no Content-Length) is rejected: no misplaced bytes', async () => {
    const c = await setup();
    // Chunked, so only the Content-Range start tells; no digest, so nothing later would catch misplaced bytes.
    c.server.addFault({ times: 2, match: notFromZero, fault: { rangeStartShift: -1000, noContentLength: true } });
    const result = await transferFile(withoutDigest(c.job), FAST);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
    expect(result.digest.hex).toBe(c.sha256);
    expectAskedAgain(c.server, 2, notFromZero);
  });

  it('a server that always lies about ranges fails the file with ERR_BAD_RANGE, never a wrong file', async () => {
    const c = await setup();
    c.server.addFault({ match: (req) => req.headers.range !== undefined, fault: { wrongRangeShift: 7 } });
    await expectFailure(transferFile(c.job, FAST), ['ERR_BAD_RANGE', 'ERR_RANGE_IGNORED', 'ERR_INTEGRITY']);
  });

  it('416 against a stale partial file: the download still completes with the right bytes', async () => {
    const c = await setup();
    await interrupt(c);
    c.server.resetLog();
    c.server.addFault({ times: 1, match: notProbe, fault: { status: 416, statusHeaders: { 'content-range': `bytes */${c.data.length}` } } });
    const result = await transferFile(c.job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
    expect(c.server.requests.some((r) => r.status === 416)).toBe(true);
  });
});

describe('a long-running process survives discarded responses', () => {
  it('no uncaught exception when bodies are dropped (416 on resume, forced gzip, Range ignored)', async () => {
    const uncaught: unknown[] = [];
    const collect = (error: unknown): void => void uncaught.push(error);
    process.on('uncaughtException', collect);
    try {
      const c = await setup();
      await interrupt(c);
      c.server.addFault({ times: 1, match: notProbe, fault: { status: 416, statusHeaders: { 'content-range': `bytes */${c.data.length}` } } });
      expect((await transferFile(c.job, FAST)).digest.hex).toBe(c.sha256);
      const g = await setup(500_000);
      g.server.addFault({ fault: { forceGzip: true } });
      await expectFailure(transferFile(g.job, { ...FAST, maxAttempts: 2 }));
      const r = await setup();
      r.server.addFault({ fault: { ignoreRange: true, throttleBytesPerSec: 2_000_000 } });
      const controller = new AbortController();
      await expectFailure(transferFile(r.job, { ...FAST, signal: controller.signal, onProgress: (e) => e.bytesDone > 300_000 && controller.abort() }));
      // undici reports a destroyed body on a later tick; give it a few.
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      process.off('uncaughtException', collect);
    }
    expect(uncaught.map(String)).toEqual([]);
  });
});

describe('the file changes upstream mid-download (case 10)', () => {
  for (const change of ['etag', 'length', 'etag (If-Range not honoured)'] as const) {
    it(`${change} change: partial data discarded, restart, never a mix`, async () => {
      const c = await setup();
      const next = randomBytes(change === 'length' ? c.data.length + 4096 : c.data.length);
      // A server that ignores If-Range answers 206 from the new file: only the ETag check sees the change.
      c.server.addFault({ fault: { throttleBytesPerSec: 1_000_000, ...(change.includes('If-Range') && { ignoreIfRange: true }) } });
      let swapped = false;
      const options: TransferOptions = {
        ...FAST,
        onProgress: (e) => {
          if (!swapped && e.bytesDone > 200_000) {
            swapped = true;
            c.server.setFile('/f.bin', { ...servedBuffer(next) });
          }
        },
      };
      // No expected digest or size: a plain URL whose content is whatever the server holds now.
      const job = { urls: c.job.urls, tempPath: c.job.tempPath, identity: 'changing' };
      // The engine itself restarts after one change: the call succeeds.
      const result = await transferFile(job, options);
      expect(swapped).toBe(true);
      const bytes = await readFile(c.job.tempPath);
      // Whole old or whole new, never a mix; and the reported digest is of what is on disk.
      expect(bytes.equals(next) || bytes.equals(c.data), 'the file must be entirely one version').toBe(true);
      expect(result.digest.hex).toBe(sha256Of(bytes));
      expect(result.size).toBe(bytes.length);
    });
  }

  it('with an expected digest, a changed file fails (or completes from the old bytes) and nothing mixed is kept', async () => {
    const c = await setup();
    c.server.addFault({ fault: { throttleBytesPerSec: 1_000_000 } });
    let swapped = false;
    const outcome = await transferFile(c.job, {
        ...FAST,
        onProgress: (e) => {
          if (!swapped && e.bytesDone > 200_000) {
            swapped = true;
            c.server.setFile('/f.bin', servedBuffer(randomBytes(c.data.length)));
          }
        },
      }).then(
        (r) => r.digest.hex,
        (e: unknown) => (isModelfetchError(e) ? e.code : String(e)),
      );
    expect(swapped).toBe(true);
    expect([c.sha256, 'ERR_ETAG_CHANGED', 'ERR_INTEGRITY', 'ERR_BAD_RESPONSE', 'ERR_SIZE', 'ERR_RANGE_IGNORED']).toContain(outcome);
    if (outcome === c.sha256) expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
  });
});

describe('bodies that are not the file (cases 11, 12, 13)', () => {
  const broken: Array<[string, Parameters<FixtureServer['addFault']>[0]['fault']]> = [
    ['a short clean close', { truncateAfterBytes: 1000 }],
    ['a short chunked body (no Content-Length)', { noContentLength: true, truncateAfterBytes: 5000 }],
    ['an empty 200', { replaceBody: '' }],
    ['an HTML error page in place of the file', { replaceBody: '<html><body>Rate limited, try later</body></html>' }],
  ];
  for (const [what, fault] of broken.slice(2)) {
    it(`${what} for a file of known size and digest is a failure, never a complete file`, async () => {
      const c = await setup(500_000);
      c.server.addFault({ fault });
      await expectFailure(transferFile(c.job, { ...FAST, maxAttempts: 2 }));
      const bytes = await readFile(c.job.tempPath).catch(() => Buffer.alloc(0));
      expect(sha256Of(bytes)).not.toBe(c.sha256);
      expect(bytes.includes(Buffer.from('<html>'))).toBe(false);
    });
  }

  for (const [what, fault] of broken.slice(0, 2)) {
    it(`${what} every time: short bodies are never taken as done; the file completes from the rest or fails`, async () => {
      const c = await setup(500_000);
      c.server.addFault({ fault: { ...fault, truncateAfterBytes: 100_000 } });
      const outcome = await transferFile(c.job, { ...FAST, maxAttempts: 3 }).then(
        (r) => r.digest.hex,
        (e: unknown) => (isModelfetchError(e) ? e.code : String(e)),
      );
      expect([c.sha256, 'ERR_NETWORK', 'ERR_SIZE', 'ERR_INCOMPLETE', 'ERR_BAD_RESPONSE']).toContain(outcome);
      if (outcome === c.sha256) expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
      // Every response was cut short, so completing took several requests.
      expect(c.server.requests.filter((r) => r.method === 'GET').length).toBeGreaterThan(2);
    });
  }

  for (const [what, fault] of broken.slice(0, 2)) {
    it(`${what} for a file of unknown size is never taken as the whole file`, async () => {
      const c = await setup(500_000);
      c.server.addFault({ times: 2, match: notProbe, fault });
      c.server.addFault({ times: 1, match: (req) => req.headers.range === undefined, fault });
      const job = { urls: c.job.urls, tempPath: c.job.tempPath, identity: 'unknown-size' };
      const outcome = await transferFile(job, FAST).then(
        (r) => r,
        (e: unknown) => e,
      );
      if (isModelfetchError(outcome)) return; // a clean failure is fine; a short success is not
      expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
    });
  }

  it('a short chunked body from a server that never says the size (Range ignored, no Content-Length) is never taken as the whole file', async () => {
    const c = await setup(500_000);
    // Nothing tells the size, not even the probe: only the missing last chunk shows the body was cut.
    c.server.addFault({ fault: { ignoreRange: true, noContentLength: true } });
    c.server.addFault({ times: 2, fault: { truncateAfterBytes: 100_000 } });
    const job = { urls: c.job.urls, tempPath: c.job.tempPath, identity: 'no-size' };
    const outcome = await transferFile(job, FAST).then(
      (r) => r,
      (e: unknown) => e,
    );
    expect(c.server.requests.some((r) => r.bodyBytes > 0 && r.bodyBytes < c.data.length)).toBe(true);
    if (isModelfetchError(outcome)) return; // a clean failure is fine; a short success is not
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
  });

  it('an endless body is cut at the expected size', async () => {
    const c = await setup(500_000);
    c.server.addFault({ fault: { ignoreRange: true, extraBytes: 50 * 1024 * 1024 } });
    const outcome = await transferFile(c.job, { ...FAST, maxAttempts: 2 }).then(
      (r) => r.digest.hex,
      (e: unknown) => (isModelfetchError(e) ? e.code : String(e)),
    );
    expect([c.sha256, 'ERR_SIZE', 'ERR_BAD_RESPONSE']).toContain(outcome);
    expect(await sizeOf(c.job.tempPath)).toBeLessThanOrEqual(c.data.length);
    // The connection was dropped well before the server had pushed its 50 MiB.
    expect(c.server.bodyBytesServed()).toBeLessThan(20 * 1024 * 1024);
  });

  it('asks for identity encoding, and a forced gzip body is refused (or decoded to exactly the file)', async () => {
    const c = await setup(500_000);
    c.server.addFault({ fault: { forceGzip: true } });
    const outcome = await transferFile(c.job, { ...FAST, maxAttempts: 2 }).then(
      (r) => r.digest.hex,
      (e: unknown) => (isModelfetchError(e) ? e.code : String(e)),
    );
    // Refused as a malformed response — not written to disk and caught later by the digest.
    expect([c.sha256, 'ERR_BAD_RESPONSE']).toContain(outcome);
    // The HEAD probe is refused already (its Content-Encoding says gzip); every request asked for identity.
    expect(c.server.requests.length).toBeGreaterThan(0);
    for (const r of c.server.requests) expect(r.headers['accept-encoding']).toBe('identity');
  });

  it('a gzip bomb never grows past the expected size', async () => {
    const c = await setup(100_000);
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    c.server.route('/bomb', (_req, res) => {
      res.setHeader('content-encoding', 'gzip');
      res.setHeader('content-length', String(bomb.length));
      res.end(bomb);
    });
    await expectFailure(transferFile({ ...c.job, urls: [`${c.server.origin}/bomb`] }, { ...FAST, maxAttempts: 1 }));
    expect(await sizeOf(c.job.tempPath)).toBeLessThanOrEqual(100_000);
  });
});

describe('transient failures are retried (case 14)', () => {
  it('429 with Retry-After and 503 are retried and the download completes', async () => {
    const c = await setup();
    c.server.addFault({ times: 1, fault: { status: 429, statusHeaders: { 'retry-after': '7' } } });
    // Matching rules merge: the 503s start from the second request, so the first one really is a 429.
    c.server.addFault({ times: 2, match: () => c.server.requests.length > 1, fault: { status: 503 } });
    sleepsAsked.splice(0);
    const result = await transferFile(c.job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expect(c.server.requests.filter((r) => r.status === 429).length).toBe(1);
    expect(c.server.requests.filter((r) => r.status === 503).length).toBe(2);
    // Retry-After was honoured (7 s asked for), and the 503 got a backoff wait too.
    expect(sleepsAsked).toContain(7000);
    expect(sleepsAsked.filter((ms) => ms > 0 && ms !== 7000).length).toBeGreaterThan(0);
  });

  it('stalls and resets through the proxy are retried and the download completes', async () => {
    const c = await setup(3 * 1024 * 1024);
    const proxy: FaultProxy = await startFaultProxy({ port: c.server.port });
    servers.push(proxy);
    proxy.addToxic({ name: 'reset', direction: 'downstream', toxicity: 0.4, toxic: { type: 'reset_peer', timeoutMs: 30 } });
    proxy.addToxic({ name: 'stall', direction: 'downstream', toxicity: 0.3, toxic: { type: 'timeout', timeoutMs: 0 } });
    proxy.addToxic({ name: 'slow', direction: 'downstream', toxic: { type: 'latency', latencyMs: 2, jitterMs: 2 } });
    const result = await transferFile({ ...c.job, urls: [`${proxy.origin}/f.bin`] }, { ...FAST, maxAttempts: 20, stallTimeoutMs: 700 });
    expect(result.digest.hex).toBe(c.sha256);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
    expect(proxy.counters.connections).toBeGreaterThan(1);
  });

  it('a stall is noticed and a fresh connection finishes the file', async () => {
    const c = await setup();
    // Not the 1-byte probe: a segment's body stalls after 100 kB.
    c.server.addFault({ times: 1, match: notProbe, fault: { stallAfterBytes: 100_000 } });
    const result = await transferFile(c.job, { ...FAST, stallTimeoutMs: 500 });
    expect(result.digest.hex).toBe(c.sha256);
  });
});

describe('corrupt bytes from a bad CDN node (case 20)', () => {
  it('always corrupt: an integrity error, and nothing is kept', async () => {
    const c = await setup();
    c.server.addFault({ fault: { corruptOffsets: [12_345, 1_500_000] } });
    await expectFailure(transferFile(c.job, { ...FAST, maxAttempts: 2 }), ['ERR_INTEGRITY']);
    const left = await readFile(c.job.tempPath).catch(() => undefined);
    expect(left === undefined || sha256Of(left) !== c.sha256).toBe(true);
    // Integrity failures discard the data: no journal claims the corrupt ranges.
    expect(await sizeOf(`${c.job.tempPath}.journal`)).toBe(-1);
  });

  it('corrupt once: the engine starts over by itself and completes the file', async () => {
    const c = await setup();
    // The first segment (from byte 0, not the 1-byte probe) carries the flipped byte.
    c.server.addFault({ times: 1, match: (req) => /^bytes=0-(?!0$)\d+$/.test(String(req.headers.range)), fault: { corruptOffsets: [12_345] } });
    // One call: the engine itself starts over once after an integrity failure.
    const result = await transferFile(c.job, FAST);
    expect(c.server.bodyBytesServed(), 'the file was fetched a second time').toBeGreaterThan(c.data.length);
    expect(result.digest.hex).toBe(c.sha256);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
  });

  it('a second source with good bytes completes the file', async () => {
    const bad = await fixture();
    const good = await fixture();
    const c = await engineCase(2 * 1024 * 1024, bad);
    good.setFile('/f.bin', servedBuffer(c.data));
    // A flipped byte every 64 KiB: whatever segment the bad mirror serves is corrupt.
    bad.addFault({ fault: { corruptOffsets: Array.from({ length: 32 }, (_, i) => i * 65_536 + 1000) } });
    const job = { ...c.job, urls: [c.url, `${good.origin}/f.bin`] };
    // One call: after the integrity failure the engine tries each mirror alone and the good one completes it.
    const result = await transferFile(job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
  });
});

describe('resume journal (cases 16, 17)', () => {
  async function interrupted() {
    const c = await setup(3 * 1024 * 1024);
    await interrupt(c, 1_500_000);
    return c;
  }

  it('an interrupted download resumes and reuses finished ranges', async () => {
    const c = await interrupted();
    c.server.resetLog();
    const result = await transferFile(c.job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expect(result.bytesResumed).toBeGreaterThan(0);
    expect(c.server.bodyBytesServed()).toBeLessThan(c.data.length);
  });

  const tamper: Array<[string, (journal: Buffer) => Buffer]> = [
    ['torn (cut in half)', (j) => j.subarray(0, Math.floor(j.length / 2))],
    ['garbage', () => randomBytes(64)],
    ['bit-flipped', (j) => Buffer.from(j.map((b, i) => (i === Math.floor(j.length / 2) ? b ^ 0x01 : b)))],
    ['empty', () => Buffer.alloc(0)],
  ];
  for (const [what, edit] of tamper) {
    it(`a ${what} journal is not trusted: the result is still the right file`, async () => {
      const c = await interrupted();
      const journalPath = `${c.job.tempPath}.journal`;
      await writeFile(journalPath, edit(await readFile(journalPath)));
      const result = await transferFile(c.job, FAST).catch(async (error: unknown) => {
        expect(isModelfetchError(error)).toBe(true);
        return transferFile(c.job, FAST);
      });
      expect(result.digest.hex).toBe(c.sha256);
      expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
    });
  }

  it('a symlink planted at the temp path of a resumable download is not followed (case 3)', async () => {
    const c = await interrupted();
    // Same size as the file, beside a valid journal: only O_NOFOLLOW keeps the resume out of it.
    const victim = join(c.dir, 'victim');
    const original = randomBytes(c.data.length);
    await writeFile(victim, original);
    await rm(c.job.tempPath);
    await symlink(victim, c.job.tempPath);
    const result = await transferFile(c.job, FAST);
    expect(result.digest.hex).toBe(c.sha256);
    expect((await readFile(victim)).equals(original), 'target untouched').toBe(true);
    expect((await lstat(c.job.tempPath)).isFile()).toBe(true);
  });

  it('a journal that claims ranges over zeroed data never yields a wrong file', async () => {
    const c = await interrupted();
    // The journal is intact but the data it vouches for was overwritten (disk corruption, tampering).
    await writeFile(c.job.tempPath, Buffer.alloc(await sizeOf(c.job.tempPath)));
    const result = await transferFile(c.job, FAST).catch(async (error: unknown) => {
      expect(isModelfetchError(error, 'ERR_INTEGRITY')).toBe(true);
      return transferFile(c.job, FAST);
    });
    expect(result.digest.hex).toBe(c.sha256);
    expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
  });
});

beforeAll(() => {
  // Keep the machine's own proxy settings out of loopback tests.
  delete process.env.HTTP_PROXY;
  delete process.env.http_proxy;
});
