import { compressFrameSync } from 'lz4-napi';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { byteGroup4, byteUngroup4, ChunkStreamDecoder, CompressionScheme, decodeChunkBody, decodeChunkHeader, decodeChunks, encodeChunk, encodeChunkHeader, XET_CHUNK_HEADER_BYTES } from './chunk-codec.js';

/** Compressible, float-like bytes: the high bytes of each 4-byte word repeat, as in fp32 tensors. */
function tensorLike(length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = i % 4 === 3 ? 0x3f : i % 4 === 2 ? 0x80 + (i % 7) : (i * 31) % 251;
  return out;
}

describe('Xet chunk codec', () => {
  it('packs the 8-byte header as version, 3-byte LE compressed length, scheme, 3-byte LE length', () => {
    const header = encodeChunkHeader({ version: 0, compressedLength: 0x012345, scheme: CompressionScheme.LZ4, uncompressedLength: 0x01fedc });
    expect([...header]).toEqual([0, 0x45, 0x23, 0x01, 1, 0xdc, 0xfe, 0x01]);
  });

  it('regroups bytes by position mod 4 and back, for every length remainder', () => {
    for (const length of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1001]) {
      const data = randomBytes(length);
      const grouped = byteGroup4(data);
      expect(byteUngroup4(grouped).equals(data)).toBe(true);
      if (length === 6) expect([...grouped]).toEqual([data[0], data[4], data[1], data[5], data[2], data[3]]);
    }
  });

  it.each([
    ['none', CompressionScheme.None],
    ['LZ4 frame', CompressionScheme.LZ4],
    ['ByteGrouping4-LZ4', CompressionScheme.ByteGrouping4LZ4],
  ])('round-trips a chunk stored with %s', (_name, scheme) => {
    const data = tensorLike(70_001);
    const stored = encodeChunk(data, scheme);
    const header = decodeChunkHeader(stored);
    expect(header.scheme).toBe(scheme);
    expect(header.uncompressedLength).toBe(data.length);
    if (scheme !== CompressionScheme.None) expect(stored.length).toBeLessThan(data.length);
    const [chunk] = decodeChunks(stored, 1);
    expect(chunk?.data.equals(data)).toBe(true);
  });

  it('stores incompressible data uncompressed even when asked to compress', () => {
    const data = randomBytes(4096);
    expect(decodeChunkHeader(encodeChunk(data, CompressionScheme.LZ4)).scheme).toBe(CompressionScheme.None);
  });

  it('decodes a run of chunks with mixed schemes and checks the count', () => {
    const parts = [tensorLike(1000), randomBytes(2000), tensorLike(3001)];
    const range = Buffer.concat([encodeChunk(parts[0] as Buffer, CompressionScheme.ByteGrouping4LZ4), encodeChunk(parts[1] as Buffer, CompressionScheme.None), encodeChunk(parts[2] as Buffer, CompressionScheme.LZ4)]);
    expect(decodeChunks(range, 3).map((c) => c.data)).toEqual(parts);
    expect(() => decodeChunks(range, 2)).toThrow(/more than the 2 chunks/);
    expect(() => decodeChunks(range, 4)).toThrow(/holds 3 chunks; 4 were asked for/);
  });

  it('refuses truncated ranges, unknown versions and schemes, and oversized lengths with ERR_BAD_RESPONSE', () => {
    const stored = encodeChunk(tensorLike(5000), CompressionScheme.LZ4);
    const cases: Array<[Buffer, RegExp]> = [
      [stored.subarray(0, 5), /ends inside a chunk header/],
      [stored.subarray(0, stored.length - 1), /ends inside chunk 0/],
      [Buffer.concat([Buffer.from([1]), stored.subarray(1)]), /header version 1/],
      [Buffer.concat([stored.subarray(0, 4), Buffer.from([3]), stored.subarray(5)]), /compression scheme 3/],
      [encodeChunkHeader({ version: 0, compressedLength: 10, scheme: CompressionScheme.LZ4, uncompressedLength: 200_000 }), /more than the 131072-byte maximum chunk/],
      [encodeChunkHeader({ version: 0, compressedLength: 300_000, scheme: CompressionScheme.LZ4, uncompressedLength: 100 }), /compressed bytes, more than/],
      [encodeChunkHeader({ version: 0, compressedLength: 10, scheme: CompressionScheme.None, uncompressedLength: 11 }), /stored length 10 but content length 11/],
    ];
    for (const [range, message] of cases) expect(() => decodeChunks(range, 1, 'http://cas.invalid/xorb')).toThrow(expect.objectContaining({ code: 'ERR_BAD_RESPONSE', message: expect.stringMatching(message) }));
  });

  it('refuses an LZ4 frame that is corrupt or decompresses to another length than its header says', () => {
    const data = tensorLike(5000);
    const frame = compressFrameSync(data);
    const lying = Buffer.concat([encodeChunkHeader({ version: 0, compressedLength: frame.length, scheme: CompressionScheme.LZ4, uncompressedLength: 4999 }), frame]);
    expect(() => decodeChunks(lying, 1)).toThrow(/decompressed to 5000 bytes; its header says 4999/);
    const garbage = Buffer.concat([encodeChunkHeader({ version: 0, compressedLength: 20, scheme: CompressionScheme.LZ4, uncompressedLength: 100 }), randomBytes(20)]);
    expect(() => decodeChunks(garbage, 1)).toThrow(/does not decompress/);
    expect(XET_CHUNK_HEADER_BYTES).toBe(8);
  });

  it('splits a stream into the same chunks however it is cut into pieces, header boundaries included', () => {
    const parts = [tensorLike(9000), randomBytes(3000), tensorLike(70_001), randomBytes(1)];
    const stream = Buffer.concat(parts.map((p, i) => encodeChunk(p, [CompressionScheme.LZ4, CompressionScheme.None, CompressionScheme.ByteGrouping4LZ4, CompressionScheme.None][i] as CompressionScheme)));
    for (const pieceSize of [1, 3, 7, 8, 9, 100, 4096, stream.length]) {
      const decoder = new ChunkStreamDecoder();
      const out: Buffer[] = [];
      for (let at = 0; at < stream.length; at += pieceSize) {
        // A fresh copy per piece, overwritten after use, as a transport reusing its read buffer does.
        const piece = Buffer.from(stream.subarray(at, at + pieceSize));
        for (const { header, body } of decoder.push(piece)) out.push(Buffer.from(decodeChunkBody(header, body)));
        piece.fill(0xee);
      }
      expect(decoder.pendingBytes).toBe(0);
      expect(out).toEqual(parts);
    }
    const cut = new ChunkStreamDecoder();
    expect([...cut.push(stream.subarray(0, 20))]).toEqual([]);
    expect(cut.pendingBytes).toBe(20);
  });
});
