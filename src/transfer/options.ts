import { Agent, type Dispatcher } from 'undici';
import type { Clock, ProgressEvent, TransferOptions } from './types.js';
import { createConnectionBudget, type ConnectionBudget } from './budget.js';
import { FastHttpPool } from './fast-http.js';

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
  dispatcher: Dispatcher;
  clock: Clock;
  signal: AbortSignal | undefined;
  onProgress: ((event: ProgressEvent) => void) | undefined;
  budget: ConnectionBudget;
  random: () => number;
  /** The plain-http fast path for segment bodies; undefined when a caller's dispatcher must carry everything. */
  fastHttp: FastHttpPool | undefined;
}

/** Engine options plus what only the engine's own callers (the server, tests) pass. */
export interface EngineOptions extends TransferOptions {
  /** A per-host connection budget shared with other concurrent calls (see `createConnectionBudget`). */
  budget?: ConnectionBudget;
  /** Source of jitter for retry delays; injectable for tests. */
  random?: () => number;
  /** Use the built-in fast client for plain-http segment requests (default: yes, unless a dispatcher is given). */
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

let sharedAgent: Agent | undefined;
let sharedFastPool: FastHttpPool | undefined;

/** One keep-alive agent per process; the connection budget, not the agent, limits parallelism. */
function defaultDispatcher(): Dispatcher {
  sharedAgent ??= new Agent({ keepAliveTimeout: 10_000, connect: { timeout: 30_000 }, headersTimeout: 60_000, bodyTimeout: 0 });
  return sharedAgent;
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 1) throw new RangeError(`${name} must be a positive number, got ${value}`);
  return Math.floor(value);
}

export function resolveOptions(options: EngineOptions = {}): ResolvedOptions {
  const connections = positiveInt(options.connections ?? options.budget?.perHost, DEFAULTS.connections, 'connections');
  return {
    connections,
    segmentThreshold: positiveInt(options.segmentThreshold, DEFAULTS.segmentThreshold, 'segmentThreshold'),
    minSegmentSize: positiveInt(options.minSegmentSize, DEFAULTS.minSegmentSize, 'minSegmentSize'),
    stallTimeoutMs: positiveInt(options.stallTimeoutMs, DEFAULTS.stallTimeoutMs, 'stallTimeoutMs'),
    maxAttempts: positiveInt(options.maxAttempts, DEFAULTS.maxAttempts, 'maxAttempts'),
    dispatcher: options.dispatcher ?? defaultDispatcher(),
    clock: options.clock ?? systemClock,
    signal: options.signal,
    onProgress: options.onProgress,
    budget: options.budget ?? createConnectionBudget(connections),
    random: options.random ?? Math.random,
    fastHttp: (options.fastHttp ?? options.dispatcher === undefined) ? (sharedFastPool ??= new FastHttpPool()) : undefined,
  };
}
