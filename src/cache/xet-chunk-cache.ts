import { constants } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, open, readdir, rename, rm, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { XET_CHUNK_CACHE_PARTS } from './layout.js';
import { assertRealFolders, makeRealFolders } from './safe-path.js';
import { isModelfetchError } from '../core/errors.js';
import { parseSize } from '../core/format-bytes.js';
import { assertSafeRelativePath } from '../core/validate.js';
import { chunkHash, isXetHashHex, prepareChunkHashing } from '../core/hash/xet-hash.js';
import { ChunkRecorder, HASH_BYTES, parseEntry, type ParsedEntry } from './xet-chunk-entry.js';

/**
 * The dedup chunk cache, kept as an index: where decoded Xet chunks already sit on disk, inside the
 * blobs pulls committed, so a new revision (or another repo) that reuses chunks reads them from
 * there instead of the network. No chunk is copied: a first pull writes each byte once, into its
 * blob, and records here, per term it wrote (a chunk range of one xorb, contiguous in the file),
 * the blob, the term's offset in it and each chunk's length and keyed BLAKE3 hash.
 *
 * One entry per (xorb, chunk range, blob): `{root}/{xorb hash}/{chunkStart}-{chunkEnd}-{blob tag}.ref`
 * holding a magic, the chunk count, the offset, the blob's path and its partial download's path
 * (both relative to the cache root), then a u32 length and a 32-byte hash per chunk. Every chunk read
 * is checked against its hash, so a blob changed since cannot feed wrong chunks: the entry is
 * removed and the chunks fetched again. An entry whose blob and partial file are both gone (the blob
 * was removed, or its download abandoned) is dropped when found, and by every trim (after each
 * pull, and `gc`). Entries are written under a temporary name and renamed when complete; least
 * recently used ones (mtime, touched on use) go first when the index is over its size limit.
 *
 * Nothing is reached through a symlink: the root, every xorb folder and every folder between the
 * cache root and a blob must be real folders (cache/safe-path.ts); entries and blobs must be regular files.
 */

export const DEFAULT_CHUNK_CACHE_LIMIT = 10 * 1024 ** 3;
const ENTRY_NAME = /^(\d{1,9})-(\d{1,9})-[0-9a-f]{16}\.ref$/;
/** An entry still being written (`ChunkRecorder`); one a killed process left behind is never renamed. */
const PART_NAME = /^\d{1,9}-\d{1,9}-[0-9a-f]{16}\.ref\.[0-9a-f]{12}\.part$/;
/** Entries of the earlier format, which held copies of the chunks: removed by the next trim. */
const COPY_NAME = /^\d{1,9}-\d{1,9}\.chunks(\.[0-9a-f]{12}\.part)?$/;
/** A part file untouched for this long has no live writer (an entry is written in milliseconds). */
const STALE_PART_MS = 60 * 60 * 1000;

export interface ChunkCacheEntry {
  path: string;
  xorbHash: string;
  chunkStart: number;
  chunkEnd: number;
  /** Bytes of the entry itself (the chunks stay in their blob). */
  size: number;
  mtimeMs: number;
}

/** Where a file's chunks will sit: its blob once committed, and its partial download until then (absolute paths). */
export interface ChunkHome {
  blobPath: string;
  tempPath: string;
}

/** A decoded chunk read through the index, with the hash it was checked against. */
export interface IndexedChunk {
  data: Buffer;
  hash: Buffer;
}

/** The chunk cache of the hub cache at `cacheRoot`, limited by MODELFETCH_XET_CACHE_SIZE (default 10 GiB; 0 turns it off). */
export function chunkCacheFor(cacheRoot: string, env: NodeJS.ProcessEnv): ChunkCache {
  const limit = env.MODELFETCH_XET_CACHE_SIZE ? parseSize(env.MODELFETCH_XET_CACHE_SIZE) : DEFAULT_CHUNK_CACHE_LIMIT;
  return new ChunkCache(cacheRoot, XET_CHUNK_CACHE_PARTS, limit);
}

export class ChunkCache {
  /** The index folder: `base` joined with `parts` (from the cache layout). */
  readonly root: string;

