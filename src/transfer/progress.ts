import type { ProgressEvent } from './types.js';

/** Aggregates per-file progress into throttled batch events (~10 a second) with a windowed speed. */

const EMIT_EVERY_MS = 100;
const SPEED_WINDOW_MS = 3000;

interface FileState {
  tempPath: string;
  bytesDone: number;
  contiguousBytes: number;
  totalBytes: number;
  phase: ProgressEvent['phase'];
}

export class BatchProgress {
  private readonly files: FileState[];
  private connections = 0;
  private peak = 0;
  /** Most connections open at once since the last event: small files open and close theirs between two events, and data did flow. */
  private windowPeak = 0;
  private received = 0;
  private readonly samples: Array<{ at: number; received: number }> = [];
  private lastEmit = -Infinity;
  /** A held-back update is still sent when no further one comes (a paused download shows where it paused). */
  private trailing: { timer: ReturnType<typeof setTimeout>; job: number } | undefined;

  constructor(
    jobs: ReadonlyArray<{ tempPath: string; size?: number }>,
    private readonly onProgress: ((event: ProgressEvent) => void) | undefined,
    private readonly now: () => number = () => performance.now(),
  ) {
    // Known sizes count towards the batch total before their file starts.
    this.files = jobs.map(({ tempPath, size }) => ({ tempPath, bytesDone: 0, contiguousBytes: 0, totalBytes: size ?? 0, phase: 'probe' }));
  }

  get peakConnections(): number {
    return this.peak;
  }

  connection(delta: 1 | -1): void {
    this.connections += delta;
    this.peak = Math.max(this.peak, this.connections);
    this.windowPeak = Math.max(this.windowPeak, this.connections);
  }

  addReceived(n: number): void {
    this.received += n;
  }

  update(job: number, patch: Partial<Omit<FileState, 'tempPath'>>, force = false): void {
    const file = this.files[job];
    if (!file) return;
    const phaseChanged = patch.phase !== undefined && patch.phase !== file.phase;
    Object.assign(file, patch);
    if (!this.onProgress) return;
    const at = this.now();
    if (!force && !phaseChanged && at - this.lastEmit < EMIT_EVERY_MS) {
      if (this.trailing) this.trailing.job = job;
      else {
        const timer = setTimeout(() => this.emitTrailing(), EMIT_EVERY_MS - (at - this.lastEmit));
        timer.unref();
        this.trailing = { timer, job };
      }
      return;
    }
    this.stopTrailing();
    this.emit(job, file, at);
  }

  /** No more events: the batch has settled. */
  close(): void {
    this.stopTrailing();
  }

  private emitTrailing(): void {
    const trailing = this.trailing;
    this.trailing = undefined;
    const file = trailing && this.files[trailing.job];
    if (trailing && file) this.emit(trailing.job, file, this.now());
  }

  private stopTrailing(): void {
    if (this.trailing) clearTimeout(this.trailing.timer);
    this.trailing = undefined;
  }

  private emit(job: number, file: FileState, at: number): void {
    this.lastEmit = at;
    this.onProgress?.(this.event(job, file, at));
  }

  private event(job: number, file: FileState, at: number): ProgressEvent {
    this.samples.push({ at, received: this.received });
    while (this.samples.length > 2 && (this.samples[0]?.at ?? at) < at - SPEED_WINDOW_MS) this.samples.shift();
    const first = this.samples[0] ?? { at, received: this.received };
    const span = (at - first.at) / 1000;
    const speed = span > 0 ? (this.received - first.received) / span : 0;
    let batchBytesDone = 0;
    let batchTotalBytes = 0;
    for (const f of this.files) {
      batchBytesDone += f.bytesDone;
      batchTotalBytes += f.totalBytes;
    }
    const left = batchTotalBytes - batchBytesDone;
    const connections = Math.max(this.windowPeak, this.connections);
    this.windowPeak = this.connections;
    return {
      job,
      tempPath: file.tempPath,
      bytesDone: file.bytesDone,
      contiguousBytes: file.contiguousBytes,
      totalBytes: file.totalBytes,
      batchBytesDone,
      batchTotalBytes,
      speed,
      ...(speed > 0 && left >= 0 && { eta: left / speed }),
      connections,
      phase: file.phase,
    };
  }
}
