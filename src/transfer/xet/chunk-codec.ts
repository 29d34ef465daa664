import { compressFrameSync, decompressFrameSync } from 'lz4-napi';
import { ModelfetchError } from '../../core/errors.js';
import { XET_MAX_CHUNK_SIZE } from './chunker.js';

/**
 * Chunks as they are stored in a xorb: an 8-byte header, then the (maybe compressed) bytes.
 * Header: version (1 byte, 0), compressed length (3 bytes little-endian), compression scheme (1 byte),
 * uncompressed length (3 bytes little-endian). Schemes: 0 none, 1 LZ4 frame, 2 ByteGrouping4 + LZ4
 * frame (bytes regrouped by position mod 4 before compressing, which helps float tensors).
 */

export const XET_CHUNK_HEADER_BYTES = 8;

export const CompressionScheme = { None: 0, LZ4: 1, ByteGrouping4LZ4: 2 } as const;
export type CompressionScheme = (typeof CompressionScheme)[keyof typeof CompressionScheme];

/** A compressed chunk may be a little larger than its contents; xet-core allows up to twice the maximum chunk. */
export const XET_MAX_COMPRESSED_CHUNK_SIZE = 2 * XET_MAX_CHUNK_SIZE;

export interface ChunkHeader {
  version: number;
  compressedLength: number;
  scheme: CompressionScheme;
  uncompressedLength: number;
}

function badChunk(message: string, url?: string): ModelfetchError {
  return new ModelfetchError('ERR_BAD_RESPONSE', message, {
    ...(url !== undefined && { url }),
    hint: 'The Xet storage server sent data that is not a valid xorb range; run the same command again, or use HF_HUB_DISABLE_XET=1 to download through the plain path.',
  });
}

function isScheme(value: number): value is CompressionScheme {
  return value === CompressionScheme.None || value === CompressionScheme.LZ4 || value === CompressionScheme.ByteGrouping4LZ4;
}

export function encodeChunkHeader(header: ChunkHeader): Buffer {
  const out = Buffer.alloc(XET_CHUNK_HEADER_BYTES);
  out[0] = header.version;
  out.writeUIntLE(header.compressedLength, 1, 3);
  out[4] = header.scheme;
  out.writeUIntLE(header.uncompressedLength, 5, 3);
  return out;
}

/** Reads and checks a header at `offset`; every field is validated before any length is used. */
export function decodeChunkHeader(data: Uint8Array, offset = 0, url?: string): ChunkHeader {
  if (data.length - offset < XET_CHUNK_HEADER_BYTES) throw badChunk(`A xorb range ends inside a chunk header (${data.length - offset} of ${XET_CHUNK_HEADER_BYTES} bytes).`, url);
  const version = data[offset] as number;
  const compressedLength = (data[offset + 1] as number) | ((data[offset + 2] as number) << 8) | ((data[offset + 3] as number) << 16);
  const scheme = data[offset + 4] as number;
  const uncompressedLength = (data[offset + 5] as number) | ((data[offset + 6] as number) << 8) | ((data[offset + 7] as number) << 16);
  if (version !== 0) throw badChunk(`A xorb chunk has header version ${version}; only version 0 is known.`, url);
  if (!isScheme(scheme)) throw badChunk(`A xorb chunk uses compression scheme ${scheme}, which is not one of none (0), LZ4 (1) or ByteGrouping4-LZ4 (2).`, url);
  if (uncompressedLength > XET_MAX_CHUNK_SIZE) throw badChunk(`A xorb chunk claims ${uncompressedLength} bytes, more than the ${XET_MAX_CHUNK_SIZE}-byte maximum chunk.`, url);
  if (compressedLength > XET_MAX_COMPRESSED_CHUNK_SIZE) throw badChunk(`A xorb chunk claims ${compressedLength} compressed bytes, more than the ${XET_MAX_COMPRESSED_CHUNK_SIZE}-byte maximum.`, url);
  if (scheme === CompressionScheme.None && compressedLength !== uncompressedLength) throw badChunk(`An uncompressed xorb chunk has stored length ${compressedLength} but content length ${uncompressedLength}.`, url);
  return { version, compressedLength, scheme, uncompressedLength };
}

/** Splits `data` into 4 groups of the bytes at positions 0, 1, 2, 3 mod 4 (the first groups one longer when the length is not a multiple of 4). */
export function byteGroup4(data: Uint8Array): Buffer {
  const n = data.length;
  const out = Buffer.allocUnsafe(n);
  let at = 0;
  for (let lane = 0; lane < 4; lane++) {
    for (let i = lane; i < n; i += 4) out[at++] = data[i] as number;
  }
  return out;
}

/** Undoes `byteGroup4`. */
export function byteUngroup4(grouped: Uint8Array): Buffer {
  const n = grouped.length;
  const out = Buffer.allocUnsafe(n);
  let at = 0;
  for (let lane = 0; lane < 4; lane++) {
    for (let i = lane; i < n; i += 4) out[i] = grouped[at++] as number;
  }
  return out;
}

