import { randomBytes } from 'node:crypto';
import { lstat, readdir, readFile, rm, utimes } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { buildCachedRepo, digestOf, fakeCommit, type BuiltFile } from '../../test/support/cache-builder.js';
import { gcCache, type InUseCheck } from './gc.js';
import type { RepoPaths } from './layout.js';
import { removeFromCache } from './remove.js';
import { scanCache } from './scan.js';
import { touchRevision } from './usage.js';
import { testTempDir } from '../../test/support/temp.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 0, 31);
const nothingInUse: InUseCheck = async () => false;

const file = (path: string, size: number): BuiltFile => ({ path, content: randomBytes(size), lfs: true });

/** A repo revision last used `daysAgo` days before NOW (blob atimes and the record agree). */
async function revision(root: string, repoId: string, seed: string, files: BuiltFile[], daysAgo: number, refs?: string[]): Promise<{ repo: RepoPaths; commit: string }> {
  const commit = fakeCommit(seed);
  const repo = await buildCachedRepo(root, { repoId, commit, files, ...(refs && { refs }) });
  const when = new Date(NOW - daysAgo * DAY);
  for (const f of files) await utimes(repo.blob(digestOf(f)), when, when);
  await touchRevision(repo, commit, { now: when.getTime() });
  return { repo, commit };
}

async function tree(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).map(String).sort();
}

describe('gcCache', () => {
  it('removes revisions unused for the period, keeping a blob shared with a kept revision', async () => {
    const root = await testTempDir('mf-gc-');
    const shared = file('model.bin', 5000);
    const oldOnly = file('old.bin', 300);
    const old = await revision(root, 'org/a', 'old', [shared, oldOnly], 30, ['v1']);
    const fresh = await revision(root, 'org/a', 'fresh', [shared], 1, ['main']);
    const report = await gcCache({ cacheDir: root, unusedForMs: 7 * DAY, now: NOW, isInUse: nothingInUse });

    expect(report.revisions.map((r) => [r.commit, r.reason, r.bytes])).toEqual([[old.commit, 'unused', 300]]);
    expect(report.bytesFreed).toBe(300);
    expect(report.blobs.map((b) => b.name)).toEqual([digestOf(oldOnly).hex]);
    await expect(lstat(old.repo.snapshotDir(old.commit))).rejects.toThrow();
    await expect(lstat(old.repo.ref('v1'))).rejects.toThrow();
    await expect(lstat(old.repo.blob(digestOf(oldOnly)))).rejects.toThrow();
    expect((await readFile(fresh.repo.snapshotFile(fresh.commit, 'model.bin'))).length).toBe(5000);
    expect(await readFile(fresh.repo.ref('main'), 'utf8')).toBe(fresh.commit);
  });

  it('changes nothing with dryRun and reports the same plan', async () => {
    const root = await testTempDir('mf-gc-');
    await revision(root, 'org/a', 'a', [file('a.bin', 100)], 30);
    await revision(root, 'org/b', 'b', [file('b.bin', 200)], 40);
    const before = await tree(root);
    const dry = await gcCache({ cacheDir: root, unusedForMs: 7 * DAY, now: NOW, isInUse: nothingInUse, dryRun: true });
    expect(await tree(root)).toEqual(before);
    const real = await gcCache({ cacheDir: root, unusedForMs: 7 * DAY, now: NOW, isInUse: nothingInUse });
    expect({ ...dry, dryRun: false }).toEqual(real);
    expect(real.repos.sort()).toEqual(['models--org--a', 'models--org--b']);
    expect((await scanCache({ cacheDir: root })).repos).toEqual([]);
  });

  it('meets a size cap by removing least recently used revisions first', async () => {
    const root = await testTempDir('mf-gc-');
    const a = await revision(root, 'org/a', 'a', [file('a.bin', 1000)], 3);
    const b = await revision(root, 'org/b', 'b', [file('b.bin', 1000)], 1);
    const c = await revision(root, 'org/c', 'c', [file('c.bin', 1000)], 5);
    const d = await revision(root, 'org/d', 'd', [file('d.bin', 1000)], 2);
    const report = await gcCache({ cacheDir: root, maxSize: 2500, now: NOW, isInUse: nothingInUse });
    expect(report.revisions.map((r) => [r.commit, r.reason])).toEqual([
      [c.commit, 'size'],
      [a.commit, 'size'],
    ]);
    expect(report.sizeAfter).toBe(2000);
    expect(report.underCap).toBe(true);
    expect((await scanCache({ cacheDir: root })).repos.map((r) => r.repoId)).toEqual(['org/b', 'org/d']);
    expect(b.commit && d.commit).toBeTruthy();
  });

  it('never touches a revision in use or a kept repo, even to meet the size cap', async () => {
    const root = await testTempDir('mf-gc-');
    const busy = await revision(root, 'org/busy', 'busy', [file('w.bin', 1000)], 90);
    const kept = await revision(root, 'org/kept', 'kept', [file('k.bin', 1000)], 80);
    const idle = await revision(root, 'org/idle', 'idle', [file('i.bin', 1000)], 70);
    const isInUse: InUseCheck = async (repo, commit) => repo.repoId === 'org/busy' && (commit === undefined || commit === busy.commit);
    const report = await gcCache({ cacheDir: root, maxSize: 0, unusedForMs: DAY, now: NOW, isInUse, keep: ['org/kept'] });
    expect(report.revisions.map((r) => r.commit)).toEqual([idle.commit]);
    expect(report.skipped.map((s) => [s.repoId, s.reason]).sort()).toEqual([
      ['org/busy', 'in-use'],
      ['org/kept', 'keep'],
    ]);
    expect(report.underCap).toBe(false);
    expect((await lstat(busy.repo.snapshotFile(busy.commit, 'w.bin'))).isSymbolicLink()).toBe(true);
    expect((await lstat(kept.repo.snapshotFile(kept.commit, 'k.bin'))).isSymbolicLink()).toBe(true);
  });

  it('leaves a revision alone when a pull claims it between planning and deleting', async () => {
    const root = await testTempDir('mf-gc-');
    const late = await revision(root, 'org/late', 'late', [file('l.bin', 10)], 90);
    let calls = 0;
    // Free while the plan is made, taken by the time gc deletes.
    const isInUse: InUseCheck = async () => ++calls > 2;
    const report = await gcCache({ cacheDir: root, unusedForMs: DAY, now: NOW, isInUse });
    expect(report.revisions).toEqual([]);
    expect(report.skipped.map((s) => s.reason)).toEqual(['in-use']);
    expect((await lstat(late.repo.snapshotFile(late.commit, 'l.bin'))).isSymbolicLink()).toBe(true);
  });

  it('removes blobs no snapshot links to once they are older than the grace period', async () => {
    const root = await testTempDir('mf-gc-');
    const kept = await revision(root, 'org/o', 'o', [file('a.bin', 10)], 0);
    const orphan = file('orphan.bin', 77);
    const young = file('young.bin', 5);
    const scratch = await revision(root, 'org/o', 'scratch', [orphan, young], 0);
    await rm(scratch.repo.snapshotDir(scratch.commit), { recursive: true });
    await utimes(kept.repo.blob(digestOf(orphan)), new Date(NOW - 2 * DAY), new Date(NOW - 2 * DAY));
    await utimes(kept.repo.blob(digestOf(young)), new Date(NOW), new Date(NOW));
    const report = await gcCache({ cacheDir: root, unusedForMs: 7 * DAY, now: NOW, isInUse: nothingInUse });
    expect(report.blobs.map((b) => b.name)).toEqual([digestOf(orphan).hex]);
    await expect(lstat(kept.repo.blob(digestOf(orphan)))).rejects.toThrow();
    expect((await lstat(kept.repo.blob(digestOf(young)))).isFile()).toBe(true);
  });
});

