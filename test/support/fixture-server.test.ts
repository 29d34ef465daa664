import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRange, servedBuffer, startFixtureServer, type FixtureServer } from './fixture-server.js';

describe('fixture server', () => {
  let server: FixtureServer | undefined;
  afterEach(async () => server?.close());

  it('parses the range forms a client sends', () => {
    expect(parseRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 });
    expect(parseRange('bytes=5-', 10)).toEqual({ start: 5, end: 9 });
    expect(parseRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 });
    expect(parseRange('bytes=3-100', 10)).toEqual({ start: 3, end: 9 });
    expect(parseRange('bytes=10-', 10)).toBe('unsatisfiable');
    expect(parseRange('items=0-1', 10)).toBeUndefined();
  });

  it('serves ranges, honours If-Range and applies faults only as many times as asked', async () => {
    server = await startFixtureServer();
    const data = randomBytes(1000);
    const file = servedBuffer(data);
    server.setFile('/f.bin', file);

    const partial = await fetch(`${server.origin}/f.bin`, { headers: { range: 'bytes=10-19' } });
    expect(partial.status).toBe(206);
    expect(partial.headers.get('content-range')).toBe('bytes 10-19/1000');
    expect(Buffer.from(await partial.arrayBuffer())).toEqual(data.subarray(10, 20));

    const stale = await fetch(`${server.origin}/f.bin`, { headers: { range: 'bytes=10-19', 'if-range': '"other"' } });
    expect(stale.status).toBe(200);
    expect((await stale.arrayBuffer()).byteLength).toBe(1000);

    server.addFault({ times: 1, fault: { status: 429, statusHeaders: { 'retry-after': '2' } } });
    const limited = await fetch(`${server.origin}/f.bin`);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('2');
    await limited.arrayBuffer();
    expect((await fetch(`${server.origin}/f.bin`)).status).toBe(200);

    server.addFault({ times: 1, fault: { corruptOffsets: [500] } });
    const corrupt = Buffer.from(await (await fetch(`${server.origin}/f.bin`)).arrayBuffer());
    expect(corrupt[500]).toBe((data[500] ?? 0) ^ 0xff);
    expect(corrupt.subarray(0, 500)).toEqual(data.subarray(0, 500));
  });

  it('finishes a throttled body larger than the socket buffer', async () => {
    server = await startFixtureServer();
    const data = randomBytes(3 * 1024 * 1024);
    server.setFile('/f.bin', servedBuffer(data));
    server.addFault({ fault: { throttleBytesPerSec: 20 * 1024 * 1024 } });
    const body = Buffer.from(await (await fetch(`${server.origin}/f.bin`)).arrayBuffer());
    expect(body.equals(data)).toBe(true);
  });

  it('resets a connection mid-body', async () => {
    server = await startFixtureServer();
    server.setFile('/f.bin', servedBuffer(randomBytes(100_000)));
    server.addFault({ fault: { resetAfterBytes: 1000 } });
    await expect(fetch(`${server.origin}/f.bin`).then((r) => r.arrayBuffer())).rejects.toThrow();
  });
});
