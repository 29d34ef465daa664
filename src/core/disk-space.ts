import { lstat, statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ModelfetchError } from './errors.js';
import { formatBytes } from './format-bytes.js';

/**
 * The free-space check `pull`, `get` and `sync` make before the first byte moves: the bytes still
 * missing (each file's size less what its partial file already holds on disk) against what the
 * target file system has free for this user (`statfs`'s `bavail`). Failing here costs nothing;
 * failing at 97 % costs the download.
 */

export interface SpaceNeed {
  /** Where the bytes will be written (the partial file); it need not exist yet. */
  path: string;
  /** The file's final size. */
  size: number;
}

export interface SpaceCheckOptions {
  /** Skip the check (`--ignore-disk-space`). */
  ignore?: boolean;
  /** Where else the bytes could go, for the hint (e.g. "point --cache-dir at a larger disk"). */
  elsewhere?: string;
  /** Reads free bytes for a folder that exists; injectable for tests. Default: `statfs` bavail × bsize. */
  freeBytes?: (existingDir: string) => Promise<number>;
}

async function statfsFreeBytes(dir: string): Promise<number> {
  const info = await statfs(dir);
  return Number(info.bavail) * Number(info.bsize);
}

/** The nearest folder of `path` that exists: where its file system can be asked. */
async function nearestExistingDir(path: string): Promise<string> {
  let dir = dirname(resolve(path));
  for (;;) {
    const info = await lstat(dir).catch(() => undefined);
    if (info?.isDirectory()) return dir;
    const parent = dirname(dir);
    if (parent === dir) return dir;
    dir = parent;
  }
}

/** Bytes a partial file already holds on disk (a resumed download needs only the rest; sparse holes count as missing). */
async function allocatedBytes(path: string): Promise<number> {
  const info = await lstat(path).catch(() => undefined);
  return info?.isFile() ? Math.min(info.size, info.blocks * 512) : 0;
}

/** The bytes still to be written for `needs`, taking partial files into account. */
export async function bytesStillMissing(needs: readonly SpaceNeed[]): Promise<number> {
  let total = 0;
  for (const need of needs) total += Math.max(0, need.size - (await allocatedBytes(need.path)));
  return total;
}

/**
 * Throws ERR_NO_SPACE (exit 7) when the bytes still missing for `needs` do not fit on the file
 * system they go to, naming both numbers. Needs on different file systems are checked separately.
 */
export async function assertDiskSpace(needs: readonly SpaceNeed[], options: SpaceCheckOptions = {}): Promise<void> {
  if (options.ignore || needs.length === 0) return;
  const readFree = options.freeBytes ?? statfsFreeBytes;
  const byDir = new Map<string, SpaceNeed[]>();
  for (const need of needs) {
    const dir = await nearestExistingDir(need.path);
    byDir.set(dir, [...(byDir.get(dir) ?? []), need]);
  }
  const byDevice = new Map<string, { dir: string; needed: number; free: number }>();
  for (const [dir, group] of byDir) {
    const needed = await bytesStillMissing(group);
    const free = await readFree(dir).catch(() => Infinity); // a file system that cannot say is not refused
    const device = `${(await lstat(dir).catch(() => undefined))?.dev ?? dir}`;
    const entry = byDevice.get(device);
    if (entry) entry.needed += needed;
    else byDevice.set(device, { dir, needed, free });
  }
  for (const { dir, needed, free } of byDevice.values()) {
    if (needed <= free) continue;
    throw new ModelfetchError('ERR_NO_SPACE', `Not enough disk space in ${dir}: ${formatBytes(needed)} still to download, ${formatBytes(free)} free`, {
      expected: needed,
      found: free,
      hint: `Free ${formatBytes(needed - free)} or more there, or ${options.elsewhere ?? 'choose another folder'}; --ignore-disk-space skips this check.`,
    });
  }
}
