import { setMaxListeners } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import { fromSystemError, isFileSystemError, isModelfetchError, ModelfetchError, type ErrorCode } from '../core/errors.js';
import type { FileDigest } from '../core/types.js';
import { Checkpointer } from './checkpointer.js';
import { HashCursor } from '../core/hash/hash-cursor.js';
import { discardBody, type HttpResponse } from './http.js';
import { journalPathFor, JournalWriter, readJournal, type JournalKey } from './journal.js';
import type { ResolvedOptions } from './options.js';
import { probe, type ProbeResult } from './probe.js';
import type { BatchProgress } from './progress.js';
import { fetchSegment, type FetchContext, type FetchTarget } from './range-fetch.js';
import { attemptBudget, failureInWords, retryDecision, unreachableReason, type RetryDecision } from './retry-policy.js';
import { missingRanges, type ByteRange } from './segment-plan.js';
import { SegmentTable, type Segment } from './segment-table.js';
import type { SegmentWriter } from './segment-writer.js';
import { createTempFile, removeIfPresent, reopenTempFile } from './temp-file.js';
import type { TransferJob, TransferResult } from './types.js';

/** One mirror of the file, after its redirects were followed. */
interface Mirror {
  index: number;
  /** The URL as given (re-followed when a signed CDN URL expires). */
  url: string;
  target: FetchTarget;
  /** Budget key: host:port that segment connections go to. */
  host: string;
  alive: boolean;
  /** Had a good response: a later 403 means an expired signed URL, not a lack of access. */
  worked: boolean;
  /** Some answer came from it (a probe, any HTTP status): refused connections are then a restart, worth the full retry budget. */
  answered: boolean;
  reresolved: boolean;
  reresolving?: Promise<void>;
  stream?: HttpResponse;
}

/** Errors that end this attempt at the file at once, whatever the mirrors. */
const FATAL: ReadonlySet<ErrorCode> = new Set(['ERR_ETAG_CHANGED', 'ERR_RANGE_IGNORED', 'ERR_NO_SPACE', 'ERR_IO', 'ERR_ABORTED', 'ERR_SIZE']);
/** Restarts from zero after the file changed upstream (or a server stopped honouring Range). */
const MAX_CHANGE_RESTARTS = 2;
const MAX_CHUNK = 16 * 1024 * 1024;
/** Files up to this size keep no journal: refetching them costs less than journaling them. */
const JOURNAL_MIN_SIZE = 1024 * 1024;

function hostOf(url: string): string {
  return new URL(url).host;
}

function asModelfetchError(error: unknown): ModelfetchError {
  if (isModelfetchError(error)) return error;
  if (error instanceof Error && error.name === 'AbortError') return new ModelfetchError('ERR_ABORTED', 'Download aborted', { cause: error });
  if (isFileSystemError(error)) return fromSystemError(error);
  return new ModelfetchError('ERR_NETWORK', error instanceof Error ? error.message : String(error), { cause: error });
}

/** The final word on a host nobody answers at: which host, why, and what to check. */
function unreachableError(asked: string, reason: string, attempts: number, cause: ModelfetchError): ModelfetchError {
  // The URL that refused (a redirect's target, when the error knows it), not only the one asked for.
  const url = cause.url ?? asked;
  const { host } = new URL(url);
  const hint =
    reason === 'connection refused'
      ? `Nothing accepts connections at ${host}: check that the server is running and listening on that port, and that the URL's host and port are right.`
      : reason.startsWith('host name')
        ? `Check the host name in the URL, and that this machine's DNS (and proxy, if any) can resolve it.`
        : `Check the network route to ${host} (a firewall, a VPN, a proxy) and that the URL is right.`;
  return new ModelfetchError('ERR_NETWORK', `Could not connect to ${host}: ${reason} (${attempts} attempt${attempts === 1 ? '' : 's'})`, { url, hint, cause });
}

