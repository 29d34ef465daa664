import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RepoPaths } from '../cache/layout.js';
import { ModelfetchError } from '../core/errors.js';
import { createDigestHash } from '../core/hash/file-digest.js';
import type { FileDigest } from '../core/types.js';
import { compareCodeUnits } from '../preload/canonical-json.js';
import type { Lockfile } from '../preload/lockfile.js';

/**
 * The exact huggingface_hub cache tree a lockfile describes: blobs, relative snapshot symlinks and
 * refs, and nothing else (no other commits, no partial downloads, no modelfetch state). Built from
 * the lockfile, not by walking the disk, so the same lockfile always gives the same tree whatever
 * else the cache holds and whether its snapshots are symlinks or copies.
 */

export type TreeEntry =
  | { type: 'directory'; path: string }
  /** Content read from `source` (a cache blob), checked against `digest` while it is copied. */
  | { type: 'file'; path: string; size: number; source: string; digest: FileDigest }
  | { type: 'data'; path: string; data: Buffer }
  | { type: 'symlink'; path: string; target: string };

/** Entries under `prefix` (a relative POSIX path, e.g. `opt/huggingface/hub`), sorted by path, parents first. */
export function lockedCacheTree(lock: Lockfile, cacheDir: string, prefix = ''): TreeEntry[] {
  const entries = new Map<string, TreeEntry>();
  const under = (path: string): string => (prefix ? posix.join(prefix, path) : path);
  const add = (entry: TreeEntry): void => {
    for (let dir = posix.dirname(entry.path); dir !== '.' && dir !== '/' && !entries.has(dir); dir = posix.dirname(dir)) {
      entries.set(dir, { type: 'directory', path: dir });
    }
    entries.set(entry.path, entry);
  };
  for (const model of lock.models) {
    if (model.source !== 'hf') {
      throw new ModelfetchError('ERR_USAGE', `Cannot bake ${model.identity}: only Hugging Face (hf) models have a huggingface_hub cache layout`, { hint: 'Bake hf models only, or let `modelfetch run` fetch the others at start.' });
    }
    const repo = new RepoPaths(cacheDir, model.repoType, model.repo);
    const folder = repo.folder;
    add({ type: 'directory', path: under(`${folder}/blobs`) });
    for (const file of model.files) {
      add({ type: 'file', path: under(`${folder}/blobs/${file.digest.hex}`), size: file.size, source: repo.blob(file.digest), digest: file.digest });
      add({ type: 'symlink', path: under(`${folder}/snapshots/${model.commit}/${file.path}`), target: repo.linkTarget(file.path, file.digest) });
    }
    add({ type: 'directory', path: under(`${folder}/snapshots/${model.commit}`) });
    if (model.revision !== model.commit) add({ type: 'data', path: under(`${folder}/refs/${model.revision}`), data: Buffer.from(model.commit) });
  }
  return [...entries.values()].sort((a, b) => compareCodeUnits(a.path, b.path));
}

/**
 * Copies a cache blob into `sink` (opened only once the blob's size is checked), hashing it on the
 * way, and fails with ERR_INTEGRITY when its bytes are not the locked ones.
 */
export async function copyVerified(source: string, size: number, digest: FileDigest, openSink: () => Writable): Promise<void> {
  const actual = await stat(source).catch((error: unknown) => {
    throw new ModelfetchError('ERR_INCOMPLETE', `${source} is missing from the cache`, { hint: 'Run `modelfetch sync` with this lockfile first.', cause: error });
  });
  if (actual.size !== size) {
    throw new ModelfetchError('ERR_SIZE', `${source} has ${actual.size} bytes, the lockfile says ${size}`, { expected: size, found: actual.size, hint: 'Run `modelfetch sync` to repair the cache, then bake again.' });
  }
  const hash = createDigestHash(digest.algorithm, size);
  const tap = new PassThrough();
  tap.on('data', (chunk: Buffer) => hash.update(chunk));
  await pipeline(createReadStream(source), tap, openSink());
  const hex = hash.digest('hex');
  if (hex !== digest.hex) {
    throw new ModelfetchError('ERR_INTEGRITY', `${source} does not match the lockfile's ${digest.algorithm} digest`, { expected: digest.hex, found: hex, hint: 'The cache was modified. Run `modelfetch sync` to repair it, then bake again.' });
  }
}

/** Writes the tree under `dir` (e.g. a Docker build stage's output), blobs copied and checked. */
export async function writeTree(entries: TreeEntry[], dir: string): Promise<void> {
  for (const entry of entries) {
    const target = join(dir, entry.path);
    if (entry.type === 'directory') {
      await mkdir(target, { recursive: true });
    } else if (entry.type === 'symlink') {
      await rm(target, { force: true });
      await symlink(entry.target, target);
    } else if (entry.type === 'data') {
      await writeFile(target, entry.data);
    } else {
      const temp = `${target}.mf-tmp`;
      try {
        await copyVerified(entry.source, entry.size, entry.digest, () => createWriteStream(temp));
        await rename(temp, target);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
    }
  }
}
