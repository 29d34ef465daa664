import { randomBytes } from 'node:crypto';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { transferFile } from '../../src/transfer/index.js';
import type { TransferJob } from '../../src/transfer/types.js';
import { servedBuffer } from '../support/fixture-server.js';
import { MiB, type Setup, sha256Of, testScope } from './helpers.js';

let s: Setup | undefined;
const scope = testScope();

const options = { segmentThreshold: MiB, minSegmentSize: 256 * 1024, connections: 4 };

/** Runs `job` against a throttled server and aborts it once about half of it is on disk. */
async function abortHalfway(setupDone: Setup, job: TransferJob): Promise<void> {
  setupDone.server.addFault({ fault: { throttleBytesPerSec: 2 * MiB } });
  const controller = new AbortController();
  const error = await transferFile(job, {
    ...options,
    signal: controller.signal,
    onProgress: (e) => {
      if (e.bytesDone >= setupDone.info.size / 2) controller.abort();
    },
  }).catch((e: unknown) => e);
  expect(isModelfetchError(error, 'ERR_ABORTED')).toBe(true);
  setupDone.server.clearFaults();
  await stat(`${job.tempPath}.journal`); // the journal stays for the next run
}

describe('resume', () => {
  it('after an aborted run fetches only the missing bytes', async () => {
    s = await scope.setup(8 * MiB);
    await abortHalfway(s, s.job());
    s.server.resetLog(); // responses of the aborted run no longer count
    const result = await transferFile(s.job(), options);
    const servedAfter = s.server.bodyBytesServed();
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(result.bytesResumed).toBeGreaterThanOrEqual(s.info.size / 2 - 2 * MiB);
    expect(result.bytesFetched + result.bytesResumed).toBe(s.info.size);
    // Only the missing part went over the wire again (plus what a split connection had in flight).
    expect(servedAfter).toBeGreaterThanOrEqual(result.bytesFetched);
    expect(servedAfter).toBeLessThanOrEqual(s.info.size - result.bytesResumed + MiB);
    await expect(stat(`${result.tempPath}.journal`)).rejects.toThrow();
  });

  it('discards a tampered journal and starts over', async () => {
    s = await scope.setup(4 * MiB);
    await abortHalfway(s, s.job());
    const journalPath = `${s.job().tempPath}.journal`;
    const text = await readFile(journalPath, 'utf8');
    const lines = text.split('\n');
    lines[1] = (lines[1] ?? '').replace(/^R (\d+) (\d+)/, (_m, a: string, b: string) => `R ${a} ${Number(b) + 4096}`);
    await writeFile(journalPath, lines.join('\n'));
    const result = await transferFile(s.job(), options);
    expect(result.bytesResumed).toBe(0);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
  });

  it('ignores a torn last journal line but keeps the rest', async () => {
    s = await scope.setup(4 * MiB);
    await abortHalfway(s, s.job());
    const journalPath = `${s.job().tempPath}.journal`;
    await writeFile(journalPath, `${await readFile(journalPath, 'utf8')}R 12 3`);
    const result = await transferFile(s.job(), options);
    expect(result.bytesResumed).toBeGreaterThan(0);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
  });

  it('starts over when the file changed upstream between runs, never mixing old and new bytes', async () => {
    s = await scope.setup(4 * MiB);
    const job = s.job();
    delete job.digest;
    await abortHalfway(s, job);
    const next = servedBuffer(randomBytes(4 * MiB));
    s.server.setFile('/files/model.bin', next);
    const result = await transferFile(job, options);
    expect(result.bytesResumed).toBe(0);
    expect(result.digest.hex).toBe(next.sha256);
    expect(await sha256Of(result.tempPath)).toBe(next.sha256);
  });

  it('still verifies resumed bytes: damage inside a journaled range is caught and refetched', async () => {
    s = await scope.setup(4 * MiB);
    await abortHalfway(s, s.job());
    const handle = await open(s.job().tempPath, 'r+');
    await handle.write(Buffer.from('garbage!'), 0, 8, 100);
    await handle.close();
    const result = await transferFile(s.job(), options);
    expect(await sha256Of(result.tempPath)).toBe(s.info.sha256);
    expect(result.bytesResumed).toBe(0); // the second, clean round started from zero
  });
});
