import type { Clock } from '../../src/transfer/types.js';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { generateFile, servedPath, startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import type { TransferJob } from '../../src/transfer/types.js';

/** A fixture server with one generated file, a scratch directory, and a job for it. */
export interface Setup {
  server: FixtureServer;
  dir: string;
  url: string;
  info: { size: number; sha256: string; gitSha1: string };
  job: (extra?: Partial<TransferJob>) => TransferJob;
  close: () => Promise<void>;
}

export async function setup(size: number, urlPath = '/files/model.bin'): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'modelfetch-engine-'));
  const server = await startFixtureServer();
  const info = await generateFile(join(dir, 'source.bin'), size);
  server.setFile(urlPath, servedPath(join(dir, 'source.bin'), info));
  const url = `${server.origin}${urlPath}`;
  return {
    server,
    dir,
    url,
    info,
    job: (extra = {}) => ({ urls: [url], tempPath: join(dir, 'out.part'), identity: `test:${urlPath}`, digest: { algorithm: 'sha256', hex: info.sha256 }, size, ...extra }),
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The Range headers the server received, the probe's excluded. */
export function rangeRequests(server: FixtureServer): string[] {
  return server.requests.map((r) => r.headers.range).filter((r): r is string => typeof r === 'string' && r !== 'bytes=0-0');
}

export const MiB = 1024 * 1024;

export async function sha256Of(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Setups and extra servers made through it are closed after each test. Call once per test file. */
export function testScope(): { setup: typeof setup; server: () => Promise<FixtureServer> } {
  const setups: Setup[] = [];
  const servers: FixtureServer[] = [];
  afterEach(async () => {
    for (const x of setups.splice(0)) await x.close();
    for (const x of servers.splice(0)) await x.close();
  });
  return {
    setup: async (size, urlPath) => {
      const made = await setup(size, urlPath);
      setups.push(made);
      return made;
    },
    server: async () => {
      const made = await startFixtureServer();
      servers.push(made);
      return made;
    },
  };
}

/** A clock that records sleeps instead of waiting, so retry timing is asserted without wall-clock time. */
export function fakeClock(): Clock & { sleeps: number[] } {
  const sleeps: number[] = [];
  return { sleeps, now: () => Date.now(), sleep: async (ms) => void sleeps.push(ms) };
}
