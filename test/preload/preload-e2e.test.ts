import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { serveFile, servedBuffer, startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { runCli } from './cli-helpers.js';

/**
 * manifest → lock → sign → sync against a loopback hub, through the real CLI in real processes.
 */

const MANIFEST = ['version: 1', 'models:', '  - repo: org/tts', '    include: ["*.json", "*.safetensors", "sub/"]', '    exclude: ["*.onnx"]', '  - repo: org/data', '    repo-type: dataset', '    local-dir: data', ''].join('\n');

describe('preload end to end', () => {
  let hub: FixtureHub;
  let work: string;
  const lockPath = (dir: string) => join(dir, 'modelfetch.lock.json');

  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [
        {
          repoId: 'org/tts',
          files: [
            { path: 'config.json', content: '{"model_type":"tts"}' },
            { path: 'model.safetensors', size: 1_500_000, lfs: true },
            { path: 'sub/vocab.json', content: '{"a":1}' },
            { path: 'model.onnx', size: 2000, lfs: true },
            { path: 'README.md', content: '# tts' },
          ],
        },
        { repoId: 'org/data', repoType: 'dataset', files: [{ path: 'train.csv', content: 'a,b\n1,2\n' }] },
      ],
    });
    work = await mkdtemp(join(tmpdir(), 'mf-preload-'));
  });
  afterAll(async () => {
    await hub.close();
    await rm(work, { recursive: true, force: true });
  });

  async function project(name: string): Promise<{ dir: string; cache: string }> {
    const dir = join(work, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'modelfetch.yaml'), MANIFEST);
    return { dir, cache: join(dir, 'cache') };
  }

  async function lockIn(dir: string): Promise<string> {
    const result = await runCli(['lock', '--endpoint', hub.endpoint], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return readFile(lockPath(dir), 'utf8');
  }

  it('locks deterministically: two runs give byte-identical canonical lockfiles with commits, sizes and digests', async () => {
    const { dir } = await project('lock');
    const first = await lockIn(dir);
    const second = await lockIn(dir);
    expect(second).toBe(first);
    const again = await runCli(['lock', '--endpoint', hub.endpoint], { cwd: dir });
    expect(again.stdout).toMatch(/^unchanged modelfetch\.lock\.json: 2 models, 4 files/);
    expect(first.endsWith('}\n')).toBe(true);
    expect(first).not.toContain(hub.endpoint.replace('http://', ''));
    const lock = JSON.parse(first);
    const tts = lock.models.find((m: { repo: string }) => m.repo === 'org/tts');
    expect(tts.commit).toBe(hub.commitOf('org/tts'));
    expect(tts.identity).toBe(`hf:model/org/tts@${hub.commitOf('org/tts')}`);
    expect(tts.files.map((f: { path: string }) => f.path)).toEqual(['config.json', 'model.safetensors', 'sub/vocab.json']);
    const weights = hub.file('org/tts', 'model.safetensors');
    expect(tts.files[1]).toEqual({ path: 'model.safetensors', size: weights.size, digest: { algorithm: 'sha256', hex: weights.sha256 } });
    expect(tts.files[0].digest).toEqual({ algorithm: 'git-sha1', hex: hub.file('org/tts', 'config.json').gitSha1 });
    expect(lock.models.map((m: { repoType: string }) => m.repoType)).toEqual(['dataset', 'model']);
  });

  it('syncs, then with everything present makes no request at all (not even a DNS lookup)', async () => {
    const { dir, cache } = await project('sync');
    await lockIn(dir);
    hub.resetLogs();
    const first = await runCli(['sync', '--frozen', '--endpoint', hub.endpoint, '--cache-dir', cache], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/4 files of 2 models in place \(4 fetched\)/);
    expect(hub.requests().some((r) => r.url.includes('model.onnx') || r.url.includes('README'))).toBe(false);
    // Pinned by the lockfile: the hub is never asked which commit a branch is or what a commit holds.
    expect(hub.requests().filter((r) => r.url.startsWith('/api/'))).toEqual([]);
    const commit = hub.commitOf('org/tts');
    const snapshot = join(cache, 'models--org--tts', 'snapshots', commit);
    expect(await readFile(join(snapshot, 'sub', 'vocab.json'), 'utf8')).toBe('{"a":1}');
    expect(createHash('sha256').update(await readFile(join(snapshot, 'model.safetensors'))).digest('hex')).toBe(hub.file('org/tts', 'model.safetensors').sha256);
    expect(await readFile(join(cache, 'models--org--tts', 'refs', 'main'), 'utf8')).toBe(commit);
    expect(await readFile(join(cache, 'datasets--org--data', 'snapshots', hub.commitOf('org/data', 'main', 'dataset'), 'train.csv'), 'utf8')).toBe('a,b\n1,2\n');
    // local-dir: a link into the snapshot, relative to where sync ran.
    expect(await readlink(join(dir, 'data', 'train.csv'))).toBe(join(cache, 'datasets--org--data', 'snapshots', hub.commitOf('org/data', 'main', 'dataset'), 'train.csv'));
    expect(await readFile(join(dir, 'data', 'train.csv'), 'utf8')).toBe('a,b\n1,2\n');

    hub.resetLogs();
    // An endpoint that cannot even be resolved: any lookup or request would fail the command.
    const second = await runCli(['sync', '--frozen', '--endpoint', 'http://mirror.invalid', '--cache-dir', cache], { cwd: dir });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/4 files of 2 models in place \(0 fetched\)/);
    expect(hub.requests()).toEqual([]);

    // The image build's copy-out step, then the OCI layout, from the same cache.
    const tree = await runCli(['bake', '--tree', join(dir, 'tree'), '--cache-dir', cache], { cwd: dir });
    expect(tree.code, tree.stderr).toBe(0);
    expect(await readFile(join(dir, 'tree', 'models--org--tts', 'snapshots', commit, 'sub', 'vocab.json'), 'utf8')).toBe('{"a":1}');
    expect(await readdir(join(dir, 'tree'))).toEqual(['datasets--org--data', 'models--org--tts']);
    // A published spec: packing this checkout into the context is the install test's job.
    const oci = await runCli(['bake', '--oci', '--out', 'image', '--cache-dir', cache, '--endpoint', 'http://mirror.invalid', '--package', 'modelfetch@0.1.0'], { cwd: dir });
    expect(oci.code, oci.stderr).toBe(0);
    expect(oci.stdout).toMatch(/OCI layout: image\/oci:models\n {2}manifest sha256:[0-9a-f]{64}/);
    expect(JSON.parse(await readFile(join(dir, 'image', 'oci', 'index.json'), 'utf8')).manifests).toHaveLength(1);
    expect(await readFile(join(dir, 'image', 'Dockerfile'), 'utf8')).toContain('modelfetch sync --frozen');
  });

  describe('refuses before anything is used', () => {
    let dir: string;
    let cache: string;
    let keys: { priv: string; pub: string; otherPub: string };
    beforeAll(async () => {
      ({ dir, cache } = await project('signed'));
      await lockIn(dir);
      expect((await runCli(['keygen', '--out', 'release'], { cwd: dir })).code).toBe(0);
      expect((await runCli(['keygen', '--out', 'other'], { cwd: dir })).code).toBe(0);
      keys = { priv: 'release.key', pub: 'release.pub', otherPub: 'other.pub' };
      const signed = await runCli(['sign', '--key', keys.priv], { cwd: dir });
      expect(signed.code, signed.stderr).toBe(0);
    });

    it('a wrong key, an unsigned or a tampered lockfile: ERR_SIGNATURE, exit 3, no request', async () => {
      hub.resetLogs();
      const wrongKey = await runCli(['sync', '--verify-key', keys.otherPub, '--endpoint', hub.endpoint, '--cache-dir', cache], { cwd: dir });
      expect(wrongKey.code).toBe(3);
      expect(wrongKey.stderr).toContain('[ERR_SIGNATURE]');

      const original = await readFile(lockPath(dir), 'utf8');
      const tampered = original.replace(/"size": (\d+)/, (_, n: string) => `"size": ${Number(n) + 1}`);
      expect(tampered).not.toBe(original);
      await writeFile(lockPath(dir), tampered);
      const bad = await runCli(['sync', '--verify-key', keys.pub, '--endpoint', hub.endpoint, '--cache-dir', cache], { cwd: dir });
      expect(bad.code).toBe(3);
      expect(bad.stderr).toMatch(/does not match its signature.*\[ERR_SIGNATURE\]/);
      await writeFile(lockPath(dir), original);

      await rename(`${lockPath(dir)}.sig`, `${lockPath(dir)}.sig.away`);
      const unsigned = await runCli(['sync', '--verify-key', keys.pub, '--endpoint', hub.endpoint, '--cache-dir', cache], { cwd: dir });
      await rename(`${lockPath(dir)}.sig.away`, `${lockPath(dir)}.sig`);
      expect(unsigned.code).toBe(3);
      expect(unsigned.stderr).toMatch(/is not signed/);
      expect(hub.requests()).toEqual([]);
      expect(await readdir(cache).catch(() => [])).toEqual([]);
    });

    it('a poisoned mirror: bytes that differ from the lockfile are refused even though the mirror serves them', async () => {
      const mirror = await startFixtureServer();
      try {
        mirror.route('/', (req, res, url) => {
          const path = decodeURIComponent(url.pathname.split('/resolve/')[1]?.split('/').slice(1).join('/') ?? '');
          const real = [...hub.repos.values()].flatMap((r) => [...r.commits.values()].flatMap((c) => [...c.files.values()])).find((f) => f.path === path);
          if (!real) return void res.writeHead(404).end();
          const poison = Buffer.alloc(real.size, 0x41);
          return serveFile(req, res, servedBuffer(poison));
        });
        const poisoned = await runCli(['sync', '--verify-key', keys.pub, '--endpoint', mirror.origin, '--cache-dir', cache], { cwd: dir });
        expect(poisoned.code).toBe(3);
        expect(poisoned.stderr).toContain('[ERR_INTEGRITY]');
        expect(mirror.requests.length).toBeGreaterThan(0);
        const blobs = await readdir(join(cache, 'models--org--tts', 'blobs')).catch(() => []);
        expect(blobs).toEqual([]);
      } finally {
        await mirror.close();
      }
    });

    it('a signed lockfile accepts the same bytes from any mirror', async () => {
      const mirror = await serveHubFilesAnywhere(hub);
      try {
        const result = await runCli(['sync', '--verify-key', keys.pub, '--endpoint', mirror.origin, '--cache-dir', cache], { cwd: dir });
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toMatch(/\(4 fetched\)/);
      } finally {
        await mirror.close();
      }
    });

    it('a tampered file in the cache is detected, removed and fetched again', async () => {
      const weights = hub.file('org/tts', 'model.safetensors');
      const blob = join(cache, 'models--org--tts', 'blobs', weights.sha256);
      const bytes = await readFile(blob);
      bytes[1000] = bytes[1000]! ^ 0xff;
      await writeFile(blob, bytes);
      const check = await runCli(['sync', '--check', '--cache-dir', cache], { cwd: dir });
      expect(check.code).toBe(8);
      expect(check.stderr).toMatch(/model\.safetensors.*\[ERR_INCOMPLETE\]/);
      hub.resetLogs();
      const repaired = await runCli(['sync', '--verify-key', keys.pub, '--endpoint', hub.endpoint, '--cache-dir', cache], { cwd: dir });
      expect(repaired.code, repaired.stderr).toBe(0);
      expect(repaired.stderr).toMatch(/\(1 fetched/);
      expect(createHash('sha256').update(await readFile(blob)).digest('hex')).toBe(weights.sha256);
      expect(hub.requests().filter((r) => r.url.includes('config.json'))).toEqual([]);
    });
  });

  it('--frozen fails when the manifest changed since lock, before any request', async () => {
    const { dir, cache } = await project('frozen');
    await lockIn(dir);
    await writeFile(join(dir, 'modelfetch.yaml'), MANIFEST.replace('"sub/"', '"sub/", "*.md"'));
    hub.resetLogs();
    const result = await runCli(['sync', '--frozen', '--endpoint', hub.endpoint, '--cache-dir', cache], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/does not match modelfetch\.yaml \(--frozen\): hf:model\/org\/tts@main: include/);
    expect(hub.requests()).toEqual([]);
    const unfrozen = await runCli(['sync', '--endpoint', hub.endpoint, '--cache-dir', cache], { cwd: dir });
    expect(unfrozen.code, unfrozen.stderr).toBe(0);
  });
});

/** A mirror that serves the hub's bytes for any repo path at any commit (like a CDN cache keyed by path). */
async function serveHubFilesAnywhere(hub: FixtureHub): Promise<FixtureServer> {
  const mirror = await startFixtureServer();
  mirror.route('/', (req, res, url) => {
    const rest = url.pathname.split('/resolve/')[1];
    const path = decodeURIComponent(rest?.split('/').slice(1).join('/') ?? '');
    const real = [...hub.repos.values()].flatMap((r) => [...r.commits.values()].flatMap((c) => [...c.files.values()])).find((f) => f.path === path);
    if (!real) return void res.writeHead(404).end();
    return serveFile(req, res, real.served);
  });
  return mirror;
}
