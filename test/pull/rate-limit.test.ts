import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pull } from '../../src/pull/index.js';
import type { Clock } from '../../src/transfer/types.js';
import { startFixtureHub, type FixtureHub } from '../support/fixture-hub.js';
import { testTempDir } from '../support/temp.js';

/**
 * A hub that announces its rate limit (`RateLimit: "api";r=…;t=…`) with a small quota and answers
 * 429 past it: pull paces its API requests by the header and is never refused. The window runs on a
 * clock the test owns (shared by the hub and pull), so waiting a window takes no time.
 */

const FILES = 200;
const PAGE = 20;
const QUOTA = 3;
const WINDOW_MS = 300_000;

let now = 0;
const slept: number[] = [];
const clock: Clock = {
  now: () => now,
  sleep: (ms) => {
    slept.push(ms);
    now += ms;
    return Promise.resolve();
  },
};

let hub: FixtureHub;

beforeAll(async () => {
  hub = await startFixtureHub({
    pageSize: PAGE,
    apiRateLimit: { quota: QUOTA, windowMs: WINDOW_MS, now: () => now },
    repos: [{ repoId: 'org/many', files: Array.from({ length: FILES }, (_, i) => ({ path: `shards/part-${String(i).padStart(4, '0')}.txt`, content: `part ${i}\n` })) }],
  });
});
afterAll(() => hub.close());

const apiAnswers = () => hub.hub.requests.filter((r) => r.url.startsWith('/api/'));

describe('Hub rate limits', () => {
  it('the fixture hub refuses a client that ignores the header once the quota is spent', async () => {
    now = 10 * WINDOW_MS;
    hub.resetLogs();
    const url = `${hub.endpoint}/api/models/org/many/revision/main`;
    const statuses: number[] = [];
    for (let i = 0; i <= QUOTA; i++) statuses.push((await fetch(url)).status);
    expect(statuses).toEqual([...Array<number>(QUOTA).fill(200), 429]);
  });

  it(`a pull of ${FILES} files (${FILES / PAGE} listing pages) waits for the window instead of being answered 429`, async () => {
    now = 20 * WINDOW_MS;
    slept.length = 0;
    hub.resetLogs();
    const dir = await testTempDir('mf-rate-limit-');
    const warnings: string[] = [];
    const result = await pull({ repo: 'org/many', cacheDir: join(dir, 'hub'), endpoint: hub.endpoint, env: {}, clock, onWarning: (w) => warnings.push(w) });
    expect(result.files).toBe(FILES);
    const api = apiAnswers();
    expect(api.filter((r) => r.status === 429)).toEqual([]);
    // One revision lookup plus one request per listing page: what the README promises.
    // One revision lookup, the rest listing pages (the last one may be empty): what the README promises.
    expect(api.filter((r) => r.url.includes('/revision/'))).toHaveLength(1);
    expect(api.filter((r) => !r.url.includes('/revision/') && !r.url.includes('/tree/'))).toEqual([]);
    expect(api.length).toBeGreaterThanOrEqual(1 + FILES / PAGE);
    // It waited for the window to reset (each wait ends at a reset), at least once per window beyond the first.
    expect(slept.filter((ms) => ms > 1000).length).toBeGreaterThanOrEqual(Math.ceil(api.length / QUOTA) - 1);
    // Each wait is said, so a pull that pauses for minutes does not look hung.
    expect(warnings.length).toBe(slept.filter((ms) => ms > 1000).length);
    expect(warnings[0]).toMatch(/^the hub's "api" rate limit is spent; waiting \d+ s for its window to reset$/);
  });
});
