import type { FileHandle } from 'node:fs/promises';
import { fromSystemError } from '../core/errors.js';

/**
 * Coalesces a connection's network chunks (often 16–64 KiB) into ~1 MiB positional writes, so a
 * 2 GiB file costs ~2,000 write calls, not 40,000. At most two buffers per live connection (one
 * filling, one being written) bound memory; the read loop awaits each full write, so
 * back-pressure reaches the socket. A checkpoint may flush a partly filled buffer at any time.
 */

export const WRITE_BUFFER_SIZE = 1024 * 1024;
const POOL_LIMIT = 16;
/** Chunks at least this large are written where they are instead of being copied. */
const DIRECT_WRITE_MIN = 128 * 1024;
const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(WRITE_BUFFER_SIZE);
}

function giveBack(buffer: Buffer): void {
  if (pool.length < POOL_LIMIT) pool.push(buffer);
}

export class SegmentWriter {
  private buffer: Buffer | undefined;
  private fill = 0;
  /** File offset of buffer[0]. */
  private at: number;
  /** Writes complete in order; this settles when the last queued one has. */
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: FileHandle,
    start: number,
    /** Called after each completed write with the new end of the written bytes. */
    private readonly onWritten: (end: number) => void,
  ) {
    this.at = start;
  }

  /** Bytes received but not yet handed to the file system. */
  get buffered(): number {
    return this.fill;
  }

  /**
   * Appends bytes that belong right after everything pushed so far. Large chunks (the fast path's
   * reads) are written straight from where they are, without a copy; the caller keeps them
   * untouched until this resolves.
   */
  async push(chunk: Uint8Array): Promise<void> {
    if (this.fill === 0 && chunk.length >= DIRECT_WRITE_MIN) {
      this.queueWrite(chunk, chunk.length, undefined);
      await this.tail;
      return;
    }
    let offset = 0;
    while (offset < chunk.length) {
      const buffer = this.buffer ?? (this.buffer = takeBuffer());
      const n = Math.min(buffer.length - this.fill, chunk.length - offset);
      buffer.set(chunk.subarray(offset, offset + n), this.fill);
      this.fill += n;
      offset += n;
      if (this.fill === buffer.length) await this.flush();
    }
  }

  /** Writes what is buffered; resolves when every write queued so far has completed. */
  flush(): Promise<void> {
    const buffer = this.buffer;
    if (buffer && this.fill > 0) {
      const length = this.fill;
      this.buffer = undefined;
      this.fill = 0;
      this.queueWrite(buffer, length, buffer);
    }
    return this.tail;
  }

  /** Queues a positional write of data[0, length) at the current offset; `pooled` goes back to the pool after. */
  private queueWrite(data: Uint8Array, length: number, pooled: Buffer | undefined): void {
    const at = this.at;
    this.at += length;
    this.tail = this.tail.then(async () => {
      try {
        let done = 0;
        while (done < length) {
          const { bytesWritten } = await this.file.write(data, done, length - done, at + done);
          done += bytesWritten;
        }
      } catch (error) {
        throw fromSystemError(error, 'writing the download');
      } finally {
        if (pooled) giveBack(pooled);
      }
      this.onWritten(at + length);
    });
  }

  /** Returns the buffer to the pool; call after the final flush. */
  dispose(): void {
    if (this.buffer) giveBack(this.buffer);
    this.buffer = undefined;
    this.fill = 0;
  }
}
