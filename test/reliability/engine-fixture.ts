import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock, TransferJob, TransferOptions } from '../../src/transfer/types.js';
import { servedBuffer, startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { testTempDir } from '../support/temp.js';

/** One served file and a job to fetch it, for the engine's fault cases. */
export interface EngineCase {
  server: FixtureServer;
  data: Buffer;
  sha256: string;
  url: string;
  dir: string;
  job: TransferJob;
}

/**
 * A clock whose sleeps are cut to a few milliseconds but recorded, so retry waits (backoff,
 * Retry-After) are asserted as asked-for values instead of being waited out on a busy machine.
 */
export const sleepsAsked: number[] = [];
export const fastClock: Clock = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    sleepsAsked.push(ms);
    await sleep(Math.min(ms, 10), undefined, signal ? { signal } : {});
  },
};

/** Small segments and short timeouts so that every fault case runs in a second or two. */
export const FAST: TransferOptions = {
  clock: fastClock,
  connections: 4,
  segmentThreshold: 256 * 1024,
  minSegmentSize: 64 * 1024,
  stallTimeoutMs: 1500,
  maxAttempts: 6,
};

export function sha256Of(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function engineCase(size = 2 * 1024 * 1024, server?: FixtureServer): Promise<EngineCase> {
  const srv = server ?? (await startFixtureServer());
  const data = randomBytes(size);
  const sha256 = sha256Of(data);
  srv.setFile('/f.bin', servedBuffer(data));
  const dir = await testTempDir('mf-rel-');
  const url = `${srv.origin}/f.bin`;
  const job: TransferJob = { urls: [url], size, digest: { algorithm: 'sha256', hex: sha256 }, tempPath: join(dir, 'f.part'), identity: `test:${sha256}` };
  return { server: srv, data, sha256, url, dir, job };
}

/** Size of a file, or -1 when it is absent. */
export async function sizeOf(path: string): Promise<number> {
  return stat(path).then((s) => s.size, () => -1);
}

export async function readIfExists(path: string): Promise<Buffer | undefined> {
  return readFile(path).catch(() => undefined);
}

export async function filesIn(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [])).sort();
}
