import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFixtureServer, type FixtureServer } from '../../test/support/fixture-server.js';
import { isModelfetchError } from '../core/errors.js';
import { createConnectionBudget } from './budget.js';
import { createRangeReader } from './range-read.js';

const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => i % 251));
const file = { source: { data }, size: data.length, etag: 'e1', sha256: createHash('sha256').update(data).digest('hex') };
const noWait = { now: () => 0, sleep: async () => undefined };

describe('createRangeReader', () => {
  let server: FixtureServer;
  beforeAll(async () => {
    server = await startFixtureServer();
    server.setFile('/f.bin', file);
    server.route('/moved', (_req, res) => {
      res.statusCode = 302;
      res.setHeader('Location', '/f.bin');
      res.end();
    });
  });
  afterAll(() => server.close());
  beforeEach(() => {
    server.clearFaults();
    server.resetLog();
  });

  it('reads exactly the range asked for, after a redirect, and says where it ended up and the total size', async () => {
    const read = createRangeReader({ clock: noWait });
    const result = await read({ url: `${server.origin}/moved`, start: 100, end: 300 });
    expect(result.bytes).toEqual(data.subarray(100, 300));
    expect(result.total).toBe(5000);
    expect(result.url).toBe(`${server.origin}/f.bin`);
    expect(server.requests.map((r) => r.headers.range)).toEqual(['bytes=100-299', 'bytes=100-299']);
    const tail = await read({ url: `${server.origin}/f.bin`, start: 4900, end: 6000 });
    expect(tail.bytes).toEqual(data.subarray(4900));
  });

  it('takes the wanted bytes from a server that ignores Range, and answers an empty read past the end', async () => {
    const read = createRangeReader({ clock: noWait });
    server.addFault({ fault: { ignoreRange: true }, times: 1 });
    const ignored = await read({ url: `${server.origin}/f.bin`, start: 10, end: 20 });
    expect(ignored.bytes).toEqual(data.subarray(10, 20));
    expect(ignored.total).toBe(5000);
    const past = await read({ url: `${server.origin}/f.bin`, start: 6000, end: 7000 });
    expect(past).toMatchObject({ total: 5000 });
    expect(past.bytes.length).toBe(0);
  });

  it('retries a lying Content-Range, then fails with ERR_BAD_RANGE; a 404 is not retried', async () => {
    const read = createRangeReader({ clock: noWait, maxAttempts: 3 });
    server.addFault({ fault: { wrongRangeShift: 7 } });
    const error = await read({ url: `${server.origin}/f.bin`, start: 0, end: 64 }).catch((e: unknown) => e);
    expect(isModelfetchError(error, 'ERR_BAD_RANGE')).toBe(true);
    expect(server.requests).toHaveLength(3);
    server.clearFaults();
    server.resetLog();
    expect(isModelfetchError(await read({ url: `${server.origin}/missing`, start: 0, end: 64 }).catch((e: unknown) => e), 'ERR_NOT_FOUND')).toBe(true);
    expect(server.requests).toHaveLength(1);
  });

  it('never holds more connections to a host than the budget allows', async () => {
    const budget = createConnectionBudget(2);
    let peak = 0;
    const acquire = budget.acquire.bind(budget);
    budget.acquire = async (host, signal) => {
      const release = await acquire(host, signal);
      peak = Math.max(peak, budget.inUse(host));
      return release;
    };
    server.addFault({ fault: { latencyMs: 20 } });
    const read = createRangeReader({ budget, clock: noWait });
    await Promise.all(Array.from({ length: 8 }, (_, i) => read({ url: `${server.origin}/f.bin`, start: i * 10, end: i * 10 + 10 })));
    expect(peak).toBe(2);
    expect(budget.total()).toBe(0);
  });
});
