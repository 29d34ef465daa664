import { GEAR_HIGH, GEAR_LOW } from './gear-table.js';

/**
 * Xet's content-defined chunker (CDC). A gear rolling hash runs over the bytes; a chunk ends where the
 * top 16 bits of the 64-bit hash are all zero, but never before MIN and always at MAX. The rules match
 * xet-core's, byte for byte, because chunk boundaries decide which chunks two files share.
 */

export const XET_TARGET_CHUNK_SIZE = 64 * 1024;
export const XET_MIN_CHUNK_SIZE = XET_TARGET_CHUNK_SIZE / 8;
export const XET_MAX_CHUNK_SIZE = XET_TARGET_CHUNK_SIZE * 2;

/** Bytes that influence the gear hash (each step shifts one bit out of 64). */
const HASH_WINDOW = 64;
/** Chunk offsets below this are never hashed: a cut cannot land there, and 64 bytes are enough to warm the hash. */
const FIRST_HASHED_OFFSET = XET_MIN_CHUNK_SIZE - HASH_WINDOW - 1;
/** (TARGET - 1) shifted to the top of 64 bits: the low bits of a gear hash depend on too few bytes. */
const CUT_MASK_HIGH = 0xffff0000;

/** Streaming chunker: feed bytes in any pieces, get the same chunk sizes as for the whole input at once. */
export class XetChunker {
  private hashHigh = 0;
  private hashLow = 0;
  /** Bytes of the chunk being built so far (fed earlier or in this call). */
  private chunkLength = 0;

  /** Feeds `data`; returns the sizes of the chunks that end inside it, in order. */
  push(data: Uint8Array): number[] {
    const sizes: number[] = [];
    const n = data.length;
    let i = 0;
    while (i < n) {
      if (this.chunkLength < FIRST_HASHED_OFFSET) {
        const skip = Math.min(FIRST_HASHED_OFFSET - this.chunkLength, n - i);
        i += skip;
        this.chunkLength += skip;
        continue;
      }
      let high = this.hashHigh;
      let low = this.hashLow;
      let length = this.chunkLength;
      let cut = false;
      while (i < n) {
        const byte = data[i++] as number;
        length++;
        // hash = (hash << 1) + GEAR[byte] (mod 2^64), in two 32-bit halves with the carry passed up.
        const lowSum = ((low << 1) >>> 0) + (GEAR_LOW[byte] as number);
        high = (((high << 1) | (low >>> 31)) + (GEAR_HIGH[byte] as number) + (lowSum > 0xffffffff ? 1 : 0)) >>> 0;
        low = lowSum >>> 0;
        if (((high & CUT_MASK_HIGH) === 0 && length >= XET_MIN_CHUNK_SIZE) || length >= XET_MAX_CHUNK_SIZE) {
          cut = true;
          break;
        }
      }
      if (cut) {
        sizes.push(length);
        this.hashHigh = 0;
        this.hashLow = 0;
        this.chunkLength = 0;
      } else {
        this.hashHigh = high;
        this.hashLow = low;
        this.chunkLength = length;
      }
    }
    return sizes;
  }

  /** Ends the input: the size of the last, shorter chunk, or undefined when nothing is pending. */
  finish(): number | undefined {
    const last = this.chunkLength;
    this.hashHigh = 0;
    this.hashLow = 0;
    this.chunkLength = 0;
    return last > 0 ? last : undefined;
  }
}

/** The end offsets of the chunks of `data` (the last one is `data.length`; none for empty input). */
export function chunkBoundaries(data: Uint8Array): number[] {
  const chunker = new XetChunker();
  const ends: number[] = [];
  let offset = 0;
  for (const size of [...chunker.push(data), chunker.finish() ?? 0]) {
    if (size === 0) continue;
    offset += size;
    ends.push(offset);
  }
  return ends;
}
