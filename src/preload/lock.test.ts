import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockManifest, writeLockfile, type ResolvedRevision } from './lock.js';
import { parseManifest } from './manifest.js';
import { testTempDir } from '../../test/support/temp.js';

const commit = 'd'.repeat(40);
const listing: ResolvedRevision = {
  commit,
  files: [
    { path: 'model.onnx', size: 5, digest: { algorithm: 'sha256', hex: '1'.repeat(64) } },
    { path: 'config.json', size: 2, digest: { algorithm: 'git-sha1', hex: '2'.repeat(40) } },
    { path: 'model.safetensors', size: 9, digest: { algorithm: 'sha256', hex: '3'.repeat(64) } },
  ],
};

describe('lockManifest', () => {
  it('pins each model to the resolved commit and its filtered files, in canonical order', async () => {
    const manifest = parseManifest('models:\n  - repo: org/m\n    exclude: ["*.onnx"]\n');
    const lock = await lockManifest(manifest, async () => listing);
    expect(lock.models[0]).toMatchObject({ repo: 'org/m', revision: 'main', commit, identity: `hf:model/org/m@${commit}` });
    expect(lock.models[0]!.files.map((f) => f.path)).toEqual(['config.json', 'model.safetensors']);
  });

  it('refuses globs that select nothing', async () => {
    const manifest = parseManifest('models:\n  - repo: org/m\n    include: ["*.gguf"]\n');
    await expect(lockManifest(manifest, async () => listing)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
  });

  it('rewrites the lockfile only when its content changes', async () => {
    const dir = await testTempDir('mf-lock-');
    const path = join(dir, 'modelfetch.lock.json');
    const lock = await lockManifest(parseManifest('models:\n  - repo: org/m\n'), async () => listing);
    expect((await writeLockfile(path, lock)).changed).toBe(true);
    const before = await stat(path);
    expect((await writeLockfile(path, lock)).changed).toBe(false);
    expect((await stat(path)).mtimeMs).toBe(before.mtimeMs);
    expect(await readFile(path, 'utf8')).toMatch(/\n$/);
  });
});
