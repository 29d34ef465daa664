import { join } from 'node:path';
import type { RepoPaths } from '../cache/layout.js';
import type { RepoFile } from '../core/types.js';
import type { Remote } from '../source/remote.js';
import { BatchProgress } from '../transfer/progress.js';
import type { SwarmProgress } from '../transfer/swarm/engine.js';
import type { SwarmSession } from '../transfer/swarm/session.js';
import type { PullProgressEvent } from './options.js';

/** How many blobs join their swarms at once (each is one torrent in the same engine). */
const SWARM_CONCURRENCY = 8;

/**
 * The progress line of a swarm batch, the same events an HTTP batch gives: bytes done are the
 * bytes in pieces that passed their SHA-1 check, speed is bytes received (from peers and web
 * seeds), connections are peers. A file that falls back to HTTP leaves the batch (its HTTP round
 * shows it).
 */
function swarmProgress(files: RepoFile[], at: { repoId: string; repo: RepoPaths }, onProgress: ((event: PullProgressEvent) => void) | undefined) {
  const jobs = files.map((file) => ({ tempPath: join(at.repo.swarmPartialDir(file.digest), file.digest.hex), size: file.size }));
  const batch = new BatchProgress(jobs, onProgress && ((event) => onProgress({ ...event, repoId: at.repoId, path: files[event.job]?.path ?? '' })));
  const seen = files.map(() => ({ received: 0, peers: 0 }));
  const peersNow = (job: number, peers: number): void => {
    const last = seen[job]!;
    for (; last.peers < peers; last.peers++) batch.connection(1);
    for (; last.peers > peers; last.peers--) batch.connection(-1);
  };
  return {
    running(job: number, progress: SwarmProgress): void {
      const last = seen[job]!;
      const received = progress.fromPeers + progress.fromWebSeeds;
      batch.addReceived(Math.max(0, received - last.received));
      last.received = Math.max(last.received, received);
      peersNow(job, progress.peers);
      batch.update(job, { bytesDone: progress.verified, phase: 'download' });
    },
    ended(job: number, landed: boolean): void {
      peersNow(job, 0);
      const size = files[job]!.size;
      batch.update(job, landed ? { bytesDone: size, totalBytes: size, phase: 'done' } : { bytesDone: 0, totalBytes: 0, phase: 'done' }, true);
    },
    close: () => batch.close(),
  };
}

/**
 * The swarm as a blob source beside HTTP and Xet: each locked blob the remote has a torrent for is
 * tried through the session first (the mirror's torrent, peers, the mirror as web seed; SHA-256 is
 * the final gate and the blob is committed into the cache). Returns the files still to fetch over
 * HTTP (no torrent, a failed or stalled swarm: the session logged why) and the bytes by source.
 */
export async function fetchThroughSwarm(
  swarm: SwarmSession,
  remote: Remote,
  at: { repoId: string; commit: string; repo: RepoPaths },
  files: RepoFile[],
  options: { signal?: AbortSignal | undefined; onProgress?: ((event: PullProgressEvent) => void) | undefined },
): Promise<{ rest: RepoFile[]; fromPeers: number; fromWebSeeds: number }> {
  const totals = { rest: [] as RepoFile[], fromPeers: 0, fromWebSeeds: 0 };
  const { swarmTorrent } = remote;
  const { signal } = options;
  // Git-hashed files are small text files: not in any swarm.
  const shared = swarmTorrent ? files.filter((file) => file.digest.algorithm === 'sha256' && file.size > 0) : [];
  totals.rest.push(...files.filter((file) => !shared.includes(file)));
  if (!swarmTorrent || !shared.length) return totals;
  const progress = swarmProgress(shared, at, options.onProgress);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < shared.length) {
      const job = next++;
      const file = shared[job]!;
      const { url, headers } = swarmTorrent(at.commit, file);
      const bytes = await swarm.fetchBlob({
        torrentUrl: url,
        headers,
        repo: at.repo,
        file,
        label: `${at.repoId}/${file.path}`,
        ...(signal && { signal }),
        onProgress: (now) => progress.running(job, now),
      });
      progress.ended(job, bytes !== undefined);
      if (!bytes) {
        totals.rest.push(file);
        continue;
      }
      totals.fromPeers += bytes.fromPeers;
      totals.fromWebSeeds += bytes.fromWebSeeds;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(SWARM_CONCURRENCY, shared.length) }, worker));
  } finally {
    progress.close();
  }
  return totals;
}
