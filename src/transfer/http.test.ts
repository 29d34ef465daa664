import { describe, expect, it } from 'vitest';
import { isModelfetchError } from '../core/errors.js';
import { startFixtureServer } from '../../test/support/fixture-server.js';
import { FastHttpPool } from './fast-http.js';
import { fakeClock } from '../../test/support/fake-clock.js';
import { headersFor, MAX_REDIRECTS, requestFollowingRedirects, sendPaced, statusError } from './http.js';
import { RateLimits } from './rate-limit.js';

describe('headersFor', () => {
  const headers = { Authorization: 'Bearer hf_abcdefghijkl', Cookie: 'a=1', 'X-Api-Key': 'k', Accept: 'x', Range: 'bytes=5-', 'Accept-Encoding': 'gzip' };

  it('keeps credentials for their own origin only: another scheme (https→http), host or port loses them', () => {
    expect(headersFor('https://hub.example/x', { headers, credentialOrigin: 'https://hub.example' }, true).authorization).toBe('Bearer hf_abcdefghijkl');
    for (const url of ['http://hub.example/x', 'https://cdn.example/x', 'https://hub.example:8443/x']) {
      const out = headersFor(url, { headers, credentialOrigin: 'https://hub.example' }, true);
      expect(out.authorization).toBeUndefined();
      expect(out.cookie).toBeUndefined();
      expect(out['x-api-key']).toBeUndefined();
      expect(out.accept).toBe('x');
    }
    // once dropped, they stay dropped even back on the origin
    expect(headersFor('https://hub.example/x', { headers, credentialOrigin: 'https://hub.example' }, false).authorization).toBeUndefined();
  });

  it('always asks for identity encoding and lets the engine own Range', () => {
    const out = headersFor('https://hub.example/x', { headers, extraHeaders: { range: 'bytes=0-0' } }, true);
    expect(out['accept-encoding']).toBe('identity');
    expect(out.range).toBe('bytes=0-0');
  });
});

describe('requestFollowingRedirects', () => {
  it(`refuses more than ${MAX_REDIRECTS} hops`, async () => {
    const server = await startFixtureServer();
    try {
      server.route('/hop/', (req, res) => {
        const n = Number((req.url ?? '').split('/').pop());
        res.statusCode = 302;
        res.setHeader('Location', `/hop/${n + 1}`);
        res.end();
      });
      const transport = { dispatcher: undefined, fast: new FastHttpPool() };
      const error = await requestFollowingRedirects(transport, { url: `${server.origin}/hop/0` }).catch((e: unknown) => e);
      expect(isModelfetchError(error, 'ERR_REDIRECT')).toBe(true);
      expect(server.requests.length).toBe(MAX_REDIRECTS + 1);
    } finally {
      await server.close();
    }
  });
});

describe('statusError', () => {
  it('maps statuses to stable codes with hints and keeps Retry-After', () => {
    expect(statusError(404, 'u', {}, 0).code).toBe('ERR_NOT_FOUND');
    expect(statusError(401, 'u', {}, 0).hint).toMatch(/HF_TOKEN/);
    expect(statusError(403, 'u', {}, 0).code).toBe('ERR_GATED');
    expect(statusError(503, 'u', { 'retry-after': '2' }, 0).status).toBe(503);
    // Retry-After travels on the error itself (delta seconds, or an HTTP date read against `now`).
    expect(statusError(503, 'u', { 'retry-after': '2' }, 0).retryAfterMs).toBe(2000);
    expect(statusError(429, 'u', { 'retry-after': new Date(60_000).toUTCString() }, 15_000).retryAfterMs).toBe(45_000);
    expect(statusError(503, 'u', {}, 0).retryAfterMs).toBeUndefined();
  });
});

describe('sendPaced', () => {
  const api = new URL('https://hub.example/api/models/org/name');

  it('tells the bucket of the answer: a spent one holds the next request of its kind', async () => {
    const clock = fakeClock();
    const limits = new RateLimits(clock);
    const answer = await sendPaced({ limits }, api, 'api', undefined, () => Promise.resolve({ headers: { ratelimit: '"api";r=0;t=60' }, body: 'ok' }));
    expect(answer.body).toBe('ok');
    expect(limits.delayFor(api.origin, 'api')).toBeGreaterThanOrEqual(60_000);
  });

  it('a send that fails rejects with what `failure` makes of it, and frees its turn for the next request', async () => {
    const limits = new RateLimits(fakeClock());
    const refused = new Error('refused');
    // The first API request of an origin goes alone: had the failure kept its turn, the second would wait for ever.
    await expect(sendPaced({ limits }, api, 'api', undefined, () => Promise.reject(refused), (error) => new Error(`mapped: ${(error as Error).message}`))).rejects.toThrow('mapped: refused');
    await expect(sendPaced({ limits }, api, 'api', undefined, () => Promise.reject(refused))).rejects.toBe(refused);
    await expect(sendPaced({ limits }, api, 'api', undefined, () => Promise.resolve({ headers: {} }))).resolves.toEqual({ headers: {} });
  });

  it('without pacing is only the send', async () => {
    await expect(sendPaced(undefined, api, 'api', undefined, () => Promise.resolve({ headers: { ratelimit: '"api";r=0;t=60' } }))).resolves.toEqual({ headers: { ratelimit: '"api";r=0;t=60' } });
  });
});
