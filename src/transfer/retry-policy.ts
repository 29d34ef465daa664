import type { ErrorCode, ModelfetchError } from '../core/errors.js';
import type { RetryEvent } from './types.js';

/**
 * When to retry a failed request and how long to wait: a pure function of the attempt number, the
 * error, the server's Retry-After and a random number, so every rule below is unit-testable.
 *
 * | failure                                   | retried | wait                                   |
 * |-------------------------------------------|---------|----------------------------------------|
 * | 429 Too Many Requests                     | yes     | Retry-After if given, else backoff     |
 * | 5xx, 408                                  | yes     | Retry-After if given, else backoff     |
 * | connection reset / refused / timeout      | yes     | backoff                                |
 * | refused / name not found, first contact   | yes, UNREACHABLE_MAX_ATTEMPTS in all | backoff   |
 * | stall (no byte for stallTimeoutMs)        | yes     | backoff                                |
 * | wrong Content-Range, short body           | yes     | backoff                                |
 * | 404/410, 401, 403, other 4xx              | no      |                                        |
 * | proxy unreachable or refusing the tunnel  | no      | (still "upstream down": isUpstreamDown) |
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
  /** The host has not answered yet and refuses connections (or its name does not resolve): see UNREACHABLE_MAX_ATTEMPTS. */
  unreachable?: boolean;
}

export type RetryDecision = { retry: false } | { retry: true; delayMs: number };

export const BACKOFF = { baseMs: 250, capMs: 15_000, retryAfterCapMs: 5 * 60_000 } as const;

const RETRIED_CODES: ReadonlySet<ErrorCode> = new Set(['ERR_NETWORK', 'ERR_STALL', 'ERR_BAD_RANGE']);

export function isRetryable(code: ErrorCode, status?: number): boolean {
  if (code === 'ERR_HTTP') return status === undefined || status === 429 || status === 408 || status >= 500;
  return RETRIED_CODES.has(code);
}

/**
 * Whether a failure means the server could not be reached or could not answer now, as opposed to an
 * answer about what was asked (404, 401, gated): what is retried, and a proxy that cannot get
 * through. The mirror then answers from its cache.
 */
export function isUpstreamDown(code: ErrorCode, status?: number): boolean {
  return isRetryable(code, status) || code === 'ERR_PROXY';
}

/**
 * Attempts at a host that has never answered and refuses connections or does not resolve: nothing
 * listens there, and a busy server answers rather than refusing. The same budget as every source API
 * call (`source/json-client.ts`), so `get` and `pull` give up on a dead address alike, in under a second.
 */
export const UNREACHABLE_MAX_ATTEMPTS = 3;

const UNREACHABLE_CAUSES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

const BROKEN_CONNECTION_CAUSES: Readonly<Record<string, string>> = {
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
};

function causeCode(error: unknown, table: Readonly<Record<string, string>>): string | undefined {
  for (let at = error, depth = 0; at instanceof Error && depth < 6; at = at.cause, depth += 1) {
    const reason = table[(at as NodeJS.ErrnoException).code ?? ''];
    if (reason) return reason;
  }
  return undefined;
}

/** Why nobody could be reached (in words), when an error or one of its causes says so; undefined otherwise. */
export function unreachableReason(error: unknown): string | undefined {
  return causeCode(error, UNREACHABLE_CAUSES);
}

/** A failure in a few words, for a retry notice: `connection refused`, `HTTP 503`, `connection reset` … */
export function failureInWords(error: Error & { code?: string; status?: number }): string {
  const network = unreachableReason(error) ?? causeCode(error, BROKEN_CONNECTION_CAUSES);
  if (network) return network;
  if (error.status !== undefined) return `HTTP ${error.status}`;
  if (error.code === 'ERR_STALL') return 'no data for too long';
  return error.message.length > 80 ? `${error.message.slice(0, 77)}…` : error.message;
}

/** How many attempts a request gets in all. */
export function attemptBudget(input: Pick<RetryInput, 'maxAttempts' | 'unreachable'>): number {
  return input.unreachable ? Math.min(input.maxAttempts, UNREACHABLE_MAX_ATTEMPTS) : input.maxAttempts;
}

export function retryDecision(input: RetryInput): RetryDecision {
  if (input.attempt >= attemptBudget(input) || !isRetryable(input.code, input.status)) return { retry: false };
  if (input.retryAfterMs !== undefined && input.retryAfterMs >= 0) {
    if (input.retryAfterMs > BACKOFF.retryAfterCapMs) return { retry: false };
    return { retry: true, delayMs: Math.ceil(input.retryAfterMs) };
  }
  // Exponential backoff with "equal jitter": half fixed, half random, so retries spread out but never hammer.
  const ceiling = Math.min(BACKOFF.capMs, BACKOFF.baseMs * 2 ** (input.attempt - 1));
  return { retry: true, delayMs: Math.round(ceiling / 2 + (ceiling / 2) * input.random) };
}

/** Where a failed request stands, besides its error: what `decideRetry` weighs, and who hears of a retry. */
export interface RetryContext {
  /** 1 for the first failure. */
  attempt: number;
  maxAttempts: number;
  /** Uniform in [0, 1). */
  random: number;
  unreachable?: boolean;
  /** The URL asked for: named in the notice when the error does not name the one that answered. */
  url: string;
  /** Told before the wait, so a long Retry-After is never a silent pause. */
  onRetry?: ((event: RetryEvent) => void) | undefined;
}

/**
 * The policy's decision for `error`, and the retry notice when it is to retry: the one place a
 * failure is turned into both (downloads, range reads and source API calls alike).
 */
export function decideRetry(error: ModelfetchError, context: RetryContext): RetryDecision {
  const { status, retryAfterMs } = error;
  const input: RetryInput = {
    attempt: context.attempt,
    maxAttempts: context.maxAttempts,
    code: error.code,
    ...(status !== undefined && { status }),
    ...(retryAfterMs !== undefined && { retryAfterMs }),
    random: context.random,
    ...(context.unreachable && { unreachable: true }),
  };
  const decision = retryDecision(input);
  // The URL that answered (after redirects) when the error knows it: that is the host failing.
  if (decision.retry) context.onRetry?.({ url: error.url ?? context.url, reason: failureInWords(error), retry: context.attempt, maxRetries: attemptBudget(input) - 1, delayMs: decision.delayMs });
  return decision;
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
