import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { isModelfetchError, ModelfetchError } from '../../core/errors.js';
import type { RangeReader } from '../range-read.js';
import { isPiece, pieceRange, type TorrentInfo } from './torrent.js';

/**
 * A stalled swarm download keeps what it verified: the pieces still missing are read from the
 * torrent's web seeds (the mirror's blob URL) over HTTP, through the engine's range reads (budget,
 * retries, stall watch), each checked against its SHA-1 before it is written at its offset. The
 * SHA-256 gate follows as for any swarm download. Before, a stall threw the file away and the
 * caller fetched it whole over HTTP again, so a node stalled near the end of a 20 GB file paid for
 * all of it twice.
 */

/** Pieces read at once: enough to fill a link to the mirror, 4 MiB each in memory. */
const PIECES_AT_ONCE = 4;

/** Reads `missing` pieces from `webSeeds` into the file at `path`; returns the bytes read. */
export async function finishOverHttp(
  path: string,
  info: TorrentInfo,
  missing: readonly number[],
  webSeeds: readonly string[],
  read: RangeReader,
  onBytes: (bytes: number) => void = () => {},
): Promise<number> {
  if (webSeeds.length === 0) throw new ModelfetchError('ERR_NETWORK', `The torrent of ${info.name} names no web seed to fetch its missing pieces from`);
  // The engine may not have created the file yet (no piece verified): create it, never through a symlink.
  const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  let fetched = 0;
  try {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < missing.length) {
        const index = missing[next++] as number;
        const bytes = await readPiece(info, index, webSeeds, read);
        await handle.write(bytes, 0, bytes.length, pieceRange(info, index).start);
        fetched += bytes.length;
        onBytes(bytes.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PIECES_AT_ONCE, missing.length) }, worker));
    await handle.sync();
  } finally {
    await handle.close();
  }
  return fetched;
}

/** One piece from the first web seed that sends it whole and with the right SHA-1. */
async function readPiece(info: TorrentInfo, index: number, webSeeds: readonly string[], read: RangeReader): Promise<Buffer> {
  const { start, end } = pieceRange(info, index);
  let why = '';
  for (const url of webSeeds) {
    try {
      const { bytes } = await read({ url, start, end });
      if (isPiece(info, index, bytes)) return bytes;
      why = bytes.length === end - start ? 'sent bytes that fail its SHA-1 check' : `sent ${bytes.length} bytes of its ${end - start}`;
    } catch (error) {
      // The web seed URL may carry a capability: the reason names the error's code, never the URL.
      why = `failed (${isModelfetchError(error) ? error.code : 'network error'})`;
    }
  }
  throw new ModelfetchError('ERR_NETWORK', `The web seed of ${info.name} ${why} for piece ${index}`);
}
