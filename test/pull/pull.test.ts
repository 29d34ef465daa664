import { spawn } from 'node:child_process';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { readRepoTreeListing } from '../../src/cache/tree-listing.js';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull, type PullOptions } from '../../src/pull/index.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { startFixtureServer } from '../support/fixture-server.js';
import { testTempDir } from '../support/temp.js';

/** `pull` end to end against the loopback hub: what lands on disk, and what crossed the wire. */

const TOKEN = 'hf_fixturegatedtoken0001';
const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'run.ts');
const small = (i: number) => ({ path: `small/file-${String(i).padStart(2, '0')}.json`, content: JSON.stringify({ i }) });

let hub: FixtureHub;
let cacheDir: string;

beforeAll(async () => {
  hub = await startFixtureHub({
    pageSize: 7,
    repos: [
      {
        repoId: 'org/model',
        branches: {
          main: [
            { path: 'config.json', content: '{"model_type":"gpt2"}' },
            { path: 'model.safetensors', size: 3 * 1024 * 1024 + 5, lfs: true },
            { path: 'nested/deep/er/tokenizer.json', content: '{"tok":true}' },
            { path: 'copy-of-config.json', content: '{"model_type":"gpt2"}' },
            ...Array.from({ length: 12 }, (_, i) => small(i)),
          ],
          v2: [{ path: 'config.json', content: '{"model_type":"gpt2","v":2}' }],
        },
      },
      { repoId: 'org/gated', gatedToken: TOKEN, files: [{ path: 'weights.bin', size: 1536 * 1024, lfs: true }, { path: 'config.json', content: '{}' }] },
      { repoId: 'org/data', repoType: 'dataset', files: [{ path: 'train/part-0.csv', content: 'a,b\n1,2\n' }] },
    ],
  });
});
afterAll(() => hub.close());

beforeEach(async () => {
  cacheDir = await testTempDir('mf-pull-');
  hub.resetLogs();
  hub.hub.clearFaults();
  hub.cdn.clearFaults();
});

function options(extra: Partial<PullOptions> & { repo: string }): PullOptions {
  return { cacheDir, endpoint: hub.endpoint, env: {}, transfer: { segmentThreshold: 1024 * 1024, minSegmentSize: 256 * 1024 }, ...extra };
}

const servedBytes = (requests: Array<{ bodyBytes: number }>) => requests.reduce((sum, r) => sum + r.bodyBytes, 0);
const resolveGets = () => hub.hub.requests.filter((r) => r.method === 'GET' && r.url.includes('/resolve/'));

