import type { FileHandle } from 'node:fs/promises';
import { fromSystemError, isModelfetchError, ModelfetchError } from '../../core/errors.js';
import { HashCursor } from '../hash-cursor.js';
import { discardBody, headerValue, requestFollowingRedirects, retryAfterOf, statusError, type HttpResponse } from '../http.js';
import { resolveOptions, type EngineOptions, type ResolvedOptions } from '../options.js';
import { retryDecision } from '../retry-policy.js';
import { StallWatch } from '../stall-watch.js';
import { journalPathFor, JournalWriter, readJournal, type JournalKey } from '../journal.js';
import { mergeRanges, type ByteRange } from '../segment-plan.js';
import { createTempFile, removeIfPresent, reopenTempFile } from '../temp-file.js';
import { ChunkStreamDecoder, decodeChunkBody } from './chunk-codec.js';
import { isXetHashHex, prepareChunkHashing } from '../../core/hash/xet-hash.js';
import { readJsonBody } from './json-body.js';
import { parseReconstruction, type Reconstruction, type XorbRangeFetch } from './reconstruction.js';
import type { ChunkCache, ChunkEntryWriter } from '../../cache/xet-chunk-cache.js';
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
 * Resume: finished terms are journaled (as byte ranges, after an fdatasync of their bytes) beside
 * the temp file, keyed by the Xet hash, size and SHA-256. After a kill -9 the next run fetches only
 * the terms no record vouches for. A failed run keeps temp file and journal for that; a digest
 * mismatch removes both.
 */

export interface XetDownloadJob {
  /** The file's Xet hash (`X-Xet-Hash`, tree `xetHash`). */
  fileHash: string;
  size: number;
  /** Expected SHA-256 (the LFS oid), hex. */
  sha256: string;
  tempPath: string;
  token: XetTokenProvider;
  /** Decoded chunks already on disk are taken from here, and fetched ones are added. */
  chunkCache?: ChunkCache;
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

/** Reconstruction JSON above this is refused (a 1 TiB file needs a few MB). */
const MAX_RECONSTRUCTION_BYTES = 256 * 1024 * 1024;

interface TermSlot {
  index: number;
  chunkStart: number;
  chunkEnd: number;
  fileOffset: number;
  length: number;
}

/** The terms one fetch serves: a range that repeats in the file is fetched once and written to each. */
interface RangeWork {
  terms: TermSlot[];
}

class XetDownload {
  private reconstruction!: Reconstruction;
  private generation = 0;
  private refreshing: Promise<void> | undefined;
  private preferV1 = false;
  private reconstructions = 0;
  private bytesFetched = 0;
  /** Decoded bytes of the chunks the terms use, counted once per fetch. */
  private uniqueBytes = 0;
  private termDone: boolean[] = [];
  private termEnds: number[] = [];
  private contiguousTerms = 0;
  private handle!: FileHandle;
  private hasher: HashCursor | undefined;
  private journal: JournalWriter | undefined;
  private resumedRanges: ByteRange[] = [];
  private bytesResumed = 0;
  /** Finished terms whose bytes are not yet synced and journaled. */
  private unjournaled: ByteRange[] = [];
  private checkpointing: Promise<void> | undefined;
  private bytesFromChunkCache = 0;
  private bytesDone = 0;