/** Stores `data` as a chunk with `scheme`; like xet-core, falls back to none when compressing would not shrink it. */
export function encodeChunk(data: Uint8Array, scheme: CompressionScheme): Buffer {
  if (data.length > XET_MAX_CHUNK_SIZE) throw new RangeError(`chunk of ${data.length} bytes exceeds ${XET_MAX_CHUNK_SIZE}`);
  let body: Buffer = Buffer.from(data.buffer, data.byteOffset, data.length);
  let used: CompressionScheme = CompressionScheme.None;
  if (scheme !== CompressionScheme.None) {
    const compressed = compressFrameSync(scheme === CompressionScheme.ByteGrouping4LZ4 ? byteGroup4(data) : Buffer.from(body));
    if (compressed.length < data.length) {
      body = compressed;
      used = scheme;
    }
  }
  return Buffer.concat([encodeChunkHeader({ version: 0, compressedLength: body.length, scheme: used, uncompressedLength: data.length }), body]);
}

/** The chunk's content from its stored bytes (header already read); its length is checked against the header. */
export function decodeChunkBody(header: ChunkHeader, body: Uint8Array, url?: string): Buffer {
  const stored = Buffer.from(body.buffer, body.byteOffset, body.length);
  if (header.scheme === CompressionScheme.None) return stored;
  let content: Buffer;
  // The stored length is capped by the header check, and LZ4 expands at most ~255:1, so even a hostile
  // frame decompresses to a bounded buffer before its length is compared.
  try {
    content = decompressFrameSync(stored);
  } catch (error) {
    throw badChunk(`A xorb chunk's LZ4 frame does not decompress (${error instanceof Error ? error.message : String(error)}).`, url);
  }
  if (content.length !== header.uncompressedLength) throw badChunk(`A xorb chunk decompressed to ${content.length} bytes; its header says ${header.uncompressedLength}.`, url);
  return header.scheme === CompressionScheme.ByteGrouping4LZ4 ? byteUngroup4(content) : content;
}

/**
 * Splits a stream of xorb bytes, arriving in pieces of any size, into stored chunks. A chunk that
 * lies within one piece is handed out in place; one split across pieces is gathered in a staging
 * buffer the size of the largest stored chunk, so each byte is copied at most once. What `push`
 * yields is valid until the generator is resumed (the piece or the staging buffer is reused after).
 */
export class ChunkStreamDecoder {
  private readonly staging = Buffer.allocUnsafe(XET_CHUNK_HEADER_BYTES + XET_MAX_COMPRESSED_CHUNK_SIZE);
  private staged = 0;

  constructor(private readonly url?: string) {}

  /** Bytes of an unfinished chunk held from earlier pieces. */
  get pendingBytes(): number {
    return this.staged;
  }

  *push(piece: Buffer): Generator<{ header: ChunkHeader; body: Buffer }> {
    let at = 0;
    if (this.staged > 0) {
      const headerTake = Math.min(Math.max(0, XET_CHUNK_HEADER_BYTES - this.staged), piece.length);
      piece.copy(this.staging, this.staged, 0, headerTake);
      this.staged += headerTake;
      at = headerTake;
      if (this.staged < XET_CHUNK_HEADER_BYTES) return;
      const header = decodeChunkHeader(this.staging, 0, this.url);
      const total = XET_CHUNK_HEADER_BYTES + header.compressedLength;
      const take = Math.min(total - this.staged, piece.length - at);
      piece.copy(this.staging, this.staged, at, at + take);
      this.staged += take;
      at += take;
      if (this.staged < total) return;
      this.staged = 0;
      yield { header, body: this.staging.subarray(XET_CHUNK_HEADER_BYTES, total) };
    }
    while (piece.length - at >= XET_CHUNK_HEADER_BYTES) {
      const header = decodeChunkHeader(piece, at, this.url);
      const end = at + XET_CHUNK_HEADER_BYTES + header.compressedLength;
      if (end > piece.length) break;
      yield { header, body: piece.subarray(at + XET_CHUNK_HEADER_BYTES, end) };
      at = end;
    }
    // The rest is shorter than its chunk (whose header, if read, was checked), so it fits; it is
    // copied now because the transport may reuse the piece's memory for its next read.
    this.staged = piece.copy(this.staging, 0, at);
  }
}

export interface DecodedChunk {
  /** Offset of the chunk's header within the input. */
  offset: number;
  /** Stored length, header included. */
  storedLength: number;
  data: Buffer;
}

/**
 * Decodes the chunks that make up a fetched xorb byte range. The range must hold exactly
 * `expectedChunks` whole chunks: a truncated or padded range is an error, not a short file.
 */
export function decodeChunks(range: Uint8Array, expectedChunks: number, url?: string): DecodedChunk[] {
  const chunks: DecodedChunk[] = [];
  let offset = 0;
  while (offset < range.length) {
    if (chunks.length === expectedChunks) throw badChunk(`A xorb range holds more than the ${expectedChunks} chunks it was asked for.`, url);
    const header = decodeChunkHeader(range, offset, url);
    const bodyStart = offset + XET_CHUNK_HEADER_BYTES;
    const bodyEnd = bodyStart + header.compressedLength;
    if (bodyEnd > range.length) throw badChunk(`A xorb range ends inside chunk ${chunks.length} (${range.length - bodyStart} of ${header.compressedLength} bytes).`, url);
    chunks.push({ offset, storedLength: bodyEnd - offset, data: decodeChunkBody(header, range.subarray(bodyStart, bodyEnd), url) });
    offset = bodyEnd;
  }
  if (chunks.length !== expectedChunks) throw badChunk(`A xorb range holds ${chunks.length} chunks; ${expectedChunks} were asked for.`, url);
  return chunks;
}
