import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readFile, readlink, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lockedCacheTree } from '../../src/bake/cache-tree.js';
import { writeOciLayout } from '../../src/bake/oci-layout.js';
import { fakeCommit, type BuiltRepo } from '../support/cache-builder.js';
import { buildLockedCache } from '../support/locked-cache.js';
import { hasTool } from '../support/tools.js';

const weights = randomBytes(300_000);
const spec: BuiltRepo = {
  repoId: 'org/tts',
  commit: fakeCommit('tts'),
  files: [
    { path: 'config.json', content: Buffer.from('{"model_type": "tts"}\n') },
    { path: 'checkpoints/deep/nested/path/that/is/long/enough/to/need/pax/headers/in/the/tar/model.safetensors', content: weights, lfs: true },
    { path: 'copy-of-config.json', content: Buffer.from('{"model_type": "tts"}\n') },
  ],
};
const prefix = 'opt/huggingface/hub';

describe('bake --oci layout', async () => {
  const work = await mkdtemp(join(tmpdir(), 'mf-oci-'));
  const cache = join(work, 'cache');
  const { lock } = await buildLockedCache(cache, [spec]);
  const tree = lockedCacheTree(lock, cache, prefix);
  afterAll(() => rm(work, { recursive: true, force: true }));

  it('is reproducible: the same lockfile gives the same digests', async () => {
    const a = await writeOciLayout(tree, join(work, 'a'), { tag: 'models' });
    const b = await writeOciLayout(tree, join(work, 'b'), { tag: 'models' });
    expect(b).toEqual(a);
    expect(a.diffId).not.toBe(a.layerDigest);
    const index = JSON.parse(await readFile(join(work, 'a', 'index.json'), 'utf8'));
    expect(index.manifests[0].digest).toBe(a.manifestDigest);
    const blobs = await readdir(join(work, 'a', 'blobs', 'sha256'));
    expect(blobs.sort()).toEqual([a.manifestDigest, a.configDigest, a.layerDigest].map((d) => d.slice(7)).sort());
  });

  it('refuses a blob that changed in the cache', async () => {
    const tampered = await mkdtemp(join(work, 'tampered-'));
    const { lock: lock2, repos } = await buildLockedCache(join(tampered, 'cache'), [spec]);
    const blob = repos[0]!.blob(lock2.models[0]!.files.find((f) => f.digest.algorithm === 'sha256')!.digest);
    const bytes = await readFile(blob);
    bytes[10] = bytes[10]! ^ 0xff;
    await writeFile(blob, bytes);
    await expect(writeOciLayout(lockedCacheTree(lock2, join(tampered, 'cache'), prefix), join(tampered, 'oci'), { tag: 'x' })).rejects.toMatchObject({ code: 'ERR_INTEGRITY' });
    expect(await readdir(join(tampered, 'oci', 'blobs', 'sha256'))).toEqual([]);
  });

  describe.skipIf(!hasTool('umoci'))('with umoci', () => {
    it('unpacks into a rootfs where huggingface_hub paths resolve to the right bytes', async () => {
      const layout = join(work, 'umoci');
      await writeOciLayout(tree, layout, { tag: 'models', env: ['HF_HOME=/opt/huggingface'] });
      const bundle = join(work, 'bundle');
      execFileSync('umoci', ['unpack', '--rootless', '--image', `${layout}:models`, bundle], { stdio: 'pipe' });
      const repoDir = join(bundle, 'rootfs', prefix, 'models--org--tts');
      const snapshot = join(repoDir, 'snapshots', spec.commit);
      for (const file of spec.files) {
        const link = join(snapshot, file.path);
        expect((await lstat(link)).isSymbolicLink()).toBe(true);
        expect(await readlink(link)).toMatch(/^(\.\.\/)+blobs\/[0-9a-f]{40,64}$/);
        expect((await readFile(link)).equals(file.content)).toBe(true);
      }
      expect(await readFile(join(repoDir, 'refs', 'main'), 'utf8')).toBe(spec.commit);
      expect((await readdir(join(repoDir, 'blobs'))).length).toBe(2); // two identical configs share one blob
      const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
      expect(config.process.env).toContain('HF_HOME=/opt/huggingface');
    });
  });

  describe.skipIf(!hasTool('skopeo'))('with skopeo', () => {
    it('inspects the layout', async () => {
      const layout = join(work, 'skopeo');
      const result = await writeOciLayout(tree, layout, { tag: 'models' });
      const info = JSON.parse(execFileSync('skopeo', ['inspect', `oci:${layout}:models`]).toString());
      expect(info.Digest).toBe(result.manifestDigest);
      expect(info.Layers).toEqual([result.layerDigest]);
    });
  });
});
