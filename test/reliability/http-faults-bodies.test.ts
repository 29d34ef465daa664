import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { transferFile } from '../../src/transfer/index.js';
import { servedBuffer, type FixtureServer } from '../support/fixture-server.js';
import { fakeClock } from '../transfer/helpers.js';
import { engineCase, expectFailure, FAST, interrupt, notProbe, rangesAsked, sha256Of, sizeOf, transportFixture, TRANSPORTS } from './engine-fixture.js';

/** Bodies that are not the file, dropped responses and corrupt bytes (cases 11, 12, 13, 20), over http (fast-http) and https (undici). */

for (const transport of TRANSPORTS) {
  describe.skipIf(!transport.available)(transport.name, () => {
    const h = transportFixture(transport);

    describe('a long-running process survives discarded responses', () => {
      it('no uncaught exception when bodies are dropped (416 on resume, forced gzip, Range ignored)', async () => {
        const uncaught: unknown[] = [];
        const collect = (error: unknown): void => void uncaught.push(error);
        process.on('uncaughtException', collect);
        try {
          const c = await h.setup();
          await interrupt(c);
          c.server.addFault({ times: 1, match: notProbe, fault: { status: 416, statusHeaders: { 'content-range': `bytes */${c.data.length}` } } });
          expect((await transferFile(c.job, FAST)).digest.hex).toBe(c.sha256);
          const g = await h.setup(500_000);
          g.server.addFault({ fault: { forceGzip: true } });
          await expectFailure(transferFile(g.job, { ...FAST, maxAttempts: 2 }));
          const r = await h.setup();
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

    describe('bodies that are not the file (cases 11, 12, 13)', () => {
      const broken: Array<[string, Parameters<FixtureServer['addFault']>[0]['fault']]> = [
        ['a short clean close', { truncateAfterBytes: 1000 }],
        ['a short chunked body (no Content-Length)', { noContentLength: true, truncateAfterBytes: 5000 }],
        ['an empty 200', { replaceBody: '' }],
        ['an HTML error page in place of the file', { replaceBody: '<html><body>Rate limited, try later</body></html>' }],
      ];
      for (const [what, fault] of broken.slice(2)) {
        it(`${what} for a file of known size and digest is a failure, never a complete file`, async () => {
          const c = await h.setup(500_000);
          c.server.addFault({ fault });
          await expectFailure(transferFile(c.job, { ...FAST, maxAttempts: 2 }));
          const bytes = await readFile(c.job.tempPath).catch(() => Buffer.alloc(0));
          expect(sha256Of(bytes)).not.toBe(c.sha256);
          expect(bytes.includes(Buffer.from('<html>'))).toBe(false);
        });
      }

      for (const [what, fault] of broken.slice(0, 2)) {
        it(`${what} every time: short bodies are never taken as done; the file completes from the rest or fails`, async () => {
          const c = await h.setup(500_000);
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
          const c = await h.setup(500_000);
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
        const c = await h.setup(500_000);
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
        const c = await h.setup(500_000);
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
        const c = await h.setup(500_000);
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
        const c = await h.setup(100_000);
        const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
        c.server.route('/bomb', (_req, res) => {
          res.setHeader('content-encoding', 'gzip');
          res.setHeader('content-length', String(bomb.length));
          res.end(bomb);
        });
        await expectFailure(transferFile({ ...c.job, urls: [`${c.server.origin}/bomb`] }, { ...FAST, maxAttempts: 1 }));
        expect(await sizeOf(c.job.tempPath)).toBeLessThanOrEqual(100_000);
      });

      it('truncate: a short clean close is retried, never accepted', async () => {
        const c = await h.setup(2 * 1024 * 1024);
        c.server.addFault({ match: notProbe, times: 1, fault: { truncateAfterBytes: 500_000, noContentLength: true } });
        const result = await transferFile(c.job, { clock: fakeClock() });
        expect(result.digest.hex).toBe(c.sha256);
        expect(rangesAsked(c.server).length).toBe(2);
      });

      it('truncate without Content-Length or Range: the size check names what happened', async () => {
        const c = await h.setup(2 * 1024 * 1024);
        c.server.addFault({ fault: { ignoreRange: true, noContentLength: true, truncateAfterBytes: 500_000 } });
        const error = await transferFile(c.job, { clock: fakeClock(), maxAttempts: 2 }).catch((e: unknown) => e);
        expect(isModelfetchError(error, 'ERR_NETWORK')).toBe(true);
        expect(String((error as Error).message)).toMatch(/at byte 500000/);
        expect(await sizeOf(c.job.tempPath)).toBe(-1); // no journal can vouch for it: removed, never renamed
      });

      it('an HTML error page instead of the file: ERR_SIZE with a known size, ERR_INTEGRITY with only a digest', async () => {
        const c = await h.setup(1024 * 1024);
        c.server.addFault({ fault: { replaceBody: '<html>Rate limited</html>' } });
        await expectFailure(transferFile(c.job), ['ERR_SIZE']);
        const { size: _unknown, ...unsized } = c.job;
        await expectFailure(transferFile(unsized), ['ERR_INTEGRITY']);
      });

      it('an endless 206 body: capped at the expected size, the file never grows', async () => {
        const c = await h.setup(1024 * 1024);
        c.server.addFault({ match: notProbe, fault: { extraBytes: 50 * 1024 * 1024 } });
        const result = await transferFile(c.job);
        expect(await sizeOf(result.tempPath)).toBe(c.data.length);
        expect(result.digest.hex).toBe(c.sha256);
        expect(c.server.bodyBytesServed()).toBeLessThan(c.data.length + 20 * 1024 * 1024);
      });

      it('a gzip range answer is refused, not retried', async () => {
        const c = await h.setup(1024 * 1024);
        c.server.addFault({ match: notProbe, fault: { forceGzip: true } });
        const error = await transferFile(c.job, { clock: fakeClock() }).catch((e: unknown) => e);
        expect(isModelfetchError(error, 'ERR_BAD_RESPONSE')).toBe(true);
        expect(String((error as Error).message)).toContain('gzip');
        expect(rangesAsked(c.server).length).toBe(1);
      });
    });

    describe('corrupt bytes from a bad CDN node (case 20)', () => {
      it('always corrupt: an integrity error, and nothing is kept', async () => {
        const c = await h.setup();
        c.server.addFault({ fault: { corruptOffsets: [12_345, 1_500_000] } });
        await expectFailure(transferFile(c.job, { ...FAST, maxAttempts: 2 }), ['ERR_INTEGRITY']);
        const left = await readFile(c.job.tempPath).catch(() => undefined);
        expect(left === undefined || sha256Of(left) !== c.sha256).toBe(true);
        // Integrity failures discard the data: no journal claims the corrupt ranges.
        expect(await sizeOf(`${c.job.tempPath}.journal`)).toBe(-1);
      });

      it('corrupt once: the engine starts over by itself and completes the file', async () => {
        const c = await h.setup();
        // The first segment (from byte 0, not the 1-byte probe) carries the flipped byte.
        c.server.addFault({ times: 1, match: (req) => /^bytes=0-(?!0$)\d+$/.test(String(req.headers.range)), fault: { corruptOffsets: [12_345] } });
        // One call: the engine itself starts over once after an integrity failure.
        const result = await transferFile(c.job, FAST);
        expect(c.server.bodyBytesServed(), 'the file was fetched a second time').toBeGreaterThan(c.data.length);
        expect(result.digest.hex).toBe(c.sha256);
        expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
      });

      it('a second source with good bytes completes the file', async () => {
        const bad = await h.fixture();
        const good = await h.fixture();
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
  });
}
