import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RepoPaths } from '../../src/cache/layout.js';
import { scanCache } from '../../src/cache/scan.js';
import { verifyCache } from '../../src/cache/verify.js';
import { pull } from '../../src/pull/index.js';
import { runCli } from '../support/cli.js';
import { serveModelScope, sha256Of } from '../support/fixture-modelscope.js';
import { startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { hasTool } from '../support/tools.js';
import { testTempDir } from '../support/temp.js';

const TOKEN = 'ms-fixture-secret-7f3a9c';
const commit = 'c0ffee'.padEnd(40, '1');
const files = [
  { path: 'config.json', content: Buffer.from('{"architectures":["Qwen2ForCausalLM"]}') },
  { path: 'model.safetensors', content: randomBytes(3 * 1024 * 1024 + 17) },
  { path: 'tokenizer/vocab.json', content: randomBytes(40_000) },
  { path: 'copy-of-config.json', content: Buffer.from('{"architectures":["Qwen2ForCausalLM"]}') },
];

describe('ModelScope pulls end to end', () => {
  let server: FixtureServer;
  let modelscope: ReturnType<typeof serveModelScope>;
  beforeEach(async () => {
    server = await startFixtureServer();
    modelscope = serveModelScope(server, [{ repoId: 'Qwen/Qwen2.5-Mini', commit, files, token: TOKEN }]);
  });
  afterEach(async () => server.close());

  it('pulls ms://org/name into the modelscope layout, with metadata modelscope trusts, and does not fetch again', async () => {
    const msCache = await testTempDir('mf-ms-');
    const env = { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: msCache, MODELSCOPE_API_TOKEN: TOKEN };
    const first = await runCli(['pull', 'ms://Qwen/Qwen2.5-Mini'], env);
    expect(first.code, first.stderr).toBe(0);
    const dir = join(msCache, 'models', 'Qwen', 'Qwen2___5-Mini');
    expect(first.stdout.trim()).toBe(dir);
    for (const f of files) expect((await readFile(join(dir, f.path))).equals(f.content)).toBe(true);
    expect(`${first.stdout}${first.stderr}`).not.toContain(TOKEN);
    const fileRequests = server.requests.filter((r) => r.url.includes('FilePath='));
    expect(fileRequests.length).toBeGreaterThanOrEqual(files.length);
    expect(fileRequests.every((r) => r.url.includes(`Revision=${commit}`) && r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(await readFile(join(dir, '.mv'), 'utf8')).toMatch(/^Revision:master,CreatedAt:\d+$/);
    if (hasTool('python3')) {
      const script = 'import pickle,sys,json; print(json.dumps([pickle.load(open(sys.argv[1]+"/.mdl","rb")), sorted(pickle.load(open(sys.argv[1]+"/.msc","rb")), key=lambda k: k["Path"])]))';
      expect(JSON.parse(execFileSync('python3', ['-c', script, dir], { encoding: 'utf8' }))).toEqual([
        { id: 'Qwen/Qwen2___5-Mini' },
        files.map((f) => ({ Path: f.path, Revision: commit })).sort((a, b) => a.Path.localeCompare(b.Path)),
      ]);
    }

    server.resetLog();
    const again = await runCli(['pull', 'Qwen/Qwen2.5-Mini', '--source', 'modelscope', '--json'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, cacheHits: files.length, downloaded: 0 });
    expect(server.requests.filter((r) => r.url.includes('FilePath='))).toEqual([]);
  });

  it('pulls into the Hugging Face layout with --layout hf: SHA-256 blobs, snapshot links, a ref, and a cache that verifies', async () => {
    const hfCache = await testTempDir('mf-ms-hf-');
    const result = await pull({ repo: 'ms://Qwen/Qwen2.5-Mini@master', layout: 'hf', cacheDir: hfCache, endpoint: server.origin, token: TOKEN, env: {} });
    const repo = new RepoPaths(hfCache, 'model', 'Qwen/Qwen2.5-Mini');
    expect(result).toMatchObject({ commit, path: repo.snapshotDir(commit), files: files.length });
    const weights = files[1]!;
    expect(await readlink(repo.snapshotFile(commit, weights.path))).toBe(`../../blobs/${sha256Of(weights.content)}`);
    expect((await readFile(repo.snapshotFile(commit, 'tokenizer/vocab.json'))).equals(files[2]!.content)).toBe(true);
    expect(await readFile(repo.ref('master'), 'utf8')).toBe(commit);
    const scan = await scanCache({ cacheDir: hfCache });
    expect(scan.repos[0]!.revisions[0]!.lastUsed).toBeGreaterThan(Date.now() - 60_000);
    expect(scan.repos[0]!.blobs).toHaveLength(3);
    expect((await verifyCache({ cacheDir: hfCache })).ok).toBe(true);
    await expect(lstat(repo.partial({ algorithm: 'sha256', hex: sha256Of(weights.content) }))).rejects.toThrow();
  });

  it('maps a missing model, revision or file to ERR_NOT_FOUND and a missing token to ERR_AUTH, never printing the token', async () => {
    const msCache = await testTempDir('mf-ms-');
    const env = { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: msCache, MODELSCOPE_API_TOKEN: TOKEN };
    const noRepo = await runCli(['pull', 'ms://Qwen/Nope'], env);
    expect(noRepo.code).toBe(4);
    expect(noRepo.stderr).toContain('[ERR_NOT_FOUND]');
    const noFile = await runCli(['pull', 'ms://Qwen/Qwen2.5-Mini', 'missing.bin'], env);
    expect(noFile.code).toBe(4);
    expect(noFile.stderr).toContain('missing.bin not found');
    const noRev = await runCli(['pull', 'ms://Qwen/Qwen2.5-Mini@v404'], env);
    expect(noRev.code).toBe(4);
    const noToken = await runCli(['pull', 'ms://Qwen/Qwen2.5-Mini'], { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: msCache });
    expect(noToken.code).toBe(5);
    expect(noToken.stderr).toContain('MODELSCOPE_API_TOKEN');
    const wrong = await runCli(['pull', 'ms://Qwen/Qwen2.5-Mini', '--token', 'ms-wrong-token-0000'], { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: msCache });
    expect(wrong.code).toBe(5);
    for (const run of [noRepo, noFile, noRev, noToken, wrong]) expect(`${run.stdout}${run.stderr}`).not.toMatch(/ms-fixture-secret|ms-wrong-token-0000/);
  });

  it('pins each file to the commit ModelScope lists for it when they differ, and records those commits in .msc', async () => {
    const older = 'a1'.repeat(20);
    const newer = 'b2'.repeat(20);
    const perFile = [
      { path: 'config.json', content: Buffer.from('{"v":1}'), revision: older },
      { path: 'weights.bin', content: randomBytes(70_000), revision: newer },
    ];
    modelscope.repos.set('org/mixed', { repoId: 'org/mixed', commit: newer, files: perFile });
    const msCache = await testTempDir('mf-ms-');
    const env = { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: msCache };
    const first = await runCli(['pull', 'ms://org/mixed', '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    const result = JSON.parse(first.stdout) as { commit: string; path: string };
    expect(result.commit).toMatch(/^[0-9a-f]{40}$/);
    expect([older, newer]).not.toContain(result.commit);
    const downloads = server.requests.filter((r) => r.url.includes('/api/v1/models/org/mixed/repo?')).map((r) => r.url);
    expect(downloads).toContain(`/api/v1/models/org/mixed/repo?Revision=${older}&FilePath=config.json`);
    expect(downloads).toContain(`/api/v1/models/org/mixed/repo?Revision=${newer}&FilePath=weights.bin`);
    const script = 'import pickle,sys,json; print(json.dumps(sorted(pickle.load(open(sys.argv[1]+"/.msc","rb")), key=lambda k: k["Path"])))';
    const keys = [
      { Path: 'config.json', Revision: older },
      { Path: 'weights.bin', Revision: newer },
    ];
    const python = hasTool('python3');
    if (python) expect(JSON.parse(execFileSync('python3', ['-c', script, result.path], { encoding: 'utf8' }))).toEqual(keys);
    // Again by branch: the same content id, nothing fetched, and .msc still names each file's own commit.
    const again = await runCli(['pull', 'ms://org/mixed', '--json'], env);
    expect(JSON.parse(again.stdout)).toMatchObject({ commit: result.commit, downloaded: 0 });
    if (python) expect(JSON.parse(execFileSync('python3', ['-c', script, result.path], { encoding: 'utf8' }))).toEqual(keys);
  });
});
