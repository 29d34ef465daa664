import { open, type FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../core/errors.js';
import { readHeader, type SafetensorsHeader } from './header.js';

/** The first read of a header: the length prefix and, for almost every file, the whole JSON. */
export const FIRST_READ_BYTES = 64 * 1024;

/** Reads exactly `length` bytes at `position` (fewer only at the end of the file). */
export async function readAt(file: FileHandle, buffer: Buffer, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** The header of an open local file, checked against its size. */
export async function readHeaderOfHandle(file: FileHandle, size: number, what: string): Promise<SafetensorsHeader> {
  const first = Buffer.alloc(Math.min(FIRST_READ_BYTES, size));
  const got = await readAt(file, first, first.length, 0);
  return readHeader(first.subarray(0, got), size, async (start, end) => {
    const rest = Buffer.alloc(end - start);
    return rest.subarray(0, await readAt(file, rest, rest.length, start));
  }, what);
}

/** The header of a local safetensors file (symlinks into the cache followed), with the file's size. */
export async function readLocalHeader(path: string, what: string = path): Promise<{ header: SafetensorsHeader; size: number }> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (error) {
    throw fromSystemError(error, `opening ${path}`);
  }
  try {
    const { size } = await file.stat();
    return { header: await readHeaderOfHandle(file, size, what), size };
  } finally {
    await file.close();
  }
}
