import { createHash, randomBytes } from 'node:crypto';
import { chmod, readFile, rm, symlink, mkdir, writeFile, readdir, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RepoPaths, XET_CHUNK_CACHE_PARTS } from '../../src/cache/layout.js';
import { gcCache } from '../../src/cache/gc.js';
import { verifyCache } from '../../src/cache/verify.js';
import { pull, type PullOptions } from '../../src/pull/index.js';
import { ChunkCache } from '../../src/cache/xet-chunk-cache.js';
import { runCli } from '../support/cli.js';
import { startFixtureCas, type FixtureCas } from '../support/fixture-cas.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

/** `pull` choosing Xet: detection (listing and resolve headers), the switches, fallback, and the dedup chunk cache. */

const TOKEN = 'hf_xetpulltoken000001';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Revision B: A with 3 small edits spread through the file (most chunks unchanged). */
function edited(a: Buffer): Buffer {
  const b = Buffer.from(a);
  for (const at of [0.2, 0.5, 0.8]) b.fill(0x5a, Math.floor(a.length * at), Math.floor(a.length * at) + 64);
  return b;
}

const contentA = randomBytes(3 * 1024 * 1024 + 123);
const contentB = edited(contentA);
const plainFile = { path: 'config.json', content: '{"model_type":"xet"}' };

let cas: FixtureCas;
let hub: FixtureHub;
let cacheDir: string;

beforeAll(async () => {
  cas = await startFixtureCas({ chunksPerXorb: 8 });
  hub = await startFixtureHub({
    cas,
    repos: [
      { repoId: 'org/xet', gatedToken: TOKEN, branches: { main: [plainFile, { path: 'w.bin', content: contentA, xet: true }], v2: [plainFile, { path: 'w.bin', content: contentB, xet: true }] } },
      { repoId: 'org/other', files: [{ path: 'copy.bin', content: contentB, xet: true }] },
      { repoId: 'org/shards', files: [1, 2, 3].map((i) => ({ path: `shard-${i}.bin`, content: randomBytes(200 * 1024 + i), xet: true })) },
    ],
  });
});
afterAll(async () => {
  await hub.close();
  await cas.close();
});
beforeEach(async () => {
  cacheDir = await testTempDir('mf-pull-xet-');
  hub.resetLogs();
  cas.server.resetLog();
  cas.clearFaults();
});

function options(extra: Partial<PullOptions> & { repo: string }): PullOptions {
  return { cacheDir, endpoint: hub.endpoint, env: {}, token: TOKEN, transfer: { maxAttempts: 2 }, clock: { now: () => Date.now(), sleep: async () => undefined }, onXetFallback: () => undefined, ...extra };
}

const blobPathOf = (repoId: string, data: Buffer) => new RepoPaths(cacheDir, 'model', repoId).blob({ algorithm: 'sha256', hex: sha256(data) });
const blob = (repoId: string, data: Buffer) => readFile(blobPathOf(repoId, data));
const cdnBytes = () => hub.cdn.requests.reduce((sum, r) => sum + r.bodyBytes, 0);

