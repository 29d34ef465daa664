import type { FileHandle } from 'node:fs/promises';
import { fromSystemError, isModelfetchError, ModelfetchError } from '../../core/errors.js';
import { HashCursor } from '../../core/hash/hash-cursor.js';
import { resolveOptions, type EngineOptions, type ResolvedOptions } from '../options.js';
import { journalPathFor, JournalWriter, readJournal, type JournalKey } from '../journal.js';
import type { ByteRange } from '../segment-plan.js';
import { createTempFile, removeIfPresent, reopenTempFile, writeAllAt } from '../temp-file.js';
import { chunkHash, isXetHashHex, prepareChunkHashing } from '../../core/hash/xet-hash.js';
import type { Reconstruction, XorbRangeFetch } from './reconstruction.js';
import { backoffOrThrow, ReconstructionClient } from './reconstruction-client.js';
import { fetchXorbRange } from './xorb-range-fetch.js';
import { planTerms, termBytes, type RangeWork, type TermSlot } from './term-plan.js';
import { rebuildRange } from './range-rebuild.js';
import { TermProgress } from './term-progress.js';
import { TermWriter } from './term-writer.js';
import type { ChunkCache } from '../../cache/xet-chunk-cache.js';
import type { ChunkRecorder } from '../../cache/xet-chunk-entry.js';
import type { XetTokenProvider } from './xet-token.js';

/**
 * Downloads one Xet-backed file into a temp file: ask the CAS how to rebuild it (v2, falling back to
 * v1 on 404/501), fetch each distinct xorb byte range once with exactly its signed Range header,
 * decode the chunks as they stream in, and write every term that uses them at its file offset.
 * Memory stays at a few chunks per connection whatever the file size. The SHA-256 runs over the
 * contiguous written prefix as it grows and must equal the expected one at the end.
 *
 * Faults: 429/5xx/resets/truncated ranges are retried with backoff; a 403 on a xorb URL means the
 * signed URLs expired, so the reconstruction is asked for again; a 401 from the CAS refreshes the
 * access token once. Anything malformed fails with a clear error.
 *
 * Resume: what each term has (a prefix of it, written in order; the whole term once done) is
 * journaled as byte ranges, after an fdatasync of those bytes, beside the temp file, keyed by the
 * Xet hash, size and SHA-256 (term-progress.ts). After a kill -9 the next run fetches only what no
 * record vouches for; the rest of a term whose range was cut off, in that run or this one, comes
 * from a reconstruction of just those bytes (range-rebuild.ts), not the whole range again. A failed
 * run keeps temp file and journal for that; a digest mismatch removes both.
 */

export interface XetDownloadJob {
  /** The file's Xet hash (`X-Xet-Hash`, tree `xetHash`). */
  fileHash: string;
  size: number;
  /** Expected SHA-256 (the LFS oid), hex. */
  sha256: string;
  tempPath: string;
  token: XetTokenProvider;
  /** Decoded chunks already on disk are taken from here, and the chunks written are indexed in it. */
  chunkCache?: ChunkCache;
  /** Where the file will be committed: the chunk cache's entries point there (none without it). */
  storedAt?: string;
  /** File bytes written so far (resumed and cached ones included) and the verified contiguous prefix. */
  onProgress?: (bytesDone: number, contiguousBytes: number) => void;
  /** Network bytes as they arrive (for the batch's speed). */
  onReceived?: (bytes: number) => void;
}

export interface XetDownloadResult {
  tempPath: string;
  size: number;
  sha256: string;
  /** Xorb bytes received (retries included). */
  bytesFetched: number;
  /** File bytes written from a range fetched once for several terms. */
  bytesDeduplicated: number;
  /** File bytes taken from a previous run's journaled terms. */
  bytesResumed: number;
  /** File bytes taken from the chunk cache (part of bytesDeduplicated). */
  bytesFromChunkCache: number;
  /** Reconstruction version that answered last. */
  reconstructionVersion: 1 | 2;
  /** How many reconstructions were asked for (more than 1 after URL expiry). */
  reconstructions: number;
}

/** Index entries written per batch: one folder check per batch, and a kill -9 loses at most this many. */
const INDEX_BATCH = 64;

class XetDownload {
  private readonly source: ReconstructionClient;
  private bytesFetched = 0;
  /** Decoded bytes of the chunks the terms use, counted once per fetch. */
  private uniqueBytes = 0;
  private termEnds: number[] = [];
  private progress!: TermProgress;
  private handle!: FileHandle;
  private hasher: HashCursor | undefined;
  private journal: JournalWriter | undefined;
  private resumedRanges: ByteRange[] = [];
  private bytesFromChunkCache = 0;
  /** Recorders of terms written, whose index entries are written in batches (ChunkCache.writeEntries). */
  private toIndex: ChunkRecorder[] = [];

