import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pull } from '../../src/pull/index.js';
import { auditCache, isClean } from '../support/cache-audit.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { serveFile } from '../support/fixture-server.js';
import { testTempDir } from '../support/temp.js';

/** Case 5: several processes (and an in-process library caller) pulling one repo into one cache at once. */

let hub: FixtureHub | undefined;
afterEach(async () => hub?.close());

const FILES = [
  { path: 'model-00001-of-00002.safetensors', size: 3 * 1024 * 1024 },
  { path: 'model-00002-of-00002.safetensors', size: 2 * 1024 * 1024 + 7 },
  { path: 'tokenizer.json', size: 1024 * 1024 + 3, lfs: true },
  { path: 'config.json', content: '{"a":1}' },
  { path: 'nested/vocab.txt', content: 'x\ny\n' },
];

describe('concurrent pulls into one cache (case 5)', () => {
  it('3 CLI processes and a library pull all succeed and each blob is downloaded once', async () => {
    hub = await startFixtureHub({ repos: [{ repoId: 'org/shared', files: FILES }] });
    // The CDN holds every blob until all four pulls have asked the hub for the revision, so they
    // really overlap however slowly the CLI processes start on a busy machine.
    const started = (): number => hub!.hub.requests.filter((r) => r.url.includes('/revision/')).length;
    const blobs = new Map(FILES.map((f) => hub!.file('org/shared', f.path)).filter((f) => f.lfs).map((f) => [f.sha256, f]));
    hub.cdn.route('/lfs/', async (req, res, url, context) => {
      for (let waited = 0; started() < 4 && waited < 60_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
      const file = blobs.get(url.pathname.split('/').pop() ?? '');
      if (!file) return void res.writeHead(404).end();
      await serveFile(req, res, { ...file.served, etag: file.sha256 }, context.takeFault(), context.onBody);
    });
    const cacheDir = await testTempDir('mf-concurrent-');
    const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cacheDir };
    const runs = await Promise.all([
      runCli(['pull', 'org/shared', '--json'], env),
      runCli(['pull', 'org/shared', '--json'], env),
      runCli(['pull', 'org/shared', '--json'], env),
      pull({ repo: 'org/shared', cacheDir, endpoint: hub.endpoint, env: {} }).then(
        (r) => ({ code: 0, stdout: JSON.stringify(r), stderr: '' }),
        (e: unknown) => ({ code: 1, stdout: '', stderr: String(e) }),
      ),
    ]);
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    // They really overlapped: most found the files missing when they planned (a late starter would see only cache hits).
    const downloaded = runs.map((run) => (JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}') as { downloaded?: number }));
    const overlapping = downloaded.filter((r) => (r.downloaded ?? 0) > 0).length;
    expect(overlapping, runs.map((r) => r.stdout).join('\n')).toBe(4);

    // Every blob crossed the wire exactly once, whichever process fetched it (1-byte probes aside).
    for (const spec of FILES) {
      const file = hub.file('org/shared', spec.path);
      const served = hub
        .requests()
        .filter((r) => r.method === 'GET' && r.headers.range !== 'bytes=0-0' && (file.lfs ? r.url.startsWith(`/lfs/${file.sha256}`) : r.url.endsWith(`/${spec.path}`)))
        .reduce((sum, r) => sum + r.bodyBytes, 0);
      expect(served, spec.path).toBe(file.size);
    }
    const commit = hub.commitOf('org/shared');
    for (const spec of FILES) {
      const bytes = await readFile(join(cacheDir, 'models--org--shared', 'snapshots', commit, spec.path));
      expect(bytes.length).toBe(hub.file('org/shared', spec.path).size);
    }
    const audit = await auditCache(cacheDir);
    expect(isClean(audit), JSON.stringify(audit)).toBe(true);
    expect(audit.blobs).toBe(FILES.length);
  }, 120_000);
});
