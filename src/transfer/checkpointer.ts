import type { FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../core/errors.js';
import type { JournalWriter } from './journal.js';
import type { Segment, SegmentTable } from './segment-table.js';
import type { SegmentWriter } from './segment-writer.js';

/**
 * Makes received bytes durable and records them: partly filled write buffers are flushed, one
 * fdatasync covers every segment, then one journal append (when there is a journal) lists
 * everything written since the last checkpoint. Requests are coalesced (at most one runs, one more queued, at least `minGapMs`
 * apart) and a slow trickle is still checkpointed every `idleMs`. A kill -9 therefore loses only
 * what arrived during the last cycle (tens of milliseconds of data), never whole segments.
 */
export class Checkpointer {
  private running: Promise<void> | undefined;
  private queued = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastStart = 0;
  private failure: unknown;

  private readonly ticker: ReturnType<typeof setInterval>;

  constructor(
    private readonly file: FileHandle,
    private readonly journal: JournalWriter | undefined,
    private readonly table: SegmentTable,
    private readonly writers: ReadonlySet<SegmentWriter>,
    private readonly minGapMs = 25,
    idleMs = 500,
  ) {
    this.ticker = setInterval(() => this.request(), idleMs);
    this.ticker.unref();
  }

  /** Asks for a checkpoint soon. */
  request(): void {
    if (this.running) {
      this.queued = true;
      return;
    }
    if (this.timer) return;
    const wait = Math.max(0, this.lastStart + this.minGapMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run().catch(() => undefined);
    }, wait);
  }

  /** Runs a checkpoint now (after any running one) and reports its failure. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    while (this.running) await this.running.catch(() => undefined);
    await this.run();
  }

  /** Stops scheduling; a running checkpoint finishes. */
  async stop(): Promise<void> {
    clearInterval(this.ticker);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queued = false;
    while (this.running) await this.running.catch(() => undefined);
  }

  private run(): Promise<void> {
    if (this.running) {
      this.queued = true;
      return this.running;
    }
    this.lastStart = performance.now();
    this.running = this.checkpoint().finally(() => {
      this.running = undefined;
      if (this.queued) {
        this.queued = false;
        this.request();
      }
    });
    return this.running;
  }

  private async checkpoint(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    await Promise.all([...this.writers].map((w) => w.flush()));
    const upTo = new Map<Segment, number>();
    for (const s of this.table.segments) if (s.written > s.journaled) upTo.set(s, s.written);
    if (upTo.size === 0) return;
    try {
      await this.file.datasync();
      const ranges = this.table.takeUnjournaled(upTo);
      await this.journal?.record(ranges);
    } catch (error) {
      this.failure = fromSystemError(error, 'recording download progress');
      throw this.failure;
    }
  }
}
