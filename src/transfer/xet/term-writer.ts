import type { FileHandle } from 'node:fs/promises';
import { ModelfetchError } from '../../core/errors.js';
import { SegmentWriter } from '../segment-writer.js';
import type { TermSlot } from './term-plan.js';
import type { TermProgress } from './term-progress.js';

/**
 * Writes the decoded chunks of one xorb range (or of one term read from the chunk cache) into every
 * term that uses them, each at its file offset. Chunks average 64 KiB; each term's bytes go through a
 * SegmentWriter, so the file sees ~1 MiB writes, not one write per chunk (a 1 GiB file: ~1,000
 * writes, not ~16,000, each of which wakes a thread-pool thread). A term's progress is told only
 * once its bytes are in the file, so a checkpoint never journals bytes that are still buffered.
 */
export class TermWriter {
  /** Decoded bytes each term has been given (the first term may begin before byte 0). */
  private readonly given: number[];
  private readonly writers: Array<SegmentWriter | undefined>;
  private closed = false;

  constructor(
    private readonly terms: readonly TermSlot[],
    private readonly file: { handle: FileHandle; size: number },
    private readonly progress: TermProgress,
    /** Where the chunks come from, for messages. */
    private readonly source: string,
  ) {
    this.given = terms.map(() => 0);
    this.writers = terms.map(() => undefined);
  }

  /** Writes chunk `chunkIndex` into each term that uses it; false when none does. */
  async add(chunkIndex: number, data: Buffer): Promise<boolean> {
    let used = false;
    for (let t = 0; t < this.terms.length; t++) {
      const term = this.terms[t] as TermSlot;
      if (chunkIndex < term.chunkStart || chunkIndex >= term.chunkEnd) continue;
      used = true;
      const done = this.given[t] as number;
      if (done + data.length > term.length) {
        throw new ModelfetchError('ERR_BAD_RESPONSE', `Term ${term.index} of the Xet reconstruction decodes to more than its ${term.length} bytes.`, { url: this.source });
      }
      // The first term may start before byte 0 (offset into the first range); only the file's bytes are written.
      const start = term.fileOffset + done;
      const skip = Math.min(Math.max(0, -start), data.length);
      this.given[t] = done + data.length;
      if (skip < data.length) await this.writerFor(t, start + skip).push(skip > 0 ? data.subarray(skip) : data);
      if (chunkIndex === term.chunkEnd - 1) {
        if (this.given[t] !== term.length) throw new ModelfetchError('ERR_BAD_RESPONSE', `Term ${term.index} of the Xet reconstruction decodes to ${this.given[t]} bytes, not ${term.length}.`, { url: this.source });
        await this.release(t);
        this.progress.finished(term.index);
      }
    }
    return used;
  }

  /**
   * Writes what is still buffered (after a failure too: bytes received count for the next run) and
   * gives the buffers back. A write error here is the caller's failure already, or a full disk the
   * next write reports.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (let t = 0; t < this.terms.length; t++) await this.release(t).catch(() => undefined);
  }

  private writerFor(t: number, position: number): SegmentWriter {
    const existing = this.writers[t];
    if (existing) return existing;
    const term = this.terms[t] as TermSlot;
    const termStart = Math.max(0, term.fileOffset);
    const writer = new SegmentWriter(this.file.handle, position, (end) => this.progress.wrote(term.index, Math.min(this.file.size, end) - termStart));
    this.writers[t] = writer;
    return writer;
  }

  private async release(t: number): Promise<void> {
    const writer = this.writers[t];
    if (!writer) return;
    this.writers[t] = undefined;
    try {
      await writer.flush();
    } finally {
      writer.dispose();
    }
  }
}
