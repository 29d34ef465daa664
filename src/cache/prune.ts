import { readdir, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fromSystemError } from '../core/errors.js';
import { RepoPaths } from './layout.js';
import { removeUnder } from './safe-path.js';
import type { ScannedBlob, ScannedRepo, ScannedRevision } from './scan.js';

/**
 * Removing revisions from one repo without breaking the others: a blob goes only when no remaining
 * snapshot links to it. Shared by `gc` and `rm`; planning is pure, `applyPrune` does the deleting.
 */

export interface PrunePlan {
  repo: ScannedRepo;
  revisions: ScannedRevision[];
  blobs: ScannedBlob[];
  /** Bytes the plan frees (blobs no longer referenced, plus snapshot copies). */
  bytes: number;
  /** No revision is left: the whole repo folder goes. */
  wholeRepo: boolean;
}

export class RepoPruner {
  private readonly refcount = new Map<string, number>();
  private readonly removed = new Set<string>();
  private readonly orphansAllowed: boolean;
  private readonly sizes: Map<string, number>;
  private readonly byCommit: Map<string, ScannedRevision>;

  /**
   * @param orphanCutoff blobs no snapshot links to are removed too when modified before this time
   *   (ms) — younger ones may belong to a download that has not linked them yet.
   */
  constructor(
    readonly repo: ScannedRepo,
    private readonly orphanCutoff: number | undefined,
  ) {
    for (const revision of repo.revisions) for (const blob of revision.blobs) this.refcount.set(blob, (this.refcount.get(blob) ?? 0) + 1);
    this.orphansAllowed = orphanCutoff !== undefined;
    this.sizes = new Map(repo.blobs.map((b) => [b.name, b.size]));
    this.byCommit = new Map(repo.revisions.map((r) => [r.commit, r]));
  }

  /** Bytes removing `commit` now would free, given what is already planned. */
  costOf(commit: string): number {
    const revision = this.revision(commit);
    if (!revision || this.removed.has(commit)) return 0;
    return copyBytes(revision) + revision.blobs.reduce((sum, name) => sum + (this.refcount.get(name) === 1 ? this.blobSize(name) : 0), 0);
  }

  /** Plans the removal of `commit`; returns the bytes it frees. */
  remove(commit: string): number {
    const cost = this.costOf(commit);
    const revision = this.revision(commit);
    if (!revision || this.removed.has(commit)) return 0;
    this.removed.add(commit);
    for (const blob of revision.blobs) this.refcount.set(blob, (this.refcount.get(blob) ?? 1) - 1);
    return cost;
  }

  /** Bytes of blobs that nothing links to from the start (and that are old enough to go). */
  orphanBytes(): number {
    return this.orphans().reduce((sum, blob) => sum + blob.size, 0);
  }

  plan(): PrunePlan {
    const revisions = this.repo.revisions.filter((r) => this.removed.has(r.commit));
    const freed = this.repo.blobs.filter((blob) => this.refcount.get(blob.name) === 0);
    const blobs = [...freed, ...this.orphans()];
    const bytes = revisions.reduce((sum, r) => sum + copyBytes(r), 0) + blobs.reduce((sum, b) => sum + b.size, 0);
    return { repo: this.repo, revisions, blobs, bytes, wholeRepo: revisions.length > 0 && revisions.length === this.repo.revisions.length };
  }

  private orphans(): ScannedBlob[] {
    if (!this.orphansAllowed) return [];
    return this.repo.blobs.filter((blob) => !this.refcount.has(blob.name) && blob.lastModified < this.orphanCutoff!);
  }

  private revision(commit: string): ScannedRevision | undefined {
    return this.byCommit.get(commit);
  }

  private blobSize(name: string): number {
    return this.sizes.get(name) ?? 0;
  }
}

function copyBytes(revision: ScannedRevision): number {
  return revision.files.reduce((sum, file) => sum + (file.copy ? file.size : 0), 0);
}

/**
 * Deletes what the plan lists: for each revision its refs, snapshot folder, `.no_exist` entries,
 * tree listing and last-use record; then the freed blobs and their stamps; then the repo folder when nothing is left.
 */
export async function applyPrune(root: string, plan: PrunePlan): Promise<void> {
  const paths = new RepoPaths(root, plan.repo.repoType, plan.repo.repoId);
  // Each path is reached through real folders only: a planted link never makes this delete elsewhere.
  const remove = (path: string, folder = false): Promise<void> => removeUnder(root, path, { folder });
  try {
    for (const revision of plan.revisions) {
      for (const ref of revision.refs) {
        await remove(paths.ref(ref));
        await removeEmptyParents(dirname(paths.ref(ref)), join(paths.dir, 'refs'));
      }
      await remove(revision.path, true);
      await remove(join(paths.dir, '.no_exist', revision.commit), true);
      await remove(paths.lastUsed(revision.commit));
      await remove(paths.treeListing(revision.commit));
    }
    for (const blob of plan.blobs) {
      await remove(blob.path);
      if (blob.digest) await remove(paths.stamp(blob.digest));
      if (blob.digest) await remove(paths.torrentInfo(blob.digest));
    }
    if (plan.wholeRepo || (await isEmptyRepo(paths))) {
      await remove(paths.dir, true);
      await remove(paths.stateDir, true);
    }
  } catch (error) {
    throw fromSystemError(error, `removing revisions of ${plan.repo.repoId}`);
  }
}

/** A repo folder with no snapshot and no blob left holds nothing a loader can use. */
async function isEmptyRepo(paths: RepoPaths): Promise<boolean> {
  const list = async (dir: string): Promise<string[]> => readdir(dir).catch(() => []);
  return (await list(join(paths.dir, 'snapshots'))).length === 0 && (await list(paths.blobsDir)).length === 0;
}

async function removeEmptyParents(dir: string, stop: string): Promise<void> {
  let current = dir;
  while (current.startsWith(`${stop}/`)) {
    try {
      await rmdir(current);
    } catch {
      return;
    }
    current = dirname(current);
  }
}