  constructor(
    private readonly job: XetDownloadJob,
    private readonly options: ResolvedOptions,
  ) {
    this.source = new ReconstructionClient(job.fileHash, job.size, job.token, options);
  }

  /** Network bytes as they arrive. */
  private readonly received = (bytes: number): void => {
    this.bytesFetched += bytes;
    this.job.onReceived?.(bytes);
  };

  private get reconstruction(): Reconstruction {
    return this.source.current;
  }

  private get journalPath(): string {
    return journalPathFor(this.job.tempPath);
  }

  /** Reopens a previous run's temp file when a valid journal vouches for some of it; starts afresh otherwise. */
  private async open(): Promise<void> {
    const key: JournalKey = { identity: `xet:${this.job.fileHash}`, size: this.job.size, etag: this.job.sha256 };
    const done = await readJournal(this.journalPath, key);
    const reopened = done && done.length > 0 ? await reopenTempFile(this.job.tempPath, this.job.size) : undefined;
    if (reopened && done) {
      this.handle = reopened;
      this.resumedRanges = done;
      this.journal = await JournalWriter.append(this.journalPath, key);
      return;
    }
    this.handle = await createTempFile(this.job.tempPath, this.job.size);
    this.journal = await JournalWriter.create(this.journalPath, key).catch((error: unknown) => {
      throw fromSystemError(error, `creating ${this.journalPath}`);
    });
  }

  async run(): Promise<XetDownloadResult> {
    if (!isXetHashHex(this.job.fileHash)) throw new ModelfetchError('ERR_INVALID_DIGEST', `"${String(this.job.fileHash).slice(0, 80)}" is not a Xet file hash.`);
    await prepareChunkHashing();
    await this.open();
    try {
      this.hasher = HashCursor.open(this.job.tempPath, 'sha256', this.job.size);
      await this.source.refresh(0);
      const { works, termEnds } = planTerms(this.reconstruction);
      this.termEnds = termEnds;
      this.progress = new TermProgress(termEnds, this.job.size, {
        path: this.job.tempPath,
        datasync: () => this.handle.datasync(),
        journal: this.journal,
        onProgress: (bytesDone, contiguous) => {
          if (contiguous > 0) this.hasher?.advance(contiguous);
          this.job.onProgress?.(bytesDone, contiguous);
        },
      });
      this.progress.resume(this.resumedRanges);
      await this.runAll(works);
      await this.handle.datasync().catch((error: unknown) => {
        throw fromSystemError(error, `syncing ${this.job.tempPath}`);
      });
      const digest = await this.hasher.finish(this.job.size);
      this.hasher = undefined;
      if (digest !== this.job.sha256) {
        throw new ModelfetchError('ERR_INTEGRITY', `The file rebuilt from Xet has SHA-256 ${digest}, not the expected ${this.job.sha256}.`, {
          expected: this.job.sha256,
          found: digest,
          hint: 'The Xet storage server sent different content than the Hub lists; run the same command again, or use HF_HUB_DISABLE_XET=1.',
        });
      }
      await this.writeIndex();
      await this.handle.close();
      await this.journal?.close();
      this.journal = undefined;
      await removeIfPresent(this.journalPath);
      return {
        tempPath: this.job.tempPath,
        size: this.job.size,
        sha256: digest,
        bytesFetched: this.bytesFetched,
        bytesDeduplicated: Math.max(0, this.job.size - this.progress.bytesResumed - this.uniqueBytes),
        bytesResumed: this.progress.bytesResumed,
        bytesFromChunkCache: this.bytesFromChunkCache,
        reconstructionVersion: this.reconstruction.version,
        reconstructions: this.source.asked,
      };
    } catch (error) {
      this.hasher?.dispose();
      // Terms finished before the failure still count for the next run.
      await this.progress?.checkpoint().catch(() => undefined);
      await this.handle.close().catch(() => undefined);
      await this.journal?.close().catch(() => undefined);
      // Terms written count for the chunk index too (their blob exists once a later run commits it); never a file that failed its digest.
      if (!isModelfetchError(error, 'ERR_INTEGRITY')) await this.writeIndex();
      if (isModelfetchError(error, 'ERR_INTEGRITY')) {
        await removeIfPresent(this.job.tempPath).catch(() => undefined);
        await removeIfPresent(this.journalPath).catch(() => undefined);
      }
      throw error;
    }
  }

