import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pull } from '../../src/pull/index.js';
import { createPullFetcher } from '../../src/server/hf-upstream.js';
import { createMirrorServer } from '../../src/server/mirror-server.js';
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
    expect(warnings[0]).toMatch(/^127\.0\.0\.1:\d+: the "api" rate limit is spent; waiting \d+ s for its window to reset$/);
  });
});

/**
 * The Hub counts `/resolve/` requests in a bucket of their own ("resolvers"). A repo of 1,000 small
 * files is 1,000 resolve requests: with a quota of 40 per window they are paced over 25 windows, each
 * counted against the bucket before it leaves (16 connections are out at once), and the hub never
 * answers 429. The hub's pages hold 1,000 entries, as the Hub's do.
 */
describe('Hub rate limits on resolve requests', () => {
  const RESOLVE_QUOTA = 40;
  const API_QUOTA = 5;
  let paced: FixtureHub;
  const files = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => ({ path: `${prefix}/f-${String(i).padStart(4, '0')}.txt`, content: `${prefix} ${i}\n` }));

  beforeAll(async () => {
    paced = await startFixtureHub({
      pageSize: 1000,
      apiRateLimit: { quota: API_QUOTA, windowMs: WINDOW_MS, now: () => now },
      resolveRateLimit: { quota: RESOLVE_QUOTA, windowMs: WINDOW_MS, now: () => now },
      repos: [
        { repoId: 'org/one', files: files(1, 'one') },
        { repoId: 'org/hundred', files: files(100, 'hundred') },
        { repoId: 'org/thousand', files: [...files(999, 'data'), { path: 'config.json', content: '{}' }] },
      ],
    });
  });
  afterAll(() => paced.close());

  /** A pull on the shared clock, and what it asked of the hub. */
  const pulled = async (repo: string, dir: string): Promise<{ files: number; api: string[]; resolve: string[]; refused: number; warnings: string[] }> => {
    now += 10 * WINDOW_MS;
    slept.length = 0;
    paced.resetLogs();
    const warnings: string[] = [];
    const result = await pull({ repo, cacheDir: join(dir, 'hub'), endpoint: paced.endpoint, env: {}, clock, onWarning: (w) => warnings.push(w) });
    const log = paced.hub.requests;
    return {
      files: result.files,
      api: log.filter((r) => r.url.startsWith('/api/')).map((r) => r.url),
      resolve: log.filter((r) => r.url.includes('/resolve/')).map((r) => r.url),
      refused: log.filter((r) => r.status === 429).length,
      warnings,
    };
  };

  it('a pull of 1,000 files waits for each "resolvers" window instead of being answered 429', async () => {
    const dir = await testTempDir('mf-rate-limit-');
    const run = await pulled('org/thousand', dir);
    expect(run.files).toBe(1000);
    expect(run.refused).toBe(0);
    // 1,000 requests at 40 per window: at least 24 waits for a reset, each said in a warning.
    const resolverWaits = run.warnings.filter((w) => w.includes('"resolvers" rate limit is spent'));
    expect(resolverWaits.length).toBeGreaterThanOrEqual(Math.ceil(1000 / RESOLVE_QUOTA) - 1);
    expect(slept.filter((ms) => ms >= WINDOW_MS / 2).length).toBe(run.warnings.length);
    // What the README says a pull costs: one revision call, one call per listing page (1,000
    // entries, folders included: 999 files in data/, the folder and config.json make 1,001), and
    // one resolve request per file.
    expect(run.api.filter((url) => url.includes('/revision/'))).toHaveLength(1);
    expect(run.api.filter((url) => url.includes('/tree/'))).toHaveLength(2);
    expect(run.api).toHaveLength(3);
    expect(new Set(run.resolve).size).toBe(1000);
    expect(run.resolve).toHaveLength(1000);
  });

  it('a pull of 1 file and of 100 files makes 2 API calls (revision, one listing page) and one resolve request per file', async () => {
    const dir = await testTempDir('mf-rate-limit-');
    for (const [repo, count] of [['org/one', 1], ['org/hundred', 100]] as const) {
      const run = await pulled(repo, join(dir, String(count)));
      expect(run.refused).toBe(0);
      expect(run.api.filter((url) => url.includes('/revision/'))).toHaveLength(1);
      expect(run.api.filter((url) => url.includes('/tree/'))).toHaveLength(1);
      expect(run.api).toHaveLength(2);
      expect(run.resolve).toHaveLength(count);
    }
  });
});

/**
 * The mirror fills misses with one pull per file; the pulls of one process share one budget per
 * upstream host (one `RateLimits` per clock), so a dozen clients asking at once for a dozen files
 * are paced together rather than each pull spending the quota as if it were alone.
 */
describe('Hub rate limits on the mirror', () => {
  it('twelve concurrent pull-throughs against 3 resolves per window wait for the windows and are never answered 429', async () => {
    const FILES_WANTED = 12;
    const upstream = await startFixtureHub({
      resolveRateLimit: { quota: 3, windowMs: WINDOW_MS, now: () => now },
      repos: [{ repoId: 'org/mirrored', files: Array.from({ length: FILES_WANTED }, (_, i) => ({ path: `f-${i}.txt`, content: `file ${i}\n` })) }],
    });
    const dir = await testTempDir('mf-rate-limit-mirror-');
    const mirror = createMirrorServer({ cacheDir: dir, upstream: upstream.endpoint, publicRepos: ['org/mirrored'], fetchFile: createPullFetcher({ cacheDir: dir, endpoint: upstream.endpoint, pull: { clock } }) });
    try {
      now += 10 * WINDOW_MS;
      slept.length = 0;
      const url = await mirror.listen();
      const answers = await Promise.all(Array.from({ length: FILES_WANTED }, async (_, i) => {
        const response = await fetch(`${url}/org/mirrored/resolve/main/f-${i}.txt`);
        return { status: response.status, text: await response.text() };
      }));
      expect(answers).toEqual(Array.from({ length: FILES_WANTED }, (_, i) => ({ status: 200, text: `file ${i}\n` })));
      const resolves = upstream.hub.requests.filter((r) => r.url.includes('/resolve/'));
      expect(resolves.filter((r) => r.status === 429)).toEqual([]);
      expect(resolves).toHaveLength(FILES_WANTED);
      // 12 resolves at 3 per window: at least 3 waits for a reset, shared by the pulls waiting.
      expect(slept.filter((ms) => ms >= WINDOW_MS / 2).length).toBeGreaterThanOrEqual(FILES_WANTED / 3 - 1);
    } finally {
      await mirror.close();
      await upstream.close();
    }
  });
});
