import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, rm, unlink } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { ModelfetchError } from '../core/errors.js';

/**
 * The one place that decides whether a path below a cache root may be written, renamed or deleted:
 * every folder between the root and the path must be a real folder, never a symlink (or a file) that
 * someone planted where the layout has a folder. Followed, such a link would make `gc`, `rm`,
 * `verify --fix` or `pull` act on whatever it points to. The root itself may be a link (users point
 * `~/.cache/huggingface` at a bigger disk): it is taken as given, and nothing below it is followed.
 *
 * Each folder is checked with lstat from the root down, and created one level at a time. Node has
 * no openat(), so a folder swapped for a link between the check and the write is not caught; what
 * this closes is a link planted beforehand, the case of a shared cache another user can write to.
 */

/** The error for a non-folder where the layout has a folder: names it and says what to do. */
export function unsafeFolderError(path: string, info: Stats): ModelfetchError {
  const what = info.isSymbolicLink() ? 'a symbolic link' : 'not a folder';
  return new ModelfetchError('ERR_UNSAFE_PATH', `${path} is ${what} where the cache layout has a folder; modelfetch never writes or deletes through it`, {
    hint: `Look at what it points to, remove it (rm ${JSON.stringify(path)}) and run the command again.`,
  });
}

/** The folders from just below `root` down to `dir` (inclusive), each as an absolute path. */
function foldersBelow(root: string, dir: string): string[] {
  const rel = relative(root, dir);
  if (rel === '') return [];
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new ModelfetchError('ERR_UNSAFE_PATH', `${dir} is outside the cache root ${root}`);
  }
  const parts = rel.split(sep);
  return parts.map((_, i) => join(root, ...parts.slice(0, i + 1)));
}

async function lstatOrMissing(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Throws ERR_UNSAFE_PATH when a folder between `root` and `path` (the path itself excluded) exists
 * and is not a real folder. Missing folders are fine: nothing can be acted on through them.
 */
export async function assertRealFolders(root: string, path: string): Promise<void> {
  for (const folder of foldersBelow(root, dirname(path))) {
    const info = await lstatOrMissing(folder);
    if (!info) return;
    if (!info.isDirectory()) throw unsafeFolderError(folder, info);
  }
}

/** Creates `dir` and the folders above it up to `root`, one level at a time, refusing any that is not a real folder. */
export async function makeRealFolders(root: string, dir: string): Promise<void> {
  for (const [level, folder] of foldersBelow(root, dir).entries()) {
    let info = await lstatOrMissing(folder);
    if (!info) {
      try {
        await mkdir(folder);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // The root itself is the user's to choose: made as given, links and all.
        if (code === 'ENOENT' && level === 0) await mkdir(root, { recursive: true }).then(() => mkdir(folder));
        else if (code !== 'EEXIST') throw error;
      }
      info = await lstat(folder);
    }
    if (!info.isDirectory()) throw unsafeFolderError(folder, info);
  }
}

/**
 * Creates the empty marker file `path` if needed and sets its times to `when` (modelfetch's last-use
 * records, huggingface_hub's `.no_exist` markers), through real folders only and never through a link
 * at `path` itself: a planted link (even one pointing at a missing file) is replaced by the marker.
 */
export async function touchMarker(root: string, path: string, when?: Date): Promise<void> {
  await makeRealFolders(root, dirname(path));
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW;
  let handle;
  try {
    handle = await open(path, flags, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOOP') throw error;
    await unlink(path);
    handle = await open(path, flags | constants.O_EXCL, 0o644);
  }
  try {
    if (when) await handle.utimes(when, when);
  } finally {
    await handle.close();
  }
}

/**
 * Deletes `path` below `root` (a file or link; with `folder`, a whole folder, whose links inside are
 * removed, not followed), reached through real folders only. Missing is fine.
 */
export async function removeUnder(root: string, path: string, options: { folder?: boolean } = {}): Promise<void> {
  await assertRealFolders(root, path);
  if (options.folder) {
    await rm(path, { recursive: true, force: true });
    return;
  }
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
