import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ModelfetchError } from '../../core/errors.js';
import type { RepoPaths } from '../../cache/layout.js';
import { writeCacheFile } from '../../cache/snapshot.js';
import type { FileDigest } from '../../core/types.js';
import { bdecode, bencode } from './bencode.js';

/**
 * BitTorrent v1 metadata of one blob. Every node that holds the same blob must compute the same
 * infohash without talking to anyone, so the info dictionary holds only what the bytes decide:
 *
 *   { length, name: the blob's digest hex, piece length: PIECE_SIZE, pieces: SHA-1 of each piece }
 *
 * No creation date, created-by, comment or private flag (they vary, or would change the hash). The
 * tracker and web seed URLs are outside the info dictionary: each mirror adds its own when it serves
 * the .torrent, and the infohash stays the same.
 */

/** Fixed piece size, 4 MiB: a 20 GB file has ~5,000 pieces (100 KB of hashes), and a bad piece costs 4 MiB. */
export const PIECE_SIZE = 4 * 1024 * 1024;

export interface TorrentInfo {
  /** The bencoded info dictionary, exactly as hashed. */
  encoded: Buffer;
  /** SHA-1 of `encoded`, lower-case hex (40). */
  infoHash: string;
  length: number;
  name: string;
  pieceLength: number;
  /** Concatenated 20-byte SHA-1 piece hashes. */
  pieces: Buffer;
}

export function pieceCount(length: number, pieceLength: number = PIECE_SIZE): number {
  return Math.ceil(length / pieceLength);
}

/** The bytes [start, end) of piece `index` in the file (the last piece is shorter). */
export function pieceRange(info: TorrentInfo, index: number): { start: number; end: number } {
  const start = index * info.pieceLength;
  return { start, end: Math.min(info.length, start + info.pieceLength) };
}

/** Whether `bytes` are piece `index`: its length and its SHA-1 as the info lists it. */
export function isPiece(info: TorrentInfo, index: number, bytes: Buffer): boolean {
  const { start, end } = pieceRange(info, index);
  return bytes.length === end - start && createHash('sha1').update(bytes).digest().equals(info.pieces.subarray(index * 20, index * 20 + 20));
}

/** Builds the info dictionary from its parts (the piece hashes already computed). */
export function torrentInfoOf(name: string, length: number, pieces: Buffer, pieceLength: number = PIECE_SIZE): TorrentInfo {
  if (pieces.length !== 20 * pieceCount(length, pieceLength)) {
    throw new ModelfetchError('ERR_BAD_RESPONSE', `Torrent metadata for ${name} has ${pieces.length / 20} piece hashes where ${length} bytes need ${pieceCount(length, pieceLength)}`);
  }
  const encoded = bencode({ length, name: Buffer.from(name, 'utf8'), 'piece length': pieceLength, pieces });
  return { encoded, infoHash: createHash('sha1').update(encoded).digest('hex'), length, name, pieceLength, pieces };
}

/** Parses a bencoded info dictionary (a stamp, or the info of a served .torrent), checking every field. */
export function parseTorrentInfo(encoded: Buffer): TorrentInfo {
  const value = bdecode(encoded);
  const bad = (what: string): ModelfetchError =>
    new ModelfetchError('ERR_BAD_RESPONSE', `Torrent metadata is malformed: ${what}`, { hint: 'Fetch the torrent again; a stamp like this one is recomputed from the blob.' });
  if (typeof value !== 'object' || Buffer.isBuffer(value) || Array.isArray(value)) throw bad('the info is not a dictionary');
  const { length, name, pieces } = value;
  const pieceLength = value['piece length'];
  if (typeof length !== 'number' || length < 0) throw bad('length');
  if (typeof pieceLength !== 'number' || pieceLength <= 0) throw bad('piece length');
  if (!Buffer.isBuffer(name) || !Buffer.isBuffer(pieces)) throw bad('name or pieces');
  if (Object.keys(value).length !== 4) throw bad('unexpected fields (only single-file, v1 metadata is used)');
  const info = torrentInfoOf(name.toString('utf8'), length, pieces, pieceLength);
  if (!info.encoded.equals(encoded)) throw bad('not in canonical form');
  return info;
}

export interface HashedBlob {
  info: TorrentInfo;
  /** SHA-256 of the same bytes, so the caller can check it is the blob it meant. */
  sha256: string;
}

/**
 * Reads a file once and computes its piece hashes and its SHA-256 in the same pass. `name` is the
 * digest hex the file is supposed to have.
 */
