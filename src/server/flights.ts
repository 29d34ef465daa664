import type { RepoFile } from '../core/types.js';
import type { RepoRef } from './route.js';

/**
 * Single-flight upstream downloads: however many clients ask for the same missing blob, one
 * download runs, and every waiting client follows its progress. A flight is the shared state of
 * that one download: how much of the temp file is written without a gap, and whether the blob is
 * verified and stored (or failed, in which case nothing was stored).
 */

export interface FetchProgress {
  tempPath: string;
  /** Bytes from offset 0 written without a gap. */
  contiguousBytes: number;
  /** Bytes on disk (resumed ones included). */
  bytesDone: number;
  totalBytes: number;
  /** Every byte is written and matched the digest; storing the blob is what remains. */
  verified?: boolean;
}

export interface FetchRequest {
  repo: RepoRef;
  commit: string;
  file: RepoFile;
  /** Token to send upstream, if any. */
  token?: string;
  signal: AbortSignal;
  onProgress: (progress: FetchProgress) => void;
}

/**
 * Downloads one file of a commit into the cache: verified, committed as a blob and linked into the
 * snapshot before it resolves. On failure nothing is stored (partial data and journal may stay
 * for resuming, as the engine keeps them).
 */
export type FetchFile = (request: FetchRequest) => Promise<void>;

export type FlightState = 'running' | 'verified' | 'failed';

export class Flight {
  tempPath: string | undefined;
  contiguous = 0;
  bytesDone = 0;
  /** The bytes matched the digest (the blob may still be being stored): they may all go out. */
  bytesVerified = false;
  state: FlightState = 'running';
  error: unknown;
  /** Clients currently following this flight. */
  waiting = 0;
  readonly done: Promise<void>;
  private readonly listeners = new Set<() => void>();
  private settle!: { resolve: () => void; reject: (error: unknown) => void };

  constructor(
    readonly repo: RepoRef,
    readonly file: RepoFile,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Waiters attach their own handlers; an unobserved failure is not an unhandled rejection.
    this.done.catch(() => {});
  }

  get total(): number {
    return this.file.size;
  }

  /** Calls `listener` on every change until the returned function is called. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves on the next change (progress, verification or failure). */
  changed(): Promise<void> {
    return new Promise((resolve) => {
      const off = this.subscribe(() => {
        off();
        resolve();
      });
    });
  }

  progress(progress: FetchProgress): void {
    this.tempPath = progress.tempPath;
    this.contiguous = progress.contiguousBytes;
    this.bytesDone = progress.bytesDone;
    if (progress.verified && progress.contiguousBytes === this.total) this.bytesVerified = true;
    this.emit();
  }

  finish(error?: unknown): void {
    if (this.state !== 'running') return;
    if (error === undefined) {
      this.state = 'verified';
      this.contiguous = this.total;
      this.bytesDone = this.total;
      this.settle.resolve();
    } else {
      this.state = 'failed';
      this.error = error;
      this.settle.reject(error);
    }
    this.emit();
  }

  private emit(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

export interface FlightsOptions {
  fetchFile: FetchFile;
  /** Bytes fetched from upstream (deltas), for metrics. */
  onUpstreamBytes?: (n: number) => void;
  onStart?: () => void;
  onEnd?: () => void;
}

/** The flights in progress, one per blob (repo + digest). */
export class Flights {
  private readonly flights = new Map<string, Flight>();
  private readonly controller = new AbortController();

  constructor(private readonly options: FlightsOptions) {}

  static key(repo: RepoRef, file: RepoFile): string {
    return `${repo.repoType}:${repo.repoId}:${file.digest.hex}`;
  }

  /** The flight for this blob: the running one, or a new download. */
  start(repo: RepoRef, commit: string, file: RepoFile, token: string | undefined): Flight {
    const key = Flights.key(repo, file);
    const existing = this.flights.get(key);
    if (existing) return existing;
    const flight = new Flight(repo, file);
    this.flights.set(key, flight);
    this.options.onStart?.();
    let counted = -1;
    const run = this.options.fetchFile({
      repo,
      commit,
      file,
      ...(token !== undefined && { token }),
      signal: this.controller.signal,
      onProgress: (progress) => {
        // The first event's bytes may be resumed from an earlier run; only growth after it came from upstream.
        if (counted >= 0 && progress.bytesDone > counted) this.options.onUpstreamBytes?.(progress.bytesDone - counted);
        counted = Math.max(counted, progress.bytesDone);
        flight.progress(progress);
      },
    });
    run.then(
      () => flight.finish(),
      (error: unknown) => flight.finish(error ?? new Error('download failed')),
    ).finally(() => {
      this.flights.delete(key);
      this.options.onEnd?.();
    });
    return flight;
  }

  /**
   * Has `fetchFile` link the file at `commit` when its blob is already stored (earlier, or by a
   * flight for another path or commit of the same bytes): it finds the blob and only links it. Not
   * in the table: there is no download to follow.
   */
  linkStored(repo: RepoRef, commit: string, file: RepoFile, token: string | undefined): Promise<void> {
    return this.options.fetchFile({ repo, commit, file, ...(token !== undefined && { token }), signal: this.controller.signal, onProgress: () => {} });
  }

  list(): Flight[] {
    return [...this.flights.values()];
  }

  get size(): number {
    return this.flights.size;
  }

  /** Stops every download (shutdown); the engine keeps partial data and journals for the next start. */
  abortAll(): void {
    this.controller.abort();
  }

  /** Resolves when every flight has ended. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.list().map((f) => f.done));
  }
}
