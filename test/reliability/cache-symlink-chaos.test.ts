import { randomInt } from 'node:crypto';
import { lstat, mkdir, readdir, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gcCache } from '../../src/cache/gc.js';
import { RepoPaths } from '../../src/cache/layout.js';
import { removeFromCache } from '../../src/cache/remove.js';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { repairCache } from '../../src/repair.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { treeState } from '../support/tree-state.js';
import { testTempDir } from '../support/temp.js';

/**
 * Case 29, chaos-style: symlinks planted at random folder levels of a real cache (repo folder, blobs,
 * snapshots, a snapshot and its subfolders, refs, .no_exist, .locks and modelfetch's state folders),
 * each pointing at a sentinel tree outside the cache or at a missing path beside it. Then pull,
 * verify --fix, gc --max-size 0 and rm run. They may fail, with a ModelfetchError, but the sentinel
 * stays byte-for-byte the same (content, entries, modes, mtimes) and nothing appears outside the cache.
 * MODELFETCH_CHAOS_SEED replays a run; the seed is printed in every failure message.
 */

const ROUNDS = 8;
const MAX_LINKS_PER_ROUND = 3;
const seed = Number(process.env.MODELFETCH_CHAOS_SEED ?? randomInt(2 ** 31));

/** mulberry32: small, seeded, good enough to pick folders. */
function prng(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FILES = [
  { path: 'config.json', content: '{"model_type":"tiny"}' },
  { path: 'nested/deeper/vocab.txt', content: 'a\nb\nc\n' },
  { path: 'w.bin', size: 48 * 1024, lfs: true },
];

let hub: FixtureHub;
beforeAll(async () => {
  hub = await startFixtureHub({ repos: [{ repoId: 'x/y', files: FILES }] });
});
afterAll(async () => {
  await hub.close();
});

/** Folders a writer could be tricked through: every existing folder below the root, plus layout folders that may not exist yet. */
async function candidateFolders(cacheDir: string, repo: RepoPaths, commit: string): Promise<string[]> {
  const found = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      found.add(join(dir, entry.name));
      await walk(join(dir, entry.name));
    }
  };
  await walk(cacheDir);
  for (const name of ['partial', 'stamps', 'used', 'in-use', 'locks', 'trees']) found.add(join(repo.stateDir, name));
  for (const path of [repo.blobsDir, join(repo.dir, 'refs'), join(repo.dir, 'trees'), join(repo.dir, '.no_exist', commit), repo.snapshotDir(commit), join(repo.snapshotDir(commit), 'nested', 'deeper'), join(cacheDir, '.locks', repo.folder)]) found.add(path);
  return [...found].sort();
}

async function isLinkOrBelowLink(root: string, path: string): Promise<boolean> {
  const parts = relative(root, path).split('/');
  for (let i = 1; i <= parts.length; i++) {
    const info = await lstat(join(root, ...parts.slice(0, i))).catch(() => undefined);
    if (!info) return false;
    if (!info.isDirectory()) return true;
  }
  return false;
}

/** A tree that would be damaged if anything followed a link into it: names that look like blobs, commits, state. */
async function buildSentinel(dir: string, commit: string): Promise<string[]> {
  const old = new Date(Date.now() - 30 * 24 * 3600_000);
  const targets = [dir];
  const file = async (path: string, content: string): Promise<void> => {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, content);
    await utimes(path, old, old);
  };
  for (const spec of FILES) {
    const f = hub.file('x/y', spec.path);
    await file(join(dir, f.lfs ? f.sha256 : f.gitSha1), `not the content of ${spec.path}`);
  }
  await file(join(dir, commit, 'config.json'), '{"sentinel":true}');
  await file(join(dir, commit, 'nested', 'deeper', 'vocab.txt'), 'sentinel');
  await file(join(dir, 'main'), commit);
  await file(join(dir, 'config.json'), 'sentinel project config');
  await file(join(dir, 'sub', 'x.part'), 'sentinel partial');
  targets.push(join(dir, commit), join(dir, commit, 'nested'), join(dir, 'sub'));
  return targets;
}

describe('random symlinked folders in a cache (case 29, chaos)', () => {
  it(`pull, verify --fix, gc --max-size 0 and rm never change a sentinel tree nor create files outside the cache (seed ${seed})`, async () => {
    const random = prng(seed);
    const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
    const planted: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const base = await testTempDir('mf-linkchaos-');
      try {
        const cacheDir = join(base, 'cache');
        const sentinel = join(base, 'sentinel');
        const first = await pull({ repo: 'x/y', cacheDir, endpoint: hub.endpoint, env: {} });
        await pull({ repo: 'x/y', cacheDir, endpoint: hub.endpoint, env: {}, files: ['absent.txt'] }).catch(() => undefined); // a .no_exist marker
        const repo = new RepoPaths(cacheDir, 'model', 'x/y');
        const targets = await buildSentinel(sentinel, first.commit);
        const candidates = await candidateFolders(cacheDir, repo, first.commit);
        const count = 1 + Math.floor(random() * MAX_LINKS_PER_ROUND);
        const links: string[] = [];
        for (let i = 0; i < count; i++) {
          const at = pick(candidates);
          if (await isLinkOrBelowLink(cacheDir, at)) continue; // planting through an earlier link would write into the sentinel itself
          const target = random() < 0.75 ? pick(targets) : join(random() < 0.5 ? base : sentinel, `missing-${i}`);
          await rm(at, { recursive: true, force: true });
          await mkdir(dirname(at), { recursive: true });
          await symlink(target, at);
          links.push(`${relative(cacheDir, at)} -> ${relative(base, target)}`);
        }
        planted.push(`round ${round}: ${links.join(', ')}`);
        const context = `seed ${seed}, ${planted.at(-1)}`;
        const sentinelBefore = await treeState(sentinel);
        const baseBefore = (await readdir(base)).sort();
        const parentBefore = (await readdir(dirname(base))).filter((n) => n.startsWith('missing-')).sort();

        const commands: Array<[string, () => Promise<unknown>]> = [
          ['pull', () => pull({ repo: 'x/y', cacheDir, endpoint: hub.endpoint, env: {} })],
          ['verify --fix', () => repairCache({ cacheDir, endpoint: hub.endpoint, env: {}, workers: 1 })],
          ['gc --max-size 0', () => gcCache({ cacheDir, maxSize: 0 })],
          ['rm', () => removeFromCache({ cacheDir, repoId: 'x/y' })],
        ];
        for (const [name, command] of commands) {
          const error: unknown = await command().then(
            () => undefined,
            (e: unknown) => e,
          );
          if (error !== undefined) expect(isModelfetchError(error), `${name} failed with a clear error, not ${String(error)} (${context})`).toBe(true);
          expect(await treeState(sentinel), `${name} left the sentinel unchanged (${context})`).toEqual(sentinelBefore);
          expect((await readdir(base)).sort(), `${name} created nothing beside the cache (${context})`).toEqual(baseBefore);
          expect((await readdir(dirname(base))).filter((n) => n.startsWith('missing-')).sort(), `${name} created nothing beside the test folder (${context})`).toEqual(parentBefore);
        }
      } finally {
        await rm(base, { recursive: true, force: true });
      }
    }
    expect(planted).toHaveLength(ROUNDS);
  });
});
