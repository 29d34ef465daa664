import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { xetHashFromHex, xetHashToHex, type HashedChunk } from '../../src/core/hash/xet-hash.js';
import type { FixtureCasFile, FixtureCasXorb } from './fixture-cas.js';

/**
 * A folder that keeps what the fixture CAS built (xorbs and file records) across processes, so a
 * bench that asks for the same file content again loads it instead of chunking, compressing and
 * hashing gigabytes once more. Files are found by the SHA-256 of their content; a file record is
 * written last, after its xorbs, so a run killed while saving leaves no record that lacks its xorbs.
 *
 *   {store}/xorbs/{xorb hash}.bin    the xorb's bytes, as served
 *   {store}/xorbs/{xorb hash}.json   chunk offsets, and each chunk's hash and size (for dedup)
 *   {store}/files/{sha256}.json      the file record (Xet hash, size, terms)
 */

export interface StoredXorb extends FixtureCasXorb {
  chunks: HashedChunk[];
}

/** SHA-256 of a buffer, or of a file read as a stream. */
export async function contentSha256(source: { data: Buffer } | { path: string }): Promise<string> {
  const hash = createHash('sha256');
  if ('data' in source) return hash.update(source.data).digest('hex');
  for await (const piece of createReadStream(source.path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(piece as Buffer);
  return hash.digest('hex');
}

async function writeAtomically(path: string, data: Buffer | string): Promise<void> {
  await writeFile(`${path}.tmp`, data);
  await rename(`${path}.tmp`, path);
}

/** The stored file with this content and the xorbs it uses, or undefined when not stored (or incomplete). */
export async function loadStoredFile(store: string, sha256: string, have: (hash: string) => boolean): Promise<{ file: FixtureCasFile; xorbs: StoredXorb[] } | undefined> {
  let file: FixtureCasFile;
  try {
    file = JSON.parse(await readFile(join(store, 'files', `${sha256}.json`), 'utf8')) as FixtureCasFile;
  } catch {
    return undefined;
  }
  const xorbs: StoredXorb[] = [];
  for (const hash of new Set(file.terms.map((t) => t.xorbHash))) {
    if (have(hash)) continue;
    try {
      const meta = JSON.parse(await readFile(join(store, 'xorbs', `${hash}.json`), 'utf8')) as { chunkOffsets: number[]; chunks: Array<[string, number]> };
      const data = await readFile(join(store, 'xorbs', `${hash}.bin`));
      if (data.length !== meta.chunkOffsets.at(-1)) return undefined;
      xorbs.push({ hash, data, chunkOffsets: meta.chunkOffsets, chunks: meta.chunks.map(([hex, size]) => ({ hash: xetHashFromHex(hex), size })) });
    } catch {
      return undefined;
    }
  }
  return { file, xorbs };
}

/** Saves the xorbs a new file added, then its record. */
export async function saveStoredFile(store: string, file: FixtureCasFile, newXorbs: StoredXorb[]): Promise<void> {
  await mkdir(join(store, 'xorbs'), { recursive: true });
  await mkdir(join(store, 'files'), { recursive: true });
  for (const xorb of newXorbs) {
    await writeAtomically(join(store, 'xorbs', `${xorb.hash}.bin`), xorb.data);
    await writeAtomically(join(store, 'xorbs', `${xorb.hash}.json`), JSON.stringify({ chunkOffsets: xorb.chunkOffsets, chunks: xorb.chunks.map((c) => [xetHashToHex(c.hash), c.size]) }));
  }
  await writeAtomically(join(store, 'files', `${file.sha256}.json`), JSON.stringify(file));
}
