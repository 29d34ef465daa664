import { constants } from 'node:fs';
import { lstat, open, unlink, type FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../core/errors.js';

/**
 * The partial file a download writes into. Never opened through a symlink (O_NOFOLLOW), created
 * exclusively, preallocated to its final size so segments can be written at their offsets.
 */

export async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path); // unlink removes a planted symlink itself, never its target
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    // A read-only file system refuses to unlink even a name that is not there: absent is what was asked for.
    if (await lstat(path).then(() => false, () => true)) return;
    throw fromSystemError(error, `removing ${path}`);
  }
}

/** A new, empty temp file at `path` (anything already there is removed first), sized to `size` when known. */
export async function createTempFile(path: string, size: number | undefined): Promise<FileHandle> {
  await removeIfPresent(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    if (size !== undefined && size > 0) await handle.truncate(size);
    return handle;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    throw fromSystemError(error, `creating ${path}`);
  }
}

/** Reopens a previous run's temp file for resuming; undefined unless it is a regular file of exactly `size` bytes. */
export async function reopenTempFile(path: string, size: number): Promise<FileHandle | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  const info = await handle.stat();
  if (info.isFile() && info.size === size) return handle;
  await handle.close();
  return undefined;
}

/** Writes all of `data` at `position` of the open file at `path` (a short write goes on where it stopped). */
export async function writeAllAt(handle: FileHandle, path: string, data: Buffer, position: number): Promise<void> {
  let offset = 0;
  try {
    while (offset < data.length) {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset, position + offset);
      offset += bytesWritten;
    }
  } catch (error) {
    throw fromSystemError(error, `writing ${path}`);
  }
}
