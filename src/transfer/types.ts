import type { Dispatcher } from 'undici';
import type { FileDigest } from '../core/types.js';
import type { ChunkCache } from '../cache/xet-chunk-cache.js';

/** The contract between the engine and everything that moves bytes through it (get, pull, serve). */

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface TransferJob {
  /** Mirrors of the same bytes; all are used together. */
  urls: string[];
  /** Expected size when the caller knows it (hub listings do); otherwise learned from the probe. */
  size?: number;
  /** Expected digest; checked while streaming. Without it the SHA-256 is still computed and reported. */
  digest?: FileDigest;
  /** Where the partial file lives. The engine writes it and its journal (`tempPath + '.journal'`). */
  tempPath: string;
  /** Identifies the source for the resume journal (e.g. `hf:org/name@commit:path`); a change restarts. */
  identity: string;
  /** Extra request headers. Credential headers are sent only to the origin of `urls[i]`, never after a cross-origin redirect. */
  headers?: Record<string, string>;
  /** Called once the size is known (from the caller or the probe), before the temp file is written: may refuse, e.g. when the disk is too small. */
  beforeWrite?: (size: number | undefined) => Promise<void>;
  /**
   * Called with each mirror's probe answer, before anything is written: throws (a ModelfetchError,
   * not retried) to refuse what the server sent, e.g. a web page where a file was asked for. A file
   * of known size below the segment threshold is not probed, so it is not called for one.
   */
  acceptAnswer?: (answer: { url: string; answeredUrl: string; contentType: string | undefined }) => void;
  /** Called once when a signed URL has expired (403 after it worked): returns fresh URLs. */
  reresolve?: () => Promise<string[]>;
  /**
   * The file may be stored in Xet (a Hub resolve URL). With the engine's `xet` option on, a known
   * `fileHash` and `tokenUrl` (tree listing) skip the look; otherwise `urls[0]` is asked without
   * following its redirect, and `X-Xet-Hash` + `rel="xet-auth"` in the answer choose Xet.
   * `storedAt` is where the file will be committed: the chunk cache indexes its chunks there.
   */
  xet?: { fileHash?: string; tokenUrl?: string; storedAt?: string };
}

export interface TransferResult {
  tempPath: string;
  size: number;
  /** Hex digest of the bytes, in the job's algorithm (sha256 when none was given). */
  digest: FileDigest;
  /** Bytes received over the network in this run (resumed bytes not counted). */
  bytesFetched: number;
  /** Bytes taken from a previous run's journal. */
  bytesResumed: number;
  etag?: string;
  /** Which path delivered the bytes: Xet, or plain HTTP (also after a Xet fallback). */
  source?: 'xet' | 'plain';
  /** File bytes that needed no network: Xet chunks found in the chunk cache or fetched once for several places. */
  bytesDeduplicated?: number;
}

export interface ProgressEvent {
  /** Index of the job in the batch, and its temp path. */
  job: number;
  tempPath: string;
  /** Bytes on disk for this job, resumed ones included. */
  bytesDone: number;
  /** Bytes from offset 0 that are written without a gap (and hashed); a server may stream this prefix. */
  contiguousBytes: number;
  totalBytes: number;
  /** Totals over the whole batch. */
  batchBytesDone: number;
  batchTotalBytes: number;
  /** Bytes per second over a short window, over the whole batch. */
  speed: number;
  /** Seconds remaining for the batch, or undefined when unknown. */
  eta?: number;
  /** Live connections over the whole batch. */
  connections: number;
  /** 'sync': every byte is in and the digest matched; only making the file durable remains. */
  phase: 'probe' | 'download' | 'verify' | 'sync' | 'done';
}

export interface TransferOptions {
  /** Connection budget per host, shared by every file in flight. Default 16. */
  connections?: number;
  /** Files below this size use one connection. Default 16 MiB. */
  segmentThreshold?: number;
  /** Segments are never split below this size. Default 1 MiB. */
  minSegmentSize?: number;
  /** A segment with no byte for this long is aborted and retried. Default 30 s. */
  stallTimeoutMs?: number;
  /** Attempts per segment before the file fails. Default 8. */
  maxAttempts?: number;
  dispatcher?: Dispatcher;
  clock?: Clock;
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Called before each wait to retry a failed request, so a user sees why nothing moves. */
  onRetry?: (event: RetryEvent) => void;
  /** Called when a request waits for its rate-limit bucket's window to reset (once per wait). */
  onRateLimitWait?: (wait: RateLimitWait) => void;
  /** Download jobs marked `xet` through Xet (absent: plain HTTP only). */
  xet?: XetTransferOptions;
}

export interface RetryEvent {
  url: string;
  /** What failed, in words (`connection refused`, `HTTP 503`, `no data for 30 s` …). */
  reason: string;
  /** The retry about to be made (1 for the first) and how many the budget allows. */
  retry: number;
  maxRetries: number;
  delayMs: number;
}

/** A request held until its rate-limit bucket's window resets (src/transfer/rate-limit.ts). */
export interface RateLimitWait {
  /** The origin whose bucket is spent (`https://huggingface.co`). */
  origin: string;
  /** The bucket's name as the server gave it (`api`, `resolvers`). */
  bucket: string;
  delayMs: number;
}

export interface XetTransferOptions {
  /** The dedup chunk cache (absent: none); it keeps to its own size limit. */
  chunkCache?: ChunkCache;
  /** Told one line when a Xet download failed and the plain path takes over (default: stderr). */
  onFallback?: (line: string) => void;
}
