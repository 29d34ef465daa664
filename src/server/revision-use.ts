import { touchRevision } from '../cache/usage.js';
import type { CacheView } from './cache-view.js';
import type { RepoRef } from './route.js';

/** What the mirror tells gc about the revisions it serves: which are in use now, and when each was last used. */

/** Reference-counted "in use" markers per revision, so gc never deletes what is being served or pulled. */
export class InUseMarkers {
  private readonly held = new Map<string, { count: number; marker: Promise<{ release(): Promise<void> } | undefined> }>();

  constructor(private readonly mark?: (repo: RepoRef, commit: string) => Promise<{ release(): Promise<void> }>) {}

  async hold(repo: RepoRef, commit: string): Promise<() => Promise<void>> {
    if (!this.mark) return async () => {};
    const key = `${repo.repoType}:${repo.repoId}@${commit}`;
    let entry = this.held.get(key);
    if (!entry) {
      entry = { count: 0, marker: this.mark(repo, commit).catch(() => undefined) };
      this.held.set(key, entry);
    }
    entry.count++;
    await entry.marker;
    const current = entry;
    return async () => {
      current.count--;
      if (current.count > 0 || this.held.get(key) !== current) return;
      this.held.delete(key);
      await (await current.marker)?.release();
    };
  }

  async releaseAll(): Promise<void> {
    const entries = [...this.held.values()];
    this.held.clear();
    await Promise.all(entries.map(async (e) => (await e.marker)?.release()));
  }
}

/** The revision's last-use record (read by gc and the status page), touched at most once a minute per revision. */
export function createUseRecorder(cache: CacheView, now: () => number = Date.now): (repo: RepoRef, commit: string) => void {
  const lastTouched = new Map<string, number>();
  return (repo, commit) => {
    const key = `${repo.repoType}:${repo.repoId}@${commit}`;
    const at = now();
    if ((lastTouched.get(key) ?? 0) > at - 60_000) return;
    lastTouched.set(key, at);
    void touchRevision(cache.repo(repo.repoType, repo.repoId), commit, { now: at }).catch(() => {});
  };
}
