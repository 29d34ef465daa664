import { lstat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { hashFile } from '../core/hash/file-digest.js';
import type { FileStore } from '../cache/file-store.js';
import { acquireLock, tryAcquireLock, type HeldLock } from '../cache/lock.js';
import { makeRealFolders } from '../cache/safe-path.js';
import { resolveCacheDir } from '../core/env.js';
import type { RepoFile } from '../core/types.js';
import type { RepoPaths } from '../cache/layout.js';
import type { Remote } from '../source/remote.js';
import type { TransferJob } from '../transfer/types.js';
import { rateLimitWaitListener } from './connect.js';
import type { PullOptions, PullResult } from './options.js';
import { fetchThroughSwarm } from './swarm-blobs.js';

/** What the store lacks, and fetching it: locks, adopting finished temps, one transfer batch per round. */

/** How many files are looked at at once while planning: enough to keep the disk busy, few enough that a huge listing does not hold a pending check per file. */
const PLAN_CONCURRENCY = 64;

/** What a store lacks of `files` ('missing': no content; 'unlinked': content there, entry not). */
export async function planFiles(store: FileStore, files: RepoFile[]): Promise<{ missing: RepoFile[]; unlinked: RepoFile[] }> {
  const states: Array<'present' | 'unlinked' | 'missing'> = new Array(files.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      states[i] = await store.state(files[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PLAN_CONCURRENCY, files.length) }, worker));
  return {
    missing: files.filter((_, i) => states[i] === 'missing'),
    unlinked: files.filter((_, i) => states[i] !== 'present'),
  };
}

export function uniqueByDigest(files: RepoFile[]): RepoFile[] {
  const seen = new Map<string, RepoFile>();
  for (const file of files) if (!seen.has(file.digest.hex)) seen.set(file.digest.hex, file);
  return [...seen.values()];
}

/** Which files have something at their content path (a blob, or a file in a folder), before planning decides on it. */
export async function pathsOnDisk(files: RepoFile[], contentPath: (file: RepoFile) => string | undefined): Promise<Set<string>> {
  const found = new Set<string>();
  for (const file of files) {
    const path = contentPath(file);
    if (path && (await lstat(path).then(() => true, () => false))) found.add(file.path);
  }
  return found;
}

export type FetchTotals = Pick<PullResult, 'bytesFetched' | 'bytesResumed' | 'bytesDeduplicated' | 'bytesBySource'>;

/**
 * Fetches every blob once across processes: take each blob's lock without waiting and fetch those in
 * one batch; for blobs another process is fetching, wait for its lock, then use its result (or fetch
 * it ourselves if that process failed).
 */
