import { randomBytes } from 'node:crypto';
import { lstat, open, readdir, rename, rm, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { XET_CHUNK_CACHE_PARTS } from './layout.js';
import { assertRealFolders, makeRealFolders } from './safe-path.js';
import { isModelfetchError } from '../core/errors.js';
import { parseSize } from '../core/format-bytes.js';
import { chunkHash, isXetHashHex, prepareChunkHashing } from '../core/hash/xet-hash.js';

/**
 * The dedup chunk cache: decoded Xet chunks kept on disk, so a new revision (or another repo) that
 * reuses chunks already downloaded takes them from disk instead of the network.
 *
 * One entry per fetched xorb range: `{root}/{xorb hash}/{chunkStart}-{chunkEnd}.chunks` holding the
 * decoded chunks back to back, then a table of (u32 length) per chunk, the 32-byte keyed BLAKE3
 * hash of each chunk, the u32 chunk count and an 8-byte magic. A term (xorb, chunks c..d) is served
 * by any entry of that xorb covering c..d; every chunk read is checked against its BLAKE3 hash, and
 * an entry that fails is removed (the chunks are then fetched again). Entries are written under a
 * temporary name and renamed when complete. Least recently used entries (mtime, touched on use)
 * go first when the cache is over its size limit.
 *
 * The cache never follows a symlink: the root and every xorb folder must be real folders
 * (`usable`, through cache/safe-path.ts), and entries must be regular files.
 */

export const DEFAULT_CHUNK_CACHE_LIMIT = 10 * 1024 ** 3;
const MAGIC = Buffer.from('MFXETC01');
const TRAILER_BYTES = 4 + MAGIC.length;
const HASH_BYTES = 32;
const ENTRY_NAME = /^(\d{1,9})-(\d{1,9})\.chunks$/;
/** An entry still being written (`ChunkCache.writer`); one a killed process left behind is never renamed. */
const PART_NAME = /^\d{1,9}-\d{1,9}\.chunks\.[0-9a-f]{12}\.part$/;
/** A part file untouched for this long has no live writer (an entry is written in seconds). */
const STALE_PART_MS = 60 * 60 * 1000;

export interface ChunkCacheEntry {
  path: string;
  xorbHash: string;
  chunkStart: number;
  chunkEnd: number;
  size: number;
  mtimeMs: number;
}

interface EntryIndex {
  handle: FileHandle;
  /** Byte offset of each chunk in the entry, plus the end of the data. */
  offsets: number[];
  hashes: Buffer;
}

/** Reads an entry's table; undefined when the file is not a well-formed entry for `count` chunks. */
async function openEntry(path: string, count: number): Promise<EntryIndex | undefined> {
  const info = await lstat(path).catch(() => undefined);
  if (!info?.isFile()) return undefined;
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const tableBytes = count * (4 + HASH_BYTES) + TRAILER_BYTES;
    if (info.size < tableBytes) throw new Error('short');
    const table = Buffer.alloc(tableBytes);
    await handle.read(table, 0, tableBytes, info.size - tableBytes);
    if (!table.subarray(tableBytes - MAGIC.length).equals(MAGIC) || table.readUInt32LE(tableBytes - TRAILER_BYTES) !== count) throw new Error('bad trailer');
    const offsets = [0];
    for (let i = 0; i < count; i++) offsets.push((offsets[i] as number) + table.readUInt32LE(i * 4));
    if (offsets[count] !== info.size - tableBytes) throw new Error('bad lengths');
    return { handle, offsets, hashes: table.subarray(count * 4, count * 4 + count * HASH_BYTES) };
  } catch {
    await handle.close();
    return undefined;
  }
}

/** The chunk cache of the hub cache at `cacheRoot`, limited by MODELFETCH_XET_CACHE_SIZE (default 10 GiB; 0 turns it off). */
export function chunkCacheFor(cacheRoot: string, env: NodeJS.ProcessEnv): ChunkCache {
  const limit = env.MODELFETCH_XET_CACHE_SIZE ? parseSize(env.MODELFETCH_XET_CACHE_SIZE) : DEFAULT_CHUNK_CACHE_LIMIT;
  return new ChunkCache(cacheRoot, XET_CHUNK_CACHE_PARTS, limit);
}

