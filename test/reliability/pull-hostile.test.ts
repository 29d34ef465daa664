import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { auditCache, isClean, listTree } from '../support/cache-audit.js';
import { buildCachedRepo, fakeCommit } from '../support/cache-builder.js';
import { serveFile, servedBuffer, startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { testTempDir } from '../support/temp.js';

/** Cases 1–3 through `pull`: a hub that lists hostile names, malformed digests and commits, and planted links. */

const servers: FixtureServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

interface TreeEntry {
  type: 'file';
  path: string;
  size: number;
  oid: string;
  lfs?: { oid: string; size: number };
}

const gitSha1 = (data: Buffer): string => createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A hub that answers whatever listing and commit the test gives it, and serves any file it is asked for. */
async function hostileHub(options: { sha?: unknown; entries: unknown[]; etag?: string; content?: Buffer }): Promise<FixtureServer & { resolves: () => number }> {
  const server = await startFixtureServer();
  servers.push(server);
  const body = options.content ?? randomBytes(2000);
  server.route('/api/models/evil/repo/revision/', (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ id: 'evil/repo', sha: options.sha ?? fakeCommit('evil'), siblings: [] }));
  });
  server.route('/api/models/evil/repo/tree/', (_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(options.entries));
  });
  let resolves = 0;
  server.route('/evil/repo/resolve/', async (req, res) => {
    resolves += 1;
    await serveFile(req, res, { ...servedBuffer(body), ...(options.etag && { etag: options.etag }) });
  });
  return Object.assign(server, { resolves: () => resolves });
}

function fileEntry(path: string, content = Buffer.from('{}')): TreeEntry {
  return { type: 'file', path, size: content.length, oid: gitSha1(content) };
}

async function cacheWithSomething(): Promise<string> {
  const root = await testTempDir('mf-hostile-');
  await buildCachedRepo(root, { repoId: 'other/repo', commit: fakeCommit('other'), files: [{ path: 'keep.json', content: Buffer.from('{"keep":1}') }] });
  return root;
}

async function expectRefused(cacheDir: string, hub: Awaited<ReturnType<typeof hostileHub>>, codes: string[]): Promise<void> {
  const before = await listTree(cacheDir);
  const error: unknown = await pull({ repo: 'evil/repo', cacheDir, endpoint: hub.origin, env: {} }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isModelfetchError(error), `refused with a ModelfetchError, got ${String(error)}`).toBe(true);
  expect(codes).toContain((error as { code: string }).code);
  // Nothing written, nothing downloaded.
  expect(await listTree(cacheDir)).toEqual(before);
  expect(hub.resolves()).toBe(0);
}

describe('hostile file names in a listing (case 1)', () => {
  const names = ['../x', '../../../../tmp/mf-escape', '/abs', '/etc/passwd', 'C:\\x', 'C:x', 'a\\..\\..\\b', 'a/\0b', 'nul\0', '', 'a//b', './a', 'a/./b', 'a/..', '..'];
  for (const name of names) {
    it(`refuses ${JSON.stringify(name)} with the cache dir unchanged`, async () => {
      const cacheDir = await cacheWithSomething();
      // One hostile name among good ones: the whole listing is refused, the good files too.
      const hub = await hostileHub({ entries: [fileEntry('config.json'), fileEntry(name), fileEntry('z.txt')] });
      await expectRefused(cacheDir, hub, ['ERR_UNSAFE_PATH', 'ERR_BAD_RESPONSE']);
    });
  }

  it('refuses a name that is both a file and a folder', async () => {
    const cacheDir = await cacheWithSomething();
    const hub = await hostileHub({ entries: [fileEntry('a'), fileEntry('a/b')] });
    await expectRefused(cacheDir, hub, ['ERR_UNSAFE_PATH']);
  });
});

describe('digests and commits that are not hex of the right length (case 2)', () => {
  const bad = ['a'.repeat(63), 'a'.repeat(65), `../${'a'.repeat(61)}`, `${'A'.repeat(64)}`, `${'a'.repeat(62)}/x`, ''];
  for (const hex of bad) {
    it(`refuses LFS sha256 ${JSON.stringify(hex.slice(0, 12))}… (${hex.length} chars)`, async () => {
      const cacheDir = await cacheWithSomething();
      const hub = await hostileHub({ entries: [{ type: 'file', path: 'w.bin', size: 2000, oid: 'b'.repeat(40), lfs: { oid: hex, size: 2000 } }] });
      await expectRefused(cacheDir, hub, ['ERR_INVALID_DIGEST', 'ERR_BAD_RESPONSE']);
    });
  }
  for (const oid of ['b'.repeat(39), 'b'.repeat(41), `../${'b'.repeat(37)}`, 'B'.repeat(40)]) {
    it(`refuses git oid ${JSON.stringify(oid.slice(0, 12))}… (${oid.length} chars)`, async () => {
      const cacheDir = await cacheWithSomething();
      const hub = await hostileHub({ entries: [{ type: 'file', path: 'c.json', size: 2, oid }] });
      await expectRefused(cacheDir, hub, ['ERR_INVALID_DIGEST', 'ERR_BAD_RESPONSE']);
    });
  }
  for (const sha of ['c'.repeat(39), 'c'.repeat(41), `../../${'c'.repeat(34)}`, 'C'.repeat(40), 'main', 12345]) {
    it(`refuses commit ${JSON.stringify(sha)}`, async () => {
      const cacheDir = await cacheWithSomething();
      const hub = await hostileHub({ sha, entries: [fileEntry('config.json')] });
      await expectRefused(cacheDir, hub, ['ERR_INVALID_DIGEST', 'ERR_BAD_RESPONSE']);
    });
  }

  it('a hostile ETag never becomes a path: the file lands only under the name the listing gave', async () => {
    const cacheDir = await cacheWithSomething();
    const content = randomBytes(2000);
    const entries = [{ type: 'file', path: 'w.bin', size: content.length, oid: 'd'.repeat(40), lfs: { oid: sha256(content), size: content.length } }];
    const hub = await hostileHub({ entries, content, etag: '../../../../escape' });
    const outcome = await pull({ repo: 'evil/repo', cacheDir, endpoint: hub.origin, env: {} }).then(
      () => 'ok',
      (e: unknown) => (isModelfetchError(e) ? e.code : String(e)),
    );
    expect(['ok', 'ERR_BAD_RESPONSE', 'ERR_INVALID_DIGEST']).toContain(outcome);
    const tree = await listTree(cacheDir);
    expect(tree.filter((f) => f.includes('escape'))).toEqual([]);
    expect(isClean(await auditCache(cacheDir))).toBe(true);
  });
});

