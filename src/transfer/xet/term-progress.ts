import { fromSystemError } from '../../core/errors.js';
import type { JournalWriter } from '../journal.js';
import { mergeRanges, type ByteRange } from '../segment-plan.js';
import { termBytes } from './term-plan.js';

/**
 * What a Xet download has of each term, and making it durable. A term is written in order from its
 * first byte, so what it has is a prefix: the whole term once done. Checkpoints fdatasync the file,
 * then journal the prefixes grown since the last one; they are asked for as chunks land (at most one
 * runs, at least CHECKPOINT_GAP_MS apart) and awaited after each range, so a kill -9 loses only the
 * last moments of the ranges in flight, and the next run fetches the rest of a cut-off term, not
 * all of it. The journal's records never overlap (it would be discarded if they did): each records
 * only what the previous ones did not.
 */

const CHECKPOINT_GAP_MS = 25;

export interface TermProgressSink {
  /** The file being written (for messages). */
  path: string;
  datasync(): Promise<void>;
  journal: JournalWriter | undefined;
  /** The done terms' contiguous prefix of the file grew, or bytesDone did. */
  onProgress(bytesDone: number, contiguousBytes: number): void;
}

export class TermProgress {
  private readonly done: boolean[];
  /** Bytes of each term written in order from its first byte. */
  private readonly prefix: number[];
  /** Bytes of each term the journal already vouches for. */
  private readonly journaled: number[];
  /** Bytes of each term counted in bytesDone. */
  private readonly counted: number[];
  private readonly grown = new Set<number>();
  private contiguousTerms = 0;
  private checkpointing: Promise<void> | undefined;
  private lastCheckpointAt = 0;
  private failure: unknown;
  /** File bytes written so far (resumed ones included). */
  bytesDone = 0;
  /** File bytes a previous run's journal vouched for. */
  bytesResumed = 0;

  constructor(
    private readonly termEnds: readonly number[],
    private readonly size: number,
    private readonly sink: TermProgressSink,
  ) {
    this.done = termEnds.map(() => false);
    this.prefix = termEnds.map(() => 0);
    this.journaled = termEnds.map(() => 0);
    this.counted = termEnds.map(() => 0);
  }

  private bytesOf(index: number): ByteRange {
    return termBytes(this.termEnds, index, this.size);
  }

  isDone(index: number): boolean {
    return this.done[index] === true;
  }

  /** Bytes of the term already written from its first byte (0 for none). */
  prefixOf(index: number): number {
    return this.prefix[index] ?? 0;
  }

  /** Takes what a previous run journaled: whole terms are done, a term's covered first bytes its prefix. */
  resume(ranges: readonly ByteRange[]): void {
    this.termEnds.forEach((_end, index) => {
      const { start, end } = this.bytesOf(index);
      const covering = ranges.find((r) => r.start <= start && start < r.end);
      if (!covering) return;
      const have = Math.min(covering.end, end) - start;
      this.prefix[index] = have;
      this.journaled[index] = have;
      this.counted[index] = have;
      this.bytesResumed += have;
      this.bytesDone += have;
      if (have === end - start) this.done[index] = true;
    });
    this.advance();
  }

  /** The term has its first `bytes` bytes written. */
  wrote(index: number, bytes: number): void {
    if (this.done[index] || bytes <= (this.prefix[index] as number)) return;
    this.prefix[index] = bytes;
    this.grown.add(index);
    this.request();
  }

  /** The term is complete: its bytes await the next checkpoint, and the contiguous prefix may grow. */
  finished(index: number): void {
    if (this.done[index]) return;
    const { start, end } = this.bytesOf(index);
    this.done[index] = true;
    this.prefix[index] = end - start;
    this.grown.add(index);
    this.bytesDone += end - start - (this.counted[index] as number);
    this.counted[index] = end - start;
    this.advance();
  }

  private advance(): void {
    while (this.contiguousTerms < this.done.length && this.done[this.contiguousTerms]) this.contiguousTerms += 1;
    const contiguous = this.contiguousTerms > 0 ? Math.min(this.size, this.termEnds[this.contiguousTerms - 1] as number) : 0;
    this.sink.onProgress(this.bytesDone, contiguous);
  }

  /** Asks for a checkpoint now unless one runs or ran moments ago (a later chunk asks again). */
  private request(): void {
    if (this.checkpointing || performance.now() - this.lastCheckpointAt < CHECKPOINT_GAP_MS) return;
    this.checkpoint().catch((error: unknown) => (this.failure ??= error));
  }

  /** Syncs the file, then journals what grew before the sync; one checkpoint at a time. A failed background one is reported here. */
  async checkpoint(): Promise<void> {
    while (this.checkpointing) await this.checkpointing.catch(() => undefined);
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      throw failure;
    }
    const journal = this.sink.journal;
    if (this.grown.size === 0 || !journal) return;
    this.lastCheckpointAt = performance.now();
    const ranges: ByteRange[] = [];
    for (const index of this.grown) {
      const { start } = this.bytesOf(index);
      const from = this.journaled[index] as number;
      const to = this.prefix[index] as number;
      if (to > from) ranges.push({ start: start + from, end: start + to });
      this.journaled[index] = to;
    }
    this.grown.clear();
    if (ranges.length === 0) return;
    this.checkpointing = (async () => {
      try {
        await this.sink.datasync();
        await journal.record(mergeRanges(ranges));
      } catch (error) {
        throw fromSystemError(error, `journaling ${this.sink.path}`);
      }
    })().finally(() => (this.checkpointing = undefined));
    await this.checkpointing;
  }
}
