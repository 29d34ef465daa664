import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveModelScope, sha256Of } from '../support/fixture-modelscope.js';
import { startFixtureServer, type FixtureServer } from '../support/fixture-server.js';
import { runCli } from './cli-helpers.js';
import { testTempDir } from '../support/temp.js';

const commit = 'ab12'.padEnd(40, '3');
const files = [
  { path: 'configuration.json', content: Buffer.from('{"framework":"pytorch"}') },
  { path: 'weights/model.bin', content: Buffer.alloc(70_000, 7) },
  { path: 'README.md', content: Buffer.from('# readme') },
];

describe('preloads from ModelScope', () => {
  let server: FixtureServer;
  beforeAll(async () => {
    server = await startFixtureServer();
    serveModelScope(server, [{ repoId: 'damo/tts', commit, files }]);
  });
  afterAll(async () => server.close());

  it('locks to the commit and SHA-256 ModelScope lists, syncs into MODELSCOPE_CACHE, then needs no request', async () => {
    const dir = await testTempDir('mf-preload-ms-');
    const env = { MODELSCOPE_DOMAIN: server.origin, MODELSCOPE_CACHE: join(dir, 'ms-cache') };
    await writeFile(join(dir, 'modelfetch.yaml'), 'models:\n  - source: modelscope\n    repo: damo/tts\n    exclude: ["*.md"]\n');
    const locked = await runCli(['lock'], { cwd: dir, env });
    expect(locked.code, locked.stderr).toBe(0);
    const lock = JSON.parse(await readFile(join(dir, 'modelfetch.lock.json'), 'utf8'));
    expect(lock.models[0]).toMatchObject({ source: 'modelscope', repo: 'damo/tts', revision: 'master', commit, identity: `modelscope:model/damo/tts@${commit}` });
    expect(lock.models[0].files).toEqual([
      { path: 'configuration.json', size: files[0]!.content.length, digest: { algorithm: 'sha256', hex: sha256Of(files[0]!.content) } },
      { path: 'weights/model.bin', size: 70_000, digest: { algorithm: 'sha256', hex: sha256Of(files[1]!.content) } },
    ]);

    server.resetLog();
    const synced = await runCli(['sync', '--frozen', '--cache-dir', join(dir, 'hf-cache')], { cwd: dir, env });
    expect(synced.code, synced.stderr).toBe(0);
    // Pinned: no listing call, only the two locked files, each by the locked commit.
    expect(server.requests.filter((r) => r.url.includes('/repo/files'))).toEqual([]);
    const downloads = server.requests.filter((r) => r.url.includes('FilePath='));
    expect(downloads.length).toBeGreaterThanOrEqual(2);
    expect(downloads.every((r) => r.url.includes(`Revision=${commit}`) && !r.url.includes('README'))).toBe(true);
    const model = join(dir, 'ms-cache', 'models', 'damo', 'tts');
    expect((await readFile(join(model, 'weights', 'model.bin'))).equals(files[1]!.content)).toBe(true);

    server.resetLog();
    const again = await runCli(['sync', '--frozen', '--cache-dir', join(dir, 'hf-cache')], { cwd: dir, env: { ...env, MODELSCOPE_DOMAIN: 'http://mirror.invalid' } });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/2 files of 1 model in place \(0 fetched\)/);
    expect(server.requests).toEqual([]);
  });
});
