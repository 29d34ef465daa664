import { describe, expect, it } from 'vitest';
import { fakeClock } from '../../test/support/fake-clock.js';
import { parseRateLimit, RateLimits, RESET_MARGIN_MS, requestKind } from './rate-limit.js';
import type { RateLimitWait } from './types.js';

const hub = new URL('https://hub.example/org/name/resolve/main/a.txt');
const api = new URL('https://hub.example/api/models/org/name/revision/main');

describe('parseRateLimit', () => {
  it('reads the Hub form of the header', () => {
    expect(parseRateLimit('"api";r=489;t=189')).toEqual({ bucket: 'api', remaining: 489, resetSeconds: 189 });
    expect(parseRateLimit('"resolvers"; r=0; t=55')).toEqual({ bucket: 'resolvers', remaining: 0, resetSeconds: 55 });
  });
  it('ignores what is not that shape', () => {
    expect(parseRateLimit(undefined)).toBeUndefined();
    expect(parseRateLimit('api;r=1;t=2')).toBeUndefined();
    expect(parseRateLimit('"api";r=-1;t=2')).toBeUndefined();
    expect(parseRateLimit('"api";t=2')).toBeUndefined();
  });
  it('tells API, resolve and other requests apart by their path', () => {
    expect(requestKind(api)).toBe('api');
    expect(requestKind(hub)).toBe('resolve');
    expect(requestKind(new URL('https://hub.example/datasets/org/name/resolve/main/api/x'))).toBe('resolve');
    expect(requestKind(new URL('https://cdn.example/lfs/abc'))).toBe('other');
  });
});

describe('RateLimits', () => {
  it('sends the first request of a kind alone: the others wait for its answer to learn the bucket', async () => {
    const clock = fakeClock();
    const limits = new RateLimits(clock);
    const first = await limits.acquire(hub, 'resolve');
    let second = false;
    const pending = limits.acquire(hub, 'resolve').then((ticket) => ((second = true), ticket));
    await new Promise((resolve) => setImmediate(resolve));
    expect(second).toBe(false);
    first.answered('"resolvers";r=5;t=10');
    (await pending).answered('"resolvers";r=4;t=10');
    expect(second).toBe(true);
  });

  it('lets requests through while the bucket has room, then holds them all on one wait until the window resets', async () => {
    // Sleeps end only when the test lets them, so both held requests are waiting at the same time.
    let time = 1_000_000;
    const slept: number[] = [];
    const wakers: Array<() => void> = [];
    const clock = {
      slept,
      now: () => time,
      sleep: (ms: number) => {
        slept.push(ms);
        return new Promise<void>((resolve) => wakers.push(() => ((time += ms), resolve())));
      },
    };
    const limits = new RateLimits(clock);
    (await limits.acquire(api, 'api')).answered('"api";r=2;t=30');
    const tickets = [await limits.acquire(api, 'api'), await limits.acquire(api, 'api')];
    expect(clock.slept).toEqual([]);
    for (const ticket of tickets) ticket.answered('"api";r=0;t=30');
    const told: RateLimitWait[] = [];
    const listener = (w: RateLimitWait): number => told.push(w);
    const held = [limits.acquire(api, 'api', undefined, listener), limits.acquire(api, 'api', undefined, listener)];
    await new Promise((resolve) => setImmediate(resolve));
    for (const wake of wakers.splice(0)) wake();
    // After the reset one goes alone and learns the new window; the other follows its answer.
    (await Promise.race(held)).answered('"api";r=9;t=300');
    await Promise.all(held);
    // One timer for every request held; each listener told once.
    expect(clock.slept).toEqual([30_000 + RESET_MARGIN_MS]);
    expect(told).toEqual([{ origin: 'https://hub.example', bucket: 'api', delayMs: 30_000 + RESET_MARGIN_MS }]);
  });

  it('counts requests still out against what an answer says is left', async () => {
    const clock = fakeClock();
    const limits = new RateLimits(clock);
    (await limits.acquire(hub, 'resolve')).answered('"resolvers";r=10;t=60');
    const out = await Promise.all([1, 2, 3].map(() => limits.acquire(hub, 'resolve')));
    // Someone else spends the same budget: the first of three answers says 3 left, and the two
    // still out may not be counted yet, so one more may go, not three.
    out[0]?.answered('"resolvers";r=3;t=60');
    expect(limits.delayFor(hub.origin, 'resolve')).toBe(0);
    await limits.acquire(hub, 'resolve');
    expect(limits.delayFor(hub.origin, 'resolve')).toBe(60_000 + RESET_MARGIN_MS);
  });

  it('keeps buckets apart, per name and per origin: a spent api bucket holds neither resolve requests nor another host', async () => {
    const clock = fakeClock();
    const limits = new RateLimits(clock);
    (await limits.acquire(api, 'api')).answered('"api";r=0;t=10');
    (await limits.acquire(hub, 'resolve')).answered('"resolvers";r=5;t=10');
    (await limits.acquire(new URL('https://mirror.example/api/models/a/b'), 'api')).answered('"api";r=5;t=10');
    await limits.acquire(hub, 'resolve');
    await limits.acquire(new URL('https://mirror.example/api/models/a/b'), 'api');
    expect(clock.slept).toEqual([]);
    expect(limits.delayFor(hub.origin, 'api')).toBe(10_000 + RESET_MARGIN_MS);
  });

  it('does not pace a kind whose first answer had no header, nor hold anything after a failure; a CDN\'s first request holds nothing', async () => {
    const clock = fakeClock();
    const limits = new RateLimits(clock);
    const cdn = new URL('https://cdn.example/lfs/abc');
    const [first] = await Promise.all([limits.acquire(cdn, 'other'), limits.acquire(cdn, 'other')]);
    first.answered(undefined);
    await Promise.all(Array.from({ length: 20 }, () => limits.acquire(cdn, 'other')));
    (await limits.acquire(hub, 'resolve')).failed();
    (await limits.acquire(hub, 'resolve')).answered(undefined);
    expect(clock.slept).toEqual([]);
  });

  it('gives up a wait when its signal aborts, and stops the timer when nobody waits any more', async () => {
    let stopped = false;
    const clock = {
      now: () => 0,
      sleep: (_ms: number, signal?: AbortSignal) => new Promise<void>((_, reject) => signal?.addEventListener('abort', () => ((stopped = true), reject(new Error('stopped'))))),
    };
    const limits = new RateLimits(clock);
    (await limits.acquire(api, 'api')).answered('"api";r=0;t=100');
    const controller = new AbortController();
    const waiting = limits.acquire(api, 'api', controller.signal);
    controller.abort(new Error('interrupted'));
    await expect(waiting).rejects.toThrow('interrupted');
    expect(stopped).toBe(true);
  });
});