describe('pull', () => {
  it('puts a whole repo into the cache in the huggingface_hub layout, in one pass', async () => {
    const result = await pull(options({ repo: 'org/model' }));
    const commit = hub.commitOf('org/model');
    const repo = new RepoPaths(cacheDir, 'model', 'org/model');
    expect(result).toMatchObject({ commit, path: repo.snapshotDir(commit), files: 16, cacheHits: 0, downloaded: 16 });
    for (const path of ['config.json', 'model.safetensors', 'nested/deep/er/tokenizer.json', 'small/file-03.json']) {
      const file = hub.file('org/model', path);
      const digest = file.lfs ? file.sha256 : file.gitSha1;
      const entry = join(result.path, path);
      expect((await lstat(entry)).isSymbolicLink()).toBe(true);
      expect(await readlink(entry)).toBe(`${'../'.repeat(path.split('/').length + 1)}blobs/${digest}`);
      expect((await readFile(entry)).length).toBe(file.size);
    }
    expect(await readFile(repo.ref('main'), 'utf8')).toBe(commit);
    expect((await readRepoTreeListing(repo, commit))?.length).toBe(16);
    // Identical content is one blob, fetched once.
    expect((await readdir(repo.blobsDir)).length).toBe(15);
    expect(resolveGets().filter((r) => r.url.endsWith('/config.json')).length).toBeGreaterThan(0);
    expect(resolveGets().filter((r) => r.url.endsWith('/copy-of-config.json'))).toHaveLength(0);
    // The large file was segmented over several requests to the CDN, and fetched once.
    const size = hub.file('org/model', 'model.safetensors').size;
    const cdnBytes = servedBytes(hub.cdn.requests);
    expect(cdnBytes).toBeGreaterThanOrEqual(size);
    expect(cdnBytes).toBeLessThan(2 * size);
    expect(hub.cdn.requests.length).toBeGreaterThan(2);
    // Every file came from the commit, never from the branch.
    for (const r of resolveGets()) expect(r.url).toContain(`/resolve/${commit}/`);
    expect(result.bytesFetched).toBeGreaterThanOrEqual(size);
  });

  it('a second pull is a cache hit: no file transfer at all', async () => {
    await pull(options({ repo: 'org/model' }));
    hub.resetLogs();
    const again = await pull(options({ repo: 'org/model' }));
    expect(again).toMatchObject({ files: 16, cacheHits: 16, downloaded: 0, bytesFetched: 0 });
    expect(hub.cdn.requests).toHaveLength(0);
    expect(hub.hub.requests.map((r) => r.url)).toEqual(['/api/models/org/model/revision/main']);
    hub.resetLogs();
    await pull(options({ repo: `org/model@${again.commit}` }));
    await pull(options({ repo: 'org/model', offline: true }));
    expect(hub.requests()).toHaveLength(0);
  });

  it('selects files by list, include and exclude; a missing file is recorded in .no_exist', async () => {
    const listed = await pull(options({ repo: 'org/model', files: ['config.json', 'nested/deep/er/tokenizer.json'] }));
    expect(listed.files).toBe(2);
    expect(hub.cdn.requests).toHaveLength(0);
    const globbed = await pull(options({ repo: 'org/model', include: ['*.json'], exclude: ['small/'] }));
    // config.json, copy-of-config.json (same blob as config.json: no transfer) and the tokenizer.
    expect(globbed).toMatchObject({ files: 3, cacheHits: 3, downloaded: 0 });
    expect(hub.cdn.requests).toHaveLength(0);
    await expect(readdir(join(globbed.path, 'small'))).rejects.toThrow();
    const error = await pull(options({ repo: 'org/model', files: ['config.json', 'nope.bin'] })).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_NOT_FOUND')).toBe(true);
    const repo = new RepoPaths(cacheDir, 'model', 'org/model');
    expect((await lstat(repo.noExist(listed.commit, 'nope.bin'))).isFile()).toBe(true);
  });

  it('progress events name the repo file they are about', async () => {
    const events: Array<{ repoId: string; path: string; totalBytes: number }> = [];
    await pull(options({ repo: 'org/model', files: ['config.json', 'model.safetensors'], onProgress: ({ repoId, path, totalBytes }) => void events.push({ repoId, path, totalBytes }) }));
    expect(new Set(events.map((e) => e.path))).toEqual(new Set(['config.json', 'model.safetensors']));
    expect(new Set(events.map((e) => e.repoId))).toEqual(new Set(['org/model']));
    // Each event's path is the file of its job: sizes agree wherever the engine knows the size.
    for (const event of events.filter((e) => e.totalBytes > 0)) expect(event.totalBytes).toBe(hub.file('org/model', event.path).size);
  });

  it('after a failed batch, a rerun fetches only what failed: finished files are kept', async () => {
    hub.hub.addFault({ match: (req) => (req.url ?? '').endsWith('/small/file-00.json'), fault: { status: 404 } });
    const failed = await pull(options({ repo: 'org/model' })).catch((e: unknown) => e);
    expect(isModelfetchError(failed, 'ERR_NOT_FOUND')).toBe(true);
    const size = hub.file('org/model', 'model.safetensors').size;
    expect(servedBytes(hub.cdn.requests)).toBeGreaterThanOrEqual(size);
    hub.hub.clearFaults();
    hub.resetLogs();
    const rerun = await pull(options({ repo: 'org/model' }));
    expect(rerun.files).toBe(16);
    expect(hub.cdn.requests).toHaveLength(0);
    expect(new Set(resolveGets().map((r) => r.url.split('/').slice(-2).join('/')))).toEqual(new Set(['small/file-00.json']));
    expect((await readFile(join(rerun.path, 'model.safetensors'))).length).toBe(size);
  });

  it('follows a relative LFS redirect on the hub itself', async () => {
    const relative = await startFixtureHub({ lfsRedirect: 'relative', repos: [{ repoId: 'org/rel', files: [{ path: 'w.bin', size: 1024 * 1024 + 1, lfs: true }] }] });
    try {
      const result = await pull({ ...options({ repo: 'org/rel' }), endpoint: relative.endpoint });
      expect(result.downloaded).toBe(1);
      expect((await readFile(join(result.path, 'w.bin'))).length).toBe(1024 * 1024 + 1);
      expect(relative.hub.requests.some((r) => r.url.startsWith('/cdn-relative/'))).toBe(true);
    } finally {
      await relative.close();
    }
  });

  it('pulls other branches and datasets', async () => {
    const v2 = await pull(options({ repo: 'org/model@v2' }));
    expect(v2.commit).toBe(hub.commitOf('org/model', 'v2'));
    expect(await readFile(join(v2.path, 'config.json'), 'utf8')).toContain('"v":2');
    const data = await pull(options({ repo: 'org/data', repoType: 'dataset' }));
    expect(data.path).toBe(new RepoPaths(cacheDir, 'dataset', 'org/data').snapshotDir(hub.commitOf('org/data', 'main', 'dataset')));
    expect(await readFile(join(data.path, 'train/part-0.csv'), 'utf8')).toBe('a,b\n1,2\n');
  });

  it('gated repos: refused without a token, fetched with one, and the token never reaches the CDN', async () => {
    const denied = await runCli(['pull', 'org/gated', '--cache-dir', cacheDir, '--endpoint', hub.endpoint]);
    expect(denied.code).toBe(5);
    expect(denied.stderr).toContain('ERR_GATED');
    expect(denied.stderr).toContain(`${hub.endpoint}/org/gated`);
    expect(await readdir(cacheDir)).toEqual([]);

    const ok = await runCli(['pull', 'org/gated', '--cache-dir', cacheDir, '--json'], { HF_ENDPOINT: hub.endpoint, HF_TOKEN: TOKEN });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, files: 2, downloaded: 2 });
    expect(ok.stdout + ok.stderr).not.toContain(TOKEN);
    const hubFileRequests = hub.hub.requests.filter((r) => r.url.includes('/resolve/') && r.status !== 401);
    expect(hubFileRequests.length).toBeGreaterThan(0);
    for (const r of hubFileRequests) expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(hub.cdn.requests.length).toBeGreaterThan(0);
    for (const r of hub.cdn.requests) expect(r.headers.authorization).toBeUndefined();
  });

  it('prints the snapshot path on stdout and one JSON object with --json', async () => {
    const quiet = await runCli(['pull', 'org/model', 'config.json', '--quiet'], { HF_HUB_CACHE: cacheDir, HF_ENDPOINT: hub.endpoint });
    expect(quiet.code).toBe(0);
    expect(quiet.stdout).toBe(`${new RepoPaths(cacheDir, 'model', 'org/model').snapshotDir(hub.commitOf('org/model'))}\n`);
    expect(quiet.stderr).toBe('');
    const json = await runCli(['pull', 'org/model', '--include', 'small/*', '--json'], { HF_HUB_CACHE: cacheDir, HF_ENDPOINT: hub.endpoint });
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(parsed).toMatchObject({ ok: true, commit: hub.commitOf('org/model'), files: 12, cacheHits: 0, downloaded: 12 });
    expect(typeof parsed.elapsedMs).toBe('number');
    expect(typeof parsed.bytesFetched).toBe('number');
  });
});