describe('planted links at temp and blob paths (case 3)', () => {
  async function plantedCase() {
    const cacheDir = await testTempDir('mf-planted-');
    const outsideDir = await testTempDir('mf-outside-');
    const victim = join(outsideDir, 'victim');
    await writeFile(victim, 'precious');
    const content = randomBytes(300_000);
    const server = await startFixtureServer();
    servers.push(server);
    const commit = fakeCommit('planted');
    const digest = sha256(content);
    server.route('/api/models/evil/repo/revision/', (_req, res) => void res.end(JSON.stringify({ sha: commit })));
    server.route('/api/models/evil/repo/tree/', (_req, res) => void res.end(JSON.stringify([{ type: 'file', path: 'w.bin', size: content.length, oid: 'e'.repeat(40), lfs: { oid: digest, size: content.length } }])));
    server.setFile(`/evil/repo/resolve/${commit}/w.bin`, servedBuffer(content));
    const repo = new RepoPaths(cacheDir, 'model', 'evil/repo');
    return { cacheDir, victim, content, server, repo, digest: { algorithm: 'sha256' as const, hex: digest } };
  }

  it('a symlink planted at the partial (temp) path is not followed', async () => {
    const c = await plantedCase();
    await mkdir(join(c.repo.stateDir, 'partial'), { recursive: true });
    await symlink(c.victim, c.repo.partial(c.digest));
    await pull({ repo: 'evil/repo', cacheDir: c.cacheDir, endpoint: c.server.origin, env: {} }).catch(() => undefined);
    expect(await readFile(c.victim, 'utf8')).toBe('precious');
    // If the pull went through, what it stored is the real file.
    expect(isClean(await auditCache(c.cacheDir))).toBe(true);
  });

  it('a symlink planted at the blob path is neither overwritten nor served as the file', async () => {
    const c = await plantedCase();
    await mkdir(c.repo.blobsDir, { recursive: true });
    await symlink(c.victim, c.repo.blob(c.digest));
    const outcome = await pull({ repo: 'evil/repo', cacheDir: c.cacheDir, endpoint: c.server.origin, env: {} }).then(
      (r) => r.path,
      (e: unknown) => e,
    );
    expect(await readFile(c.victim, 'utf8')).toBe('precious');
    if (typeof outcome === 'string') {
      // Success is only acceptable if the snapshot file holds the real bytes.
      expect((await readFile(join(outcome, 'w.bin'))).equals(c.content), 'same bytes').toBe(true);
    }
  });

  it('a symlink planted at the blob path to a file with the right bytes is not taken as the blob', async () => {
    const c = await plantedCase();
    // Outside the cache, where anyone could change it later: the cache must hold its own copy.
    await writeFile(c.victim, c.content);
    await mkdir(c.repo.blobsDir, { recursive: true });
    await symlink(c.victim, c.repo.blob(c.digest));
    const result = await pull({ repo: 'evil/repo', cacheDir: c.cacheDir, endpoint: c.server.origin, env: {} });
    expect((await lstat(c.repo.blob(c.digest))).isFile(), 'blob is a regular file').toBe(true);
    expect((await readFile(join(result.path, 'w.bin'))).equals(c.content), 'same bytes').toBe(true);
    expect((await readFile(c.victim)).equals(c.content), 'target untouched').toBe(true);
    expect(isClean(await auditCache(c.cacheDir))).toBe(true);
  });

  it('a full-size temp file with wrong bytes and no journal is never committed as the blob', async () => {
    // What a small (journal-less, preallocated) download killed mid-write leaves behind.
    const c = await plantedCase();
    await mkdir(join(c.repo.stateDir, 'partial'), { recursive: true });
    await writeFile(c.repo.partial(c.digest), Buffer.alloc(c.content.length, 0));
    const result = await pull({ repo: 'evil/repo', cacheDir: c.cacheDir, endpoint: c.server.origin, env: {} });
    expect((await readFile(join(result.path, 'w.bin'))).equals(c.content), 'same bytes').toBe(true);
    expect(isClean(await auditCache(c.cacheDir))).toBe(true);
  });

  it('a regular file with wrong bytes planted at the blob path is never linked as the file', async () => {
    const c = await plantedCase();
    await mkdir(c.repo.blobsDir, { recursive: true });
    await writeFile(c.repo.blob(c.digest), Buffer.alloc(c.content.length, 0));
    const outcome = await pull({ repo: 'evil/repo', cacheDir: c.cacheDir, endpoint: c.server.origin, env: {} }).then(
      (r) => r.path,
      (e: unknown) => e,
    );
    if (typeof outcome === 'string') expect((await readFile(join(outcome, 'w.bin'))).equals(c.content), 'same bytes').toBe(true);
    else expect(isModelfetchError(outcome)).toBe(true);
  });
});
