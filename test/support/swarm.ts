import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { onTestFinished } from 'vitest';
import type { FileDigest } from '../../src/core/types.js';
import type { SwarmEngine } from '../../src/transfer/swarm/engine.js';
import { hashFileForTorrent, type TorrentInfo } from '../../src/transfer/swarm/torrent.js';
import { createWebTorrentEngine } from '../../src/transfer/swarm/webtorrent-engine.js';
import { startFixtureServer, type FixtureServer } from './fixture-server.js';
import { testTempDir } from './temp.js';

/** A webtorrent engine on a free port, closed when the test ends. */
export async function swarmEngine(): Promise<SwarmEngine> {
  const started = await createWebTorrentEngine();
  onTestFinished(() => started.close());
  return started;
}

export interface SwarmBlob {
  dir: string;
  /** The file's bytes at `dir/source/{sha256}` (a seed's file). */
  source: string;
  sha256: string;
  digest: FileDigest;
  file: { digest: FileDigest; size: number };
  info: TorrentInfo;
  /** Serves the blob at `webSeedUrl`, with Range; closed when the test ends. */
  webSeed: FixtureServer;
  webSeedUrl: string;
}

/** `content` as a blob in a fresh temp folder, its torrent info, and a web seed serving it. */
export async function swarmBlob(content: Buffer, prefix = 'mf-swarm-'): Promise<SwarmBlob> {
  const dir = await testTempDir(prefix);
  const sha256 = createHash('sha256').update(content).digest('hex');
  const source = join(dir, 'source', sha256);
  await mkdir(join(dir, 'source'));
  await writeFile(source, content);
  const { info } = await hashFileForTorrent(source, sha256);
  const webSeed = await startFixtureServer();
  onTestFinished(() => webSeed.close());
  webSeed.setFile(`/blobs/${sha256}`, { source: { data: content }, size: content.length, etag: `"${sha256}"`, sha256 });
  const digest: FileDigest = { algorithm: 'sha256', hex: sha256 };
  return { dir, source, sha256, digest, file: { digest, size: content.length }, info, webSeed, webSeedUrl: `${webSeed.origin}/blobs/${sha256}` };
}