describe('removeFromCache', () => {
  it('removes one revision by ref, keeping blobs the other revision still uses', async () => {
    const root = await testTempDir('mf-rm-');
    const shared = file('shared.bin', 400);
    const only = file('only.bin', 50);
    const one = await revision(root, 'org/r', 'one', [shared, only], 1, ['v1']);
    const two = await revision(root, 'org/r', 'two', [shared], 1, ['main']);
    const report = await removeFromCache({ cacheDir: root, repoId: 'org/r', revision: 'v1', isInUse: nothingInUse });
    expect(report).toMatchObject({ commits: [one.commit], blobs: 1, bytesFreed: 50, wholeRepo: false });
    expect((await readFile(two.repo.snapshotFile(two.commit, 'shared.bin'))).length).toBe(400);
    await expect(lstat(one.repo.blob(digestOf(only)))).rejects.toThrow();
  });

  it('removes a whole repo and its state, and refuses one in use with ERR_LOCKED', async () => {
    const root = await testTempDir('mf-rm-');
    const r = await revision(root, 'org/whole', 'w', [file('x.bin', 10)], 1);
    await expect(removeFromCache({ cacheDir: root, repoId: 'org/whole', isInUse: async () => true })).rejects.toMatchObject({ code: 'ERR_LOCKED' });
    expect((await lstat(r.repo.dir)).isDirectory()).toBe(true);
    await expect(removeFromCache({ cacheDir: root, repoId: 'org/whole', revision: r.commit.slice(0, 8), isInUse: async (_repo, commit) => commit === r.commit })).rejects.toMatchObject({ code: 'ERR_LOCKED' });
    const report = await removeFromCache({ cacheDir: root, repoId: 'org/whole', isInUse: nothingInUse });
    expect(report).toMatchObject({ wholeRepo: true, bytesFreed: 10 });
    await expect(lstat(r.repo.dir)).rejects.toThrow();
    await expect(lstat(r.repo.stateDir)).rejects.toThrow();
    await expect(removeFromCache({ cacheDir: root, repoId: 'org/whole', isInUse: nothingInUse })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
  });
});