export async function fetchBlobs(store: FileStore, files: RepoFile[], at: { repoId: string; commit: string; repo?: RepoPaths }, remote: Remote, options: PullOptions): Promise<FetchTotals> {
  // Loaded only when bytes must move, so a cache hit never pays for the engine (or undici).
  const engine = await import('../transfer/index.js');
  const transferFiles = options.transferFiles ?? engine.transferFiles;
  const env = options.env ?? process.env;
  const xet = engine.xetSettings({ env, ...(options.xet !== undefined && { xet: options.xet }), cacheRoot: options.cacheDir ?? resolveCacheDir(env), ...(options.onXetFallback && { onFallback: options.onXetFallback }) });
  const totals: FetchTotals = { bytesFetched: 0, bytesResumed: 0, bytesDeduplicated: 0, bytesBySource: { xet: 0, plain: 0, ...(options.swarm && { peers: 0, webSeeds: 0 }) } };
  // The swarm fills blobs of the hub cache (it seeds them from there); a local dir fetches over HTTP.
  const swarm = options.swarm && at.repo && store.sharesContent ? { session: options.swarm, at: { ...at, repo: at.repo } } : undefined;
  // Locks are taken in one global order, so processes waiting while holding some cannot wait in a cycle.
  let pending = [...files].sort((a, b) => (store.lockPath(a) < store.lockPath(b) ? -1 : 1));
  let wait = false;
  const prepared = new Set<string>();
  while (pending.length) {
    const held: Array<{ file: RepoFile; lock: HeldLock }> = [];
    const later: RepoFile[] = [];
    try {
      for (const file of pending) {
        // The temp and lock folders are made through real folders only, before anything is written there.
        for (const dir of [dirname(store.lockPath(file)), dirname(store.tempPath(file))]) {
          if (!prepared.has(dir)) await makeRealFolders(store.root, dir);
          prepared.add(dir);
        }
        const lock = wait ? await acquireLock(store.lockPath(file), options.signal ? { signal: options.signal } : {}) : await tryAcquireLock(store.lockPath(file));
        if (!lock) {
          later.push(file);
          continue;
        }
        if ((await store.hasContent(file)) || (await adoptFinishedTemp(store, file))) await lock.release();
        else held.push({ file, lock });
      }
      let overHttp = held;
      if (swarm && held.length) {
        const { rest, fromPeers, fromWebSeeds } = await fetchThroughSwarm(swarm.session, remote, swarm.at, held.map(({ file }) => file), { signal: options.signal, onProgress: options.onSwarmProgress });
        overHttp = held.filter(({ file }) => rest.includes(file));
        totals.bytesFetched += fromPeers + fromWebSeeds;
        totals.bytesBySource.peers = (totals.bytesBySource.peers ?? 0) + fromPeers;
        totals.bytesBySource.webSeeds = (totals.bytesBySource.webSeeds ?? 0) + fromWebSeeds;
      }
      if (overHttp.length) {
        const jobs: TransferJob[] = overHttp.map(({ file }) => {
          const job: TransferJob = { ...remote.job(at.commit, file), size: file.size, digest: file.digest, tempPath: store.tempPath(file) };
          // The Xet chunk cache indexes the chunks where the file will be committed.
          return job.xet && store.contentPath ? { ...job, xet: { ...job.xet, storedAt: store.contentPath(file) } } : job;
        });
        const { onProgress } = options;
        const results = await transferFiles(jobs, {
          ...options.transfer,
          ...(options.connections !== undefined && { connections: options.connections }),
          ...(options.dispatcher && { dispatcher: options.dispatcher }),
          ...(options.clock && { clock: options.clock }),
          ...(options.signal && { signal: options.signal }),
          onRateLimitWait: rateLimitWaitListener(options),
          // The engine speaks of jobs; a pull's listener hears which repo file each event is about.
          ...(onProgress && { onProgress: (event) => onProgress({ ...event, repoId: at.repoId, path: overHttp[event.job]?.file.path ?? '' }) }),
          ...(xet && { xet }),
        });
        for (const [i, { file }] of overHttp.entries()) {
          await store.commit(file, results[i]!.tempPath);
          totals.bytesFetched += results[i]!.bytesFetched;
          totals.bytesResumed += results[i]!.bytesResumed;
          totals.bytesDeduplicated += results[i]!.bytesDeduplicated ?? 0;
          totals.bytesBySource[results[i]!.source === 'xet' ? 'xet' : 'plain'] += results[i]!.bytesFetched;
        }
      }
    } finally {
      for (const { lock } of held) await lock.release();
    }
    pending = later;
    wait = true;
  }
  return totals;
}

/**
 * A temp file the engine finished (complete, journal gone) whose commit never happened: a batch in
 * which another file failed, or a crash right after the transfer. Verified here, it is committed
 * instead of downloaded again.
 */
async function adoptFinishedTemp(store: FileStore, file: RepoFile): Promise<boolean> {
  const temp = store.tempPath(file);
  const info = await lstat(temp).catch(() => undefined);
  if (!info?.isFile() || info.size !== file.size) return false;
  if (await lstat(`${temp}.journal`).then(() => true, () => false)) return false;
  if ((await hashFile(temp, file.digest.algorithm)).hex !== file.digest.hex) return false;
  await store.commit(file, temp);
  return true;
}
