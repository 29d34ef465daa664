import { stat } from 'node:fs/promises';
import type { RepoPaths } from './layout.js';
import { markRevisionInUse } from './lock.js';
import { touchMarker } from './safe-path.js';

/**
 * When a revision was last used, as modelfetch records it: one empty file per revision whose mtime
 * is the time of last use. Touching it is one open and futimes (atomic, no torn content), so pull, serve and
 * run can afford it on every use; gc reads it next to the blobs' atime.
 */
export async function touchRevision(repo: RepoPaths, commit: string, options: { now?: number } = {}): Promise<void> {
  await touchMarker(repo.root, repo.lastUsed(commit), new Date(options.now ?? Date.now()));
}

/** The recorded last use of a revision in ms since the epoch, or undefined when none is recorded. */
export async function readLastUsed(repo: RepoPaths, commit: string): Promise<number | undefined> {
  try {
    return (await stat(repo.lastUsed(commit))).mtimeMs;
  } catch {
    return undefined;
  }
}

/**
 * Uses a revision for as long as the caller runs (a server serving it, `run`'s child loading it):
 * records the use now and holds its in-use marker, so gc leaves it alone, until `release()`.
 */
export async function holdRevision(repo: RepoPaths, commit: string): Promise<{ release(): Promise<void> }> {
  await touchRevision(repo, commit);
  return markRevisionInUse(repo, commit);
}
