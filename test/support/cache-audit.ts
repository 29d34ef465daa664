import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink, realpath } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';

/**
 * An independent check of a cache directory, for tests that must not trust the code under test:
 * every blob re-hashed against its name, every snapshot entry a link to an existing blob inside the
 * repo (or a complete copy of one), nothing else lying where a loader looks.
 */

export interface CacheAudit {
  blobs: number;
  snapshotEntries: number;
  /** Blobs whose content does not hash to their name, or whose name is not a digest. */
  badBlobs: string[];
  /** Snapshot links whose target is missing or outside the repo's blobs/. */
  danglingLinks: string[];
  /** Snapshot entries that are neither a link to a blob nor a byte-identical copy of one (e.g. a temp file). */
  strayEntries: string[];
  /** Blob entries that are not regular files (a planted symlink, a directory). */
  nonFileBlobs: string[];
}

export function isClean(audit: CacheAudit): boolean {
  return audit.badBlobs.length + audit.danglingLinks.length + audit.strayEntries.length + audit.nonFileBlobs.length === 0;
}

async function hashFile(path: string, algorithm: 'sha256' | 'git-sha1', size: number): Promise<string> {
  const hash = createHash(algorithm === 'sha256' ? 'sha256' : 'sha1');
  if (algorithm === 'git-sha1') hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function list(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(full)));
    else out.push(full);
  }
  return out;
}

export async function auditCache(root: string): Promise<CacheAudit> {
  const audit: CacheAudit = { blobs: 0, snapshotEntries: 0, badBlobs: [], danglingLinks: [], strayEntries: [], nonFileBlobs: [] };
  for (const folder of await list(root)) {
    if (!/^(models|datasets|spaces)--/.test(folder)) continue;
    const repoDir = join(root, folder);
    const blobsDir = join(repoDir, 'blobs');
    // Content hash -> blob name, to recognise copy-mode snapshot files.
    const sha256ByBlob = new Map<string, string>();
    for (const name of await list(blobsDir)) {
      const path = join(blobsDir, name);
      const info = await lstat(path);
      audit.blobs += 1;
      if (!info.isFile()) {
        audit.nonFileBlobs.push(path);
        continue;
      }
      const algorithm = /^[0-9a-f]{64}$/.test(name) ? 'sha256' : /^[0-9a-f]{40}$/.test(name) ? 'git-sha1' : undefined;
      if (!algorithm || (await hashFile(path, algorithm, info.size)) !== name) {
        audit.badBlobs.push(path);
        continue;
      }
      sha256ByBlob.set(await hashFile(path, 'sha256', info.size), name);
    }
    const realBlobs = await realpath(blobsDir).catch(() => blobsDir);
    for (const entry of await walk(join(repoDir, 'snapshots'))) {
      audit.snapshotEntries += 1;
      const info = await lstat(entry);
      if (info.isSymbolicLink()) {
        const target = resolve(dirname(entry), await readlink(entry));
        const inside = dirname(target) === blobsDir || dirname(target) === realBlobs;
        const exists = await lstat(target).then((s) => s.isFile(), () => false);
        if (!inside || !exists) audit.danglingLinks.push(entry);
        continue;
      }
      if (!info.isFile() || !sha256ByBlob.has(await hashFile(entry, 'sha256', info.size))) audit.strayEntries.push(relative(root, entry).split(sep).join('/'));
    }
  }
  return audit;
}

/** Every file under `dir`, relative, with its size, for "nothing changed" assertions. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const file of await walk(dir)) {
    const info = await lstat(file);
    out.push(`${relative(dir, file).split(sep).join('/')}:${info.isSymbolicLink() ? 'link' : info.size}`);
  }
  return out.sort();
}
