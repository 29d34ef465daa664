import type { ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fakeClock } from '../../test/support/fake-clock.js';
import { startFixtureServer, type FixtureServer } from '../../test/support/fixture-server.js';
import { retryDecision, UNREACHABLE_MAX_ATTEMPTS } from '../transfer/retry-policy.js';
import type { Clock, RetryEvent } from '../transfer/types.js';
import { fetchRevisionCommit } from './hf.js';
import { resolveModelScopeSnapshot } from './modelscope.js';

/**
 * The Hub's and ModelScope's API calls share one JSON client: a failed call is retried as
 * transfer/retry-policy.ts decides, and the wait is taken on the injected clock (a fake one here, so
 * nothing waits for real and every wait is seen).
 */

const commit = 'c'.repeat(40);
const RANDOM = 0.5;

/** What the retry policy says to wait after each of `failures` failures of this kind. */
function policyWaits(failures: number, failure: { status: number; retryAfterMs?: number }): number[] {
  return Array.from({ length: failures }, (_, i) => {
    const decision = retryDecision({ attempt: i + 1, maxAttempts: UNREACHABLE_MAX_ATTEMPTS, code: 'ERR_HTTP', ...failure, random: RANDOM });
    if (!decision.retry) throw new Error('the policy does not retry this');
    return decision.delayMs;
  });
}

describe('the shared JSON client retries through the retry policy, on the injected clock', () => {
  let server: FixtureServer;
  /** Answers still to fail, and how. */
  let failures: Array<{ status: number; headers?: Record<string, string> }>;
  let apiRequests: number;

  const answer = (res: ServerResponse, body: unknown): void => {
    apiRequests += 1;
    const failure = failures.shift();
    if (failure) {
      res.writeHead(failure.status, { 'content-type': 'text/plain', ...failure.headers });
      res.end(`fault ${failure.status}`);
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
  };

  beforeEach(async () => {
    failures = [];
    apiRequests = 0;
    server = await startFixtureServer();
    server.route('/api/models/org/m/revision/', (_req, res) => answer(res, { sha: commit }));
    server.route('/api/v1/models/org/m/repo/files', (_req, res) => answer(res, { Code: 200, Data: { Files: [{ Path: 'a.txt', Type: 'blob', Size: 1, Sha256: 'b'.repeat(64), Revision: commit }] } }));
  });
  afterEach(() => server.close());

  const hub = (clock: Clock) => fetchRevisionCommit({ repoType: 'model', repoId: 'org/m' }, 'main', { endpoint: server.origin, clock, random: () => RANDOM });
  const modelScope = (clock: Clock) => resolveModelScopeSnapshot('org/m', 'master', { endpoint: server.origin, clock, random: () => RANDOM });

  it('a Hub API call that meets 503 twice waits the policy\'s backoff on the clock, then succeeds', async () => {
    failures = [{ status: 503 }, { status: 503 }];
    const clock = fakeClock();
    expect(await hub(clock)).toBe(commit);
    expect(apiRequests).toBe(3);
    expect(clock.slept).toEqual(policyWaits(2, { status: 503 }));
    expect(clock.slept.every((ms) => ms > 0)).toBe(true);
  });

  it('a 429 with Retry-After waits exactly what the server asked, and says so before waiting', async () => {
    failures = [{ status: 429, headers: { 'retry-after': '7' } }];
    const clock = fakeClock();
    const events: RetryEvent[] = [];
    const onRetry = (event: RetryEvent): void => {
      expect(clock.slept).toEqual([]); // told before the wait, not after
      events.push(event);
    };
    expect(await fetchRevisionCommit({ repoType: 'model', repoId: 'org/m' }, 'main', { endpoint: server.origin, clock, random: () => RANDOM, onRetry })).toBe(commit);
    expect(clock.slept).toEqual([7_000]);
    expect(events).toEqual([{ url: `${server.origin}/api/models/org/m/revision/main`, reason: 'HTTP 429', retry: 1, maxRetries: UNREACHABLE_MAX_ATTEMPTS - 1, delayMs: 7_000 }]);
  });

  it('ModelScope retries a 503 the same way as the Hub', async () => {
    failures = [{ status: 503 }, { status: 503 }];
    const hubClock = fakeClock();
    expect(await hub(hubClock)).toBe(commit);
    const hubRequests = apiRequests;

    failures = [{ status: 503 }, { status: 503 }];
    apiRequests = 0;
    const msClock = fakeClock();
    const snapshot = await modelScope(msClock);
    expect(snapshot.files.map((f) => f.path)).toEqual(['a.txt']);
    expect(apiRequests).toBe(hubRequests);
    expect(msClock.slept).toEqual(hubClock.slept);
  });

  it('both give up after the same number of attempts when the 503 persists, with ERR_HTTP', async () => {
    const persistent = Array.from({ length: 10 }, () => ({ status: 503 }));
    for (const call of [hub, modelScope]) {
      failures = [...persistent];
      apiRequests = 0;
      const clock = fakeClock();
      await expect(call(clock)).rejects.toMatchObject({ code: 'ERR_HTTP', status: 503 });
      expect(apiRequests).toBe(UNREACHABLE_MAX_ATTEMPTS);
      expect(clock.slept).toEqual(policyWaits(UNREACHABLE_MAX_ATTEMPTS - 1, { status: 503 }));
    }
  });

  it('an abort during the wait ends the call as aborted, without another request', async () => {
    failures = [{ status: 503 }];
    const controller = new AbortController();
    const clock: Clock = {
      now: () => 0,
      sleep: (_ms, signal) => {
        controller.abort();
        return Promise.reject(signal?.reason as Error);
      },
    };
    await expect(fetchRevisionCommit({ repoType: 'model', repoId: 'org/m' }, 'main', { endpoint: server.origin, clock, signal: controller.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    expect(apiRequests).toBe(1);
  });
});
