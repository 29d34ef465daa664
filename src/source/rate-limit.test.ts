import { describe, expect, it } from 'vitest';
import { fakeClock } from '../../test/support/fake-clock.js';
import { parseRateLimit, RateLimitPacer } from './rate-limit.js';

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
});

describe('RateLimitPacer', () => {
  it('lets requests through while the bucket has room, then waits for the window to reset', async () => {
    const clock = fakeClock();
    const pacer = new RateLimitPacer(clock);
    await pacer.beforeRequest('api');
    pacer.observe('api', '"api";r=2;t=30');
    await pacer.beforeRequest('api');
    await pacer.beforeRequest('api');
    expect(clock.slept).toEqual([]);
    const waits: number[] = [];
    await pacer.beforeRequest('api', undefined, (ms) => waits.push(ms));
    expect(clock.slept).toEqual([30_000]);
    expect(waits).toEqual([30_000]);
  });

  it('keeps buckets apart: an exhausted api bucket does not hold resolve requests', async () => {
    const clock = fakeClock();
    const pacer = new RateLimitPacer(clock);
    pacer.observe('api', '"api";r=0;t=10');
    pacer.observe('resolve', '"resolvers";r=5;t=10');
    await pacer.beforeRequest('resolve');
    expect(clock.slept).toEqual([]);
    expect(pacer.delayFor('api')).toBe(10_000);
  });
});
