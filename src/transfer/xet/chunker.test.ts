import { getChunks } from '@huggingface/xetchunk-wasm';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { chunkBoundaries, XET_MAX_CHUNK_SIZE, XET_MIN_CHUNK_SIZE, XetChunker } from './chunker.js';
import { splitmixData } from './splitmix.test-support.js';

function streamedBoundaries(data: Uint8Array, pieceSize: number): number[] {
  const chunker = new XetChunker();
  const ends: number[] = [];
  let offset = 0;
  const record = (size: number): void => {
    offset += size;
    ends.push(offset);
  };
  for (let at = 0; at < data.length; at += pieceSize) chunker.push(data.subarray(at, at + pieceSize)).forEach(record);
  const last = chunker.finish();
  if (last !== undefined) record(last);
  return ends;
}

/** `size` pseudo-random bytes that depend only on `seed`. */
function seededBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let block = 0; block * 32 < size; block++) createHash('sha256').update(`${seed}:${block}`).digest().copy(out, block * 32);
  return out;
}

describe('Xet content-defined chunker', () => {
  it('cuts xet-core\'s 1 MB SplitMix64 reference data where xet-core does (published test vector)', () => {
    const data = splitmixData(1_000_000, 0n);
    expect([data[0], data[127], data[111111]]).toEqual([175, 132, 118]);
    expect(chunkBoundaries(data)).toEqual([84493, 134421, 144853, 243318, 271793, 336457, 467529, 494581, 582000, 596735, 616815, 653164, 678202, 724510, 815591, 827760, 958832, 991092, 1000000]);
  });

  it('cuts constant data at the maximum chunk size (published test vector)', () => {
    expect(chunkBoundaries(new Uint8Array(1_000_000).fill(59))).toEqual([131072, 262144, 393216, 524288, 655360, 786432, 917504, 1000000]);
  });

  it('gives the same boundaries however the input is split into pieces', () => {
    const data = splitmixData(256_000, 1n);
    const whole = chunkBoundaries(data);
    expect(whole.length).toBeGreaterThan(2);
    for (const piece of [1, 37, 255, 70_000]) expect(streamedBoundaries(data, piece)).toEqual(whole);
  });

  it('keeps every chunk but the last within the minimum and maximum sizes', () => {
    const data = randomBytes(3 * 1024 * 1024);
    const ends = chunkBoundaries(data);
    const sizes = ends.map((end, i) => end - (i === 0 ? 0 : (ends[i - 1] as number)));
    for (const size of sizes.slice(0, -1)) {
      expect(size).toBeGreaterThanOrEqual(XET_MIN_CHUNK_SIZE);
      expect(size).toBeLessThanOrEqual(XET_MAX_CHUNK_SIZE);
    }
    expect(ends.at(-1)).toBe(data.length);
  });

  it('never cuts a chunk shorter than the minimum, which the pre-fix rule of older chunkers (@huggingface/xetchunk-wasm 0.2) did', () => {
    // xet-core fixed "spurious boundary triggering" (a trigger in the 64 bytes before the minimum cut a
    // short chunk); hf_xet chunks with the fix. On random data the older rule cuts some short chunks.
    // Fixed bytes (a SHA-256 counter stream), so the boundaries compared below are the same every run.
    const data = seededBytes('xet-chunker-minimum', 8 * 1024 * 1024);
    let offset = 0;
    const older = getChunks(data).map((chunk) => (offset += chunk.length));
    const ours = chunkBoundaries(data);
    const shortOlder = older.filter((end, i) => i < older.length - 1 && end - (i === 0 ? 0 : (older[i - 1] as number)) < XET_MIN_CHUNK_SIZE);
    const shortOurs = ours.filter((end, i) => i < ours.length - 1 && end - (i === 0 ? 0 : (ours[i - 1] as number)) < XET_MIN_CHUNK_SIZE);
    expect(shortOurs).toEqual([]);
    // Where the older rule made no short chunk, both agree on every boundary up to its first short one.
    const firstShort = shortOlder[0] ?? Number.POSITIVE_INFINITY;
    const before = (ends: number[]): number[] => ends.filter((end) => end < firstShort - XET_MIN_CHUNK_SIZE);
    expect(before(ours)).toEqual(before(older));
    expect(before(ours).length).toBeGreaterThan(0);
  });

  it('makes no chunk of empty input and one chunk of a short one', () => {
    expect(chunkBoundaries(new Uint8Array(0))).toEqual([]);
    expect(chunkBoundaries(new Uint8Array(63))).toEqual([63]);
  });
});