export class ChunkCache {
  /** The cache folder: `base` joined with `parts` (from the cache layout). */
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
   * Whether the cache folder (or a xorb's folder in it) is a chain of real folders below `base`,
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

  /** The entry of `xorbHash` that covers chunks [chunkStart, chunkEnd), if any. */
  private async covering(xorbHash: string, chunkStart: number, chunkEnd: number): Promise<{ path: string; start: number; end: number } | undefined> {
    const folder = this.xorbFolder(xorbHash);
    if (!(await this.usable(xorbHash, false))) return undefined;
    for (const name of await readdir(folder).catch(() => [] as string[])) {
      const match = ENTRY_NAME.exec(name);
      if (!match) continue;
      const start = Number(match[1]);
      const end = Number(match[2]);
      if (start <= chunkStart && chunkEnd <= end) return { path: join(folder, name), start, end };
    }
    return undefined;
  }

  /**
   * The decoded chunks [chunkStart, chunkEnd) of a xorb, one at a time, each checked against its
   * BLAKE3 hash; undefined when no entry covers them. A chunk that fails its hash removes the
   * entry and ends the iteration with an error, so the caller fetches the term from the network.
   */
  async read(xorbHash: string, chunkStart: number, chunkEnd: number): Promise<AsyncIterable<Buffer> | undefined> {
    if (this.limit <= 0 || chunkEnd <= chunkStart) return undefined;
    const found = await this.covering(xorbHash, chunkStart, chunkEnd);
    if (!found) return undefined;
    const index = await openEntry(found.path, found.end - found.start);
    if (!index) {
      await rm(found.path, { force: true });
      return undefined;
    }
    await prepareChunkHashing();
    const now = new Date();
    await utimes(found.path, now, now).catch(() => undefined);
    const path = found.path;
    return (async function* chunks() {
      try {
        for (let c = chunkStart; c < chunkEnd; c++) {
          const i = c - found.start;
          const from = index.offsets[i] as number;
          const data = Buffer.alloc((index.offsets[i + 1] as number) - from);
          await index.handle.read(data, 0, data.length, from);
          if (!Buffer.from(chunkHash(data)).equals(index.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES))) {
            await rm(path, { force: true });
            throw new Error(`chunk cache entry ${path} is corrupt`);
          }
          yield data;
        }
      } finally {
        await index.handle.close();
      }
    })();
  }

  /** A writer for the decoded chunks of one fetched range; undefined when the cache is off or already has them. */
  async writer(xorbHash: string, chunkStart: number, chunkEnd: number): Promise<ChunkEntryWriter | undefined> {
    if (this.limit <= 0 || chunkEnd <= chunkStart) return undefined;
    if (await this.covering(xorbHash, chunkStart, chunkEnd)) return undefined;
    const folder = this.xorbFolder(xorbHash);
    if (!(await this.usable(xorbHash, true))) return undefined;
    const final = join(folder, `${chunkStart}-${chunkEnd}.chunks`);
    const temp = `${final}.${randomBytes(6).toString('hex')}.part`;
    const handle = await open(temp, 'wx');
    await prepareChunkHashing();
    return new ChunkEntryWriter(handle, temp, final, chunkEnd - chunkStart);
  }

  /** Every complete entry (for gc, verify and trimming). */
  async entries(): Promise<ChunkCacheEntry[]> {
    if (!(await this.usable(undefined, false))) return [];
    const out: ChunkCacheEntry[] = [];
    for (const xorbHash of await readdir(this.root)) {
      if (!isXetHashHex(xorbHash)) continue;
      const folder = join(this.root, xorbHash);
      if (!(await this.usable(xorbHash, false))) continue;
      for (const name of await readdir(folder)) {
        const match = ENTRY_NAME.exec(name);
        if (!match) continue;
        const info = await lstat(join(folder, name)).catch(() => undefined);
        if (!info?.isFile()) continue;
        out.push({ path: join(folder, name), xorbHash, chunkStart: Number(match[1]), chunkEnd: Number(match[2]), size: info.size, mtimeMs: info.mtimeMs });
      }
    }
    return out;
  }

