import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { transferFile } from '../../src/transfer/index.js';
import type { TransferJob, TransferOptions } from '../../src/transfer/types.js';
import { serveFile, servedBuffer, type FixtureServer } from '../support/fixture-server.js';
import { fakeClock } from '../transfer/helpers.js';
import { expectFailure, FAST, interrupt, notProbe, rangesAsked, sha256Of, sizeOf, transportFixture, TRANSPORTS } from './engine-fixture.js';

/** Servers that get ranges wrong, probes they answer wrongly, and files that change mid-download (cases 8, 9, 10, 15), over http (fast-http) and https (undici). */

for (const transport of TRANSPORTS) {
  describe.skipIf(!transport.available)(transport.name, () => {
    const h = transportFixture(transport);

    describe('servers that get ranges wrong (cases 8, 9, 15)', () => {
      it('Range ignored: one full stream, no misplaced bytes', async () => {
        const c = await h.setup();
        c.server.addFault({ fault: { ignoreRange: true } });
        const result = await transferFile(c.job, FAST);
        expect(result.digest.hex).toBe(c.sha256);
        expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
        // Segments were not each given the whole body: at most one full stream plus aborted starts.
        const full200 = c.server.requests.filter((r) => r.status === 200 && r.method === 'GET' && r.bodyBytes >= c.data.length);
        expect(full200.length).toBe(1);
      });

      it('Range ignored on resume: the download starts over', async () => {
        const c = await h.setup();
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
        const c = await h.setup();
        await interrupt(c);
        c.server.addFault({ fault: { ignoreRange: true } });
        const result = await transferFile(withoutDigest(c.job), FAST);
        expect(result.bytesResumed).toBe(0);
        expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
        expect(result.digest.hex).toBe(c.sha256);
      });

      it('Range ignored only after the probe, no expected digest: a failure or the right bytes, never misplaced ones', async () => {
        const c = await h.setup();
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
        const c = await h.setup();
        c.server.addFault({ times: 2, match: notProbe, fault: { wrongRangeShift: 1 } });
        const result = await transferFile(c.job, FAST);
        expect(result.digest.hex).toBe(c.sha256);
        expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
        expectAskedAgain(c.server, 2);
      });

      it('206 with the wrong total is rejected and retried', async () => {
        const c = await h.setup();
        c.server.addFault({ times: 2, match: notProbe, fault: { wrongRangeTotal: c.data.length + 10 } });
        const result = await transferFile(c.job, FAST);
        expect(result.digest.hex).toBe(c.sha256);
        expectAskedAgain(c.server, 2);
      });

      it('206 that starts before the requested byte (honest Content-Range, no Content-Length) is rejected: no misplaced bytes', async () => {
        const c = await h.setup();
        // Chunked, so only the Content-Range start tells; no digest, so nothing later would catch misplaced bytes.
        c.server.addFault({ times: 2, match: notFromZero, fault: { rangeStartShift: -1000, noContentLength: true } });
        const result = await transferFile(withoutDigest(c.job), FAST);
        expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
        expect(result.digest.hex).toBe(c.sha256);
        expectAskedAgain(c.server, 2, notFromZero);
      });

      it('a server that always lies about ranges fails the file with ERR_BAD_RANGE, never a wrong file', async () => {
        const c = await h.setup();
        c.server.addFault({ match: (req) => req.headers.range !== undefined, fault: { wrongRangeShift: 7 } });
        await expectFailure(transferFile(c.job, FAST), ['ERR_BAD_RANGE', 'ERR_RANGE_IGNORED', 'ERR_INTEGRITY']);
      });

      it('416 against a stale partial file: the download still completes with the right bytes', async () => {
        const c = await h.setup();
        await interrupt(c);
        c.server.resetLog();
        c.server.addFault({ times: 1, match: notProbe, fault: { status: 416, statusHeaders: { 'content-range': `bytes */${c.data.length}` } } });
        const result = await transferFile(c.job, FAST);
        expect(result.digest.hex).toBe(c.sha256);
        expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
        expect(c.server.requests.some((r) => r.status === 416)).toBe(true);
      });
    });


    describe('probes and servers that get Range wrong', () => {
      it('ignore Range: HEAD says Accept-Ranges none, and the one GET is the stream, never a Range request', async () => {
        const c = await h.setup(3 * 1024 * 1024 + 11);
        c.server.addFault({ fault: { ignoreRange: true } });
        const result = await transferFile(c.job, { segmentThreshold: 1024 * 1024 });
        expect(result.digest.hex).toBe(c.sha256);
        expect(c.server.requests.map((r) => r.method)).toEqual(['HEAD', 'GET']);
        expect(c.server.requests[1]?.headers.range).toBeUndefined();
        expect(await sizeOf(result.tempPath)).toBe(c.data.length);
      });

      it('HEAD promises ranges but GET ignores them: restarts once with the GET probe, exact bytes', async () => {
        const c = await h.setup(3 * 1024 * 1024 + 11);
        c.server.addFault({ fault: { ignoreRange: true, lieAboutRanges: true } });
        const result = await transferFile(c.job, { segmentThreshold: 1024 * 1024 });
        expect(result.digest.hex).toBe(c.sha256);
        expect((await readFile(c.job.tempPath)).equals(c.data), 'same bytes').toBe(true);
        // The restart asks with GET and takes its 200 as the stream; it never trusts the HEAD again.
        expect(c.server.requests.filter((r) => r.headers.range === 'bytes=0-0').length).toBe(1);
        expect(c.server.requests.filter((r) => r.method === 'HEAD').length).toBe(1);
      });

      it('HEAD refused (a URL signed for GET only): the GET probe decides, and ranges are used', async () => {
        const c = await h.setup(3 * 1024 * 1024);
        c.server.addFault({ match: (req) => req.method === 'HEAD', fault: { status: 403 } });
        const result = await transferFile(c.job, { segmentThreshold: 1024 * 1024, clock: fakeClock() });
        expect(result.digest.hex).toBe(c.sha256);
        expect(c.server.requests.filter((r) => r.headers.range === 'bytes=0-0').length).toBe(1);
        expect(rangesAsked(c.server).length).toBeGreaterThan(1);
      });

      it('rejects a 206 whose Content-Length disagrees with the range, then retries', async () => {
        const c = await h.setup(2 * 1024 * 1024);
        const file = servedBuffer(c.data);
        let lied = false;
        c.server.route('/f.bin', async (req, res) => {
          const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
          if (!lied && range && req.headers.range !== 'bytes=0-0') {
            lied = true;
            res.writeHead(206, { 'Content-Range': `bytes ${range[1]}-${range[2]}/${file.size}`, 'Content-Length': '10', ETag: `"${file.etag}"` });
            res.end('0123456789');
            return;
          }
          await serveFile(req, res, file);
        });
        const result = await transferFile(c.job, { clock: fakeClock() });
        expect(lied).toBe(true);
        expect(result.digest.hex).toBe(c.sha256);
        expect(rangesAsked(c.server).length).toBe(2);
      });
    });

    describe('the file changes upstream mid-download (case 10)', () => {
      for (const change of ['etag', 'length', 'etag (If-Range not honoured)'] as const) {
        it(`${change} change: partial data discarded, restart, never a mix`, async () => {
          const c = await h.setup();
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
        const c = await h.setup();
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

      it('ETag change mid-download: restarts, and the result is the new file exactly, never a mix', async () => {
        const c = await h.setup(6 * 1024 * 1024);
        const newFile = servedBuffer(randomBytes(6 * 1024 * 1024));
        const oldFile = servedBuffer(c.data);
        let served = 0;
        c.server.route('/f.bin', async (req, res) => {
          served += 1;
          await serveFile(req, res, served <= 4 ? oldFile : newFile, { throttleBytesPerSec: 4 * 1024 * 1024 });
        });
        const { digest: _ignored, ...job } = c.job;
        const result = await transferFile(job, { segmentThreshold: 1024 * 1024, minSegmentSize: 256 * 1024, connections: 3 });
        expect(result.digest.hex).toBe(newFile.sha256);
        expect(sha256Of(await readFile(result.tempPath))).toBe(newFile.sha256);
        expect(result.etag).toBe(newFile.etag);
      });
    });
  });
}
