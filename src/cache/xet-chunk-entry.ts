import { XET_HASH_BYTES } from '../core/hash/xet-hash.js';

/**
 * The format of one chunk index entry (see xet-chunk-cache.ts): a magic, the chunk count, the term's
 * offset in its blob, the blob's path and its partial download's path (both relative to the cache
 * root), then a u32 length and a 32-byte hash per chunk.
 */

const MAGIC = Buffer.from('MFXETR01');
/** magic, u32 count, u64 offset, u16 + u16 path lengths */
const HEADER_BYTES = MAGIC.length + 4 + 8 + 2 + 2;
export const HASH_BYTES = XET_HASH_BYTES;

export interface ParsedEntry {
  offset: number;
  blob: string;
  temp: string;
  /** Byte offset of each chunk from `offset`, plus the end. */
  offsets: number[];
  hashes: Buffer;
}

/** An entry's contents; undefined when it is not a well-formed entry of `count` chunks. */
export function parseEntry(data: Buffer, count: number): ParsedEntry | undefined {
  if (data.length < HEADER_BYTES || !data.subarray(0, MAGIC.length).equals(MAGIC) || data.readUInt32LE(MAGIC.length) !== count) return undefined;
  const offset = Number(data.readBigUInt64LE(MAGIC.length + 4));
  const blobLength = data.readUInt16LE(MAGIC.length + 12);
  const tempLength = data.readUInt16LE(MAGIC.length + 14);
  const tableAt = HEADER_BYTES + blobLength + tempLength;
  if (data.length !== tableAt + count * (4 + HASH_BYTES) || !Number.isSafeInteger(offset)) return undefined;
  const offsets = [0];
  for (let i = 0; i < count; i++) offsets.push((offsets[i] as number) + data.readUInt32LE(tableAt + i * 4));
  return {
    offset,
    blob: data.subarray(HEADER_BYTES, HEADER_BYTES + blobLength).toString('utf8'),
    temp: data.subarray(HEADER_BYTES + blobLength, tableAt).toString('utf8'),
    offsets,
    hashes: data.subarray(tableAt + count * 4),
  };
}

/** Collects the length and hash of each chunk of one term as a download writes it; `ChunkCache.writeEntries` then writes the entry. */
export class ChunkRecorder {
  private lengths: number[] = [];
  private hashes: Buffer[] = [];

  constructor(
    private readonly xorbHash: string,
    private readonly final: string,
    private readonly count: number,
    private readonly where: { offset: number; blob: string; temp: string },
  ) {}

  add(length: number, hash: Uint8Array): void {
    this.lengths.push(length);
    this.hashes.push(Buffer.from(hash));
  }

  /** The entry to write once every chunk was added; undefined before. */
  entry(): { xorbHash: string; final: string; data: Buffer } | undefined {
    if (this.lengths.length !== this.count) return undefined;
    const blob = Buffer.from(this.where.blob);
    const temp = Buffer.from(this.where.temp);
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header);
    header.writeUInt32LE(this.count, MAGIC.length);
    header.writeBigUInt64LE(BigInt(this.where.offset), MAGIC.length + 4);
    header.writeUInt16LE(blob.length, MAGIC.length + 12);
    header.writeUInt16LE(temp.length, MAGIC.length + 14);
    const lengths = Buffer.alloc(this.count * 4);
    this.lengths.forEach((length, i) => lengths.writeUInt32LE(length, i * 4));
    return { xorbHash: this.xorbHash, final: this.final, data: Buffer.concat([header, blob, temp, lengths, ...this.hashes]) };
  }
}
