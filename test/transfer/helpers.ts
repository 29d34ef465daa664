import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

/** Most requests for `urlPath` that were in flight at once, from the server log's order (a lower bound is enough). */
export function rangeRequests(server: FixtureServer): string[] {
  return server.requests.map((r) => r.headers.range).filter((r): r is string => typeof r === 'string' && r !== 'bytes=0-0');
}

export const MiB = 1024 * 1024;
