import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { transferFile } from '../../src/transfer/index.js';
import { configureNetwork, networkSettingsFrom } from '../../src/transfer/proxy.js';
import type { Clock, TransferJob, TransferOptions } from '../../src/transfer/types.js';
import { servedBuffer, startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { testTempDir } from '../support/temp.js';
import { createTestCa, type TestCa } from '../support/test-ca.js';
import { hasTool } from '../support/tools.js';

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

/**
 * The two ways a download leaves the process: plain http through the hand-written client
 * (src/transfer/fast-http.ts), and https through undici's process-wide dispatcher (what every Hub
 * download takes), trusting a test CA the way `--ca-file` makes it. Every fault case runs over both.
 */
export interface EngineTransport {
  name: string;
  scheme: 'http' | 'https';
  /** https needs openssl to make its test CA. */
  available: boolean;
}

export const TRANSPORTS: EngineTransport[] = [
  { name: 'over http (fast-http)', scheme: 'http', available: true },
  { name: 'over https with a test CA (undici)', scheme: 'https', available: hasTool('openssl') },
];

export interface TransportFixture {
  /** A fixture server speaking this transport, closed after the test. */
  fixture(host?: string): Promise<FixtureServer>;
  /** A fixture server with one served file and a job for it. */
  setup(size?: number): Promise<EngineCase>;
  /** Something else to close after the test (a proxy in front of a fixture). */
  track(closable: { close(): Promise<void> }): void;
  /** The origin a client uses for a plain TCP relay (a fault proxy) in front of a fixture: same scheme. */
  originFor(port: number): string;
}

/**
 * Call inside a describe block per transport. The network settings are the process-wide ones the
 * CLI sets with `configureNetwork`: no proxy, and over https the test CA as the CA bundle, so
 * requests take exactly the path they take in the field.
 */
export function transportFixture(transport: EngineTransport): TransportFixture {
  let ca: TestCa | undefined;
  const open: Array<{ close(): Promise<void> }> = [];
  beforeAll(async () => {
    if (transport.scheme === 'https') ca = await createTestCa();
    configureNetwork(networkSettingsFrom(ca ? { SSL_CERT_FILE: ca.caFile } : {}));
  });
  afterAll(async () => {
    configureNetwork(networkSettingsFrom({}));
    await ca?.remove();
  });
  afterEach(async () => {
    for (const s of open.splice(0).reverse()) await s.close();
  });
  const fixture = async (host?: string): Promise<FixtureServer> => {
    const server = await startFixtureServer({ ...(host && { host }), ...(ca && { tls: { key: ca.key, cert: ca.cert } }) });
    open.push(server);
    return server;
  };
  return {
    fixture,
    setup: async (size) => engineCase(size, await fixture()),
    track: (closable) => void open.push(closable),
    originFor: (port) => `${transport.scheme}://127.0.0.1:${port}`,
  };
}

/** Awaits a transfer that must fail with a ModelfetchError (one of `codes` when given); returns its code. */
export async function expectFailure(promise: Promise<unknown>, codes?: string[]): Promise<string> {
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
export async function interrupt(c: EngineCase, after = 1_000_000): Promise<void> {
  c.server.addFault({ fault: { throttleBytesPerSec: 1_000_000 } });
  const controller = new AbortController();
  await expectFailure(transferFile(c.job, { ...FAST, signal: controller.signal, onProgress: (e) => e.bytesDone > after && controller.abort() }));
  c.server.clearFaults();
  expect(await sizeOf(`${c.job.tempPath}.journal`)).toBeGreaterThan(0);
}

/** A range request other than the 1-byte probe. */
export const notProbe = (req: { headers: Record<string, unknown> }): boolean => req.headers.range !== undefined && req.headers.range !== 'bytes=0-0';

/** The ranges asked for, as [start, end] pairs (probe excluded). */
export function rangesAsked(server: FixtureServer): Array<[number, number]> {
  return server.requests
    .map((r) => /^bytes=(\d+)-(\d+)$/.exec(String(r.headers.range ?? '')))
    .filter((m): m is RegExpExecArray => m !== null && !(m[1] === '0' && m[2] === '0'))
    .map((m) => [Number(m[1]), Number(m[2])]);
}
