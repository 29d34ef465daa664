import type { Clock, ProgressEvent, RetryEvent, TransferOptions } from './types.js';
import { createConnectionBudget, type ConnectionBudget } from './budget.js';
import { FastHttpPool } from './fast-http.js';
import type { Transport } from './http.js';
import { rateLimitsFor } from './rate-limit.js';

/** Every engine default, written down once. */
export const DEFAULTS = {
  connections: 16,
  segmentThreshold: 16 * 1024 * 1024,
  minSegmentSize: 1024 * 1024,
  stallTimeoutMs: 30_000,
  maxAttempts: 8,
} as const;

/** Options after defaults are filled in; the only shape the engine's inner layers see. */
export interface ResolvedOptions {
  connections: number;
  segmentThreshold: number;
  minSegmentSize: number;
  stallTimeoutMs: number;
  maxAttempts: number;
  /** How requests go out: the caller's dispatcher, or the fast path for plain http and undici (loaded on first use) for the rest. */
  transport: Transport;
  clock: Clock;
  signal: AbortSignal | undefined;
  onProgress: ((event: ProgressEvent) => void) | undefined;
  onRetry: ((event: RetryEvent) => void) | undefined;
  budget: ConnectionBudget;
  random: () => number;
}

/** Engine options plus what only the engine's own callers (the server, tests) pass. */
export interface EngineOptions extends TransferOptions {
  /** A per-host connection budget shared with other concurrent calls (see `createConnectionBudget`). */
  budget?: ConnectionBudget;
  /** Source of jitter for retry delays; injectable for tests. */
  random?: () => number;
  /** Use the built-in fast client for plain-http requests (default: yes, unless a dispatcher is given). */
  fastHttp?: boolean;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

let sharedFastPool: FastHttpPool | undefined;

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 1) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return Math.floor(value);
}

export function resolveOptions(options: EngineOptions = {}): ResolvedOptions {
  const connections = positiveInt(options.connections ?? options.budget?.perHost, DEFAULTS.connections, 'connections');
  const clock = options.clock ?? systemClock;
  return {
    connections,
    segmentThreshold: positiveInt(options.segmentThreshold, DEFAULTS.segmentThreshold, 'segmentThreshold'),
    minSegmentSize: positiveInt(options.minSegmentSize, DEFAULTS.minSegmentSize, 'minSegmentSize'),
    stallTimeoutMs: positiveInt(options.stallTimeoutMs, DEFAULTS.stallTimeoutMs, 'stallTimeoutMs'),
    maxAttempts: positiveInt(options.maxAttempts, DEFAULTS.maxAttempts, 'maxAttempts'),
    transport: {
      dispatcher: options.dispatcher,
      fast: (options.fastHttp ?? options.dispatcher === undefined) ? (sharedFastPool ??= new FastHttpPool()) : undefined,
      pacing: { limits: rateLimitsFor(clock), onWait: options.onRateLimitWait },
    },
    clock,
    signal: options.signal,
    onProgress: options.onProgress,
    onRetry: options.onRetry,
    budget: options.budget ?? createConnectionBudget(connections),
    random: options.random ?? Math.random,
  };
}
