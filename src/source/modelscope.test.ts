import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFixtureServer, type FixtureServer } from '../../test/support/fixture-server.js';
import { serveModelScope, sha256Of } from '../../test/support/fixture-modelscope.js';
import { parseModelScopeReference, resolveModelScopeEndpoint, resolveModelScopeSnapshot } from './modelscope.js';

const commit = 'a'.repeat(40);
const files = [
  { path: 'config.json', content: Buffer.from('{"model_type":"qwen2"}') },
  { path: 'weights/model.safetensors', content: Buffer.alloc(5000, 3) },
  { path: '.gitattributes', content: Buffer.from('*.bin filter=lfs') },
];

describe('ModelScope source', () => {
  let server: FixtureServer;
  beforeEach(async () => {
    server = await startFixtureServer();
    serveModelScope(server, [
      { repoId: 'Qwen/Qwen2.5-Tiny', commit, files },
      { repoId: 'org/private', commit, files: files.slice(0, 1), token: 'ms-secret-token-123' },
    ]);
  });
  afterEach(async () => server.close());

  it('lists a revision into a snapshot pinned to its commit, with SHA-256 per file', async () => {
    const snapshot = await resolveModelScopeSnapshot('Qwen/Qwen2.5-Tiny', undefined, { endpoint: server.origin });
    expect(snapshot).toMatchObject({ source: 'modelscope', repoId: 'Qwen/Qwen2.5-Tiny', revision: 'master', commit });
    expect(snapshot.files.map((f) => [f.path, f.size, f.digest.hex])).toEqual([
      ['config.json', files[0]!.content.length, sha256Of(files[0]!.content)],
      ['weights/model.safetensors', 5000, sha256Of(files[1]!.content)],
    ]);
    expect(snapshot.files[1]!.urls).toEqual([`${server.origin}/api/v1/models/Qwen/Qwen2.5-Tiny/repo?Revision=${commit}&FilePath=weights%2Fmodel.safetensors`]);
    expect(server.requests[0]!.url).toBe('/api/v1/models/Qwen/Qwen2.5-Tiny/repo/files?Revision=master&Recursive=true');
  });

  it('maps a missing model or revision to ERR_NOT_FOUND and a refused token to ERR_AUTH', async () => {
    await expect(resolveModelScopeSnapshot('org/none', undefined, { endpoint: server.origin })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND', status: 404 });
    await expect(resolveModelScopeSnapshot('Qwen/Qwen2.5-Tiny', 'v9', { endpoint: server.origin })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    const refused = (await resolveModelScopeSnapshot('org/private', undefined, { endpoint: server.origin, token: 'ms-wrong-token-456' }).catch((e: unknown) => e)) as Error;
    expect(refused).toMatchObject({ code: 'ERR_AUTH' });
    expect(JSON.stringify(refused) + refused.message).not.toContain('ms-wrong-token-456');
    const ok = await resolveModelScopeSnapshot('org/private', undefined, { endpoint: server.origin, token: 'ms-secret-token-123' });
    expect(ok.files).toHaveLength(1);
  });

  it('refuses listings with unsafe paths, bad digests or a foreign redirect', async () => {
    const bad = async (Files: unknown[] | null): Promise<unknown> => {
      const s = await startFixtureServer();
      s.route('/api/', (_req, res) => void res.end(JSON.stringify(Files && { Code: 200, Data: { Files } })));
      try {
        return await resolveModelScopeSnapshot('org/x', undefined, { endpoint: s.origin }).catch((e: unknown) => e);
      } finally {
        await s.close();
      }
    };
    const ok = { Type: 'blob', Size: 1, Sha256: 'b'.repeat(64), Revision: commit };
    expect(await bad([{ ...ok, Path: '../../etc/passwd' }])).toMatchObject({ code: 'ERR_UNSAFE_PATH' });
    expect(await bad([{ ...ok, Path: 'a', Sha256: 'nope' }])).toMatchObject({ code: 'ERR_INVALID_DIGEST' });
    expect(await bad([{ ...ok, Path: 'a', Size: -1 }])).toMatchObject({ code: 'ERR_BAD_RESPONSE' });
    // A JSON null is an answer without the list, not a crash.
    expect(await bad(null)).toMatchObject({ code: 'ERR_BAD_RESPONSE', message: expect.stringContaining('no Data.Files list') as unknown });
    const redirecting = await startFixtureServer();
    redirecting.route('/api/', (_req, res) => {
      res.writeHead(302, { location: 'http://127.0.0.2:9/steal' });
      res.end();
    });
    await expect(resolveModelScopeSnapshot('org/x', undefined, { endpoint: redirecting.origin, token: 'ms-abcdefgh123' })).rejects.toMatchObject({ code: 'ERR_REDIRECT' });
    await redirecting.close();
  });

  it('reads endpoints and references the way modelscope users write them', () => {
    expect(resolveModelScopeEndpoint(undefined, {})).toBe('https://www.modelscope.cn');
    expect(resolveModelScopeEndpoint(undefined, { MODELSCOPE_DOMAIN: 'modelscope.example.cn' })).toBe('https://modelscope.example.cn');
    expect(resolveModelScopeEndpoint('http://127.0.0.1:8080/', { MODELSCOPE_DOMAIN: 'x.cn' })).toBe('http://127.0.0.1:8080');
    expect(() => resolveModelScopeEndpoint('https://user:pw@x.cn', {})).toThrow(/Invalid ModelScope endpoint/);
    expect(parseModelScopeReference('ms://Qwen/Qwen2.5-7B@v1.0')).toEqual({ repoId: 'Qwen/Qwen2.5-7B', revision: 'v1.0' });
    expect(parseModelScopeReference('Qwen/Qwen2.5-7B')).toEqual({ repoId: 'Qwen/Qwen2.5-7B' });
    expect(() => parseModelScopeReference('ms://../x')).toThrow();
  });
});