describe('a pull killed with SIGKILL', () => {
  it('leaves a lock of a dead process, which the rerun takes over at once and completes', async () => {
    hub.cdn.addFault({ fault: { throttleBytesPerSec: 512 * 1024 } });
    const repo = new RepoPaths(cacheDir, 'model', 'org/model');
    const lfs = hub.file('org/model', 'model.safetensors');
    const digest = { algorithm: 'sha256' as const, hex: lfs.sha256 };
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'pull', 'org/model', 'model.safetensors', '--quiet'], {
      env: { PATH: process.env.PATH, HF_HUB_CACHE: cacheDir, HF_ENDPOINT: hub.endpoint },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // Wait until the journal vouches for a finished range, then kill without warning.
    for (let i = 0; i < 600; i++) {
      const journal = await stat(`${repo.partial(digest)}.journal`).catch(() => undefined);
      if (journal && journal.size > 100) break; // the header (87 bytes) and at least one finished range
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    child.kill('SIGKILL');
    await exited;
    expect((await stat(repo.blobLock(digest))).isFile()).toBe(true);
    hub.cdn.clearFaults();
    const rerun = await pull(options({ repo: 'org/model', files: ['model.safetensors'] }));
    expect(rerun.downloaded).toBe(1);
    expect((await readFile(join(rerun.path, 'model.safetensors'))).length).toBe(lfs.size);
    await expect(stat(repo.blobLock(digest))).rejects.toThrow();
  });
});

describe('hostile hubs', () => {
  const commit = 'e'.repeat(40);
  it.each([
    ['a path escaping the repo', { type: 'file', path: '../escape.txt', oid: 'b'.repeat(40), size: 3 }, 'ERR_UNSAFE_PATH'],
    ['a malformed digest', { type: 'file', path: 'w.bin', oid: 'b'.repeat(40), size: 3, lfs: { oid: '../../../etc/passwd', size: 3 } }, 'ERR_INVALID_DIGEST'],
  ])('refuses %s and writes nothing', async (_name, entry, code) => {
    const evil = await startFixtureServer();
    evil.route('/api/models/org/evil/tree/', (_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify([{ type: 'file', path: 'fine.txt', oid: 'c'.repeat(40), size: 2 }, entry]));
    });
    try {
      const run = await runCli(['pull', `org/evil@${commit}`, '--cache-dir', cacheDir, '--endpoint', evil.origin]);
      expect(run.code).toBe(9);
      expect(run.stderr).toContain(code);
      expect(await readdir(cacheDir)).toEqual([]);
      expect(evil.requests.every((r) => r.url.startsWith('/api/'))).toBe(true);
    } finally {
      await evil.close();
    }
  });
});

