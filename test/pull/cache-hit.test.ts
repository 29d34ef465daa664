import { mkdtemp, readFile, readlink, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { pull } from '../../src/pull/index.js';
import { writeTreeListing } from '../../src/cache/tree-listing.js';
import { buildCachedRepo, digestOf, fakeCommit } from '../support/cache-builder.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { runProcess } from '../support/process.js';
import { interopPython, runPython } from '../support/python.js';
import { testTempDir } from '../support/temp.js';

/** Cache hits cost nothing: no transfer, and with a commit (or offline) no request at all. */

const python = interopPython();

describe.skipIf(!python)('a cache written by Python huggingface_hub, read by modelfetch', () => {
  let hub: FixtureHub;
  let cacheDir: string;
  const files = [
    { path: 'config.json', content: '{"model_type":"gpt2","n_layer":2}' },
    { path: 'model.safetensors', size: 2 * 1024 * 1024 + 17, lfs: true },
    { path: 'nested/deeper/vocab.txt', content: 'a\nb\nc\n' },
  ];

  beforeAll(async () => {
    hub = await startFixtureHub({ repos: [{ repoId: 'org/tiny', files }], pageSize: 2 });
    cacheDir = await mkdtemp(join(tmpdir(), 'mf-pycache-'));
    await runPython(python!, 'from huggingface_hub import snapshot_download; print(snapshot_download("org/tiny"))', { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cacheDir });
  });
  afterAll(async () => {
    await hub.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  it('pulls by branch with one revision request and no transfer', async () => {
    hub.resetLogs();
    const result = await pull({ repo: 'org/tiny', cacheDir, endpoint: hub.endpoint, env: {} });
    const commit = hub.commitOf('org/tiny');
    expect(result.commit).toBe(commit);
    expect(result.path).toBe(new RepoPaths(cacheDir, 'model', 'org/tiny').snapshotDir(commit));
    expect(result).toMatchObject({ files: 3, cacheHits: 3, downloaded: 0, bytesFetched: 0 });
    expect(hub.requests().map((r) => r.url)).toEqual([`/api/models/org/tiny/revision/main`]);
    expect(await readFile(join(result.path, 'config.json'), 'utf8')).toBe(files[0]!.content);
  });

  it('pulls by commit with no request at all, and offline with none either', async () => {
    hub.resetLogs();
    const commit = hub.commitOf('org/tiny');
    const byCommit = await pull({ repo: `org/tiny@${commit}`, cacheDir, endpoint: hub.endpoint, env: {} });
    expect(byCommit.cacheHits).toBe(3);
    const offline = await pull({ repo: 'org/tiny', cacheDir, endpoint: hub.endpoint, env: { HF_HUB_OFFLINE: '1' } });
    expect(offline.commit).toBe(commit);
    expect(hub.requests()).toHaveLength(0);
  });

  it('the CLI prints the snapshot path; --check exits 0 when complete and 8 when a blob is gone', async () => {
    hub.resetLogs();
    const env = { HF_HUB_CACHE: cacheDir, HF_ENDPOINT: hub.endpoint };
    const ok = await runCli(['pull', 'org/tiny', '--quiet'], env);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout.trim()).toBe(new RepoPaths(cacheDir, 'model', 'org/tiny').snapshotDir(hub.commitOf('org/tiny')));
    const check = await runCli(['pull', 'org/tiny', '--check', '--offline', '--json'], env);
    expect(check.code).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ ok: true, files: 3, cacheHits: 3, downloaded: 0 });

    const repo = new RepoPaths(cacheDir, 'model', 'org/tiny');
    const link = await readlink(join(repo.snapshotDir(hub.commitOf('org/tiny')), 'model.safetensors'));
    await unlink(join(repo.snapshotDir(hub.commitOf('org/tiny')), link));
    const incomplete = await runCli(['pull', 'org/tiny', '--check'], env);
    expect(incomplete.code).toBe(8);
    expect(incomplete.stderr).toContain('ERR_INCOMPLETE');
    expect(incomplete.stderr).toContain('model.safetensors');
    expect(incomplete.stdout).toBe('');
    // --check resolved the branch but transferred nothing.
    expect(hub.cdn.requests).toHaveLength(0);
    expect(hub.hub.requests.filter((r) => r.url.includes('/resolve/'))).toHaveLength(0);
  });
});

describe('a cache-hit pull stays lean', () => {
  it.each([[[] as string[]], [['--swarm', 'http://127.0.0.1:9']]])('loads neither undici, the transfer engine, the BitTorrent engine nor the server (%j)', async (extra: string[]) => {
    const dir = await testTempDir('mf-lean-');
    const commit = fakeCommit('lean');
    const files = Array.from({ length: 20 }, (_, i) => ({ path: `f${i}.json`, content: Buffer.from(`{"i":${i}}`) }));
    const repo = await buildCachedRepo(join(dir, 'hub'), { repoId: 'org/lean', commit, files });
    await writeTreeListing(repo.root, repo.treeListing(commit), files.map((f) => ({ path: f.path, size: f.content.length, digest: digestOf(f) })));
    const trace = join(dir, 'modules.txt');
    const hooks = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'module-trace.mjs');
    // With --swarm naming a mirror nobody listens at: a cache hit pinned to a commit asks nothing of it.
    const run = await runProcess(process.execPath, ['--import', 'tsx', '--import', hooks, join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'run.ts'), 'pull', `org/lean@${commit}`, '--quiet', ...extra], {
      PATH: process.env.PATH,
      HF_HUB_CACHE: join(dir, 'hub'),
      MF_MODULE_TRACE: trace,
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const loaded = await readFile(trace, 'utf8');
    expect(loaded).toContain('/src/pull/index.ts');
    if (extra.length) expect(loaded).toContain('/src/transfer/swarm/session.ts');
    for (const heavy of ['/node_modules/undici/', '/node_modules/prom-client/', '/node_modules/webtorrent/', '/src/transfer/index.ts', '/src/server/', 'picomatch']) expect(loaded).not.toContain(heavy);
  });
});

describe('offline pulls', () => {
  let cacheDir: string;
  beforeAll(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'mf-offline-'));
  });
  afterAll(() => rm(cacheDir, { recursive: true, force: true }));

  it('read an older cache without a tree listing through its snapshot folder', async () => {
    const commit = fakeCommit('old');
    await buildCachedRepo(cacheDir, { repoId: 'org/old', commit, files: [{ path: 'a.json', content: Buffer.from('{}') }, { path: 'w/b.bin', content: Buffer.alloc(5000, 7), lfs: true }] });
    const result = await pull({ repo: 'org/old', cacheDir, offline: true, env: {} });
    expect(result).toMatchObject({ commit, files: 2, cacheHits: 2, downloaded: 0 });
    const only = await pull({ repo: 'org/old', cacheDir, offline: true, env: {}, include: ['*.bin'] });
    expect(only.files).toBe(1);
  });

  it('fail with ERR_OFFLINE (exit 8) and no request when the revision is unknown', async () => {
    const run = await runCli(['pull', 'org/never', '--offline'], { HF_HUB_CACHE: cacheDir, HF_ENDPOINT: 'http://127.0.0.1:9' });
    expect(run.code).toBe(8);
    expect(run.stderr).toContain('ERR_OFFLINE');
  });
});
