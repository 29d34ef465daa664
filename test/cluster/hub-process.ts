import { startFixtureHub, type FixtureRepoSpec } from '../support/fixture-hub.js';

/**
 * The fixture Hub in a process of its own, so it can run inside the mirror's network namespace
 * (reachable from the mirror only, on that namespace's loopback). Repos as JSON in argv[2]. Over the
 * Node IPC channel it sends `{ endpoint, files }` once ready, answers `'stats'` with the body bytes
 * the hub and its CDN sent, and stops on `'close'` (or when the channel closes).
 */

export interface HubProcessFile {
  repoId: string;
  path: string;
  size: number;
  sha256: string;
  commit: string;
  /** Where the content is on disk (generated files only). */
  dataPath?: string;
}

export type HubProcessMessage = { ready: { endpoint: string; files: HubProcessFile[] } } | { stats: { hubBytes: number; cdnBytes: number; cdnRequests: number; ranges: string[] } };

const repos = JSON.parse(process.argv[2] ?? '[]') as FixtureRepoSpec[];
const hub = await startFixtureHub({ repos });
const files: HubProcessFile[] = [];
for (const repo of hub.repos.values()) {
  const commit = repo.branches.get('main')!;
  for (const file of repo.commits.get(commit)!.files.values()) {
    files.push({ repoId: repo.repoId, path: file.path, size: file.size, sha256: file.sha256, commit, ...('path' in file.served.source && { dataPath: file.served.source.path }) });
  }
}
const send = (message: HubProcessMessage): void => {
  process.send!(message);
};
const stop = (): void => {
  void hub.close().then(() => process.exit(0));
};
process.on('message', (message) => {
  if (message === 'stats') {
    const cdnRequests = hub.cdn.requests.filter((r) => r.method === 'GET').length;
    const ranges = hub.cdn.requests.map((r) => `${r.method} ${r.url} ${r.headers.range ?? ''} ${r.status} ${r.bodyBytes}`);
    send({ stats: { hubBytes: hub.hub.bodyBytesServed(), cdnBytes: hub.cdn.bodyBytesServed(), cdnRequests, ranges } });
  } else if (message === 'close') stop();
});
process.on('disconnect', stop);
send({ ready: { endpoint: hub.endpoint, files } });