  private async runAll(works: RangeWork[]): Promise<void> {
    let next = 0;
    let failed: unknown;
    const worker = async (): Promise<void> => {
      while (failed === undefined && next < works.length) {
        const work = works[next++] as RangeWork;
        try {
          await this.fetchWithRetries(work);
        } catch (error) {
          failed ??= error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.connections, works.length) }, worker));
    if (failed !== undefined) throw failed;
  }

  /** Fetches what `work`'s unfinished terms need; after an expiry the new reconstruction may split them over other fetches. */
  private async fetchWithRetries(work: RangeWork): Promise<void> {
    let expiries = 0;
    // Chunks the cache already holds are written before anything is fetched.
    if (this.job.chunkCache && work.terms.some((term) => !this.progress.isDone(term.index))) await this.fillFromCache(work.terms);
    for (let attempt = 1; ; attempt++) {
      const generation = this.source.generation;
      const byFetch = new Map<XorbRangeFetch, TermSlot[]>();
      for (const term of work.terms) {
        if (this.progress.isDone(term.index)) continue;
        const fetch = (this.reconstruction.terms[term.index] as Reconstruction['terms'][number]).fetch;
        byFetch.set(fetch, [...(byFetch.get(fetch) ?? []), term]);
      }
      // A range cut off with some of its terms' chunks written: only the rest is fetched, when the
      // terms left are one term (or copies of it, same chunks, same prefix); else the range again.
      const cutOff: TermSlot[][] = [];
      for (const [fetch, terms] of byFetch) {
        const prefixes = new Set(terms.map((t) => `${t.chunkStart}-${t.chunkEnd}/${this.progress.prefixOf(t.index)}`));
        if (prefixes.size !== 1 || this.progress.prefixOf((terms[0] as TermSlot).index) === 0) continue;
        cutOff.push(terms);
        byFetch.delete(fetch);
      }
      if (byFetch.size === 0 && cutOff.length === 0) return;
      for (const terms of cutOff) await this.fetchRest(terms);
      let current: XorbRangeFetch | undefined;
      try {
        for (const [fetch, terms] of byFetch) {
          current = fetch;
          await this.fetchOnce(terms, fetch);
          await this.progress.checkpoint();
        }
        return;
      } catch (error) {
        if (isModelfetchError(error) && error.status === 403 && expiries < this.options.maxAttempts) {
          // Signed URLs expired: ask for fresh ones (once for all workers) and go again.
          expiries += 1;
          attempt -= 1;
          await this.source.refresh(generation);
          continue;
        }
        await backoffOrThrow(error, attempt, current?.url ?? this.job.fileHash, this.options);
      }
    }
  }

  /** The rest of terms whose range was cut off: only the bytes after their written prefix (range-rebuild.ts), written to each. */
  private async fetchRest(terms: TermSlot[]): Promise<void> {
    const first = terms[0] as TermSlot;
    let expiries = 0;
    for (let attempt = 1; !this.progress.isDone(first.index); attempt++) {
      const { start, end } = termBytes(this.termEnds, first.index, this.job.size);
      try {
        await rebuildRange(
          {
            fileHash: this.job.fileHash,
            size: this.job.size,
            token: this.job.token,
            from: start + this.progress.prefixOf(first.index),
            end,
            onReceived: this.received,
            onBytes: async (position, data) => {
              for (const term of terms) {
                await this.writeAt(data, termBytes(this.termEnds, term.index, this.job.size).start + position - start);
                this.progress.wrote(term.index, position + data.length - start);
              }
              this.uniqueBytes += data.length;
            },
          },
          this.options,
        );
        for (const term of terms) this.progress.finished(term.index);
        await this.progress.checkpoint();
      } catch (error) {
        // After a 403 (URLs expired) the next reconstruction brings fresh ones, from where this one stopped.
        if (isModelfetchError(error) && error.status === 403 && expiries++ < this.options.maxAttempts) attempt -= 1;
        else await backoffOrThrow(error, attempt, this.job.fileHash, this.options);
      }
    }
  }

  /**
   * Writes the unfinished terms the chunk cache covers straight from disk, and indexes them in this
   * file too. A chunk that fails its hash check drops its entry and leaves the term for the network;
   * so does any error reading it.
   */
  private async fillFromCache(terms: TermSlot[]): Promise<void> {
    const cache = this.job.chunkCache;
    if (!cache) return;
    for (const term of terms) {
      if (this.progress.isDone(term.index)) continue;
      const { xorbHash } = this.reconstruction.terms[term.index] as Reconstruction['terms'][number];
      try {
        const chunks = await cache.read(xorbHash, term.chunkStart, term.chunkEnd);
        if (!chunks) continue;
        const recorder = this.recorders(xorbHash, [term])[0]?.recorder;
        const writer = this.termWriter([term], cache.root);
        let chunkIndex = term.chunkStart;
        const before = this.progress.bytesDone;
        try {
          for await (const { data, hash } of chunks) {
            recorder?.add(data.length, hash);
            await writer.add(chunkIndex, data);
            chunkIndex += 1;
          }
        } finally {
          await writer.close();
        }
        this.bytesFromChunkCache += this.progress.bytesDone - before;
        if (recorder) await this.indexLater([recorder]);
      } catch (error) {
        if (isModelfetchError(error) && (error.code === 'ERR_NO_SPACE')) throw error;
        // Not from the cache after all: the network fetch writes the whole term again.
      }
    }
    await this.progress.checkpoint();
  }

  /** Recorders indexing the chunks of `terms` (of one xorb) in this file: one per distinct chunk range, none for a term not wholly inside it. */
  private recorders(xorbHash: string, terms: TermSlot[]): Array<{ term: TermSlot; recorder: ChunkRecorder }> {
    const cache = this.job.chunkCache;
    const storedAt = this.job.storedAt;
    const out: Array<{ term: TermSlot; recorder: ChunkRecorder }> = [];
    const seen = new Set<string>();
    for (const term of cache && storedAt ? terms : []) {
      const key = `${term.chunkStart}-${term.chunkEnd}`;
      if (seen.has(key) || term.fileOffset < 0 || term.fileOffset + term.length > this.job.size) continue;
      seen.add(key);
      const recorder = cache?.recorder(xorbHash, term.chunkStart, term.chunkEnd, { blobPath: storedAt as string, tempPath: this.job.tempPath }, term.fileOffset);
      if (recorder) out.push({ term, recorder });
    }
    return out;
  }

  /** Fetches one xorb range and writes each decoded chunk into every term that uses it (and indexes the terms in the chunk cache). */
  private async fetchOnce(terms: TermSlot[], fetch: XorbRangeFetch): Promise<void> {
    let usedBytes = 0;
    const recorders = this.recorders(fetch.xorbHash, terms);
    const writer = this.termWriter(terms, fetch.url);
    try {
      await fetchXorbRange(fetch, this.options, {
        onReceived: this.received,
        onChunk: async (chunkIndex, data) => {
          // Hashed here, once, while the chunk is in memory: the index needs it to check the blob's bytes when read.
          let hash: Uint8Array | undefined;
          for (const { term, recorder } of recorders) {
            if (chunkIndex < term.chunkStart || chunkIndex >= term.chunkEnd) continue;
            hash ??= chunkHash(data);
            recorder.add(data.length, hash);
          }
          if (await writer.add(chunkIndex, data)) usedBytes += data.length;
        },
      });
    } finally {
      await writer.close();
    }
    this.uniqueBytes += usedBytes;
    await this.indexLater(recorders.map(({ recorder }) => recorder));
  }

  /** Queues index entries, and writes them once INDEX_BATCH have gathered (the rest at the end, or after a failure). */
  private async indexLater(recorders: ChunkRecorder[]): Promise<void> {
    this.toIndex.push(...recorders);
    if (this.toIndex.length >= INDEX_BATCH) await this.writeIndex();
  }

  private async writeIndex(): Promise<void> {
    const batch = this.toIndex;
    this.toIndex = [];
    await this.job.chunkCache?.writeEntries(batch).catch(() => undefined);
  }

  private termWriter(terms: TermSlot[], source: string): TermWriter {
    return new TermWriter(terms, { handle: this.handle, size: this.job.size }, this.progress, source);
  }

  private async writeAt(data: Buffer, position: number): Promise<void> {
    await writeAllAt(this.handle, this.job.tempPath, data, position);
  }
}

/** `downloadXetFile` with the engine's resolved options (its budget, transport and clock shared). */
export async function runXetDownload(job: XetDownloadJob, options: ResolvedOptions): Promise<XetDownloadResult> {
  return new XetDownload(job, options).run();
}

/** Downloads a Xet-backed file into `job.tempPath` and verifies its SHA-256; see the module comment. */
export async function downloadXetFile(job: XetDownloadJob, options: EngineOptions = {}): Promise<XetDownloadResult> {
  return new XetDownload(job, resolveOptions(options)).run();
}
