import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isModelfetchError } from '../../src/core/errors.js';
import { pull } from '../../src/pull/index.js';
import { createMirrorServer } from '../../src/server/mirror-server.js';
import { firstReadBytes, inspect, type InspectReport } from '../../src/safetensors/inspect.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { serveModelScope } from '../support/fixture-modelscope.js';
import { startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { buildSafetensors, f32Tensor, shardedModel } from '../support/safetensors.js';

const model = shardedModel({ shards: 4, rows: 64, cols: 256, longHeaderShard: 3 });
const shardPaths = [...model.shards.keys()];
/** One 24 MiB shard whose header (a long __metadata__) is ~75 KB: past 64 KiB, within 1/256 of the file. */
const bigShard = buildSafetensors([{ name: 'w', dtype: 'F32', shape: [6 * 1024 * 1024], data: Buffer.alloc(24 * 1024 * 1024) }], { format: 'pt', notes: 'n'.repeat(75_000) });
const hostile = buildSafetensors([f32Tensor('w', [1, 2])], undefined, '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}');

/** Requests that carried a Range header, i.e. header reads (the hub's API calls carry none). */
function rangeRequests(hub: FixtureHub): Array<{ url: string; range: string; bodyBytes: number }> {
  return hub.requests().flatMap((r) => (typeof r.headers.range === 'string' ? [{ url: r.url, range: r.headers.range, bodyBytes: r.bodyBytes }] : []));
}

function expectModelTotals(report: InspectReport): void {
  expect(report.files.map((f) => f.path)).toEqual(shardPaths);
  expect(report.parameters).toBe(model.parameters);
  expect(report.tensors).toBe(4 * 3 + 1);
  expect(report.bytes).toBe(model.files.filter((f) => f.path.endsWith('.safetensors')).reduce((n, f) => n + f.content.length, 0));
  expect(report.dtypes.F32).toEqual({ tensors: 8, parameters: 4 * (64 * 256 + 256), bytes: 4 * 4 * (64 * 256 + 256) });
  expect(report.dtypes.BF16).toEqual({ tensors: 4, parameters: 4 * 256, bytes: 4 * 2 * 256 });
  expect(report.dtypes.I64).toEqual({ tensors: 1, parameters: 4, bytes: 32 });
  expect(report.indexes).toEqual([{ path: 'model.safetensors.index.json', shards: 4, tensors: 13 }]);
  expect(report.files[0]!.metadata).toEqual({ format: 'pt' });
  expect(report.files[2]!.metadata?.notes).toHaveLength(70_000);
  // F32 halves; the rest stays; headers change by a few bytes only.
  expect(Math.abs(report.sizeAfter.F16 - (report.bytes - 2 * 4 * (64 * 256 + 256)))).toBeLessThan(4 * 400);
}

describe('inspect', () => {
  let hub: FixtureHub;
  let work: string;
  let cacheDir: string;
  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [
        { repoId: 'org/tts', files: model.files.map((f) => ({ path: f.path, content: f.content, lfs: f.path.endsWith('.safetensors') })) },
        { repoId: 'org/hostile', files: [{ path: 'model.safetensors', content: hostile, lfs: true }] },
        { repoId: 'org/big', files: [{ path: 'model.safetensors', content: bigShard, lfs: true }] },
      ],
    });
    work = await mkdtemp(join(tmpdir(), 'mf-inspect-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(work, { recursive: true, force: true });
  });
  beforeEach(async () => {
    cacheDir = await mkdtemp(join(work, 'cache-'));
    hub.resetLogs();
  });

  it('reads a sharded Hub model from its headers alone: one 64 KiB range per shard, a second only for the long header', async () => {
    const report = await inspect({ target: 'org/tts', endpoint: hub.endpoint, cacheDir, env: {} });
    expectModelTotals(report);
    expect(report.commit).toBe(hub.commitOf('org/tts'));
    expect(report.files.every((f) => f.from === 'http')).toBe(true);
    const ranges = rangeRequests(hub);
    // Per shard: the resolve request and its CDN redirect target; the long header's rest goes straight to the CDN.
    const cdn = ranges.filter((r) => r.url.startsWith('/lfs/'));
    expect(cdn.map((r) => r.range).filter((r) => r === 'bytes=0-65535')).toHaveLength(4);
    expect(cdn.filter((r) => r.range !== 'bytes=0-65535')).toHaveLength(1);
    expect(ranges.filter((r) => r.url.includes('/resolve/') && r.url.endsWith('.safetensors'))).toHaveLength(4);
    expect(report.rangeRequests).toBe(4 + 1 + 1);
    const shardBytes = hub.cdn.requests.reduce((n, r) => n + r.bodyBytes, 0);
    expect(shardBytes).toBeLessThanOrEqual(4 * 65536 + 8 + 70_200);
  });

  it('reads a large shard\'s long header in one ranged read: the first read grows with the file (1/256 of it, 64–256 KiB)', async () => {
    const report = await inspect({ target: 'org/big', endpoint: hub.endpoint, cacheDir, env: {} });
    expect(report.files[0]!.headerBytes).toBeGreaterThan(65536);
    expect(report.rangeRequests).toBe(1);
    expect(rangeRequests(hub).filter((r) => r.url.startsWith('/lfs/')).map((r) => r.range)).toEqual([`bytes=0-${Math.floor(bigShard.length / 256) - 1}`]);
    expect(firstReadBytes(undefined)).toBe(65536);
    expect(firstReadBytes(1000)).toBe(1000);
    expect(firstReadBytes(10 * 1024 * 1024)).toBe(65536);
    expect(firstReadBytes(5e9)).toBe(256 * 1024);
  });

  it('makes no request at all for a model already in the cache', async () => {
    await pull({ repo: 'org/tts', endpoint: hub.endpoint, cacheDir, env: {} });
    hub.resetLogs();
    const report = await inspect({ target: 'org/tts', cacheDir, env: { HF_ENDPOINT: 'http://127.0.0.1:9' } });
    expectModelTotals(report);
    expect(report.files.every((f) => f.from === 'disk')).toBe(true);
    expect(report.rangeRequests).toBe(0);
    expect(hub.requests()).toEqual([]);
  });

  it('reads a local folder, a single file, and a URL to one file', async () => {
    const folder = join(work, 'folder');
    await mkdir(folder, { recursive: true });
    for (const file of model.files) await writeFile(join(folder, file.path), file.content);
    expectModelTotals(await inspect({ target: folder }));
    const single = await inspect({ target: join(folder, shardPaths[0]!) });
    expect(single.files).toHaveLength(1);
    expect(single.tensors).toBe(4);
    const url = `${hub.endpoint}/org/tts/resolve/main/${shardPaths[1]}`;
    const remote = await inspect({ target: url });
    expect(remote.files).toMatchObject([{ path: url, tensors: 3, size: model.files[1]!.content.length, from: 'http' }]);
    expect(remote.rangeRequests).toBe(1);
  });

  it('refuses a hostile header from the hub with a clear error and writes nothing', async () => {
    const error = await inspect({ target: 'org/hostile', endpoint: hub.endpoint, cacheDir, env: {} }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_BAD_SAFETENSORS')).toBe(true);
    expect((error as Error).message).toMatch(/model\.safetensors is not a valid safetensors file: tensor "v" overlaps/);
    const run = await runCli(['inspect', 'org/hostile', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^modelfetch: .*overlaps.*\[ERR_BAD_SAFETENSORS\]\n {2}The file is damaged/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('reads headers through a modelfetch mirror', async () => {
    const mirror = createMirrorServer({ cacheDir: join(work, 'mirror-cache'), upstream: hub.endpoint, log: () => undefined });
    await mirror.listen();
    try {
      const report = await inspect({ target: 'org/tts', endpoint: mirror.url, cacheDir, env: {} });
      expectModelTotals(report);
      expect(report.files.every((f) => f.from === 'http')).toBe(true);
    } finally {
      await mirror.close();
    }
  });

  it('goes to the endpoint in HF_ENDPOINT (a mirror) from the CLI, with --json', async () => {
    const run = await runCli(['inspect', 'org/tts', '--json', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as InspectReport;
    expectModelTotals(report);
    expect(hub.hub.requests.some((r) => r.url.startsWith('/api/models/org/tts/revision/main'))).toBe(true);
    const text = await runCli(['inspect', 'org/tts', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
    expect(text.stdout).toMatch(/4 safetensors file\(s\), 13 tensors/);
    expect(text.stdout).toMatch(/after convert --dtype f16: /);
  });
});

describe('inspect ms://org/name (ModelScope)', () => {
  const commit = 'd'.repeat(40);
  const TOKEN = 'ms-secret-token';
  let server: FixtureServer;
  let work: string;
  beforeAll(async () => {
    server = await startFixtureServer();
    serveModelScope(server, [{ repoId: 'org/tts', commit, files: model.files.map((f) => ({ path: f.path, content: f.content })), token: TOKEN }]);
    work = await mkdtemp(join(tmpdir(), 'mf-inspect-ms-'));
  });
  afterAll(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  it('reads the headers through ranged reads with the token, then from the modelscope cache once pulled', async () => {
    const env = { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: join(work, 'ms'), MODELSCOPE_API_TOKEN: TOKEN };
    server.resetLog();
    const remote = await inspect({ target: 'ms://org/tts', env });
    expectModelTotals(remote);
    expect(remote.files.every((f) => f.from === 'http')).toBe(true);
    const ranged = server.requests.filter((r) => typeof r.headers.range === 'string');
    expect(ranged.length).toBeGreaterThanOrEqual(4);
    expect(ranged.every((r) => r.url.includes(`Revision=${commit}`) && r.headers.authorization === `Bearer ${TOKEN}`)).toBe(true);
    // Only headers were read, not the weights.
    expect(ranged.reduce((n, r) => n + r.bodyBytes, 0)).toBeLessThan(remote.bytes / 4);

    const pulled = await runCli(['pull', 'ms://org/tts'], env);
    expect(pulled.code, pulled.stderr).toBe(0);
    server.resetLog();
    const local = await inspect({ target: 'ms://org/tts', env });
    expectModelTotals(local);
    expect(local.files.every((f) => f.from === 'disk')).toBe(true);
    expect(server.requests.filter((r) => typeof r.headers.range === 'string')).toEqual([]);
  });

  it('offline, says so and names the folder to inspect instead', async () => {
    const env = { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: join(work, 'ms-offline'), HF_HUB_OFFLINE: '1' };
    const error: unknown = await inspect({ target: 'ms://org/tts', env }).catch((e: unknown) => e);
    expect(isModelfetchError(error) && error.code).toBe('ERR_OFFLINE');
    expect(isModelfetchError(error) && error.hint).toContain(join(work, 'ms-offline', 'models', 'org', 'tts'));
  });

  it('the CLI prints the report and never the token', async () => {
    const run = await runCli(['inspect', 'ms://org/tts', '--json'], { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: join(work, 'ms-cli'), MODELSCOPE_API_TOKEN: TOKEN });
    expect(run.code, run.stderr).toBe(0);
    expect((JSON.parse(run.stdout) as InspectReport).parameters).toBe(model.parameters);
    expect(`${run.stdout}${run.stderr}`).not.toContain(TOKEN);
  });
});
