import { createHash } from 'node:crypto';
import { lstat, readFile, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBlobStamped } from '../../src/cache/blob-store.js';
import { RepoPaths } from '../../src/cache/layout.js';
import { pull } from '../../src/pull/index.js';
import { runCli } from '../support/cli.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

describe('verify --fix pulls damaged revisions again', () => {
  let hub: FixtureHub;
  beforeAll(async () => {
    hub = await startFixtureHub({
      repos: [
        {
          repoId: 'org/fixme',
          files: [
            { path: 'config.json', content: '{"n_layer":2}' },
            { path: 'model.safetensors', size: 2 * 1024 * 1024 + 5, lfs: true },
          ],
        },
      ],
    });
  });
  afterAll(async () => hub.close());

  it('replaces a corrupted blob and a missing one from the hub, drops a link it cannot restore, and exits 0', async () => {
    const cacheDir = await testTempDir('mf-fix-');
    const result = await pull({ repo: 'org/fixme', cacheDir, endpoint: hub.endpoint, env: {} });
    const repo = new RepoPaths(cacheDir, 'model', 'org/fixme');
    const weights = hub.file('org/fixme', 'model.safetensors');
    const config = hub.file('org/fixme', 'config.json');
    const weightsDigest = { algorithm: 'sha256' as const, hex: weights.sha256 };
    await writeFile(repo.blob(weightsDigest), Buffer.alloc(weights.size, 1));
    await unlink(repo.blob({ algorithm: 'git-sha1', hex: config.gitSha1 }));
    await symlink(`../../blobs/${'e'.repeat(64)}`, join(result.path, 'ghost.bin'));

    const broken = await runCli(['verify', '--cache-dir', cacheDir]);
    expect(broken.code).toBe(3);

    const fixed = await runCli(['verify', '--fix', '--json', '--cache-dir', cacheDir], { HF_ENDPOINT: hub.endpoint });
    expect(fixed.code, fixed.stderr).toBe(0);
    const report = JSON.parse(fixed.stdout) as { ok: boolean; fixes: Array<{ action: string; path: string }> };
    expect(report.ok).toBe(true);
    expect(report.fixes.map((f) => f.action).sort()).toEqual(['refetched', 'removed-blob', 'removed-link']);
    expect(await readFile(join(result.path, 'config.json'), 'utf8')).toBe('{"n_layer":2}');
    expect(createHash('sha256').update(await readFile(join(result.path, 'model.safetensors'))).digest('hex')).toBe(weights.sha256);
    expect(await isBlobStamped(repo, weightsDigest, weights.size)).toBe(true);
    await expect(lstat(join(result.path, 'ghost.bin'))).rejects.toThrow();
  });
});