  constructor(
    private readonly base: string,
    private readonly parts: readonly string[],
    readonly limit: number = DEFAULT_CHUNK_CACHE_LIMIT,
  ) {
    this.root = join(base, ...parts);
  }

  private xorbFolder(xorbHash: string): string {
    if (!isXetHashHex(xorbHash)) throw new Error(`not a xorb hash: ${String(xorbHash).slice(0, 80)}`);
    return join(this.root, xorbHash);
  }

  /**
   * Whether the index folder (or a xorb's folder in it) is a chain of real folders below `base`,
   * created when `create`; a planted symlink anywhere makes it unusable (cache/safe-path.ts decides).
   */
  private async usable(xorbHash: string | undefined, create: boolean): Promise<boolean> {
    const folder = xorbHash === undefined ? this.root : this.xorbFolder(xorbHash);
    try {
      if (create) await makeRealFolders(this.base, folder);
      else await assertRealFolders(this.base, join(folder, 'entry'));
    } catch (error) {
      if (isModelfetchError(error, 'ERR_UNSAFE_PATH')) return false;
      throw error;
    }
    return create || (await lstat(folder).catch(() => undefined))?.isDirectory() === true;
  }

  /** A path below the cache root as stored in an entry; undefined for one outside it. */
  private relativeToBase(path: string): string | undefined {
    const rel = relative(this.base, path).split(sep).join('/');
    try {
      return assertSafeRelativePath(rel, 'the Xet chunk index');
    } catch {
      return undefined;
    }
  }

  /** The absolute path of a stored relative one, if it is a safe path below the cache root reached through real folders only. */
  private async resolveStored(rel: string): Promise<string | undefined> {
    try {
      const path = join(this.base, assertSafeRelativePath(rel, 'the Xet chunk index'));
      await assertRealFolders(this.base, path);
      return path;
    } catch {
      return undefined;
    }
  }

  /** The entries of `xorbHash` covering chunks [chunkStart, chunkEnd), most recently used first. */
  private async covering(xorbHash: string, chunkStart: number, chunkEnd: number): Promise<ChunkCacheEntry[]> {
    // Listing a folder reads only names, so it comes first: a xorb the index has nothing of (every
    // term of a first pull) costs one call. The folders are checked before anything is opened.
    const names = await readdir(this.xorbFolder(xorbHash)).catch(() => [] as string[]);
    if (!names.some((name) => ENTRY_NAME.test(name)) || !(await this.usable(xorbHash, false))) return [];
    const found = (await this.entriesOf(xorbHash, names)).filter((e) => e.chunkStart <= chunkStart && chunkEnd <= e.chunkEnd);
    return found.sort((a, b) => b.mtimeMs - a.mtimeMs);
  }

  private async entriesOf(xorbHash: string, listed?: string[]): Promise<ChunkCacheEntry[]> {
    const folder = this.xorbFolder(xorbHash);
    const out: ChunkCacheEntry[] = [];
    for (const name of listed ?? (await readdir(folder).catch(() => [] as string[]))) {
      const match = ENTRY_NAME.exec(name);
      if (!match) continue;
      const info = await lstat(join(folder, name)).catch(() => undefined);
      if (!info?.isFile()) continue;
      out.push({ path: join(folder, name), xorbHash, chunkStart: Number(match[1]), chunkEnd: Number(match[2]), size: info.size, mtimeMs: info.mtimeMs });
    }
    return out;
  }

