import { describe, expect, it } from 'vitest';
import { ModelfetchError } from '../core/errors.js';
import type { RetryEvent } from './types.js';
import { attemptBudget, BACKOFF, decideRetry, failureInWords, isRetryable, isUpstreamDown, parseRetryAfter, retryDecision, UNREACHABLE_MAX_ATTEMPTS, unreachableReason } from './retry-policy.js';

describe('retryDecision', () => {
  const base = { attempt: 1, maxAttempts: 8, random: 0.5 } as const;

  it('retries 429, 5xx, resets, stalls and bad ranges', () => {
    for (const input of [
      { code: 'ERR_HTTP', status: 429 },
      { code: 'ERR_HTTP', status: 503 },
      { code: 'ERR_HTTP', status: 500 },
      { code: 'ERR_NETWORK' },
      { code: 'ERR_STALL' },
      { code: 'ERR_BAD_RANGE' },
    ] as const) {
      expect(retryDecision({ ...base, ...input }).retry).toBe(true);
    }
  });

  it('never retries 404, auth, gated, no space, integrity, redirects or bad encodings', () => {
    for (const code of ['ERR_NOT_FOUND', 'ERR_AUTH', 'ERR_GATED', 'ERR_NO_SPACE', 'ERR_INTEGRITY', 'ERR_REDIRECT', 'ERR_BAD_RESPONSE', 'ERR_ABORTED', 'ERR_IO'] as const) {
      expect(retryDecision({ ...base, code })).toEqual({ retry: false });
    }
    expect(retryDecision({ ...base, code: 'ERR_HTTP', status: 400 })).toEqual({ retry: false });
  });

  it('stops after maxAttempts', () => {
    expect(retryDecision({ ...base, attempt: 8, code: 'ERR_NETWORK' })).toEqual({ retry: false });
  });

  it('backs off exponentially with jitter, capped', () => {
    const delay = (attempt: number, random: number): number => {
      const d = retryDecision({ attempt, maxAttempts: 100, code: 'ERR_NETWORK', random });
      return d.retry ? d.delayMs : -1;
    };
    expect(delay(1, 0)).toBe(BACKOFF.baseMs / 2);
    expect(delay(1, 1)).toBe(BACKOFF.baseMs);
    expect(delay(3, 0)).toBe(BACKOFF.baseMs * 2);
    expect(delay(50, 1)).toBe(BACKOFF.capMs);
  });

  it('honours Retry-After, and gives up when it is absurdly long', () => {
    expect(retryDecision({ ...base, code: 'ERR_HTTP', status: 429, retryAfterMs: 7000 })).toEqual({ retry: true, delayMs: 7000 });
    expect(retryDecision({ ...base, code: 'ERR_HTTP', status: 429, retryAfterMs: 24 * 3600_000 })).toEqual({ retry: false });
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:10 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('the unreachable-host budget', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED', syscall: 'connect' });

  it('gives a host that refuses connections UNREACHABLE_MAX_ATTEMPTS attempts, never more than maxAttempts', () => {
    const input = { maxAttempts: 8, code: 'ERR_NETWORK', random: 0.5, unreachable: true } as const;
    expect(attemptBudget(input)).toBe(UNREACHABLE_MAX_ATTEMPTS);
    expect(retryDecision({ ...input, attempt: UNREACHABLE_MAX_ATTEMPTS - 1 }).retry).toBe(true);
    expect(retryDecision({ ...input, attempt: UNREACHABLE_MAX_ATTEMPTS })).toEqual({ retry: false });
    expect(retryDecision({ ...input, attempt: UNREACHABLE_MAX_ATTEMPTS, unreachable: false }).retry).toBe(true);
    expect(attemptBudget({ maxAttempts: 2, unreachable: true })).toBe(2);
  });

  it('finds the reason in the cause chain, and words other failures', () => {
    expect(unreachableReason(new Error('fetch failed', { cause: refused }))).toBe('connection refused');
    expect(unreachableReason(Object.assign(new Error('x'), { code: 'ENOTFOUND' }))).toBe('host name not found');
    expect(unreachableReason(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBeUndefined();
    expect(failureInWords(Object.assign(new Error('x'), { code: 'ERR_NETWORK', cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) }))).toBe('connection reset');
    expect(failureInWords(Object.assign(new Error('x'), { code: 'ERR_HTTP', status: 503 }))).toBe('HTTP 503');
    expect(failureInWords(Object.assign(new Error('x'), { code: 'ERR_STALL' }))).toBe('no data for too long');
  });
});

describe('isUpstreamDown', () => {
  it('is what is retried, plus a proxy that cannot get through; never an answer about the resource', () => {
    for (const [code, status] of [['ERR_HTTP', 503], ['ERR_HTTP', 429], ['ERR_HTTP', 408], ['ERR_NETWORK'], ['ERR_STALL']] as const) {
      expect(isRetryable(code, status)).toBe(true);
      expect(isUpstreamDown(code, status)).toBe(true);
    }
    expect(isRetryable('ERR_PROXY')).toBe(false);
    expect(isUpstreamDown('ERR_PROXY')).toBe(true);
    for (const [code, status] of [['ERR_NOT_FOUND', 404], ['ERR_AUTH', 401], ['ERR_GATED', 403], ['ERR_HTTP', 400], ['ERR_BAD_RESPONSE'], ['ERR_TLS'], ['ERR_REDIRECT']] as const) {
      expect(isUpstreamDown(code, status)).toBe(false);
    }
  });
});

describe('decideRetry', () => {
  it('decides from the error and announces a retry with the URL that answered, the reason and what is left', () => {
    const told: RetryEvent[] = [];
    const busy = new ModelfetchError('ERR_HTTP', 'busy', { status: 503, retryAfterMs: 7000, url: 'https://cdn.example/x' });
    expect(decideRetry(busy, { attempt: 2, maxAttempts: 8, random: 0.5, url: 'https://hub.example/x', onRetry: (e) => told.push(e) })).toEqual({ retry: true, delayMs: 7000 });
    expect(told).toEqual([{ url: 'https://cdn.example/x', reason: 'HTTP 503', retry: 2, maxRetries: 7, delayMs: 7000 }]);
    // An error that does not name a URL: the one asked for; an unreachable host: the short budget.
    const refused = new ModelfetchError('ERR_NETWORK', 'no', { cause: Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }) });
    expect(decideRetry(refused, { attempt: 1, maxAttempts: 8, random: 0, url: 'https://hub.example/y', unreachable: true, onRetry: (e) => told.push(e) })).toEqual({ retry: true, delayMs: BACKOFF.baseMs / 2 });
    expect(told[1]).toEqual({ url: 'https://hub.example/y', reason: 'connection refused', retry: 1, maxRetries: UNREACHABLE_MAX_ATTEMPTS - 1, delayMs: BACKOFF.baseMs / 2 });
  });

  it('announces nothing when it gives up', () => {
    const told: RetryEvent[] = [];
    const onRetry = (e: RetryEvent): number => told.push(e);
    expect(decideRetry(new ModelfetchError('ERR_NOT_FOUND', 'gone', { status: 404 }), { attempt: 1, maxAttempts: 8, random: 0.5, url: 'u', onRetry })).toEqual({ retry: false });
    expect(decideRetry(new ModelfetchError('ERR_HTTP', 'busy', { status: 503 }), { attempt: 8, maxAttempts: 8, random: 0.5, url: 'u', onRetry })).toEqual({ retry: false });
    expect(told).toEqual([]);
  });
});