export async function hashFileForTorrent(path: string, name: string, pieceLength: number = PIECE_SIZE): Promise<HashedBlob> {
  const whole = createHash('sha256');
  const pieceHashes: Buffer[] = [];
  let piece = createHash('sha1');
  let inPiece = 0;
  let length = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    whole.update(chunk);
    length += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      const take = Math.min(pieceLength - inPiece, chunk.length - at);
      piece.update(chunk.subarray(at, at + take));
      inPiece += take;
      at += take;
      if (inPiece === pieceLength) {
        pieceHashes.push(piece.digest());
        piece = createHash('sha1');
        inPiece = 0;
      }
    }
  }
  if (inPiece > 0) pieceHashes.push(piece.digest());
  return { info: torrentInfoOf(name, length, Buffer.concat(pieceHashes), pieceLength), sha256: whole.digest('hex') };
}

/**
 * The torrent info of a blob in the cache: read from its stamp when there is one, else computed from
 * the blob's bytes and stamped. Call it only for a blob already verified (stamped), off the download
 * path. The same read checks the SHA-256 again, so metadata is never made from a blob that changed
 * since its verification.
 */
export async function ensureTorrentInfo(repo: RepoPaths, digest: FileDigest, expectedSize: number): Promise<TorrentInfo> {
  if (digest.algorithm !== 'sha256') {
    // Git-hashed blobs are small text files, not worth a swarm; and this read checks SHA-256 only.
    throw new ModelfetchError('ERR_USAGE', `Blob ${digest.hex} is named by its git SHA-1; only SHA-256 (LFS) blobs are shared in a swarm`);
  }
  const stampPath = repo.torrentInfo(digest);
  const stamped = await readFile(stampPath).catch(() => undefined);
  if (stamped) {
    try {
      const info = parseTorrentInfo(stamped);
      if (info.name === digest.hex && info.length === expectedSize && info.pieceLength === PIECE_SIZE) return info;
    } catch {
      // A damaged stamp is recomputed below.
    }
  }
  const { info, sha256 } = await hashFileForTorrent(repo.blob(digest), digest.hex);
  if (info.length !== expectedSize || sha256 !== digest.hex) {
    throw new ModelfetchError('ERR_INTEGRITY', `Blob ${digest.hex} no longer matches its digest or size, so no torrent is made for it`, {
      hint: 'Run `modelfetch verify --fix` to re-download it.',
    });
  }
  await writeCacheFile(repo.root, stampPath, info.encoded);
  return info;
}

export interface TorrentUrls {
  /** Tracker announce URL (BEP 3). */
  announce?: string;
  /** Web seeds (BEP 19 url-list): for a single-file torrent, each URL is the file itself. */
  webSeeds?: string[];
}

/**
 * The .torrent file: the info dictionary as stamped (never re-encoded, so the infohash is unchanged)
 * plus URLs. Top-level keys in byte order, as bencoding requires: announce < info < url-list.
 */
export function torrentFile(info: TorrentInfo, urls: TorrentUrls): Buffer {
  const key = (name: string): Buffer => bencode(Buffer.from(name, 'ascii'));
  const parts: Buffer[] = [Buffer.from('d', 'ascii')];
  if (urls.announce) parts.push(key('announce'), bencode(Buffer.from(urls.announce, 'utf8')));
  parts.push(key('info'), info.encoded);
  if (urls.webSeeds?.length) parts.push(key('url-list'), bencode(urls.webSeeds.map((url) => Buffer.from(url, 'utf8'))));
  parts.push(Buffer.from('e', 'ascii'));
  return Buffer.concat(parts);
}

/** Reads a .torrent file: its info (checked as above) and URLs. */
export function parseTorrentFile(data: Buffer): { info: TorrentInfo } & TorrentUrls {
  const value = bdecode(data);
  if (typeof value !== 'object' || Buffer.isBuffer(value) || Array.isArray(value) || typeof value.info !== 'object' || Buffer.isBuffer(value.info) || Array.isArray(value.info)) {
    throw new ModelfetchError('ERR_BAD_RESPONSE', 'The torrent file is malformed: it has no info dictionary', { hint: 'Fetch the torrent again from the mirror.' });
  }
  const info = parseTorrentInfo(bencode(value.info));
  const announce = Buffer.isBuffer(value.announce) ? value.announce.toString('utf8') : undefined;
  const list = value['url-list'];
  const webSeeds = Buffer.isBuffer(list) ? [list.toString('utf8')] : Array.isArray(list) ? list.filter(Buffer.isBuffer).map((url) => url.toString('utf8')) : [];
  return { info, announce, webSeeds };
}
