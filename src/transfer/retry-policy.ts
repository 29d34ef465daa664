import type { ErrorCode } from '../errors.js';

/**
 * When to retry a failed request and how long to wait: a pure function of the attempt number, the
 * error, the server's Retry-After and a random number, so every rule below is unit-testable.
 *
 * | failure                                   | retried | wait                                   |
 * |-------------------------------------------|---------|----------------------------------------|
 * | 429 Too Many Requests                     | yes     | Retry-After if given, else backoff     |
 * | 5xx, 408                                  | yes     | Retry-After if given, else backoff     |
 * | connection reset / refused / timeout      | yes     | backoff                                |
 * | stall (no byte for stallTimeoutMs)        | yes     | backoff                                |
 * | wrong Content-Range, short body           | yes     | backoff                                |
 * | 404/410, 401, 403, other 4xx              | no      |                                        |
 * | no space, file system, integrity, abort   | no      |                                        |
 * | redirect refused, Content-Encoding refused| no      |                                        |
 * | other malformed responses                 | no      |                                        |
 */

export interface RetryInput {
  /** 1 for the first failure. */
  attempt: number;
  maxAttempts: number;
  code: ErrorCode;
  status?: number;
  /** Milliseconds the server asked us to wait, already parsed (see `parseRetryAfter`). */
  retryAfterMs?: number;
  /** Uniform in [0, 1). */
  random: number;
}

export type RetryDecision = { retry: false } | { retry: true; delayMs: number };

export const BACKOFF = { baseMs: 250, capMs: 15_000, retryAfterCapMs: 5 * 60_000 } as const;

const RETRIED_CODES: ReadonlySet<ErrorCode> = new Set(['ERR_NETWORK', 'ERR_STALL', 'ERR_BAD_RANGE']);

export function isRetryable(code: ErrorCode, status?: number): boolean {
  if (code === 'ERR_HTTP') return status === undefined || status === 429 || status === 408 || status >= 500;
  return RETRIED_CODES.has(code);
}

export function retryDecision(input: RetryInput): RetryDecision {
  if (input.attempt >= input.maxAttempts || !isRetryable(input.code, input.status)) return { retry: false };
  if (input.retryAfterMs !== undefined && input.retryAfterMs >= 0) {
    if (input.retryAfterMs > BACKOFF.retryAfterCapMs) return { retry: false };
    return { retry: true, delayMs: Math.ceil(input.retryAfterMs) };
  }
  // Exponential backoff with "equal jitter": half fixed, half random, so retries spread out but never hammer.
  const ceiling = Math.min(BACKOFF.capMs, BACKOFF.baseMs * 2 ** (input.attempt - 1));
  return { retry: true, delayMs: Math.round(ceiling / 2 + (ceiling / 2) * input.random) };
}

/** Parses Retry-After (delta seconds or an HTTP date) into milliseconds from `now`; undefined when absent or unparsable. */
export function parseRetryAfter(header: string | undefined, now: number): number | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