/** Downloads one job into its temp file: probe, plan, parallel range fetches, journal, hash, verify. */
export class FileTransfer {
  private fatal: ModelfetchError | undefined;
  private controller = new AbortController();
  private waiters: Array<() => void> = [];
  private bytesFetched = 0;
  private lastError: ModelfetchError | undefined;
  /** Set when a whole-body stream (no Range support) failed: only a restart from zero helps. */
  private streamFailed = false;
  /** Set after a restart caused by the server's answers: always probe from then on. */
  private mustProbe = false;
  /** Set when the job's `beforeWrite` refused: nothing was written, so nothing is discarded. */
  private refusedBeforeWrite = false;

  constructor(
    private readonly job: TransferJob,
    private readonly index: number,
    private readonly opts: ResolvedOptions,
    private readonly progress: BatchProgress,
  ) {}

  private get algorithm(): FileDigest['algorithm'] {
    return this.job.digest?.algorithm ?? 'sha256';
  }

  async run(): Promise<TransferResult> {
    if (this.job.urls.length === 0) throw new ModelfetchError('ERR_USAGE', `No URL given for ${this.job.tempPath}`);
    const all = this.job.urls.map((_, i) => i);
    // After a digest mismatch: once more from zero, and with several mirrors, each mirror alone in turn.
    const rounds: number[][] = this.job.urls.length === 1 ? [all, all] : [all, ...all.map((i) => [i])];
    let round = 0;
    let changes = 0;
    let streamAttempts = 0;
    for (;;) {
      const mirrors = rounds[round] ?? all;
      try {
        return await this.attempt(mirrors);
      } catch (caught) {
        const error = this.opts.signal?.aborted ? asModelfetchError(this.opts.signal.reason ?? caught) : asModelfetchError(caught);
        if (this.opts.signal?.aborted) {
          throw error.code === 'ERR_ABORTED' ? error : new ModelfetchError('ERR_ABORTED', 'Download aborted; run again to resume', { cause: caught });
        }
        if ((error.code === 'ERR_ETAG_CHANGED' || error.code === 'ERR_RANGE_IGNORED') && changes < MAX_CHANGE_RESTARTS) {
          changes += 1;
          this.mustProbe = true; // the server is not what a probe-less start assumed
          await this.discardPartial();
          continue;
        }
        if (error.code === 'ERR_INTEGRITY') {
          await this.discardPartial();
          if (round + 1 < rounds.length) {
            round += 1;
            continue;
          }
          throw error;
        }
        if (this.streamFailed) {
          streamAttempts += 1;
          const decision = this.decideRetry(error, streamAttempts, this.job.urls[0] ?? '');
          if (decision.retry) {
            await this.opts.clock.sleep(decision.delayMs, this.opts.signal);
            continue;
          }
        }
        if (error.code === 'ERR_NO_SPACE' && !this.refusedBeforeWrite) await this.discardPartial(); // a refusal up front keeps a resumable partial
        throw error;
      }
    }
  }

