import { describe, expect, it } from 'vitest';
import { parseRepoFolderName, repoFolderName, RepoPaths } from './layout.js';
import { resolveCacheDir } from '../core/env.js';

describe('cache layout', () => {
  it('resolves the cache root the way huggingface_hub does', () => {
    expect(resolveCacheDir({ HF_HUB_CACHE: '/a' }, '/home/u')).toBe('/a');
    expect(resolveCacheDir({ HF_HOME: '/h' }, '/home/u')).toBe('/h/hub');
    expect(resolveCacheDir({ XDG_CACHE_HOME: '/x' }, '/home/u')).toBe('/x/huggingface/hub');
    expect(resolveCacheDir({}, '/home/u')).toBe('/home/u/.cache/huggingface/hub');
  });

  it('names repo folders like huggingface_hub and parses them back', () => {
    expect(repoFolderName('model', 'openai/whisper-tiny')).toBe('models--openai--whisper-tiny');
    expect(repoFolderName('dataset', 'squad')).toBe('datasets--squad');
    expect(parseRepoFolderName('spaces--org--app')).toEqual({ repoType: 'space', repoId: 'org/app' });
    expect(parseRepoFolderName('.locks')).toBeUndefined();
    expect(() => repoFolderName('model', '../evil')).toThrow();
    expect(() => repoFolderName('model', 'a--b/c')).toThrow();
  });

  it('links nested snapshot files to their blob with the right depth', () => {
    const repo = new RepoPaths('/c', 'model', 'org/name');
    const digest = { algorithm: 'sha256' as const, hex: 'ab'.repeat(32) };
    expect(repo.linkTarget('config.json', digest)).toBe(`../../blobs/${digest.hex}`);
    expect(repo.linkTarget('a/b/w.bin', digest)).toBe(`../../../../blobs/${digest.hex}`);
    expect(repo.lock(digest)).toBe(`/c/.locks/models--org--name/${digest.hex}.lock`);
    expect(() => repo.snapshotFile('0'.repeat(40), '../x')).toThrow();
  });
});