describe('two pulls of the same repo at once', () => {
  it('in one process: the second waits on the blob locks and uses what the first fetched', async () => {
    hub.cdn.addFault({ fault: { throttleBytesPerSec: 8 * 1024 * 1024 } });
    const [a, b] = await Promise.all([pull(options({ repo: 'org/model' })), pull(options({ repo: 'org/model' }))]);
    expect(a.path).toBe(b.path);
    const size = hub.file('org/model', 'model.safetensors').size;
    expect(servedBytes(hub.cdn.requests)).toBeLessThan(2 * size);
    // Between them the two pulls fetched each of the 15 blobs once.
    expect(a.downloaded + b.downloaded).toBeGreaterThanOrEqual(16);
    expect((await readFile(join(a.path, 'model.safetensors'))).length).toBe(size);
  });

  it('in two processes: both succeed and every blob crosses the wire once', async () => {
    // Slow the CDN so the two pulls overlap.
    hub.cdn.addFault({ fault: { throttleBytesPerSec: 4 * 1024 * 1024 } });
    const env = { HF_HUB_CACHE: cacheDir, HF_ENDPOINT: hub.endpoint };
    const [a, b] = await Promise.all([runCli(['pull', 'org/model', '--quiet'], env), runCli(['pull', 'org/model', '--quiet'], env)]);
    expect([a.code, b.code, a.stderr, b.stderr]).toEqual([0, 0, '', '']);
    expect(a.stdout).toBe(b.stdout);
    // Fetched twice would mean at least twice the bytes; segment probes and splits cost far less.
    const lfs = hub.file('org/model', 'model.safetensors');
    expect(servedBytes(hub.cdn.requests)).toBeGreaterThanOrEqual(lfs.size);
    expect(servedBytes(hub.cdn.requests)).toBeLessThan(2 * lfs.size);
    for (let i = 0; i < 12; i++) {
      const file = hub.file('org/model', small(i).path);
      const bytes = servedBytes(resolveGets().filter((r) => r.url.endsWith(`/${file.path}`)));
      expect(bytes).toBeGreaterThanOrEqual(file.size);
      expect(bytes).toBeLessThan(2 * file.size);
    }
    const snapshot = a.stdout.trim();
    expect((await readFile(join(snapshot, 'model.safetensors'))).length).toBe(lfs.size);
  });
});