describe('pull through Xet', () => {
  it('takes a file the listing marks with xetHash from the CAS, with the Hub token going to the Hub only', async () => {
    const result = await pull(options({ repo: 'org/xet' }));
    expect(sha256(await blob('org/xet', contentA))).toBe(sha256(contentA));
    expect(result.bytesBySource.xet).toBeGreaterThan(0);
    // No bridge download of the Xet file: the CDN served nothing, and the resolve URL of w.bin was not even asked.
    expect(cdnBytes()).toBe(0);
    expect(hub.hub.requests.some((r) => r.url.includes('/resolve/') && r.url.endsWith('/w.bin'))).toBe(false);
    const tokenCalls = hub.hub.requests.filter((r) => r.url.includes('/xet-read-token/'));
    expect(tokenCalls.length).toBeGreaterThan(0);
    expect(tokenCalls.every((r) => r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(cas.server.requests.some((r) => JSON.stringify(r.headers).includes(TOKEN))).toBe(false);
  });

  it('asks the Hub for one Xet token per pull, not one per file, and makes no resolve request for listed Xet files', async () => {
    const result = await pull(options({ repo: 'org/shards' }));
    expect(result.bytesBySource.xet).toBeGreaterThan(0);
    expect(result.bytesBySource.plain).toBe(0);
    const api = hub.hub.requests.filter((r) => r.url.startsWith('/api/'));
    expect(api.filter((r) => r.url.includes('/xet-read-token/'))).toHaveLength(1);
    expect(api).toHaveLength(3); // revision, one listing page, one token
    expect(hub.hub.requests.filter((r) => r.url.includes('/resolve/'))).toEqual([]);
  });

  it('detects Xet from the resolve answer (X-Xet-Hash + xet-auth link) without following its redirect', async () => {
    const target = hub.file('org/xet', 'w.bin');
    const listing = [{ path: 'w.bin', size: target.size, digest: { algorithm: 'sha256' as const, hex: target.sha256 } }];
    const result = await pull(options({ repo: 'org/xet', revision: hub.commitOf('org/xet'), listing }));
    expect(sha256(await blob('org/xet', contentA))).toBe(target.sha256);
    expect(result.bytesBySource).toEqual({ xet: result.bytesFetched, plain: 0 });
    expect(hub.hub.requests.filter((r) => r.url.endsWith('/w.bin')).map((r) => [r.method, r.status])).toEqual([['HEAD', 302]]);
    expect(hub.cdn.requests).toEqual([]);
  });

  it.each([
    ['--no-xet', { xet: false }],
    ['HF_HUB_DISABLE_XET=1', { env: { HF_HUB_DISABLE_XET: '1' } }],
  ] as const)('keeps the plain path with %s', async (_, extra) => {
    const result = await pull(options({ repo: 'org/xet', ...extra }));
    expect(sha256(await blob('org/xet', contentA))).toBe(sha256(contentA));
    expect(cas.server.requests).toEqual([]);
    expect(cdnBytes()).toBeGreaterThanOrEqual(contentA.length);
    expect(result.bytesBySource.xet).toBe(0);
  });

  it('falls back to the plain path, with one line on stderr, when the CAS fails for good', async () => {
    cas.injectFault('xorb', { status: 404 }, 10_000);
    const run = await runCli(['pull', 'org/xet', '--cache-dir', cacheDir, '--endpoint', hub.endpoint, '--json'], { HF_TOKEN: TOKEN, TMPDIR: tmpdir() });
    cas.clearFaults();
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as { ok: boolean; bytesBySource: { xet: number; plain: number } };
    expect(result.ok).toBe(true);
    expect(result.bytesBySource.plain).toBeGreaterThanOrEqual(contentA.length);
    expect(sha256(await blob('org/xet', contentA))).toBe(sha256(contentA));
    const lines = run.stderr.split('\n').filter((line) => line.includes('Xet download of w.bin failed'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('through the plain path');
    expect(run.stderr).not.toContain(TOKEN);
  });

  it('falls back when the CAS never gives a reconstruction', async () => {
    const lines: string[] = [];
    cas.injectFault('reconstruction', { status: 503 }, 10_000);
    const result = await pull(options({ repo: 'org/xet', onXetFallback: (line) => lines.push(line) }));
    cas.clearFaults();
    expect(sha256(await blob('org/xet', contentA))).toBe(sha256(contentA));
    expect(lines).toHaveLength(1);
    expect(result.bytesBySource.plain).toBeGreaterThanOrEqual(contentA.length);
  });
});

describe('the dedup chunk cache', () => {
  const xorbBytes = () => cas.xorbBytesServed();

  it('takes the unchanged chunks of a new revision, and of another repo, from disk', async () => {
    const first = await pull(options({ repo: 'org/xet' }));
    const firstBytes = xorbBytes();
    expect(first.bytesDeduplicated).toBeLessThan(contentA.length / 10);
    cas.server.resetLog();
    const before = xorbBytes();
    const second = await pull(options({ repo: 'org/xet', revision: 'v2' }));
    const secondBytes = xorbBytes() - before;
    expect(sha256(await blob('org/xet', contentB))).toBe(sha256(contentB));
    // Three 64-byte edits touch a few chunks: far less than the file comes over the network.
    expect(secondBytes).toBeLessThan(firstBytes / 4);
    expect(second.bytesDeduplicated).toBeGreaterThan(contentB.length * 0.75);
    const third = await pull(options({ repo: 'org/other' }));
    expect(sha256(await readFile(new RepoPaths(cacheDir, 'model', 'org/other').blob({ algorithm: 'sha256', hex: sha256(contentB) })))).toBe(sha256(contentB));
    expect(third.bytesBySource.xet).toBe(0);
    expect(third.bytesDeduplicated).toBe(contentB.length);
  });

  it('copies no chunk: a first pull writes each byte once, and the index points into the blob', async () => {
    await pull(options({ repo: 'org/xet' }));
    const entries = await new ChunkCache(cacheDir, XET_CHUNK_CACHE_PARTS).entries();
    expect(entries.length).toBeGreaterThan(0);
    // Per chunk of ~64 KiB a length and a hash: the index is a small fraction of the file.
    expect(entries.reduce((sum, e) => sum + e.size, 0)).toBeLessThan(contentA.length / 50);
    const blobPath = blobPathOf('org/xet', contentA).slice(cacheDir.length + 1);
    for (const entry of entries) expect((await readFile(entry.path)).includes(Buffer.from(blobPath))).toBe(true);
  });

  it('takes no chunk from a blob changed since: the entry is dropped, the chunks fetched again, the file still right', async () => {
    await pull(options({ repo: 'org/xet' }));
    const cache = new ChunkCache(cacheDir, XET_CHUNK_CACHE_PARTS);
    const entries = await cache.entries();
    // Same size, other bytes: only the chunk hashes can tell.
    await chmod(blobPathOf('org/xet', contentA), 0o644);
    await writeFile(blobPathOf('org/xet', contentA), Buffer.alloc(contentA.length, 0x33));
    const result = await pull(options({ repo: 'org/xet', revision: 'v2' }));
    expect(sha256(await blob('org/xet', contentB))).toBe(sha256(contentB));
    expect(result.bytesBySource.xet).toBeGreaterThan(contentB.length / 2);
    const left = (await cache.entries()).map((e) => e.path);
    for (const entry of entries) expect(left).not.toContain(entry.path);
  });

  it('drops the entries of a removed blob', async () => {
    await pull(options({ repo: 'org/xet' }));
    const cache = new ChunkCache(cacheDir, XET_CHUNK_CACHE_PARTS);
    const entries = await cache.entries();
    expect(entries.length).toBeGreaterThan(0);
    await rm(blobPathOf('org/xet', contentA));
    const report = await gcCache({ cacheDir, env: {}, unusedForMs: 86_400_000, isInUse: async () => true });
    expect(report.xetChunks.entries).toBe(entries.length);
    expect(await cache.entries()).toEqual([]);
  });

  it('is limited by MODELFETCH_XET_CACHE_SIZE (0 keeps nothing)', async () => {
    await pull(options({ repo: 'org/xet', env: { MODELFETCH_XET_CACHE_SIZE: '0' } }));
    expect(await new ChunkCache(cacheDir, XET_CHUNK_CACHE_PARTS).entries()).toEqual([]);
    await pull(options({ repo: 'org/xet', revision: 'v2', env: { MODELFETCH_XET_CACHE_SIZE: '2K' } }));
    const entries = await new ChunkCache(cacheDir, XET_CHUNK_CACHE_PARTS).entries();
    expect(entries.length).toBeGreaterThan(0);
    expect(entries.reduce((sum, e) => sum + e.size, 0)).toBeLessThanOrEqual(2048);
  });

  it('is re-hashed by verify, which drops a bad entry, and trimmed by gc', async () => {
    await pull(options({ repo: 'org/xet' }));
    const cache = new ChunkCache(cacheDir, XET_CHUNK_CACHE_PARTS);
    const entries = await cache.entries();
    const victim = entries[0]!;
    const data = await readFile(victim.path);
    // The last byte is part of the last chunk's hash: the entry parses, its chunk does not match.
    data[data.length - 1] = (data[data.length - 1] ?? 0) ^ 0x01;
    await writeFile(victim.path, data);
    const verified = await verifyCache({ cacheDir, env: {}, workers: 1 });
    expect(verified.xetChunks).toEqual({ entries: entries.length, bad: [victim.path] });
    expect((await cache.entries()).map((e) => e.path)).not.toContain(victim.path);
    const dry = await gcCache({ cacheDir, env: {}, unusedForMs: 1, now: Date.now() + 60_000, dryRun: true, isInUse: async () => true });
    expect(dry.xetChunks.entries).toBe(entries.length - 1);
    expect(await cache.entries()).toHaveLength(entries.length - 1);
    const capped = await gcCache({ cacheDir, env: { MODELFETCH_XET_CACHE_SIZE: '0' }, unusedForMs: 86_400_000, isInUse: async () => true });
    expect(capped.xetChunks.entries).toBe(entries.length - 1);
    expect(await cache.entries()).toEqual([]);
  });

  it('removes the part files a killed run left once they are an hour old, and none that may still be written', async () => {
    await pull(options({ repo: 'org/xet' }));
    const [entry] = await new ChunkCache(cacheDir, XET_CHUNK_CACHE_PARTS).entries();
    const folder = dirname(entry!.path);
    const killed = '0-1-aaaaaaaaaaaaaaaa.ref.aaaaaaaaaaaa.part';
    const live = '0-1-bbbbbbbbbbbbbbbb.ref.bbbbbbbbbbbb.part';
    await writeFile(join(folder, killed), 'left by kill -9');
    await writeFile(join(folder, live), 'being written');
    // An entry of the earlier format, which copied the chunks: it goes at once.
    await writeFile(join(folder, '0-1.chunks'), 'a copy of a chunk');
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    await utimes(join(folder, killed), twoHoursAgo, twoHoursAgo);
    await gcCache({ cacheDir, env: {}, unusedForMs: 86_400_000, dryRun: true, isInUse: async () => true });
    expect(await readdir(folder)).toContain(killed);
    await gcCache({ cacheDir, env: {}, unusedForMs: 86_400_000, isInUse: async () => true });
    const left = await readdir(folder);
    expect(left).not.toContain(killed);
    expect(left).not.toContain('0-1.chunks');
    expect(left).toContain(live);
    expect(left).toContain(entry!.path.split('/').pop());
  });

  it('never writes index entries through a symlinked xorb folder inside the chunk index', async () => {
    const elsewhere = await testTempDir('mf-xet-elsewhere-');
    try {
      const xorbs = [...new Set(cas.files.get(hub.file('org/xet', 'w.bin').xetHash ?? '')?.terms.map((t) => t.xorbHash) ?? [])];
      expect(xorbs.length).toBeGreaterThan(1);
      await mkdir(join(cacheDir, ...XET_CHUNK_CACHE_PARTS), { recursive: true });
      await symlink(elsewhere, join(cacheDir, ...XET_CHUNK_CACHE_PARTS, xorbs[0] as string));
      await pull(options({ repo: 'org/xet' }));
      expect(sha256(await blob('org/xet', contentA))).toBe(sha256(contentA));
      expect(await readdir(elsewhere)).toEqual([]);
      // The other xorbs are indexed as usual.
      expect((await readdir(join(cacheDir, ...XET_CHUNK_CACHE_PARTS, xorbs[1] as string))).some((name) => name.endsWith('.ref'))).toBe(true);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('never follows a symlinked chunk cache folder', async () => {
    const elsewhere = await testTempDir('mf-xet-elsewhere-');
    await mkdir(join(cacheDir, '.locks', 'modelfetch'), { recursive: true });
    await symlink(elsewhere, join(cacheDir, ...XET_CHUNK_CACHE_PARTS));
    await pull(options({ repo: 'org/xet' }));
    expect(sha256(await blob('org/xet', contentA))).toBe(sha256(contentA));
    expect(await readdir(elsewhere)).toEqual([]);
  });
});
