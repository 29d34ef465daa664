import type { Dirent } from 'node:fs';
import { readdir, readlink, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fromSystemError, ModelfetchError } from '../core/errors.js';
import { digestFromBlobName } from '../cache/scan.js';
import type { FileDigest } from '../core/types.js';

/** The files of a model folder (a cache snapshot or a plain folder), as `inspect` and `convert` read them. */

export interface FolderFile {
  /** POSIX path inside the folder. */
  path: string;
  /** Absolute path (a snapshot link is followed when read). */
  absolute: string;
  size: number;
  /** The blob a cache snapshot link names, when it is one. */
  blob?: FileDigest;
}

/** Folders that are bookkeeping, not model files: huggingface_hub's local_dir metadata, git. */
const SKIPPED_DIRS = new Set(['.cache', '.git']);

/**
 * Every file below `root`. Links to files are followed (snapshot entries are links to blobs); a
 * linked folder is never entered, so a folder cannot make us read outside itself.
 */
export async function listFolder(root: string): Promise<FolderFile[]> {
  const out: FolderFile[] = [];
  const visit = async (dir: string, prefix: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && prefix === '') {
        throw new ModelfetchError('ERR_NOT_FOUND', `${root} does not exist`, { hint: 'Give a model folder, a cache snapshot, or org/name.' });
      }
      throw fromSystemError(error, `reading ${dir}`);
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const absolute = join(dir, entry.name);
      const path = prefix + entry.name;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name)) await visit(absolute, `${path}/`);
        continue;
      }
      if (!entry.isFile() && !entry.isSymbolicLink()) continue;
      const info = await stat(absolute).catch(() => undefined);
      if (!info?.isFile()) continue; // dangling link, or a link to a folder
      const blob = entry.isSymbolicLink() ? digestFromBlobName(basename(await readlink(absolute))) : undefined;
      out.push({ path, absolute, size: info.size, ...(blob && { blob }) });
    }
  };
  await visit(root, '');
  return out;
}

export function isSafetensors(path: string): boolean {
  return path.endsWith('.safetensors');
}

export function isSafetensorsIndex(path: string): boolean {
  return path.endsWith('.safetensors.index.json');
}