  constructor(
    private readonly job: XetDownloadJob,
    private readonly options: ResolvedOptions,
  ) {}

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
      await this.refreshReconstruction(0);
      const works = this.plan();
      this.takeResumedTerms();
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
      await this.handle.close();
      await this.journal?.close();
      this.journal = undefined;
      await removeIfPresent(this.journalPath);
      return {
        tempPath: this.job.tempPath,
        size: this.job.size,
        sha256: digest,
        bytesFetched: this.bytesFetched,
        bytesDeduplicated: Math.max(0, this.job.size - this.bytesResumed - this.uniqueBytes),
        bytesResumed: this.bytesResumed,
        bytesFromChunkCache: this.bytesFromChunkCache,
        reconstructionVersion: this.reconstruction.version,
        reconstructions: this.reconstructions,
      };
    } catch (error) {
      this.hasher?.dispose();
      // Terms finished before the failure still count for the next run.
      await this.checkpoint().catch(() => undefined);
      await this.handle.close().catch(() => undefined);
      await this.journal?.close().catch(() => undefined);
      if (isModelfetchError(error, 'ERR_INTEGRITY')) {
        await removeIfPresent(this.job.tempPath).catch(() => undefined);
        await removeIfPresent(this.journalPath).catch(() => undefined);
      }
      throw error;
    }
  }

  /** Marks the terms a previous run journaled as done, so nothing fetches them again. */
  private takeResumedTerms(): void {
    if (this.resumedRanges.length === 0) return;
    let start = -this.reconstruction.offsetIntoFirstRange;
    this.reconstruction.terms.forEach((term, index) => {
      const end = start + term.unpackedLength;
      if (this.resumedRanges.some((r) => r.start <= Math.max(0, start) && r.end >= end)) {
        this.termDone[index] = true;
        this.bytesResumed += end - Math.max(0, start);
        this.bytesDone += end - Math.max(0, start);
      }
      start = end;
    });
    this.advanceHash();
  }

  /** Syncs the bytes of finished terms, then journals them; one checkpoint at a time. */
  private async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing.catch(() => undefined);
    if (this.unjournaled.length === 0 || !this.journal) return;
    const ranges = mergeRanges(this.unjournaled.splice(0));
    const journal = this.journal;
    this.checkpointing = (async () => {
      try {
        await this.handle.datasync();
        await journal.record(ranges);
      } catch (error) {
        throw fromSystemError(error, `journaling ${this.job.tempPath}`);
      }
    })().finally(() => (this.checkpointing = undefined));
    await this.checkpointing;
  }

  /** Terms grouped by the fetch that serves them, in the order the file needs them. */
  private plan(): RangeWork[] {
    const byFetch = new Map<XorbRangeFetch, RangeWork>();
    let offset = -this.reconstruction.offsetIntoFirstRange;
    this.reconstruction.terms.forEach((term, index) => {
      let work = byFetch.get(term.fetch);
      if (!work) {
        work = { terms: [] };
        byFetch.set(term.fetch, work);
      }
      work.terms.push({ index, chunkStart: term.chunkStart, chunkEnd: term.chunkEnd, fileOffset: offset, length: term.unpackedLength });
      offset += term.unpackedLength;
      this.termEnds.push(offset);
    });
    this.termDone = this.reconstruction.terms.map(() => false);
    return [...byFetch.values()];
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

  /** Asks for a new reconstruction unless another caller already did since `seenGeneration`. */
  private async refreshReconstruction(seenGeneration: number): Promise<void> {
    if (this.generation > seenGeneration) return;
    this.refreshing ??= this.fetchReconstruction()
      .then((reconstruction) => {
        if (this.generation > 0) this.checkSameTerms(reconstruction);
        this.reconstruction = reconstruction;
        this.generation += 1;
      })
      .finally(() => (this.refreshing = undefined));
    await this.refreshing;
  }

  /** A reconstruction asked for again must describe the same file the same way. */
  private checkSameTerms(fresh: Reconstruction): void {
    const same = fresh.offsetIntoFirstRange === this.reconstruction.offsetIntoFirstRange && fresh.terms.length === this.reconstruction.terms.length && fresh.terms.every((t, i) => {
      const old = this.reconstruction.terms[i];
      return old !== undefined && old.xorbHash === t.xorbHash && old.chunkStart === t.chunkStart && old.chunkEnd === t.chunkEnd && old.unpackedLength === t.unpackedLength;
    });
    if (!same) throw new ModelfetchError('ERR_ETAG_CHANGED', `The Xet reconstruction of ${this.job.fileHash} changed during the download.`, { hint: 'Run the same command again.' });
  }

  private async fetchReconstruction(): Promise<Reconstruction> {
    let refreshedToken = false;
    let refreshNext = false;
    for (let attempt = 1; ; attempt++) {
      const version: 1 | 2 = this.preferV1 ? 1 : 2;
      const token = await this.job.token(refreshNext);
      refreshNext = false;
      const url = `${token.casUrl}/v${version}/reconstructions/${this.job.fileHash}`;
      let response: HttpResponse | undefined;
      try {
        response = await requestFollowingRedirects(this.options.transport, {
          url,
          headers: { authorization: `Bearer ${token.accessToken}`, accept: 'application/json' },
          credentialOrigin: new URL(token.casUrl).origin,
          ...(this.options.signal && { signal: this.options.signal }),
        });
        if (response.status === 200) {
          this.reconstructions += 1;
          const json = await readJsonBody(response, MAX_RECONSTRUCTION_BYTES);
          return parseReconstruction(json, { version, url, expectedLength: this.job.size });
        }
        discardBody(response);
        if (version === 2 && (response.status === 404 || response.status === 501)) {
          this.preferV1 = true;
          attempt -= 1;
          continue;
        }
        if (response.status === 401 && !refreshedToken) {
          refreshedToken = true;
          refreshNext = true;
          attempt -= 1;
          continue;
        }
        throw statusError(response.status, url, response.headers, this.options.clock.now());
      } catch (error) {
        await this.backoffOrThrow(error, attempt, url);
      }
    }
  }

  /** Sleeps before the next attempt when `error` is worth retrying; rethrows it otherwise. */
  private async backoffOrThrow(error: unknown, attempt: number, url: string): Promise<void> {
    if (this.options.signal?.aborted) throw this.options.signal.reason;
    const failure = isModelfetchError(error) ? error : new ModelfetchError('ERR_NETWORK', `The connection to ${url} failed: ${error instanceof Error ? error.message : String(error)}`, { url, cause: error });
    const decision = retryDecision({
      attempt,
      maxAttempts: this.options.maxAttempts,
      code: failure.code,
      ...(failure.status !== undefined && { status: failure.status }),
      ...(retryAfterOf(failure) !== undefined && { retryAfterMs: retryAfterOf(failure) }),
      random: this.options.random(),
    });
    if (!decision.retry) throw failure;
    await this.options.clock.sleep(decision.delayMs, this.options.signal);
  }

  /** Fetches what `work`'s unfinished terms need; after an expiry the new reconstruction may split them over other fetches. */
  private async fetchWithRetries(work: RangeWork): Promise<void> {
    let expiries = 0;
    let triedCache = false;
    for (let attempt = 1; ; attempt++) {
      const generation = this.generation;
      const byFetch = new Map<XorbRangeFetch, TermSlot[]>();
      for (const term of work.terms) {
        if (this.termDone[term.index]) continue;
        const fetch = (this.reconstruction.terms[term.index] as Reconstruction['terms'][number]).fetch;
        byFetch.set(fetch, [...(byFetch.get(fetch) ?? []), term]);
      }
      if (byFetch.size === 0) return;
      if (!triedCache && this.job.chunkCache) {
        triedCache = true;
        attempt -= 1;
        await this.fillFromCache(work.terms);
        continue;
      }
      let current: XorbRangeFetch | undefined;
      try {
        for (const [fetch, terms] of byFetch) {
          current = fetch;
          await this.fetchOnce(terms, fetch);
          await this.checkpoint();
        }
        return;
      } catch (error) {
        if (isModelfetchError(error) && error.status === 403 && expiries < this.options.maxAttempts) {
          // Signed URLs expired: ask for fresh ones (once for all workers) and go again.
          expiries += 1;
          attempt -= 1;
          await this.refreshReconstruction(generation);
          continue;
        }
        await this.backoffOrThrow(error, attempt, current?.url ?? this.job.fileHash);
      }
    }
  }

  /**
   * Writes the unfinished terms the chunk cache covers straight from disk. A cache entry that fails
   * its hash check is dropped and its term left for the network; so is any error reading it.
   */
  private async fillFromCache(terms: TermSlot[]): Promise<void> {
    const cache = this.job.chunkCache;
    if (!cache) return;
    for (const term of terms) {
      if (this.termDone[term.index]) continue;
      const { xorbHash } = this.reconstruction.terms[term.index] as Reconstruction['terms'][number];
      try {
        const chunks = await cache.read(xorbHash, term.chunkStart, term.chunkEnd);
        if (!chunks) continue;
        const written = [0];
        let chunkIndex = term.chunkStart;
        const before = this.bytesDone;
        for await (const data of chunks) {
          await this.writeChunk([term], written, chunkIndex, data, cache.root);
          chunkIndex += 1;
        }
        this.bytesFromChunkCache += this.bytesDone - before;
      } catch (error) {
        if (isModelfetchError(error) && (error.code === 'ERR_NO_SPACE')) throw error;
        // Not from the cache after all: the network fetch writes the whole term again.
      }
    }
    await this.checkpoint();
  }

  private async fetchOnce(terms: TermSlot[], fetch: XorbRangeFetch): Promise<void> {
    const release = await this.options.budget.acquire(new URL(fetch.url).host, this.options.signal);
    // A range with no byte for stallTimeoutMs is aborted and retried, as the engine's segments are.
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(this.options.signal?.reason);
    this.options.signal?.addEventListener('abort', onAbort, { once: true });
    const watch = new StallWatch(this.options.stallTimeoutMs, () => controller.abort(new Error('stall')));
    let response: HttpResponse | undefined;
    try {
      // A signed URL carries its own authorization: no header of ours goes with it, and the Range is the signed one.
      response = await requestFollowingRedirects(this.options.transport, {
        url: fetch.url,
        credentialed: false,
        extraHeaders: { range: fetch.rangeHeader },
        signal: controller.signal,
      });
      const started = response;
      controller.signal.addEventListener('abort', () => discardBody(started), { once: true });
      watch.touch();
      if (response.status !== 206) {
        discardBody(response);
        if (response.status === 200) throw new ModelfetchError('ERR_RANGE_IGNORED', `${fetch.url} ignored the Range header of a xorb request.`, { url: fetch.url, status: 200 });
        throw statusError(response.status, fetch.url, response.headers, this.options.clock.now());
      }
      const contentRange = headerValue(response.headers, 'content-range') ?? '';
      if (!new RegExp(`^bytes ${fetch.byteStart}-${fetch.byteEnd}/(\\d+|\\*)$`).test(contentRange)) {
        discardBody(response);
        throw new ModelfetchError('ERR_BAD_RANGE', `${fetch.url} answered range "${contentRange}" for ${fetch.rangeHeader}.`, { url: fetch.url });
      }
      const entry = await this.job.chunkCache?.writer(fetch.xorbHash, fetch.chunkStart, fetch.chunkEnd).catch(() => undefined);
      try {
        await this.consume(response, terms, fetch, watch, entry);
        await entry?.finish().catch(() => undefined);
      } finally {
        await entry?.abandon();
      }
    } catch (error) {
      if (this.options.signal?.aborted) throw this.options.signal.reason;
      if (watch.stalled) throw new ModelfetchError('ERR_STALL', `No data from ${fetch.url} for ${this.options.stallTimeoutMs} ms.`, { url: fetch.url, cause: error });
      throw error;
    } finally {
      watch.stop();
      this.options.signal?.removeEventListener('abort', onAbort);
      if (response && !response.body.readableEnded) discardBody(response);
      release();
    }
  }

  /** Decodes chunks as they arrive and writes each into every term that uses it. */
  private async consume(response: HttpResponse, terms: TermSlot[], fetch: XorbRangeFetch, watch: StallWatch, entry: ChunkEntryWriter | undefined): Promise<void> {
    const expectedBytes = fetch.byteEnd - fetch.byteStart + 1;
    const written = terms.map(() => 0);
    const decoder = new ChunkStreamDecoder(fetch.url);
    let usedBytes = 0;
    let received = 0;
    let chunkIndex = fetch.chunkStart;
    try {
      for await (const piece of response.body) {
        watch.touch();
        received += piece.length;
        this.bytesFetched += piece.length;
        this.job.onReceived?.(piece.length);
        if (received > expectedBytes) throw new ModelfetchError('ERR_BAD_RANGE', `${fetch.url} sent more than the ${expectedBytes} bytes of ${fetch.rangeHeader}.`, { url: fetch.url });
        for (const { header, body } of decoder.push(piece)) {
          if (chunkIndex >= fetch.chunkEnd) throw new ModelfetchError('ERR_BAD_RESPONSE', `${fetch.url} holds more than the chunks ${fetch.chunkStart}..${fetch.chunkEnd} it was asked for.`, { url: fetch.url });
          const data = decodeChunkBody(header, body, fetch.url);
          // The cache is a bonus: a write that fails only leaves this range out of it.
          if (entry && !(await entry.add(data).then(() => true, () => false))) entry = undefined;
          if (await this.writeChunk(terms, written, chunkIndex, data, fetch.url)) usedBytes += data.length;
          chunkIndex += 1;
        }
      }
    } catch (error) {
      if (isModelfetchError(error)) throw error;
      throw new ModelfetchError('ERR_NETWORK', `The connection to ${fetch.url} failed after ${received} of ${expectedBytes} bytes.`, { url: fetch.url, cause: error });
    }
    if (received < expectedBytes || decoder.pendingBytes > 0 || chunkIndex < fetch.chunkEnd) {
      throw new ModelfetchError('ERR_NETWORK', `${fetch.url} closed the connection after ${received} of ${expectedBytes} bytes.`, { url: fetch.url, expected: expectedBytes, found: received });
    }
    this.uniqueBytes += usedBytes;
  }

  /** Writes a decoded chunk into every term that uses it; false when none does. */
  private async writeChunk(terms: TermSlot[], written: number[], chunkIndex: number, data: Buffer, url: string): Promise<boolean> {
    let used = false;
    for (let t = 0; t < terms.length; t++) {
      const term = terms[t] as TermSlot;
      if (chunkIndex < term.chunkStart || chunkIndex >= term.chunkEnd) continue;
      used = true;
      const done = written[t] as number;
      if (done + data.length > term.length) {
        throw new ModelfetchError('ERR_BAD_RESPONSE', `Term ${term.index} of the Xet reconstruction decodes to more than its ${term.length} bytes.`, { url });
      }
      // The first term may start before byte 0 (offset into the first range); only the file's bytes are written.
      const start = term.fileOffset + done;
      const skip = Math.max(0, -start);
      const slice = skip > 0 ? data.subarray(Math.min(skip, data.length)) : data;
      if (slice.length > 0) await this.writeAt(slice, start + skip);
      written[t] = done + data.length;
      if (chunkIndex === term.chunkEnd - 1) {
        if (written[t] !== term.length) throw new ModelfetchError('ERR_BAD_RESPONSE', `Term ${term.index} of the Xet reconstruction decodes to ${written[t]} bytes, not ${term.length}.`, { url });
        this.markDone(term.index);
      }
    }
    return used;
  }

  private async writeAt(data: Buffer, position: number): Promise<void> {
    let offset = 0;
    try {
      while (offset < data.length) {
        const { bytesWritten } = await this.handle.write(data, offset, data.length - offset, position + offset);
        offset += bytesWritten;
      }
    } catch (error) {
      throw fromSystemError(error, `writing ${this.job.tempPath}`);
    }
  }

  /** Records a finished term: its bytes await the next checkpoint, and the hash takes the grown prefix. */
  private markDone(index: number): void {
    this.termDone[index] = true;
    const start = Math.max(0, index === 0 ? 0 : (this.termEnds[index - 1] as number));
    const end = Math.min(this.job.size, this.termEnds[index] as number);
    this.unjournaled.push({ start, end });
    this.bytesDone += end - start;
    this.advanceHash();
  }

  private advanceHash(): void {
    while (this.contiguousTerms < this.termDone.length && this.termDone[this.contiguousTerms]) this.contiguousTerms += 1;
    const contiguous = this.contiguousTerms > 0 ? Math.min(this.job.size, this.termEnds[this.contiguousTerms - 1] as number) : 0;
    if (contiguous > 0) this.hasher?.advance(contiguous);
    this.job.onProgress?.(this.bytesDone, contiguous);
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
