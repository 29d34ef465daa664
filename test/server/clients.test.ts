import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { downloadFile, snapshotDownload } from '@huggingface/hub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMirrorServer, type MirrorServer } from '../../src/server/mirror-server.js';
import { buildCachedRepo, digestOf, fakeCommit, type BuiltFile } from '../support/cache-builder.js';
import { hasTool } from '../support/tools.js';

const run = promisify(execFile);

/** Unmodified third-party clients pointed at a mirror that serves an existing cache. */
describe('real clients against a mirror of a cache', () => {
  let root: string;
  let work: string;
  let mirror: MirrorServer;
  const commit = fakeCommit('clients');
  const files: BuiltFile[] = [
    { path: 'config.json', content: Buffer.from('{"a": 1}\n') },
    { path: 'model.safetensors', content: randomBytes(2 * 1024 * 1024 + 17), lfs: true },
    { path: 'sub/dir/notes.txt', content: Buffer.from('nested\n') },
  ];

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'mf-clients-'));
    work = await mkdtemp(join(tmpdir(), 'mf-clients-out-'));
    await buildCachedRepo(root, { repoId: 'org/model', commit, files });
    mirror = createMirrorServer({ cacheDir: root, publicRepos: ['*'], treePageSize: 2 });
    await mirror.listen();
  });

  afterAll(async () => {
    await mirror?.close();
    await rm(root, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('@huggingface/hub snapshotDownload builds an identical cache from the mirror', async () => {
    const cacheDir = join(work, 'hfjs');
    const folder = await snapshotDownload({ repo: 'org/model', cacheDir, hubUrl: mirror.url });
    expect(folder).toBe(join(cacheDir, 'models--org--model', 'snapshots', commit));
    for (const file of files) {
      expect((await readFile(join(folder, file.path))).equals(file.content)).toBe(true);
      expect(await readlink(join(folder, file.path))).toContain(digestOf(file).hex);
    }
    expect((await readFile(join(cacheDir, 'models--org--model', 'refs', 'main'), 'utf8')).trim()).toBe(commit);
    const blob = await downloadFile({ repo: 'org/model', path: 'model.safetensors', hubUrl: mirror.url });
    expect(Buffer.from(await blob!.arrayBuffer()).equals(files[1]!.content)).toBe(true);
    expect(await downloadFile({ repo: 'org/model', path: 'nope.bin', hubUrl: mirror.url })).toBeNull();
  });

  it.skipIf(!hasTool('aria2c'))('aria2c fetches a resolve URL over four connections', async () => {
    const out = join(work, 'aria');
    await run('aria2c', ['-x4', '-s4', '-k1M', '--min-split-size=1M', '--allow-overwrite=true', '--auto-file-renaming=false', '--console-log-level=warn', '--summary-interval=0', '-d', out, '-o', 'model.safetensors', `${mirror.url}/org/model/resolve/main/model.safetensors`]);
    expect((await readFile(join(out, 'model.safetensors'))).equals(files[1]!.content)).toBe(true);
  });
});
