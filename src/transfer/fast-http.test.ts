import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FastHttpPool } from './fast-http.js';

/** A raw TCP server that answers each request with `reply(n)` (n = request number), written byte by byte when `trickle`. */
async function rawServer(reply: (n: number) => string, trickle = false): Promise<{ url: string; connections: () => number; server: Server }> {
  let requests = 0;
  let connections = 0;
  const server = createServer((socket: Socket) => {
    connections += 1;
    let pending = '';
    socket.on('data', (data) => {
      pending += data.toString('latin1');
      while (pending.includes('\r\n\r\n')) {
        pending = pending.slice(pending.indexOf('\r\n\r\n') + 4);
        requests += 1;
        const text = reply(requests);
        if (!trickle) socket.write(text, 'latin1');
        else for (const ch of text) socket.write(ch, 'latin1');
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/x`, connections: () => connections, server };
}

async function text(pool: FastHttpPool, url: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const response = await pool.request(new URL(url), {}, new AbortController().signal);
  const parts: string[] = [];
  for await (const chunk of response.body) parts.push(chunk.toString('latin1'));
  return { status: response.status, headers: response.headers, body: parts.join('') };
}

const servers: Server[] = [];
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const socket of sockets) socket.destroy(); // kept-alive connections would hold close() up
  sockets.clear();
  for (const s of servers.splice(0)) await new Promise((resolve) => s.close(resolve));
});

function track(...list: Server[]): void {
  for (const server of list) {
    servers.push(server);
    server.on('connection', (socket: Socket) => sockets.add(socket));
  }
}

describe('fast http client', () => {
  it('reads Content-Length bodies and reuses the connection', async () => {
    const raw = await rawServer(() => 'HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello');
    track(raw.server);
    const pool = new FastHttpPool();
    const first = await text(pool, raw.url);
    expect(first).toEqual({ status: 206, headers: { 'content-length': '5', 'x-a': '1, 2' }, body: 'hello' });
    expect((await text(pool, raw.url)).body).toBe('hello');
    expect(raw.connections()).toBe(1);
  });

  it('parses headers and chunked bodies that arrive one byte at a time', async () => {
    const raw = await rawServer(() => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n', true);
    track(raw.server);
    const pool = new FastHttpPool();
    expect((await text(pool, raw.url)).body).toBe('hello world');
    expect((await text(pool, raw.url)).body).toBe('hello world');
    expect(raw.connections()).toBe(1);
  });

  it('reads to the close when there is no length, and never reuses such a connection', async () => {
    let sockets = 0;
    const server = createServer((socket) => {
      sockets += 1;
      socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\n\r\nuntil close'));
    });
    track(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const pool = new FastHttpPool();
    expect((await text(pool, url)).body).toBe('until close');
    expect((await text(pool, url)).body).toBe('until close');
    expect(sockets).toBe(2);
  });

  it('fails a body cut short, and refuses malformed responses', async () => {
    const short = createServer((socket) => socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this')));
    const garbage = createServer((socket) => socket.once('data', () => socket.end('SSH-2.0-OpenSSH\r\n\r\n')));
    track(short, garbage);
    for (const s of [short, garbage]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const pool = new FastHttpPool();
    await expect(text(pool, `http://127.0.0.1:${(short.address() as AddressInfo).port}/`)).rejects.toThrow(/closed/);
    await expect(text(pool, `http://127.0.0.1:${(garbage.address() as AddressInfo).port}/`)).rejects.toThrow(/Malformed HTTP response/);
  });

  it('hands on the body bytes that arrive in the same read as the head, and refuses a head over 64 KiB', async () => {
    // A 400 KiB body written with its head in one go: the first read holds the head and most of the body.
    const body = Buffer.alloc(400 * 1024, 0);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 9)) & 0xff;
    const head = `HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\n\r\n`;
    const big = createServer((socket) => socket.once('data', () => socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]))));
    const huge = createServer((socket) => socket.once('data', () => socket.end(`HTTP/1.1 200 OK\r\nX-Pad: ${'a'.repeat(70 * 1024)}\r\nContent-Length: 0\r\n\r\n`)));
    track(big, huge);
    for (const s of [big, huge]) await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const pool = new FastHttpPool();
    const response = await pool.request(new URL(`http://127.0.0.1:${(big.address() as AddressInfo).port}/`), {}, new AbortController().signal);
    const parts: Buffer[] = [];
    for await (const chunk of response.body) parts.push(Buffer.from(chunk));
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    await expect(text(pool, `http://127.0.0.1:${(huge.address() as AddressInfo).port}/`)).rejects.toThrow(/header section too large/);
  });

  it('refuses header values with line breaks (no request smuggling)', async () => {
    const pool = new FastHttpPool();
    await expect(pool.request(new URL('http://127.0.0.1:9/'), { 'x-a': 'b\r\nEvil: 1' }, new AbortController().signal)).rejects.toThrow(/line break/);
  });

  it('retries once on a fresh connection when a kept-alive one was closed by the server', async () => {
    let sockets = 0;
    const server = createServer((socket) => {
      sockets += 1;
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        setTimeout(() => socket.destroy(), 20); // the server drops idle connections quickly
      });
    });
    track(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const pool = new FastHttpPool();
    expect((await text(pool, url)).body).toBe('ok');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await text(pool, url)).body).toBe('ok');
    expect(sockets).toBe(2);
  });
});
