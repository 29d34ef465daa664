import { ModelfetchError, type ErrorCode } from '../core/errors.js';
import { discardBody } from './http.js';
import { asModelfetchError, mirrorFrom, unreachableError, type Mirror } from './mirrors.js';
import type { ResolvedOptions } from './options.js';
import type { ProbeResult } from './probe.js';
import { fetchSegment, type FetchContext } from './range-fetch.js';
import { unreachableReason, type RetryDecision } from './retry-policy.js';
import type { Segment, SegmentTable } from './segment-table.js';
import type { TransferJob } from './types.js';

/** Errors that end this attempt at the file at once, whatever the mirrors. */
const FATAL: ReadonlySet<ErrorCode> = new Set(['ERR_ETAG_CHANGED', 'ERR_RANGE_IGNORED', 'ERR_NO_SPACE', 'ERR_IO', 'ERR_ABORTED', 'ERR_SIZE']);
const MAX_CHUNK = 16 * 1024 * 1024;

/** What the lanes need of the file transfer that runs them. */
export interface LaneHost {
  job: TransferJob;
  opts: ResolvedOptions;
  /** This attempt's controller: aborted when the attempt fails. */
  controller: AbortController;
  decideRetry(error: ModelfetchError, attempt: number, url: string, unreachable?: boolean): RetryDecision;
  /** Probes a URL again (a renewed signed URL) while holding a budget slot for its host. */
  probeHoldingSlot(url: string): Promise<ProbeResult>;
}

/**
 * One attempt's connections: each lane claims a segment, fetches it from its mirror with retries,
 * and repeats, waiting while others may still split. The first fatal error ends them all; a
 * mirror that keeps failing is given up and the others finish its segments.
 */
export class Lanes {
  fatal: ModelfetchError | undefined;
  lastError: ModelfetchError | undefined;
  /** Set when a whole-body stream (no Range support) failed: only a restart from zero helps. */
  streamFailed = false;
  private waiters: Array<() => void> = [];

  constructor(private readonly host: LaneHost) {}

  private chunkSize(size: number | undefined): number {
    if (size === undefined) return Infinity;
    const { connections, minSegmentSize } = this.host.opts;
    return Math.max(minSegmentSize, Math.min(MAX_CHUNK, Math.ceil(size / (connections * 4))));
  }

  async run(ctx: FetchContext, table: SegmentTable, mirrors: Mirror[], size: number | undefined, ranged: boolean): Promise<void> {
    const { opts } = this.host;
    const single = !ranged || (size ?? 0) < opts.segmentThreshold;
    const remaining = table.segments.reduce((sum, s) => sum + (s.end - s.pos), 0);
    const perMirror = single ? 1 : Math.max(1, Math.min(opts.connections, Math.ceil(remaining / opts.minSegmentSize)));
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
    this.host.controller.abort(error);
    this.notify();
  }

  /** One connection's worth of work: claim a segment, fetch it, repeat; wait while others may still split. */
  private async lane(ctx: FetchContext, table: SegmentTable, mirrors: Mirror[], preferred: Mirror, chunk: number): Promise<void> {
    const { opts, controller } = this.host;
    while (!this.fatal) {
      const mirror = preferred.alive ? preferred : mirrors.find((m) => m.alive);
      if (!mirror) return;
      let release: () => void;
      try {
        release = await opts.budget.acquire(mirror.host, controller.signal);
      } catch {
        return;
      }
      let segment: Segment | undefined;
      try {
        if (this.fatal) return;
        segment = table.claim(chunk, opts.minSegmentSize);
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
    const { opts, controller } = this.host;
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
        if (controller.signal.aborted) return;
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
        const decision = this.host.decideRetry(error, attempt, mirror.url, unreachable !== undefined);
        if (!decision.retry) {
          mirror.alive = false;
          this.lastError = unreachable === undefined ? error : unreachableError(mirror.url, unreachable, attempt, error);
          return;
        }
        try {
          await opts.clock.sleep(decision.delayMs, controller.signal);
        } catch {
          return;
        }
      }
    }
  }

  /** A signed CDN URL expired (403 after it had worked): ask for fresh URLs once, or follow the original redirects again. */
  private async reresolve(mirror: Mirror, size: number | undefined): Promise<void> {
    const { job } = this.host;
    mirror.reresolving ??= (async () => {
      mirror.reresolved = true;
      try {
        if (job.reresolve) {
          const urls = await job.reresolve();
          mirror.url = urls[mirror.index] ?? urls[0] ?? mirror.url;
        }
        const result = await this.host.probeHoldingSlot(mirror.url);
        discardBody(result.stream);
        if (result.size !== size || !result.rangeSupported) {
          throw new ModelfetchError('ERR_ETAG_CHANGED', `${mirror.url} changed after its URL was renewed`, { url: mirror.url });
        }
        if (mirror.target.etag && result.etag && result.etag !== mirror.target.etag) {
          throw new ModelfetchError('ERR_ETAG_CHANGED', `${mirror.url} now serves ETag "${result.etag}" instead of "${mirror.target.etag}"`, { url: mirror.url });
        }
        const fresh = mirrorFrom(job, mirror.index, mirror.url, result);
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
