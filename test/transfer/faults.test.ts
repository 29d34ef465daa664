import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { transferFile } from '../../src/transfer/index.js';
import { serveFile, servedBuffer, servedPath, type RequestRecord } from '../support/fixture-server.js';
import { exists, fakeClock, MiB, type Setup, sha256Of, testScope } from './helpers.js';

/** Ranges requested, as [start, end] pairs (probe excluded). */
function ranges(records: RequestRecord[]): Array<[number, number]> {
  return records
    .map((r) => /^bytes=(\d+)-(\d+)$/.exec(String(r.headers.range ?? '')))
    .filter((m): m is RegExpExecArray => m !== null && !(m[1] === '0' && m[2] === '0'))
    .map((m) => [Number(m[1]), Number(m[2])]);
}

/** A clock whose sleeps return at once and are recorded. */
const isRange = (req: { headers: { range?: string } }): boolean => req.headers.range !== undefined && req.headers.range !== 'bytes=0-0';

let s: Setup | undefined;
const scope = testScope();

describe('fault handling', () => {
  it('latency: still uses many connections and completes', async () => {
    s = await scope.setup(8 * MiB);
    s.server.addFault({ fault: { latencyMs: 150 } });
    const result = await transferFile(s.job(), { segmentThreshold: MiB });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(result.peakConnections).toBeGreaterThan(1);
  });

  it('stall: a silent connection is aborted after stallTimeoutMs and the segment resumes where it stopped', async () => {
    s = await scope.setup(4 * MiB);
    s.server.addFault({ match: isRange, times: 1, fault: { stallAfterBytes: 300_000 } });
    const result = await transferFile(s.job(), { segmentThreshold: 64 * MiB, stallTimeoutMs: 300, clock: fakeClock() });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    const asked = ranges(s.server.requests);
    expect(asked.length).toBe(2);
    expect(asked[1]?.[0]).toBeGreaterThan(0); // resumed mid-segment, not from its start
    expect(result.bytesFetched).toBe(s.info.size);
  });

  it('stall before any header (probe) and in a plain stream: aborted and retried', async () => {
    s = await scope.setup(2 * MiB);
    s.server.addFault({ times: 1, fault: { stallAfterBytes: 0 } });
    const first = await transferFile(s.job(), { segmentThreshold: MiB, stallTimeoutMs: 300, clock: fakeClock() });
    expect(await sha256Of(first.tempPath)).toBe(s.info.sha256);
    s.server.clearFaults();
    s.server.addFault({ fault: { ignoreRange: true } });
    s.server.addFault({ times: 1, fault: { stallAfterBytes: 100_000 } });
    const second = await transferFile(s.job({ tempPath: join(s.dir, 'plain.part') }), { stallTimeoutMs: 300, clock: fakeClock() });
    expect(await sha256Of(second.tempPath)).toBe(s.info.sha256);
  });

  it('reset mid-body: retried from the byte where it broke', async () => {
    s = await scope.setup(4 * MiB);
    s.server.addFault({ match: isRange, times: 2, fault: { resetAfterBytes: 700_000 } });
    const result = await transferFile(s.job(), { segmentThreshold: 64 * MiB, clock: fakeClock() });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(ranges(s.server.requests).length).toBe(3);
    expect(result.bytesFetched).toBe(s.info.size);
  });

  it('truncate: a short clean close is retried, never accepted', async () => {
    s = await scope.setup(2 * MiB);
    s.server.addFault({ match: isRange, times: 1, fault: { truncateAfterBytes: 500_000, noContentLength: true } });
    const result = await transferFile(s.job(), { clock: fakeClock() });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(ranges(s.server.requests).length).toBe(2);
  });

  it('truncate without Content-Length or Range: the size check names what happened', async () => {
    s = await scope.setup(2 * MiB);
    s.server.addFault({ fault: { ignoreRange: true, noContentLength: true, truncateAfterBytes: 500_000 } });
    const error = await transferFile(s.job(), { clock: fakeClock(), maxAttempts: 2 }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_NETWORK')).toBe(true);
    expect(String((error as Error).message)).toMatch(/at byte 500000/);
    expect(await exists(`${s.job().tempPath}`)).toBe(false); // no journal can vouch for it: removed, never renamed
  });

  it('an HTML error page instead of the file never passes', async () => {
    s = await scope.setup(MiB);
    s.server.addFault({ fault: { replaceBody: '<html>Rate limited</html>' } });
    const sized = await transferFile(s.job()).catch((e: unknown) => e);
    expect(isModelfetchError(sized, 'ERR_SIZE')).toBe(true);
    const job = s.job();
    delete job.size;
    const unsized = await transferFile(job).catch((e: unknown) => e);
    expect(isModelfetchError(unsized, 'ERR_INTEGRITY')).toBe(true);
  });

  it('ignore Range: one plain stream (the probe answer itself), exact bytes', async () => {
    s = await scope.setup(3 * MiB + 11);
    s.server.addFault({ fault: { ignoreRange: true } });
    const result = await transferFile(s.job(), { segmentThreshold: MiB });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    // HEAD says `Accept-Ranges: none`; the one GET is the stream, never a Range request.
    expect(s.server.requests.map((r) => r.method)).toEqual(['HEAD', 'GET']);
    expect(s.server.requests[1]?.headers.range).toBeUndefined();
    expect((await stat(result.tempPath)).size).toBe(s.info.size);
  });

  it('HEAD promises ranges but GET ignores them: restarts once with the GET probe, exact bytes', async () => {
    s = await scope.setup(3 * MiB + 11);
    s.server.addFault({ fault: { ignoreRange: true, lieAboutRanges: true } });
    const result = await transferFile(s.job(), { segmentThreshold: MiB });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    // The restart asks with GET and takes its 200 as the stream; it never trusts the HEAD again.
    const probes = s.server.requests.filter((r) => r.headers.range === 'bytes=0-0');
    expect(probes.length).toBe(1);
    expect(s.server.requests.filter((r) => r.method === 'HEAD').length).toBe(1);
  });

  it('HEAD refused (a URL signed for GET only): the GET probe decides, and ranges are used', async () => {
    s = await scope.setup(3 * MiB);
    s.server.addFault({ match: (req) => req.method === 'HEAD', fault: { status: 403 } });
    const result = await transferFile(s.job(), { segmentThreshold: MiB, clock: fakeClock() });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(s.server.requests.filter((r) => r.headers.range === 'bytes=0-0').length).toBe(1);
    expect(ranges(s.server.requests).length).toBeGreaterThan(1);
  });

  it('HEAD with a 404: fails at once with ERR_NOT_FOUND, no GET', async () => {
    s = await scope.setup(3 * MiB);
    s.server.addFault({ fault: { status: 404 } });
    const error = await transferFile(s.job(), { segmentThreshold: MiB, clock: fakeClock() }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_NOT_FOUND')).toBe(true);
    expect(s.server.requests.map((r) => r.method)).toEqual(['HEAD']);
  });

  it('ETag change mid-download: restarts, and the result is the new file exactly, never a mix', async () => {
    s = await scope.setup(6 * MiB);
    const next = randomBytes(6 * MiB);
    const newFile = servedBuffer(next);
    const oldFile = servedPath(join(s.dir, 'source.bin'), s.info);
    let served = 0;
    s.server.route('/files/', async (req, res) => {
      served += 1;
      await serveFile(req, res, served <= 4 ? oldFile : newFile, { throttleBytesPerSec: 4 * MiB });
    });
    const job = s.job();
    delete job.digest;
    const result = await transferFile(job, { segmentThreshold: MiB, minSegmentSize: 256 * 1024, connections: 3 });
    expect(result.digest.hex).toBe(newFile.sha256);
    expect(await sha256Of(result.tempPath)).toBe(newFile.sha256);
    expect(result.etag).toBe(newFile.etag);
  });

  it('429 with Retry-After: waits exactly what the server asked (fake clock)', async () => {
    s = await scope.setup(MiB);
    s.server.addFault({ times: 1, fault: { status: 429, statusHeaders: { 'Retry-After': '7' } } });
    s.server.addFault({ match: isRange, times: 1, fault: { status: 429, statusHeaders: { 'Retry-After': new Date(Date.now() + 60_000).toUTCString() } } });
    const clock = fakeClock();
    const result = await transferFile(s.job(), { clock, segmentThreshold: 1000 });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(clock.sleeps[0]).toBe(7000);
    expect(clock.sleeps[1]).toBeGreaterThan(55_000);
    expect(clock.sleeps[1]).toBeLessThanOrEqual(60_000);
  });

  it('503 forever: gives up after maxAttempts with ERR_HTTP', async () => {
    s = await scope.setup(MiB);
    s.server.addFault({ match: isRange, fault: { status: 503 } });
    const clock = fakeClock();
    const error = await transferFile(s.job(), { clock, maxAttempts: 3 }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_HTTP')).toBe(true);
    expect(ranges(s.server.requests).length).toBe(3);
    expect(clock.sleeps.length).toBe(2);
  });

  it('wrong Content-Range: rejected and retried; a server that always lies fails with ERR_BAD_RANGE', async () => {
    s = await scope.setup(2 * MiB);
    s.server.addFault({ match: isRange, times: 1, fault: { wrongRangeShift: 100 } });
    const result = await transferFile(s.job(), { clock: fakeClock() });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    s.server.addFault({ match: isRange, fault: { wrongRangeShift: 1 } });
    const error = await transferFile(s.job({ tempPath: join(s.dir, 'b.part') }), { clock: fakeClock(), maxAttempts: 2 }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_BAD_RANGE')).toBe(true);
  });

  it('endless body: capped at the expected size, the file never grows', async () => {
    s = await scope.setup(MiB);
    s.server.addFault({ match: isRange, fault: { extraBytes: 50 * MiB } });
    const result = await transferFile(s.job());
    expect((await stat(result.tempPath)).size).toBe(s.info.size);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(s.server.bodyBytesServed()).toBeLessThan(s.info.size + 20 * MiB);
  });

  it('gzip: refused, not retried', async () => {
    s = await scope.setup(MiB);
    s.server.addFault({ match: isRange, fault: { forceGzip: true } });
    const error = await transferFile(s.job(), { clock: fakeClock() }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_BAD_RESPONSE')).toBe(true);
    expect(String((error as Error).message)).toContain('gzip');
    expect(ranges(s.server.requests).length).toBe(1);
  });

  it('a second mirror finishes the file when the first one fails for good', async () => {
    s = await scope.setup(4 * MiB);
    const broken = await scope.server();
    broken.setFile('/files/model.bin', servedPath(join(s.dir, 'source.bin'), s.info));
    broken.addFault({ match: isRange, fault: { status: 404 } });
    const result = await transferFile(s.job({ urls: [`${broken.origin}/files/model.bin`, s.url] }), { segmentThreshold: MiB, clock: fakeClock() });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
  });

  it('with a corrupting mirror and a good one, the file completes from the good one alone', async () => {
    s = await scope.setup(4 * MiB);
    const bad = await scope.server();
    bad.setFile('/files/model.bin', servedPath(join(s.dir, 'source.bin'), s.info));
    bad.addFault({ fault: { corruptOffsets: Array.from({ length: 16 }, (_, i) => i * 256 * 1024 + 3) } });
    const result = await transferFile(s.job({ urls: [`${bad.origin}/files/model.bin`, s.url] }), { segmentThreshold: MiB, minSegmentSize: 256 * 1024 });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
  });

  it('dynamic splitting: a slow mirror’s remaining segment is split and finished by a free connection', async () => {
    s = await scope.setup(4 * MiB);
    const slow = await scope.server();
    slow.setFile('/files/model.bin', servedPath(join(s.dir, 'source.bin'), s.info));
    slow.addFault({ fault: { throttleBytesPerSec: 256 * 1024 } });
    const result = await transferFile(s.job({ urls: [`${slow.origin}/files/model.bin`, s.url] }), { segmentThreshold: MiB, minSegmentSize: 64 * 1024, connections: 2 });
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    const slowRanges = ranges(slow.requests);
    const fastRanges = ranges(s.server.requests);
    expect(slowRanges.length).toBeGreaterThan(0);
    // some fast request starts strictly inside a range first given to the slow mirror
    const splitTaken = fastRanges.some(([start]) => slowRanges.some(([a, b]) => start > a && start <= b));
    expect(splitTaken).toBe(true);
    // and the slow mirror delivered only a small part of the file
    expect(slow.bodyBytesServed()).toBeLessThan(s.info.size / 2);
  });

  it('never writes through a symlink planted at the temp path', async () => {
    s = await scope.setup(MiB);
    const victim = join(s.dir, 'victim.txt');
    await writeFile(victim, 'precious');
    const { symlink } = await import('node:fs/promises');
    await symlink(victim, s.job().tempPath);
    await symlink(victim, `${s.job().tempPath}.journal`);
    const result = await transferFile(s.job());
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
  });

  it('a shared budget limits connections across concurrent calls', async () => {
    s = await scope.setup(2 * MiB);
    const file = servedPath(join(s.dir, 'source.bin'), s.info);
    let live = 0;
    let peak = 0;
    s.server.route('/files/', async (req, res) => {
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const length = range ? Number(range[2]) - Number(range[1]) + 1 : s?.info.size ?? 0;
      let sent = 0;
      let open = true;
      const end = (): void => {
        if (open) live -= 1;
        open = false;
      };
      live += 1;
      peak = Math.max(peak, live);
      res.on('close', end);
      // A response stops counting once its last byte is out, however late the server notices.
      await serveFile(req, res, file, { latencyMs: 30 }, (n) => {
        sent += n;
        if (sent >= length) end();
      });
    });
    const { createConnectionBudget } = await import('../../src/transfer/index.js');
    const budget = createConnectionBudget(3);
    const makeJob = s.job;
    const dir = s.dir;
    const results = await Promise.all(
      [0, 1, 2].map((i) => transferFile(makeJob({ tempPath: join(dir, `shared-${i}.part`) }), { budget, segmentThreshold: MiB, minSegmentSize: 256 * 1024 })),
    );
    for (const r of results) expect(r.digest.hex).toBe(s.info.sha256);
    expect(peak).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThanOrEqual(2);
  });

  it('rejects a 206 whose Content-Length disagrees with the range, then retries', async () => {
    s = await scope.setup(2 * MiB);
    const file = servedPath(join(s.dir, 'source.bin'), s.info);
    let lied = false;
    s.server.route('/files/', async (req, res) => {
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!lied && range && req.headers.range !== 'bytes=0-0') {
        lied = true;
        res.writeHead(206, { 'Content-Range': `bytes ${range[1]}-${range[2]}/${file.size}`, 'Content-Length': '10', ETag: `"${file.etag}"` });
        res.end('0123456789');
        return;
      }
      await serveFile(req, res, file);
    });
    const result = await transferFile(s.job(), { clock: fakeClock() });
    expect(lied).toBe(true);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(ranges(s.server.requests).length).toBe(2);
  });
});

describe('expired signed URLs', () => {
  /** A hub that redirects to a CDN whose signature expires after `validFor` range requests. */
  async function signedCdn(validFor: number): Promise<{ hubUrl: string; signed: () => string; forbidden: () => number }> {
    const current = await scope.setup(4 * MiB);
    s = current;
    const file = servedPath(join(current.dir, 'source.bin'), current.info);
    let sig = 1;
    let served = 0;
    let forbidden = 0;
    const signed = (): string => `${current.server.origin}/cdn/model.bin?sig=${sig}`;
    current.server.route('/resolve/', (_req, res) => {
      res.statusCode = 302;
      res.setHeader('Location', signed());
      res.end();
    });
    current.server.route('/cdn/', async (req, res, url) => {
      if (url.searchParams.get('sig') !== String(sig)) {
        forbidden += 1;
        res.statusCode = 403;
        res.end('expired');
        return;
      }
      served += 1;
      if (served === validFor) sig += 1; // this one still works, the next ones are refused
      await serveFile(req, res, file);
    });
    return { hubUrl: `${current.server.origin}/resolve/model.bin`, signed, forbidden: () => forbidden };
  }

  it('re-follows the original redirects once when the CDN starts answering 403', async () => {
    const cdn = await signedCdn(3);
    const result = await transferFile(s!.job({ urls: [cdn.hubUrl] }), { segmentThreshold: MiB, minSegmentSize: 256 * 1024, connections: 1, clock: fakeClock() });
    expect(await sha256Of(result.tempPath)).toBe(s!.info.sha256);
    expect(cdn.forbidden()).toBeGreaterThanOrEqual(1);
  });

  it('asks job.reresolve for fresh URLs when it is given', async () => {
    const cdn = await signedCdn(2);
    let asked = 0;
    const result = await transferFile(
      s!.job({
        urls: [cdn.signed()],
        reresolve: async () => {
          asked += 1;
          return [cdn.signed()];
        },
      }),
      { segmentThreshold: MiB, minSegmentSize: 256 * 1024, connections: 1, clock: fakeClock() },
    );
    expect(asked).toBe(1);
    expect(await sha256Of(result.tempPath)).toBe(s!.info.sha256);
  });

  it('a 403 from the start is not an expired URL: ERR_GATED, no re-resolve', async () => {
    s = await scope.setup(MiB);
    s.server.addFault({ fault: { status: 403 } });
    let asked = 0;
    const error = await transferFile(s.job({ reresolve: async () => (asked += 1, [s?.url ?? '']) })).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_GATED')).toBe(true);
    expect(asked).toBe(0);
  });
});