  /** The retry policy's decision for `error`, announced through onRetry when it is to retry. */
  private decideRetry(error: ModelfetchError, attempt: number, url: string, unreachable = false): RetryDecision {
    const input = { attempt, maxAttempts: this.opts.maxAttempts, code: error.code, ...(error.status !== undefined && { status: error.status }), ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }), random: this.opts.random(), unreachable };
    const decision = retryDecision(input);
    // The URL that answered (after redirects) when the error knows it: that is the host failing.
    if (decision.retry) this.opts.onRetry?.({ url: error.url ?? url, reason: failureInWords(error), retry: attempt, maxRetries: attemptBudget(input) - 1, delayMs: decision.delayMs });
    return decision;
  }

  private async discardPartial(): Promise<void> {
    await removeIfPresent(this.job.tempPath);
    await removeIfPresent(journalPathFor(this.job.tempPath));
  }

  /**
   * Probes one URL, retrying what the policy retries, under the budget of its host — unless the
   * caller already holds a slot for it (re-resolving from inside a segment, which would deadlock).
   */
  private async probeWithRetry(url: string, holdsSlot = false): Promise<ProbeResult> {
    let answered = false;
    for (let attempt = 1; ; attempt += 1) {
      const release = holdsSlot ? () => undefined : await this.opts.budget.acquire(hostOf(url), this.controller.signal);
      try {
        const result = await probe(this.opts.transport, {
          url,
          ...(this.job.headers && { headers: this.job.headers }),
          signal: this.controller.signal,
          now: this.opts.clock.now(),
          stallTimeoutMs: this.opts.stallTimeoutMs,
          // With the size known, a HEAD learns the rest, and a server that cannot answer ranges yet can say so.
          // After a server broke what its probe promised, only the GET probe is trusted.
          headFirst: this.job.size !== undefined && !this.mustProbe,
        });
        try {
          this.job.acceptAnswer?.({ url, answeredUrl: result.url, contentType: result.contentType });
        } catch (refused) {
          discardBody(result.stream);
          throw refused;
        }
        return result;
      } catch (caught) {
        if (this.controller.signal.aborted) throw this.controller.signal.reason;
        const error = asModelfetchError(caught);
        // Nobody has answered at this address yet: a refused connection or an unknown name gets the short budget.
        answered ||= error.status !== undefined;
        const unreachable = answered ? undefined : unreachableReason(error);
        const decision = this.decideRetry(error, attempt, url, unreachable !== undefined);
        if (!decision.retry) throw unreachable === undefined ? error : unreachableError(url, unreachable, attempt, error);
        release();
        await this.opts.clock.sleep(decision.delayMs, this.controller.signal);
      } finally {
        release();
      }
    }
  }

  private mirrorFrom(index: number, url: string, result: ProbeResult): Mirror {
    return {
      index,
      url,
      target: { url: result.url, credentialOrigin: new URL(url).origin, credentialed: result.credentialed, headers: this.job.headers, etag: result.etag },
      host: hostOf(result.url),
      alive: true,
      worked: false,
      answered: true,
      reresolved: false,
      ...(result.stream && { stream: result.stream }),
    };
  }

  private unprobedMirrors(indices: number[]): { mirrors: Mirror[]; results: ProbeResult[] } {
    const results = indices.map((i): ProbeResult => ({ size: this.job.size, etag: undefined, rangeSupported: true, url: this.job.urls[i] ?? '', credentialed: true }));
    return { mirrors: results.map((r, k) => ({ ...this.mirrorFrom(indices[k] ?? 0, r.url, r), answered: false })), results };
  }

  private async probeMirrors(indices: number[]): Promise<{ mirrors: Mirror[]; results: ProbeResult[] }> {
    const settled = await Promise.allSettled(indices.map((i) => this.probeWithRetry(this.job.urls[i] ?? '')));
    const mirrors: Mirror[] = [];
    const results: ProbeResult[] = [];
    let firstError: unknown;
    settled.forEach((outcome, k) => {
      const i = indices[k] ?? 0;
      if (outcome.status === 'rejected') {
        firstError ??= outcome.reason;
        return;
      }
      const result = outcome.value;
      const expected = this.job.size ?? results[0]?.size;
      if (expected !== undefined && result.size !== undefined && result.size !== expected) {
        discardBody(result.stream);
        firstError ??= new ModelfetchError('ERR_SIZE', `${this.job.urls[i] ?? ''} serves ${result.size} bytes, expected ${expected}`, { url: this.job.urls[i] ?? '', expected, found: result.size, hint: 'The file changed upstream or the mirror is stale; check the URL.' });
        return;
      }
      mirrors.push(this.mirrorFrom(i, this.job.urls[i] ?? '', result));
      results.push(result);
    });
    if (mirrors.length === 0) throw firstError;
    return { mirrors, results };
  }

  private async attempt(indices: number[]): Promise<TransferResult> {
    this.controller = new AbortController();
    setMaxListeners(0, this.controller.signal); // one listener per live request and waiter
    this.fatal = undefined;
    this.streamFailed = false;
    this.lastError = undefined;
    const onAbort = (): void => this.controller.abort(this.opts.signal?.reason);
    this.opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.opts.signal?.aborted) onAbort();
    let file: FileHandle | undefined;
    let journal: JournalWriter | undefined;
    let checkpointer: Checkpointer | undefined;
    let hasher: HashCursor | undefined;
    let mirrors: Mirror[] = [];
    let table: SegmentTable | undefined;
    let succeeded = false;
    try {
      this.progress.update(this.index, { phase: 'probe' });
      // A small file of known size needs no probe: its one range request learns what a probe would.
      const small = !this.mustProbe && this.job.size !== undefined && this.job.size > 0 && this.job.size < this.opts.segmentThreshold;
      const probed = small ? this.unprobedMirrors(indices) : await this.probeMirrors(indices);
      const size = this.job.size ?? probed.results.find((r) => r.size !== undefined)?.size;
      const rangeMirrors = probed.mirrors.filter((m, k) => probed.results[k]?.rangeSupported);
      const ranged = size !== undefined && rangeMirrors.length > 0;
      mirrors = ranged ? rangeMirrors : probed.mirrors.slice(0, 1);
      for (const m of probed.mirrors) {
        if (m.stream && (ranged || m !== mirrors[0])) {
          discardBody(m.stream);
          delete m.stream;
        }
      }

      if (this.job.beforeWrite) {
        await this.job.beforeWrite(size).catch((error: unknown) => {
          this.refusedBeforeWrite = true;
          throw error;
        });
      }
      // Resume only what a valid journal for this very download vouches for.
      const journalPath = journalPathFor(this.job.tempPath);
      const key: JournalKey = { identity: this.job.identity, size: size ?? -1, etag: mirrors.map((m) => m.target.etag ?? '').join(',') };
      // Without an ETag or a digest a resumed file could not be told from a changed one; tiny files are cheaper to refetch.
      const resumable = ranged && (size ?? 0) > JOURNAL_MIN_SIZE && (mirrors.some((m) => m.target.etag) || this.job.digest !== undefined);
      let done: ByteRange[] | undefined = resumable ? await readJournal(journalPath, key) : undefined;
      if (done && size !== undefined) {
        file = await reopenTempFile(this.job.tempPath, size);
        if (!file) done = undefined;
      }
      if (!file) {
        file = await createTempFile(this.job.tempPath, size);
        if (resumable) journal = await JournalWriter.create(journalPath, key);
        else await removeIfPresent(journalPath);
      } else {
        journal = await JournalWriter.append(journalPath, key);
      }
      const total = size ?? Infinity;
      table = new SegmentTable(total, done ?? [], missingRanges(total, done ?? []));
      const activeTable = table;
      const bytesResumed = table.bytesWritten();
      hasher = HashCursor.open(this.job.tempPath, this.algorithm, size);
      hasher.advance(table.contiguous());
      const writers = new Set<SegmentWriter>();
      // Without a journal (a plain stream) large files are still synced as they arrive, so the final fsync is short.
      if (journal || (size ?? 0) >= this.opts.segmentThreshold) checkpointer = new Checkpointer(file, journal, table, writers);
      this.progress.update(this.index, { phase: 'download', totalBytes: size ?? 0, bytesDone: bytesResumed, contiguousBytes: table.contiguous() });

      const activeHasher = hasher;
      const activeCheckpointer = checkpointer;
      const ctx: FetchContext = {
        transport: this.opts.transport,
        file,
        size,
        ranged,
        stallTimeoutMs: this.opts.stallTimeoutMs,
        signal: this.controller.signal,
        now: () => this.opts.clock.now(),
        onReceived: (n) => {
          this.bytesFetched += n;
          this.progress.addReceived(n);
        },
        onWritten: () => {
          const contiguous = activeTable.contiguous();
          activeHasher.advance(contiguous);
          activeCheckpointer?.request();
          this.progress.update(this.index, { bytesDone: activeTable.bytesWritten(), contiguousBytes: contiguous });
        },
        onConnection: (delta) => this.progress.connection(delta),
        writers,
      };

      await this.runLanes(ctx, table, mirrors, size, ranged);
      if (this.fatal) throw this.fatal;
      if (!table.complete()) throw this.lastError ?? new ModelfetchError('ERR_NETWORK', `Could not download ${this.job.urls[0] ?? ''}`);

      const finalSize = table.segments.reduce((end, s) => Math.max(end, s.end), 0);
      if (this.job.size !== undefined && finalSize !== this.job.size) {
        throw new ModelfetchError('ERR_SIZE', `Received ${finalSize} bytes, expected ${this.job.size}`, { expected: this.job.size, found: finalSize });
      }
      await checkpointer?.stop();
      this.progress.update(this.index, { phase: 'verify', bytesDone: finalSize, contiguousBytes: finalSize, totalBytes: finalSize });
      const hex = await hasher.finish(finalSize);
      hasher = undefined;
      if (this.job.digest && hex !== this.job.digest.hex) {
        throw new ModelfetchError('ERR_INTEGRITY', `${this.job.urls[0] ?? ''}: ${this.algorithm} of the downloaded bytes is ${hex}, expected ${this.job.digest.hex}`, {
          url: this.job.urls[0] ?? '',
          expected: this.job.digest.hex,
          found: hex,
          hint: 'The server sent different bytes than the expected digest names; the partial download was discarded. Run again, or use another mirror.',
        });
      }
      this.progress.update(this.index, { phase: 'sync' });
      await file.sync();
      await file.close();
      file = undefined;
      await journal?.close();
      journal = undefined;
      await removeIfPresent(journalPath);
      this.progress.update(this.index, { phase: 'done' }, true);
      succeeded = true;
      const etag = mirrors[0]?.target.etag;
      return {
        tempPath: this.job.tempPath,
        size: finalSize,
        digest: { algorithm: this.algorithm, hex },
        bytesFetched: this.bytesFetched,
        bytesResumed,
        ...(etag !== undefined && { etag }),
      };
    } finally {
      this.opts.signal?.removeEventListener('abort', onAbort);
      for (const m of mirrors) discardBody(m.stream);
      hasher?.dispose();
      if (checkpointer) {
        // Record what did arrive, so the next run resumes from there.
        await checkpointer.flush().catch(() => undefined);
        await checkpointer.stop();
      }
      const journalVouches = journal !== undefined && (table?.bytesWritten() ?? 0) > 0;
      await journal?.close().catch(() => undefined);
      await file?.close().catch(() => undefined);
      // A failed attempt leaves a temp file only when a journal vouches for some of its bytes.
      if (!succeeded && file !== undefined && !journalVouches) {
        await removeIfPresent(this.job.tempPath);
        await removeIfPresent(journalPathFor(this.job.tempPath));
      }
    }
  }

  private chunkSize(size: number | undefined): number {
    if (size === undefined) return Infinity;
    const { connections, minSegmentSize } = this.opts;
    return Math.max(minSegmentSize, Math.min(MAX_CHUNK, Math.ceil(size / (connections * 4))));
  }

  private async runLanes(ctx: FetchContext, table: SegmentTable, mirrors: Mirror[], size: number | undefined, ranged: boolean): Promise<void> {
    const single = !ranged || (size ?? 0) < this.opts.segmentThreshold;
    const remaining = table.segments.reduce((sum, s) => sum + (s.end - s.pos), 0);
    const perMirror = single ? 1 : Math.max(1, Math.min(this.opts.connections, Math.ceil(remaining / this.opts.minSegmentSize)));
    const chunk = single ? Infinity : this.chunkSize(size);
    const lanes: Array<Promise<void>> = [];
    const laneMirrors = single ? mirrors.slice(0, 1) : mirrors;
    for (const mirror of laneMirrors) {
      for (let k = 0; k < perMirror; k += 1) lanes.push(this.lane(ctx, table, mirrors, mirror, chunk));
    }
    await Promise.all(lanes);
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private fail(error: ModelfetchError): void {
    this.fatal ??= error;
    this.controller.abort(error);
    this.notify();
  }

  /** One connection's worth of work: claim a segment, fetch it, repeat; wait while others may still split. */
  private async lane(ctx: FetchContext, table: SegmentTable, mirrors: Mirror[], preferred: Mirror, chunk: number): Promise<void> {
    while (!this.fatal) {
      const mirror = preferred.alive ? preferred : mirrors.find((m) => m.alive);
      if (!mirror) return;
      let release: () => void;
      try {
        release = await this.opts.budget.acquire(mirror.host, this.controller.signal);
      } catch {
        return;
      }
      let segment: Segment | undefined;
      try {
        if (this.fatal) return;
        segment = table.claim(chunk, this.opts.minSegmentSize);
        if (!segment && table.activeCount() === 0) return;
        if (segment) await this.runSegment(ctx, segment, mirror);
      } finally {
        release();
      }
      if (segment) {
        table.release(segment);
        this.notify();
      } else {
        await this.changed();
      }
    }
  }

  private async runSegment(ctx: FetchContext, segment: Segment, mirror: Mirror): Promise<void> {
    let attempt = 0;
    while (!this.fatal && mirror.alive) {
      const before = segment.pos;
      const reuse = mirror.stream;
      delete mirror.stream;
      try {
        await fetchSegment(ctx, segment, mirror.target, reuse);
        mirror.worked = true;
        return;
      } catch (caught) {
        if (this.controller.signal.aborted) return;
        const error = asModelfetchError(caught);
        if (segment.pos > before) {
          mirror.worked = true;
          attempt = 0; // progress was made: this is a new failure, not a repeat
        }
        if (!ctx.ranged) {
          this.streamFailed = true;
          this.fail(error);
          return;
        }
        if (FATAL.has(error.code)) {
          this.fail(error);
          return;
        }
        if (error.code === 'ERR_GATED' && mirror.worked && !mirror.reresolved) {
          await this.reresolve(mirror, ctx.size);
          continue;
        }
        attempt += 1;
        // A mirror that never answered (an unprobed small file's first request) gets the short budget too.
        mirror.answered ||= mirror.worked || error.status !== undefined;
        const unreachable = mirror.answered ? undefined : unreachableReason(error);
        const decision = this.decideRetry(error, attempt, mirror.url, unreachable !== undefined);
        if (!decision.retry) {
          mirror.alive = false;
          this.lastError = unreachable === undefined ? error : unreachableError(mirror.url, unreachable, attempt, error);
          return;
        }
        try {
          await this.opts.clock.sleep(decision.delayMs, this.controller.signal);
        } catch {
          return;
        }
      }
    }
  }

  /** A signed CDN URL expired (403 after it had worked): ask for fresh URLs once, or follow the original redirects again. */
  private async reresolve(mirror: Mirror, size: number | undefined): Promise<void> {
    mirror.reresolving ??= (async () => {
      mirror.reresolved = true;
      try {
        if (this.job.reresolve) {
          const urls = await this.job.reresolve();
          mirror.url = urls[mirror.index] ?? urls[0] ?? mirror.url;
        }
        const result = await this.probeWithRetry(mirror.url, true);
        discardBody(result.stream);
        if (result.size !== size || !result.rangeSupported) {
          throw new ModelfetchError('ERR_ETAG_CHANGED', `${mirror.url} changed after its URL was renewed`, { url: mirror.url });
        }
        if (mirror.target.etag && result.etag && result.etag !== mirror.target.etag) {
          throw new ModelfetchError('ERR_ETAG_CHANGED', `${mirror.url} now serves ETag "${result.etag}" instead of "${mirror.target.etag}"`, { url: mirror.url });
        }
        const fresh = this.mirrorFrom(mirror.index, mirror.url, result);
        mirror.target = fresh.target;
        mirror.host = fresh.host;
      } catch (caught) {
        const error = asModelfetchError(caught);
        if (FATAL.has(error.code)) this.fail(error);
        mirror.alive = false;
        this.lastError = error;
      }
    })();
    await mirror.reresolving;
  }
}
