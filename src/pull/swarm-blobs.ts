import type { RepoPaths } from '../cache/layout.js';
import type { RepoFile } from '../core/types.js';
import type { Remote } from '../source/remote.js';
import type { SwarmSession } from '../transfer/swarm/session.js';

/** How many blobs join their swarms at once (each is one torrent in the same engine). */
const SWARM_CONCURRENCY = 8;

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
  signal: AbortSignal | undefined,
): Promise<{ rest: RepoFile[]; fromPeers: number; fromWebSeeds: number }> {
  const totals = { rest: [] as RepoFile[], fromPeers: 0, fromWebSeeds: 0 };
  const { swarmTorrent } = remote;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++]!;
      // Git-hashed files are small text files: not in any swarm.
      if (!swarmTorrent || file.digest.algorithm !== 'sha256' || file.size === 0) {
        totals.rest.push(file);
        continue;
      }
      const { url, headers } = swarmTorrent(at.commit, file);
      const bytes = await swarm.fetchBlob({ torrentUrl: url, headers, repo: at.repo, file, label: `${at.repoId}/${file.path}`, ...(signal && { signal }) });
      if (!bytes) {
        totals.rest.push(file);
        continue;
      }
      totals.fromPeers += bytes.fromPeers;
      totals.fromWebSeeds += bytes.fromWebSeeds;
    }
  };
  await Promise.all(Array.from({ length: Math.min(SWARM_CONCURRENCY, files.length) }, worker));
  return totals;
}
