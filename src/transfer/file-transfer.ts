import { setMaxListeners } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import { ModelfetchError } from '../core/errors.js';
import type { FileDigest } from '../core/types.js';
import { Checkpointer } from './checkpointer.js';
import { HashCursor } from '../core/hash/hash-cursor.js';
import { discardBody } from './http.js';
import { journalPathFor, JournalWriter, readJournal, type JournalKey } from './journal.js';
import type { ResolvedOptions } from './options.js';
import { probe, type ProbeResult } from './probe.js';
import type { BatchProgress } from './progress.js';
import { Lanes } from './lanes.js';
import { asModelfetchError, hostOf, mirrorFrom, unprobedMirrors, unreachableError, type Mirror } from './mirrors.js';
import type { FetchContext } from './range-fetch.js';
import { decideRetry, unreachableReason, type RetryDecision } from './retry-policy.js';
import { missingRanges, type ByteRange } from './segment-plan.js';
import { SegmentTable } from './segment-table.js';
import type { SegmentWriter } from './segment-writer.js';
import { createTempFile, removeIfPresent, reopenTempFile } from './temp-file.js';
import type { TransferJob, TransferResult } from './types.js';

/** Restarts from zero after the file changed upstream (or a server stopped honouring Range). */
const MAX_CHANGE_RESTARTS = 2;
/** Files up to this size keep no journal: refetching them costs less than journaling them. */
const JOURNAL_MIN_SIZE = 1024 * 1024;

/** Downloads one job into its temp file: probe, plan, parallel range fetches, journal, hash, verify. */
export class FileTransfer {
  private controller = new AbortController();
  private bytesFetched = 0;
  /** The current attempt's lanes: they know whether a whole-body stream failed (then only a restart from zero helps). */
  private lanes: Lanes | undefined;
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
        if (this.lanes?.streamFailed) {
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
    return decideRetry(error, { attempt, maxAttempts: this.opts.maxAttempts, random: this.opts.random(), unreachable, url, onRetry: this.opts.onRetry });
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
      mirrors.push(mirrorFrom(this.job, i, this.job.urls[i] ?? '', result));
      results.push(result);
    });
    if (mirrors.length === 0) throw firstError;
    return { mirrors, results };
  }

  private async attempt(indices: number[]): Promise<TransferResult> {
    this.controller = new AbortController();
    setMaxListeners(0, this.controller.signal); // one listener per live request and waiter
    const lanes = new Lanes({
      job: this.job,
      opts: this.opts,
      controller: this.controller,
      decideRetry: (error, attempt, url, unreachable) => this.decideRetry(error, attempt, url, unreachable),
      probeHoldingSlot: (url) => this.probeWithRetry(url, true),
    });
    this.lanes = lanes;
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
      const probed = small ? unprobedMirrors(this.job, indices) : await this.probeMirrors(indices);
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

      await lanes.run(ctx, table, mirrors, size, ranged);
      if (lanes.fatal) throw lanes.fatal;
      if (!table.complete()) throw lanes.lastError ?? new ModelfetchError('ERR_NETWORK', `Could not download ${this.job.urls[0] ?? ''}`);

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
}
