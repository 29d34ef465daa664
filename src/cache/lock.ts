import { randomBytes } from 'node:crypto';
import { link, lutimes, mkdir, open, readdir, readFile, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fromSystemError, ModelfetchError } from '../core/errors.js';
import type { RepoPaths } from './layout.js';
import { makeRealFolders } from './safe-path.js';

/**
 * Cross-process locks without flock: a lock is a file created exclusively (`wx`) holding
 * `{pid, host, time, nonce}`, whose mtime the holder refreshes (heartbeat). A lock is stale, and may
 * be taken over, when its holder is on this host and its pid is gone, or when its heartbeat is older
 * than `staleMs` (a holder on another host, or a frozen one).
 */

export interface LockHolder {
  pid: number;
  host: string;
  time: number;
  nonce: string;
}

export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** A heartbeat older than this makes the lock stale. Default 30 s. */
  staleMs?: number;
  /** How often the holder refreshes its heartbeat. Default staleMs / 4. */
  heartbeatMs?: number;
  /** How often a waiter looks again. Default 100 ms. */
  pollMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_STALE_MS = 30_000;

function newHolder(): LockHolder {
  return { pid: process.pid, host: hostname(), time: Date.now(), nonce: randomBytes(8).toString('hex') };
}

/** Whether a process with this id runs on this host (EPERM: it does, under another user). */
export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(path: string): Promise<LockHolder | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid === 'number' && typeof parsed.host === 'string' && typeof parsed.nonce === 'string') return parsed as LockHolder;
  } catch {
    // Missing, or being written right now: judged by its mtime alone.
  }
  return undefined;
}

/** Whether the holder recorded in `path` is gone: dead pid on this host, or no heartbeat for `staleMs`. */
export async function isHolderStale(path: string, staleMs: number = DEFAULT_STALE_MS): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  if (!info) return false;
  if (Date.now() - info.mtimeMs > staleMs) return true;
  const holder = await readHolder(path);
  return holder !== undefined && holder.host === hostname() && holder.pid !== process.pid && !isPidAlive(holder.pid);
}

/** Refreshes `path`'s mtime every `ms` until stopped; never keeps the process alive. */
function startHeartbeat(path: string, ms: number): () => void {
  const timer = setInterval(() => {
    const now = new Date();
    // lutimes: a link swapped in for the heartbeat file is never followed.
    void lutimes(path, now, now).catch(() => {});
  }, ms);
  timer.unref();
  return () => clearInterval(timer);
}

async function writeHolderFile(path: string, holder: LockHolder): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true });
  let handle;
  try {
    handle = await open(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(JSON.stringify(holder));
  } finally {
    await handle.close();
  }
  return true;
}

/**
 * Moves a stale lock aside and removes it, but only if it is still the one judged stale: when another
 * process took it over in between, its fresh lock is put back.
 */
async function breakStaleLock(path: string, staleHolder: LockHolder | undefined): Promise<void> {
  const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch {
    return; // someone else broke it first
  }
  const moved = await readHolder(aside);
  if (staleHolder && moved && moved.nonce !== staleHolder.nonce) {
    await link(aside, path).catch(() => {});
  }
  await unlink(aside).catch(() => {});
}

/** Takes the lock if it is free or stale; undefined when a live process holds it. */
export async function tryAcquireLock(path: string, options: LockOptions = {}): Promise<HeldLock | undefined> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  try {
    for (let round = 0; round < 3; round++) {
      const holder = newHolder();
      if (await writeHolderFile(path, holder)) {
        const stop = startHeartbeat(path, options.heartbeatMs ?? Math.max(50, staleMs / 4));
        return {
          path,
          release: async () => {
            stop();
            const current = await readHolder(path);
            if (current?.nonce === holder.nonce) await unlink(path).catch(() => {});
          },
        };
      }
      const current = await readHolder(path);
      if (!(await isHolderStale(path, staleMs))) return undefined;
      await breakStaleLock(path, current);
    }
    return undefined;
  } catch (error) {
    throw fromSystemError(error, `locking ${path}`);
  }
}

/** Waits until the lock is free (or stale) and takes it. */
export async function acquireLock(path: string, options: LockOptions = {}): Promise<HeldLock> {
  const pollMs = options.pollMs ?? 100;
  for (;;) {
    if (options.signal?.aborted) throw new ModelfetchError('ERR_ABORTED', `Aborted while waiting for ${path}`);
    const lock = await tryAcquireLock(path, options);
    if (lock) return lock;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * Marks `commit` of `repo` as used by this process (a pull in progress, a server serving it) until
 * `release()`. gc asks `isRevisionInUse` before deleting a revision.
 */
export async function markRevisionInUse(repo: RepoPaths, commit: string, options: Pick<LockOptions, 'heartbeatMs'> = {}): Promise<{ release(): Promise<void> }> {
  const dir = repo.inUseDir(commit);
  const holder = newHolder();
  const path = join(dir, `${holder.host.replace(/[^A-Za-z0-9.-]/g, '_')}-${holder.pid}-${holder.nonce}`);
  try {
    await makeRealFolders(repo.root, dir);
    await writeHolderFile(path, holder);
  } catch (error) {
    throw fromSystemError(error, `marking ${commit} in use`);
  }
  const stop = startHeartbeat(path, options.heartbeatMs ?? DEFAULT_STALE_MS / 4);
  return {
    release: async () => {
      stop();
      await unlink(path).catch(() => {});
      await rmdir(dir).catch(() => {}); // only succeeds when no other holder is left
    },
  };
}

/**
 * Whether a live process (fresh heartbeat, and a live pid when on this host) holds `commit` of `repo`;
 * without `commit`, whether it holds any revision or is downloading any blob of the repo. Matches
 * gc's `InUseCheck`.
 */
export async function isRevisionInUse(repo: RepoPaths, commit?: string, options: Pick<LockOptions, 'staleMs'> = {}): Promise<boolean> {
  const dirs = commit ? [repo.inUseDir(commit)] : await subdirectories(repo.inUseRoot);
  if (!commit) dirs.push(repo.blobLocksDir);
  for (const dir of dirs) {
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const entry of entries) {
      const path = join(dir, entry);
      if ((await stat(path).catch(() => undefined)) && !(await isHolderStale(path, options.staleMs))) return true;
    }
  }
  return false;
}

async function subdirectories(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
}