  /**
   * Opens the blob an entry points at. 'dead' when neither blob nor partial file exists (the entry
   * is of no more use), 'absent' when only the partial file does (a download still under way).
   */
  private async openEntry(entry: ChunkCacheEntry): Promise<{ parsed: ParsedEntry; blob: FileHandle } | 'dead' | 'absent' | 'bad'> {
    const data = await readEntryFile(entry.path);
    const parsed = data && parseEntry(data, entry.chunkEnd - entry.chunkStart);
    if (!parsed) return 'bad';
    const blobPath = await this.resolveStored(parsed.blob);
    if (!blobPath) return 'bad';
    const info = await lstat(blobPath).catch(() => undefined);
    if (!info) {
      const temp = await this.resolveStored(parsed.temp);
      return temp && (await lstat(temp).catch(() => undefined)) ? 'absent' : 'dead';
    }
    if (!info.isFile() || info.size < parsed.offset + (parsed.offsets.at(-1) as number)) return 'bad';
    const blob = await open(blobPath, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
    return blob ? { parsed, blob } : 'absent';
  }

  /**
   * The decoded chunks [chunkStart, chunkEnd) of a xorb, one at a time, each checked against its
   * BLAKE3 hash; undefined when no entry with a readable blob covers them. A chunk that fails its
   * hash (the blob changed) removes the entry and ends the iteration with an error, so the caller
   * fetches the term from the network.
   */
  async read(xorbHash: string, chunkStart: number, chunkEnd: number): Promise<AsyncIterable<IndexedChunk> | undefined> {
    if (this.limit <= 0 || chunkEnd <= chunkStart) return undefined;
    for (const entry of await this.covering(xorbHash, chunkStart, chunkEnd)) {
      const opened = await this.openEntry(entry);
      if (opened === 'absent') continue;
      if (opened === 'dead' || opened === 'bad') {
        await rm(entry.path, { force: true });
        continue;
      }
      await prepareChunkHashing();
      const now = new Date();
      await utimes(entry.path, now, now).catch(() => undefined);
      return readChunks(entry, opened.parsed, opened.blob, chunkStart, chunkEnd);
    }
    return undefined;
  }

  /**
   * A recorder for chunks [chunkStart, chunkEnd) of a xorb that a download writes at `offset` of
   * the file that becomes `home.blobPath`; undefined when the cache is off, the xorb hash is not one
   * or the blob lies outside the cache root. Nothing is read or written here: `writeEntries` writes the finished entries (over
   * an older one for the same range and blob).
   */
  recorder(xorbHash: string, chunkStart: number, chunkEnd: number, home: ChunkHome, offset: number): ChunkRecorder | undefined {
    if (this.limit <= 0 || chunkEnd <= chunkStart || offset < 0 || !isXetHashHex(xorbHash)) return undefined;
    const blob = this.relativeToBase(home.blobPath);
    const temp = this.relativeToBase(home.tempPath);
    if (blob === undefined || temp === undefined) return undefined;
    const tag = createHash('sha256').update(blob).digest('hex').slice(0, 16);
    const final = join(this.xorbFolder(xorbHash), `${chunkStart}-${chunkEnd}-${tag}.ref`);
    return new ChunkRecorder(xorbHash, final, chunkEnd - chunkStart, { offset, blob, temp });
  }

  /**
   * Writes finished recorders' entries, each under a temporary name and then renamed into place (over
   * an older entry for the same range and blob). A download hands them over in batches, so the folders
   * from the cache root down to the index are checked once per batch, and each xorb folder once, not
   * every folder for every term. The index is a bonus: an entry that cannot be written is left out.
   */
  async writeEntries(recorders: readonly ChunkRecorder[]): Promise<void> {
    const entries = recorders.map((recorder) => recorder.entry()).filter((entry) => entry !== undefined);
    if (this.limit <= 0 || entries.length === 0 || !(await this.usable(undefined, true))) return;
    const usableFolders = new Map<string, boolean>();
    for (const { xorbHash, final, data } of entries) {
      const folder = this.xorbFolder(xorbHash);
      let usable = usableFolders.get(folder);
      if (usable === undefined) {
        usable = await makeRealFolders(this.root, folder).then(() => true, () => false);
        usableFolders.set(folder, usable);
      }
      if (!usable) continue;
      const temp = `${final}.${randomBytes(6).toString('hex')}.part`;
      try {
        await writeFile(temp, data, { flag: 'wx' });
        await rename(temp, final);
      } catch {
        await rm(temp, { force: true }).catch(() => undefined);
      }
    }
  }

  /** Every complete entry (for gc, verify and trimming). */
  async entries(): Promise<ChunkCacheEntry[]> {
    if (!(await this.usable(undefined, false))) return [];
    const out: ChunkCacheEntry[] = [];
    for (const xorbHash of await readdir(this.root)) {
      if (!isXetHashHex(xorbHash) || !(await this.usable(xorbHash, false))) continue;
      out.push(...(await this.entriesOf(xorbHash)));
    }
    return out;
  }

  /**
   * Removes entries whose blob is gone, then those unused since `unusedBefore` (ms since the
   * epoch), then least recently used ones until the index holds at most `limit` bytes; returns
   * what went (or would go, with `dryRun`).
   */
  async trim(limit: number = this.limit, options: { unusedBefore?: number; dryRun?: boolean } = {}): Promise<{ entries: number; bytes: number }> {
    if (!options.dryRun) await this.removeLeftovers(Date.now() - STALE_PART_MS);
    const all = (await this.entries()).sort((a, b) => a.mtimeMs - b.mtimeMs);
    const removed = { entries: 0, bytes: 0 };
    const remove = async (entry: ChunkCacheEntry): Promise<void> => {
      if (!options.dryRun) await rm(entry.path, { force: true });
      removed.entries += 1;
      removed.bytes += entry.size;
    };
    const kept: ChunkCacheEntry[] = [];
    for (const entry of all) {
      const opened = await this.openEntry(entry);
      if (typeof opened === 'object') await opened.blob.close();
      if (opened === 'dead' || opened === 'bad') await remove(entry);
      else kept.push(entry);
    }
    let total = kept.reduce((sum, e) => sum + e.size, 0);
    for (const entry of kept) {
      if (total <= Math.max(0, limit) && !(options.unusedBefore !== undefined && entry.mtimeMs < options.unusedBefore)) break;
      await remove(entry);
      total -= entry.size;
    }
    return removed;
  }

  /** Removes part files last written before `before` (what a kill -9 mid-entry leaves) and entries of the earlier, copying format. */
  private async removeLeftovers(before: number): Promise<void> {
    if (!(await this.usable(undefined, false))) return;
    for (const xorbHash of await readdir(this.root)) {
      if (!isXetHashHex(xorbHash) || !(await this.usable(xorbHash, false))) continue;
      const folder = join(this.root, xorbHash);
      for (const name of await readdir(folder)) {
        const copy = COPY_NAME.test(name);
        if (!copy && !PART_NAME.test(name)) continue;
        const info = await lstat(join(folder, name)).catch(() => undefined);
        if (info?.isFile() && (copy || info.mtimeMs < before)) await rm(join(folder, name), { force: true });
      }
    }
  }

  /** Re-hashes every chunk the index points at; entries that fail (or whose blob is gone) are removed. */
  async verify(): Promise<{ entries: number; bad: string[] }> {
    const all = await this.entries();
    const bad: string[] = [];
    await prepareChunkHashing();
    for (const entry of all) {
      const opened = await this.openEntry(entry);
      if (opened === 'absent') continue;
      let ok = opened !== 'bad';
      if (typeof opened === 'object') {
        try {
          for await (const chunk of readChunks(entry, opened.parsed, opened.blob, entry.chunkStart, entry.chunkEnd)) void chunk;
        } catch {
          ok = false;
        }
      }
      if (!ok) bad.push(entry.path);
      if (opened === 'dead' || !ok) await rm(entry.path, { force: true });
    }
    return { entries: all.length, bad };
  }
}

async function readEntryFile(path: string): Promise<Buffer | undefined> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
  if (!handle) return undefined;
  try {
    return await handle.readFile();
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}

/** Chunks [chunkStart, chunkEnd) from the blob, each checked; a mismatch removes the entry and throws. Closes the blob. */
async function* readChunks(entry: ChunkCacheEntry, parsed: ParsedEntry, blob: FileHandle, chunkStart: number, chunkEnd: number): AsyncGenerator<IndexedChunk> {
  try {
    for (let c = chunkStart; c < chunkEnd; c++) {
      const i = c - entry.chunkStart;
      const from = parsed.offsets[i] as number;
      const data = Buffer.alloc((parsed.offsets[i + 1] as number) - from);
      const { bytesRead } = await blob.read(data, 0, data.length, parsed.offset + from);
      const hash = parsed.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
      if (bytesRead !== data.length || !Buffer.from(chunkHash(data)).equals(hash)) {
        await rm(entry.path, { force: true });
        throw new Error(`the blob behind chunk index entry ${entry.path} changed`);
      }
      // A view of the parsed entry, which nothing changes; a recorder that keeps it copies it.
      yield { data, hash };
    }
  } finally {
    await blob.close();
  }
}