  /**
   * Removes entries unused since `unusedBefore` (ms since the epoch), then least recently used ones
   * until the cache holds at most `limit` bytes; returns what went (or would go, with `dryRun`).
   */
  async trim(limit: number = this.limit, options: { unusedBefore?: number; dryRun?: boolean } = {}): Promise<{ entries: number; bytes: number }> {
    if (!options.dryRun) await this.removeStaleParts(Date.now() - STALE_PART_MS);
    const all = (await this.entries()).sort((a, b) => a.mtimeMs - b.mtimeMs);
    let total = all.reduce((sum, e) => sum + e.size, 0);
    const removed = { entries: 0, bytes: 0 };
    for (const entry of all) {
      if (total <= Math.max(0, limit) && !(options.unusedBefore !== undefined && entry.mtimeMs < options.unusedBefore)) break;
      if (!options.dryRun) await rm(entry.path, { force: true });
      total -= entry.size;
      removed.entries += 1;
      removed.bytes += entry.size;
    }
    return removed;
  }

  /** Removes part files last written before `before` (ms since the epoch): what a kill -9 mid-entry leaves. */
  private async removeStaleParts(before: number): Promise<void> {
    if (!(await this.usable(undefined, false))) return;
    for (const xorbHash of await readdir(this.root)) {
      if (!isXetHashHex(xorbHash) || !(await this.usable(xorbHash, false))) continue;
      const folder = join(this.root, xorbHash);
      for (const name of await readdir(folder)) {
        if (!PART_NAME.test(name)) continue;
        const info = await lstat(join(folder, name)).catch(() => undefined);
        if (info?.isFile() && info.mtimeMs < before) await rm(join(folder, name), { force: true });
      }
    }
  }

  /** Re-hashes every chunk of every entry; entries that fail are removed. */
  async verify(): Promise<{ entries: number; bad: string[] }> {
    const all = await this.entries();
    const bad: string[] = [];
    for (const entry of all) {
      const chunks = await this.read(entry.xorbHash, entry.chunkStart, entry.chunkEnd).catch(() => undefined);
      let ok = chunks !== undefined;
      if (chunks) {
        try {
          for await (const chunk of chunks) void chunk;
        } catch {
          ok = false;
        }
      }
      if (!ok) {
        bad.push(entry.path);
        await rm(entry.path, { force: true });
      }
    }
    return { entries: all.length, bad };
  }
}

/** Appends decoded chunks of one range, then writes the table and renames the entry into place. */
export class ChunkEntryWriter {
  private lengths: number[] = [];
  private hashes: Buffer[] = [];
  private position = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly temp: string,
    private readonly final: string,
    private readonly count: number,
  ) {}

  async add(chunk: Buffer): Promise<void> {
    this.lengths.push(chunk.length);
    this.hashes.push(Buffer.from(chunkHash(chunk)));
    await this.handle.write(chunk, 0, chunk.length, this.position);
    this.position += chunk.length;
  }

  async finish(): Promise<void> {
    if (this.lengths.length !== this.count) return this.abandon();
    const table = Buffer.alloc(this.count * (4 + HASH_BYTES) + TRAILER_BYTES);
    this.lengths.forEach((length, i) => table.writeUInt32LE(length, i * 4));
    Buffer.concat(this.hashes).copy(table, this.count * 4);
    table.writeUInt32LE(this.count, table.length - TRAILER_BYTES);
    MAGIC.copy(table, table.length - MAGIC.length);
    await this.handle.write(table, 0, table.length, this.position);
    await this.handle.close();
    await rename(this.temp, this.final);
  }

  async abandon(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await rm(this.temp, { force: true });
  }
}
