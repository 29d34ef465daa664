import { ModelfetchError } from '../../core/errors.js';
import type { ResolvedOptions } from '../options.js';
import { ReconstructionClient } from './reconstruction-client.js';
import { fetchXorbRange } from './xorb-range-fetch.js';
import type { XetTokenProvider } from './xet-token.js';

/**
 * Rebuilds file bytes [from, end) alone. A signed xorb URL allows only its exact Range, so the
 * received part of a range that was cut off cannot be kept by asking the same URL for less; instead
 * the CAS is asked for a reconstruction of just those file bytes (the `Range` header the spec gives
 * the reconstruction endpoint), which names only the chunks holding them, with fresh URLs. Those
 * chunks are fetched in file order and handed on with the file position of each wanted byte.
 */

export interface RangeRebuildJob {
  fileHash: string;
  size: number;
  token: XetTokenProvider;
  /** File bytes [from, end). */
  from: number;
  end: number;
  /** Network bytes as they arrive. */
  onReceived: (bytes: number) => void;
  /** Decoded file bytes that belong at `position`, in order. */
  onBytes: (position: number, data: Buffer) => Promise<void>;
}

export async function rebuildRange(job: RangeRebuildJob, options: ResolvedOptions): Promise<void> {
  const source = new ReconstructionClient(job.fileHash, job.size, job.token, options, { start: job.from, end: job.end - 1 });
  await source.refresh(0);
  const { terms, offsetIntoFirstRange } = source.current;
  let termAt = job.from - offsetIntoFirstRange;
  for (const term of terms) {
    let written = 0;
    await fetchXorbRange(term.fetch, options, {
      onReceived: job.onReceived,
      onChunk: async (chunkIndex, data) => {
        if (chunkIndex < term.chunkStart || chunkIndex >= term.chunkEnd) return;
        const at = termAt + written;
        written += data.length;
        const start = Math.max(at, job.from);
        const stop = Math.min(at + data.length, job.end);
        if (stop > start) await job.onBytes(start, data.subarray(start - at, stop - at));
      },
    });
    if (written !== term.unpackedLength) {
      throw new ModelfetchError('ERR_BAD_RESPONSE', `A term of the Xet reconstruction of bytes ${job.from}-${job.end - 1} decodes to ${written} bytes, not ${term.unpackedLength}.`, { url: term.fetch.url });
    }
    termAt += term.unpackedLength;
    if (termAt >= job.end) return;
  }
  throw new ModelfetchError('ERR_BAD_RESPONSE', `The Xet reconstruction of bytes ${job.from}-${job.end - 1} ends at byte ${termAt}.`);
}
