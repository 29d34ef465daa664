import type { CacheView } from './cache-view.js';
import type { Catalog } from './catalog.js';
import type { Flights } from './flights.js';
import type { MirrorMetrics } from './metrics.js';
import type { RepoRef } from './route.js';
import type { SwarmStatus } from '../transfer/swarm/session.js';
import type { MirrorStatus } from './status-page.js';
import type { ThroughputMeter } from './throughput.js';

/** What the status page and `/api/_status` show, gathered from the cache, the catalog, the flights and the metrics. */

export interface MirrorStatusSources {
  startedAt: number;
  cache: CacheView;
  catalog: Catalog;
  flights: Flights | undefined;
  metrics: MirrorMetrics;
  throughput: ThroughputMeter;
  /** The upstream origin, or null when offline. */
  upstream: string | null;
  /** The swarm session's counters (agent side of --swarm). */
  swarm?: () => SwarmStatus;
}

/** With `full` (the admin token), everything; otherwise only repos any anonymous client may read. */
export async function collectMirrorStatus(sources: MirrorStatusSources, full = false): Promise<MirrorStatus> {
  const { cache, catalog, flights, metrics } = sources;
  const counters = await metrics.snapshot();
  const visible = async <T extends RepoRef>(items: T[]): Promise<T[]> => (full ? items : (await Promise.all(items.map(async (r) => ((await catalog.knownPublic(r)) ? [r] : [])))).flat());
  const repos = await visible(await cache.listRepos());
  const downloads = await visible((flights?.list() ?? []).map((f) => ({ repoType: f.repo.repoType, repoId: f.repo.repoId, path: f.file.path, bytesDone: f.bytesDone, totalBytes: f.total, waiting: f.waiting })));
  return {
    startedAt: sources.startedAt,
    upstream: sources.upstream,
    offline: sources.upstream === null,
    repos: repos.map((r) => ({
      repoType: r.repoType,
      repoId: r.repoId,
      size: r.size,
      commits: r.commits.length,
      refs: r.refs,
      lastUsed: r.lastUsed ?? r.lastModified,
    })),
    downloads,
    hits: counters.hits,
    misses: counters.misses,
    hitRate: counters.hits + counters.misses === 0 ? null : counters.hits / (counters.hits + counters.misses),
    bytesServed: counters.bytesServed,
    upstreamBytes: counters.upstreamBytes,
    throughput: sources.throughput.rate(),
    ...(sources.swarm && { swarm: sources.swarm() }),
  };
}
